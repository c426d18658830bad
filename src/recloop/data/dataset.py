"""The in-memory form of a behaviour data set."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from recloop.errors import InvalidInputError

#: Columns of a normalised interaction table, in order.
COLUMNS = ("user_id", "item_id", "timestamp", "type", "value")


@dataclass
class Dataset:
    """Interactions plus the item and user metadata that came with them.

    ``interactions`` has the columns of ``COLUMNS``: string ids, ``timestamp`` in epoch
    seconds (int64), ``type`` the kind of event, ``value`` a float (the rating for
    MovieLens). ``items`` is indexed by ``item_id`` (``title``, ``genres``, ...),
    ``users`` by ``user_id``.
    """

    interactions: pd.DataFrame
    items: pd.DataFrame | None = None
    users: pd.DataFrame | None = None
    name: str = "data"
    meta: dict[str, object] = field(default_factory=dict)

    @property
    def n_users(self) -> int:
        return int(self.interactions["user_id"].nunique())

    @property
    def n_items(self) -> int:
        return int(self.interactions["item_id"].nunique())

    def title(self, item_id: str) -> str:
        if self.items is not None and "title" in self.items.columns and item_id in self.items.index:
            return str(self.items.at[item_id, "title"])
        return item_id


def as_interactions(df: pd.DataFrame, default_type: str = "rating") -> pd.DataFrame:
    """Normalise a caller's DataFrame to ``COLUMNS`` (used by ``Recommender.fit``).

    Accepts ``type`` or ``event`` for the kind of event; ``value`` defaults to 1.0;
    ids may be ints or strings and come out as strings. Rows are sorted by time,
    stably, so that ties keep the caller's order.
    """
    if not isinstance(df, pd.DataFrame):
        raise InvalidInputError("df", f"must be a pandas DataFrame, got {type(df).__name__}")
    for col in ("user_id", "item_id"):
        if col not in df.columns:
            raise InvalidInputError(col, f"column is required; got columns {list(df.columns)}")
    out = pd.DataFrame(
        {
            "user_id": _ids(df["user_id"], "user_id"),
            "item_id": _ids(df["item_id"], "item_id"),
        }
    )
    if "timestamp" in df.columns:
        ts = df["timestamp"]
        if pd.api.types.is_datetime64_any_dtype(ts):
            ts = ts.astype("int64") // 10**9
        ts = pd.to_numeric(ts, errors="coerce")
        if ts.isna().any():
            raise InvalidInputError(
                "timestamp", f"{int(ts.isna().sum())} rows are not numbers or datetimes"
            )
        out["timestamp"] = ts.astype("int64").to_numpy()
    else:
        out["timestamp"] = range(len(df))
    kind = (
        df["type"]
        if "type" in df.columns
        else df["event"]
        if "event" in df.columns
        else default_type
    )
    out["type"] = kind if isinstance(kind, str) else kind.astype(str).to_numpy()
    if "value" in df.columns:
        value = pd.to_numeric(df["value"], errors="coerce").astype("float64").to_numpy()
    elif "rating" in df.columns:
        value = pd.to_numeric(df["rating"], errors="coerce").astype("float64").to_numpy()
    else:
        value = np.ones(len(df), np.float64)  # every event counts once
    out["value"] = value
    out = out.sort_values("timestamp", kind="stable").reset_index(drop=True)
    return out


def _ids(col: pd.Series, name: str) -> pd.Series:
    if col.isna().any():
        raise InvalidInputError(name, f"{int(col.isna().sum())} rows have no {name}")
    if pd.api.types.is_float_dtype(col):
        col = col.astype("int64")
    s = col.astype(str).to_numpy()
    return pd.Series(s, dtype=object)
