"""Cleaning with a report, de-duplication, k-core filtering, implicit feedback, normalisation.

``clean`` turns a raw interaction table (ids of any type, timestamps as numbers in any
unit or ISO-8601 strings, stray values) into the normalised form of
``recloop.data.dataset.COLUMNS`` and says how many rows it dropped and why.

Each cleaning step is short; they stay in one module because the report counts rows across
all of them in order, and splitting the steps would split that bookkeeping.

Examples
--------
>>> import pandas as pd
>>> raw = pd.DataFrame({"user_id": [1, 1, None, 2, 2], "item_id": ["a", "a", "b", "b", "c"],
...                     "timestamp": [10, 10, 11, "2024-01-01", "never"], "value": [5, 5, 4, 3, 1]})
>>> df, report = clean(raw, max_invalid_fraction=0.5)
>>> report.rows_in, report.rows_out, report.dropped["bad_id"], report.dropped["exact_duplicate"]
(5, 2, 1, 1)
>>> df["timestamp"].tolist()
[10, 1704067200]
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

from recloop.data.dataset import COLUMNS
from recloop.errors import DataError, InvalidInputError, NotFittedError
from recloop.events import (
    DEFAULT_MAPPING,
    MAX_ID_LENGTH,
    MAX_TIMESTAMP,
    MAX_TYPE_LENGTH,
    MIN_TIMESTAMP,
    FeedbackMapping,
)

log = logging.getLogger(__name__)

#: Why a row was dropped, in the order the checks run, with the words the report prints.
REASONS: dict[str, str] = {
    "bad_id": "missing or malformed ids",
    "bad_timestamp": "missing or unparseable timestamps",
    "timestamp_out_of_range": "timestamps out of range",
    "bad_value": "missing or non-finite values",
    "bad_type": "missing, over-long or unknown event types",
    "exact_duplicate": "exact duplicates",
    "duplicate": "repeated (user, item, type) merged",
    "bot": "users beyond the activity quantile (bots)",
    "k_core": "outside the k-core",
}
#: The reasons that make a row malformed (as opposed to filtered by a policy).
MALFORMED = ("bad_id", "bad_timestamp", "timestamp_out_of_range", "bad_value", "bad_type")
_UNITS = {"s": 1.0, "ms": 1e-3, "us": 1e-6, "ns": 1e-9}
TimestampUnit = Literal["auto", "s", "ms", "us", "ns"]
DuplicatePolicy = Literal["keep", "first", "last", "sum"]


@dataclass
class CleaningReport:
    """What ``clean`` did: rows in and out, and rows dropped by reason (``REASONS``' keys).

    ``dropped`` lists every check that ran, zeros included, in the order they ran; a row
    is counted under the first check it fails. ``examples`` shows the first bad row per
    malformed reason.
    """

    rows_in: int
    rows_out: int
    dropped: dict[str, int] = field(default_factory=dict)
    examples: dict[str, str] = field(default_factory=dict)

    @property
    def malformed(self) -> int:
        return sum(self.dropped.get(r, 0) for r in MALFORMED)

    @property
    def total_dropped(self) -> int:
        return self.rows_in - self.rows_out

    def then(self, later: CleaningReport) -> CleaningReport:
        """This report followed by ``later`` (a second pass over this one's output)."""
        dropped = dict(self.dropped)
        for reason, n in later.dropped.items():
            dropped[reason] = dropped.get(reason, 0) + n
        return CleaningReport(
            self.rows_in, later.rows_out, dropped, {**later.examples, **self.examples}
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "rows_in": self.rows_in,
            "rows_out": self.rows_out,
            "dropped": dict(self.dropped),
            "examples": dict(self.examples),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> CleaningReport:
        return cls(
            int(d["rows_in"]),
            int(d["rows_out"]),
            {str(k): int(v) for k, v in dict(d.get("dropped", {})).items()},
            {str(k): str(v) for k, v in dict(d.get("examples", {})).items()},
        )

    def __str__(self) -> str:
        lines = [
            f"cleaning: {self.rows_in:,} rows in, {self.rows_out:,} out, {self.total_dropped:,} dropped"
        ]
        width = max((len(REASONS.get(r, r)) for r in self.dropped), default=0)
        for reason, n in self.dropped.items():
            line = f"  {REASONS.get(reason, reason):<{width}}  {n:>10,}"
            if n and reason in self.examples:
                line += f"   e.g. {self.examples[reason]}"
            lines.append(line)
        return "\n".join(lines)


# ------------------------------------------------------------------ column parsers


def _short(value: object) -> str:
    text = repr(value.item() if isinstance(value, np.generic) else value)
    return text if len(text) <= 40 else text[:37] + "..."


def parse_ids(col: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Ids of any type -> (object array of ``str``, mask of malformed rows).

    Integers and integral floats become decimal strings (``5.0`` -> ``"5"``); empty,
    whitespace-only, over-long (> 256), non-integral numeric, boolean and missing ids are
    malformed.
    """
    n = len(col)
    if pd.api.types.is_bool_dtype(col):
        return np.full(n, "", dtype=object), np.ones(n, bool)
    if pd.api.types.is_integer_dtype(col):
        valid = col.notna().to_numpy()
        out = np.full(n, "", dtype=object)
        out[valid] = col[valid].astype("int64").astype(str).to_numpy(dtype=object)
        return out, ~valid
    if pd.api.types.is_float_dtype(col):
        v = col.to_numpy(dtype=np.float64, na_value=np.nan)
        with np.errstate(invalid="ignore"):
            valid = np.isfinite(v) & (np.floor(v) == v) & (np.abs(v) < 2**63)
        out = np.full(n, "", dtype=object)
        out[valid] = v[valid].astype(np.int64).astype(str).astype(object)
        return out, ~valid
    if not pd.api.types.is_string_dtype(col) or pd.api.types.infer_dtype(col, skipna=True) not in (
        "string",
        "empty",
    ):
        # mixed Python objects: decide one by one, the way ``events.parse_id`` would
        return _parse_mixed_ids(col.to_numpy(dtype=object))
    s = col.astype("string")
    length = s.str.len()
    valid = (
        (s.notna() & (s.str.strip().str.len() > 0) & (length <= MAX_ID_LENGTH))
        .fillna(False)
        .to_numpy(dtype=bool)
    )
    out = s.to_numpy(dtype=object, na_value="")
    return out, ~valid


def _parse_mixed_ids(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    out = np.full(len(values), "", dtype=object)
    bad = np.zeros(len(values), bool)
    for n, v in enumerate(values):
        if isinstance(v, (bool, np.bool_)) or v is None:
            bad[n] = True
        elif isinstance(v, (int, np.integer)):
            out[n] = str(int(v)) if abs(int(v)) < 10**MAX_ID_LENGTH else ""
            bad[n] = not out[n]
        elif isinstance(v, (float, np.floating)):
            f = float(v)
            ok = math.isfinite(f) and f.is_integer() and abs(f) < 2**63
            out[n], bad[n] = (str(int(f)), False) if ok else ("", True)
        elif isinstance(v, str):
            out[n] = v
            bad[n] = not v.strip() or len(v) > MAX_ID_LENGTH
        else:
            bad[n] = True
    return out, bad


def guess_unit(seconds_like: np.ndarray) -> str:
    """The unit of numeric epoch timestamps, from their median's magnitude."""
    finite = seconds_like[np.isfinite(seconds_like)]
    if not len(finite):
        return "s"
    m = float(np.median(np.abs(finite)))
    return "ns" if m >= 1e17 else "us" if m >= 1e14 else "ms" if m >= 1e11 else "s"


def parse_timestamps(col: pd.Series, unit: TimestampUnit = "auto") -> np.ndarray:
    """Timestamps -> float epoch seconds (NaN where missing or unparseable).

    Numbers are epoch time in ``unit`` (``auto`` guesses s/ms/us/ns from the magnitude);
    strings are numbers or ISO-8601 date-times (UTC when no offset is given); datetime
    columns are taken as UTC when naive.
    """
    if unit not in ("auto", *_UNITS):
        raise InvalidInputError(
            "timestamp_unit", f"must be one of auto, s, ms, us, ns, got {unit!r}"
        )
    if isinstance(col.dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_any_dtype(col):
        return _datetimes_to_seconds(col)
    if pd.api.types.is_bool_dtype(col):
        return np.full(len(col), np.nan)
    if pd.api.types.is_numeric_dtype(col):
        num = col.to_numpy(dtype=np.float64, na_value=np.nan)
        return np.asarray(
            num * _UNITS[guess_unit(num) if unit == "auto" else unit], dtype=np.float64
        )
    obj = col.astype(object)
    is_bool = obj.map(lambda v: isinstance(v, (bool, np.bool_))).to_numpy(dtype=bool)
    num = pd.to_numeric(obj.where(~is_bool, None), errors="coerce").to_numpy(
        dtype=np.float64, na_value=np.nan
    )
    out = num * _UNITS[guess_unit(num) if unit == "auto" else unit]
    todo = np.isnan(num) & obj.notna().to_numpy() & ~is_bool
    if todo.any():
        text = obj[todo].astype(str).str.strip()
        text = text.str.replace(r"[Zz]$", "+00:00", regex=True)
        parsed = pd.to_datetime(text, utc=True, errors="coerce", format="ISO8601")
        out[todo] = _datetimes_to_seconds(parsed)
    return np.asarray(out, dtype=np.float64)


def _datetimes_to_seconds(col: pd.Series) -> np.ndarray:
    if not isinstance(col.dtype, pd.DatetimeTZDtype):
        col = col.dt.tz_localize("UTC")
    delta = col - pd.Timestamp(0, tz="UTC")
    return np.asarray(
        (delta / pd.Timedelta(seconds=1)).to_numpy(dtype=np.float64, na_value=np.nan),
        dtype=np.float64,
    )


def parse_values(col: pd.Series) -> np.ndarray:
    """Values -> float64 (NaN where missing, non-numeric or non-finite)."""
    if pd.api.types.is_bool_dtype(col):
        return np.full(len(col), np.nan)
    if col.dtype == object:  # True is not a rating: refuse booleans as events.parse_value does
        col = col.where(~col.map(lambda x: isinstance(x, (bool, np.bool_))).astype(bool), None)
    v = np.array(
        pd.to_numeric(col, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan),
        dtype=np.float64,
    )
    v[~np.isfinite(v)] = np.nan
    return v


# ------------------------------------------------------------------ clean


@dataclass(frozen=True)
class CleanOptions:
    """The policies of ``clean`` (see its parameters), as one value that loaders take."""

    default_type: str | None = None
    types: tuple[str, ...] | None = None
    duplicates: DuplicatePolicy = "keep"
    drop_exact_duplicates: bool = True
    bot_quantile: float | None = None
    k: int | None = None
    min_timestamp: float = MIN_TIMESTAMP
    max_timestamp: float = MAX_TIMESTAMP
    max_invalid_fraction: float = 0.05

    def apply(
        self, df: pd.DataFrame, *, timestamp_unit: TimestampUnit = "auto", source: str = "data"
    ) -> tuple[pd.DataFrame, CleaningReport]:
        """``clean(df)`` with these options."""
        return clean(
            df,
            timestamp_unit=timestamp_unit,
            default_type=self.default_type,
            types=self.types,
            duplicates=self.duplicates,
            drop_exact_duplicates=self.drop_exact_duplicates,
            bot_quantile=self.bot_quantile,
            k=self.k,
            min_timestamp=self.min_timestamp,
            max_timestamp=self.max_timestamp,
            max_invalid_fraction=self.max_invalid_fraction,
            source=source,
        )


def clean(
    df: pd.DataFrame,
    *,
    timestamp_unit: TimestampUnit = "auto",
    default_type: str | None = None,
    types: Iterable[str] | FeedbackMapping | None = None,
    duplicates: DuplicatePolicy = "keep",
    drop_exact_duplicates: bool = True,
    bot_quantile: float | None = None,
    k: int | None = None,
    min_timestamp: float = MIN_TIMESTAMP,
    max_timestamp: float = MAX_TIMESTAMP,
    max_invalid_fraction: float = 0.05,
    source: str = "data",
) -> tuple[pd.DataFrame, CleaningReport]:
    """Validate, normalise and filter an interaction table; report what was dropped and why.

    Parameters
    ----------
    df
        ``user_id``, ``item_id`` (required); ``timestamp``, ``type`` (or ``event``),
        ``value`` (or ``rating``) optional. Without timestamps the row order is the time.
    timestamp_unit
        Unit of numeric timestamps (``auto`` guesses from their magnitude).
    default_type
        Event type of rows when there is no type column (default: ``rating`` when there is
        a value column, else ``click``).
    types
        Allowed event types; others are dropped as ``bad_type`` (default: any non-empty name).
    duplicates
        Repeats of one (user, item, type): ``keep`` them all, keep the ``first`` or the
        ``last``, or ``sum`` their values into the last one.
    drop_exact_duplicates
        Drop rows identical in every column (user, item, time, type, value).
    bot_quantile
        Drop users whose number of rows is above this quantile of all users' (e.g. 0.999).
    k
        Keep the ``k``-core: every user and item with at least ``k`` rows (see ``k_core``).
    min_timestamp, max_timestamp
        Allowed time range in epoch seconds (default 1970 .. 2100).
    max_invalid_fraction
        Raise ``DataError`` when more than this share of rows is malformed (``MALFORMED``).
    source
        Name of the data in error messages.

    Returns
    -------
    (DataFrame with ``COLUMNS``, sorted by time, stably), CleaningReport
    """
    if not isinstance(df, pd.DataFrame):
        raise InvalidInputError("df", f"must be a pandas DataFrame, got {type(df).__name__}")
    if duplicates not in ("keep", "first", "last", "sum"):
        raise InvalidInputError(
            "duplicates", f"must be one of keep, first, last, sum, got {duplicates!r}"
        )
    if bot_quantile is not None and not 0 < bot_quantile < 1:
        raise InvalidInputError("bot_quantile", f"must be in (0, 1), got {bot_quantile!r}")
    if k is not None and (isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1):
        raise InvalidInputError("k", f"must be an integer >= 1, got {k!r}")
    if not 0 <= max_invalid_fraction <= 1:
        raise InvalidInputError(
            "max_invalid_fraction", f"must be in [0, 1], got {max_invalid_fraction!r}"
        )
    for col in ("user_id", "item_id"):
        if col not in df.columns:
            raise DataError(
                f"{source} has no {col} column; columns: {', '.join(map(str, df.columns))}"
            )
    n = len(df)
    report = CleaningReport(rows_in=n, rows_out=n)
    bad = np.zeros(n, bool)

    def drop(reason: str, mask: np.ndarray, *columns: str) -> None:
        new = mask & ~bad
        report.dropped[reason] = int(new.sum())
        if new.any():
            row = int(np.flatnonzero(new)[0])
            report.examples[reason] = f"row {row + 1}: " + ", ".join(
                f"{c}={_short(df[c].iloc[row])}" for c in columns
            )
        bad[:] |= new

    users, bad_u = parse_ids(df["user_id"])
    items, bad_i = parse_ids(df["item_id"])
    drop("bad_id", bad_u | bad_i, "user_id", "item_id")
    if "timestamp" in df.columns:
        ts = parse_timestamps(df["timestamp"], timestamp_unit)
        drop("bad_timestamp", np.isnan(ts), "timestamp")
        with np.errstate(invalid="ignore"):
            drop("timestamp_out_of_range", (ts < min_timestamp) | (ts > max_timestamp), "timestamp")
    else:
        ts = np.arange(n, dtype=np.float64)
    value_col = "value" if "value" in df.columns else "rating" if "rating" in df.columns else None
    if value_col is not None:
        values = parse_values(df[value_col])
        drop("bad_value", np.isnan(values), value_col)
    else:
        values = np.ones(n)
    type_col = "type" if "type" in df.columns else "event" if "event" in df.columns else None
    if type_col is not None:
        kinds = df[type_col].astype("string").str.strip()
        allowed = (
            None
            if types is None
            else set(types.types if isinstance(types, FeedbackMapping) else types)
        )
        ok = kinds.notna() & (kinds.str.len() > 0) & (kinds.str.len() <= MAX_TYPE_LENGTH)
        if allowed is not None:
            ok &= kinds.isin(allowed)
        drop("bad_type", ~ok.fillna(False).to_numpy(dtype=bool), type_col)
        kind_arr = kinds.to_numpy(dtype=object, na_value="")
    else:
        kind_arr = np.full(n, default_type or ("rating" if value_col else "click"), dtype=object)

    malformed = report.malformed
    if n and malformed / n > max_invalid_fraction:
        parts = ", ".join(f"{r} {c:,}" for r, c in report.dropped.items() if c)
        example = next((report.examples[r] for r in MALFORMED if r in report.examples), "")
        raise DataError(
            f"{source}: {malformed:,} of {n:,} rows ({malformed / n:.1%}) are malformed, above the "
            f"{max_invalid_fraction:.0%} allowed ({parts}; first: {example})"
        )

    keep = ~bad
    out = pd.DataFrame(
        {
            "user_id": pd.array(users[keep], dtype="str"),
            "item_id": pd.array(items[keep], dtype="str"),
            "timestamp": np.floor(ts[keep]).astype(np.int64),
            "type": pd.array(kind_arr[keep], dtype="str"),
            "value": values[keep],
        }
    )
    out = out.sort_values("timestamp", kind="stable").reset_index(drop=True)

    if drop_exact_duplicates:
        dup = out.duplicated(subset=list(COLUMNS), keep="first").to_numpy()
        report.dropped["exact_duplicate"] = int(dup.sum())
        out = out[~dup].reset_index(drop=True)
    if duplicates != "keep":
        out, merged = merge_duplicates(out, duplicates)
        report.dropped["duplicate"] = merged
    if bot_quantile is not None:
        counts = out.groupby("user_id", sort=False)["user_id"].transform("size").to_numpy()
        per_user = out["user_id"].value_counts().to_numpy()
        limit = float(np.quantile(per_user, bot_quantile)) if len(per_user) else math.inf
        bots = counts > limit
        report.dropped["bot"] = int(bots.sum())
        out = out[~bots].reset_index(drop=True)
    if k is not None:
        before = len(out)
        out = k_core(out, int(k))
        report.dropped["k_core"] = before - len(out)
    report.rows_out = len(out)
    if report.total_dropped:
        log.info("%s: %s", source, str(report).replace("\n", "; "))
    return out, report


def merge_duplicates(df: pd.DataFrame, policy: DuplicatePolicy) -> tuple[pd.DataFrame, int]:
    """Collapse repeats of one (user, item, type): keep the ``first`` or ``last`` by time, or
    ``sum`` their values into the last. ``df`` must be sorted by time. Returns (df, rows merged away)."""
    key = ["user_id", "item_id", "type"]
    if policy == "keep":
        return df, 0
    if policy in ("first", "last"):
        dup = df.duplicated(subset=key, keep=policy).to_numpy()
        return df[~dup].reset_index(drop=True), int(dup.sum())
    if policy == "sum":
        total = df.groupby(key, sort=False)["value"].transform("sum").to_numpy()
        dup = df.duplicated(subset=key, keep="last").to_numpy()
        out = df.assign(value=total)[~dup].reset_index(drop=True)
        return out, int(dup.sum())
    raise InvalidInputError("duplicates", f"must be one of keep, first, last, sum, got {policy!r}")


def k_core(
    df: pd.DataFrame, k: int, *, user_k: int | None = None, item_k: int | None = None
) -> pd.DataFrame:
    """The largest subset where every user and every item has at least ``k`` rows.

    Removing a sparse user can make an item sparse and vice versa, so this repeats until
    nothing changes. ``user_k`` / ``item_k`` set the two thresholds apart. Rows (not
    distinct pairs) are counted; the row order is kept.

    >>> import pandas as pd
    >>> df = pd.DataFrame({"user_id": list("aaabbc"), "item_id": list("xyzxyx")})
    >>> k_core(df, 2)[["user_id", "item_id"]].values.tolist()
    [['a', 'x'], ['a', 'y'], ['b', 'x'], ['b', 'y']]
    """
    uk = k if user_k is None else user_k
    ik = k if item_k is None else item_k
    for name, value in (("k", uk), ("item_k", ik)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise InvalidInputError(name, f"must be an integer >= 1, got {value!r}")
    if len(df) == 0:
        return df.reset_index(drop=True)
    u = pd.factorize(df["user_id"])[0]
    i = pd.factorize(df["item_id"])[0]
    keep = np.ones(len(df), bool)
    while True:
        uc = np.bincount(u[keep], minlength=u.max() + 1)
        ic = np.bincount(i[keep], minlength=i.max() + 1)
        new = keep & (uc[u] >= uk) & (ic[i] >= ik)
        if new.sum() == keep.sum():
            break
        keep = new
    return df[keep].reset_index(drop=True)


def to_implicit(
    df: pd.DataFrame,
    threshold: float | None = None,
    *,
    positive_types: Iterable[str] | None = None,
    mapping: FeedbackMapping = DEFAULT_MAPPING,
    keep_negatives: bool = False,
) -> pd.DataFrame:
    """Implicit feedback: label each row positive (1.0) or negative (0.0) and keep the positives.

    A rating is positive when its value reaches ``threshold`` (default: the mapping's
    ``rating_threshold``, 3.5, so 4 and 5 stars); any other event is positive when its
    type's signal in ``mapping`` is (view, click, add_to_cart, purchase by default), or,
    given ``positive_types``, when its type is one of them. Adds a ``label`` column;
    ``keep_negatives`` keeps the negatives too (label 0.0).

    >>> import pandas as pd
    >>> df = pd.DataFrame({"user_id": ["u"] * 3, "item_id": list("abc"), "timestamp": [1, 2, 3],
    ...                    "type": ["rating", "rating", "skip"], "value": [5.0, 2.0, 1.0]})
    >>> to_implicit(df)["item_id"].tolist()
    ['a']
    """
    if not isinstance(df, pd.DataFrame):
        raise InvalidInputError("df", f"must be a pandas DataFrame, got {type(df).__name__}")
    thr = mapping.rating_threshold if threshold is None else threshold
    if (
        isinstance(thr, bool)
        or not isinstance(thr, (int, float, np.number))
        or not math.isfinite(float(thr))
    ):
        raise InvalidInputError("threshold", f"must be a finite number, got {threshold!r}")
    kinds = (
        df["type"].astype(str).to_numpy(dtype=object)
        if "type" in df.columns
        else np.full(len(df), "rating", dtype=object)
    )
    if "value" in df.columns:
        values = pd.to_numeric(df["value"], errors="coerce").to_numpy(
            dtype=np.float64, na_value=np.nan
        )
    else:
        values = np.ones(len(df))
    label = np.zeros(len(df), np.float64)
    pos_set = None if positive_types is None else set(positive_types)
    for kind in pd.unique(kinds):
        m = kinds == kind
        if pos_set is not None and kind not in pos_set:
            continue
        if kind == "rating":
            with np.errstate(invalid="ignore"):
                label[m] = values[m] >= float(thr)
        elif pos_set is not None:
            label[m] = 1.0
        else:
            sig = mapping.signals.get(str(kind))
            if sig is None:
                raise InvalidInputError(
                    "type", f"must be one of {', '.join(mapping.types)}, got {kind!r}"
                )
            label[m] = 1.0 if sig.label > 0.5 else 0.0
    out = df.assign(label=label)
    if not keep_negatives:
        out = out[label > 0.5]
    return out.reset_index(drop=True)


# ------------------------------------------------------------------ normalisation


class Normalizer:
    """Numeric columns scaled with statistics fitted on training data only.

    Parameters
    ----------
    method
        ``zscore``: (x - mean) / std; ``minmax``: (x - min) / (max - min), so the
        training data spans [0, 1] (later data may fall outside).
    columns
        The columns to scale.

    Examples
    --------
    >>> import pandas as pd
    >>> norm = Normalizer("minmax").fit(pd.DataFrame({"value": [1.0, 5.0]}))
    >>> norm.transform(pd.DataFrame({"value": [3.0, 7.0]}))["value"].tolist()
    [0.5, 1.5]
    """

    def __init__(
        self, method: Literal["zscore", "minmax"] = "zscore", columns: Sequence[str] = ("value",)
    ) -> None:
        if method not in ("zscore", "minmax"):
            raise InvalidInputError("method", f"must be zscore or minmax, got {method!r}")
        if isinstance(columns, str) or not columns:
            raise InvalidInputError(
                "columns", f"must be a non-empty list of column names, got {columns!r}"
            )
        self.method = method
        self.columns = tuple(columns)
        self.stats_: dict[str, tuple[float, float]] | None = None

    def _column(self, df: pd.DataFrame, col: str) -> np.ndarray:
        if col not in df.columns:
            raise InvalidInputError(
                col, f"column not found; columns: {', '.join(map(str, df.columns))}"
            )
        return np.asarray(
            pd.to_numeric(df[col], errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan),
            np.float64,
        )

    def fit(self, df: pd.DataFrame) -> Normalizer:
        """Learn each column's centre and scale (non-finite values ignored)."""
        stats: dict[str, tuple[float, float]] = {}
        for col in self.columns:
            x = self._column(df, col)
            x = x[np.isfinite(x)]
            if not len(x):
                raise InvalidInputError(col, "has no finite values to fit on")
            if self.method == "zscore":
                center, scale = float(x.mean()), float(x.std())
            else:
                center, scale = float(x.min()), float(x.max() - x.min())
            stats[col] = (center, scale if scale > 0 else 1.0)
        self.stats_ = stats
        return self

    def _stats(self) -> dict[str, tuple[float, float]]:
        if self.stats_ is None:
            raise NotFittedError("Normalizer is not fitted: call fit on the training data first")
        return self.stats_

    def transform(self, df: pd.DataFrame) -> pd.DataFrame:
        """A copy of ``df`` with the columns scaled by the fitted statistics."""
        stats = self._stats()
        return df.assign(**{c: (self._column(df, c) - m) / s for c, (m, s) in stats.items()})

    def fit_transform(self, df: pd.DataFrame) -> pd.DataFrame:
        return self.fit(df).transform(df)

    def inverse_transform(self, df: pd.DataFrame) -> pd.DataFrame:
        stats = self._stats()
        return df.assign(**{c: self._column(df, c) * s + m for c, (m, s) in stats.items()})

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "columns": list(self.columns),
            "stats": {c: list(v) for c, v in self._stats().items()},
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Normalizer:
        norm = cls(d["method"], d["columns"])
        norm.stats_ = {str(c): (float(v[0]), float(v[1])) for c, v in dict(d["stats"]).items()}
        return norm
