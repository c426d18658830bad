"""Generic tables (CSV, Parquet) with a column mapping, the one ``load`` entry point, summaries.

``load`` takes a name (``movielens-100k``) or a path (a GroupLens folder or zip, a
``.csv`` / ``.tsv`` / ``.parquet`` file, a folder written by ``recloop data synth``) and
returns a cleaned ``Dataset`` whose ``meta["cleaning"]`` is the ``CleaningReport``.

Examples
--------
>>> import pandas as pd, tempfile, os
>>> path = os.path.join(tempfile.mkdtemp(), "log.csv")
>>> pd.DataFrame({"uid": [1, 2], "sku": ["a", "b"], "ms": [1_700_000_000_000, 1_700_000_001_000]}).to_csv(path, index=False)
>>> ds = load(path, mapping={"user_id": "uid", "item_id": "sku", "timestamp": "ms"})
>>> ds.interactions[["user_id", "item_id", "timestamp"]].values.tolist()
[['1', 'a', 1700000000], ['2', 'b', 1700000001]]
"""

from __future__ import annotations

import logging
import sys
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from recloop.data.dataset import COLUMNS, Dataset
from recloop.data.preprocess import CleaningReport, CleanOptions, TimestampUnit
from recloop.errors import DataError

log = logging.getLogger(__name__)

#: Names ``load`` knows besides paths.
NAMES = ("movielens-100k",)
_ALIASES = {
    "movielens-100k": "movielens-100k",
    "ml-100k": "movielens-100k",
    "movielens100k": "movielens-100k",
}
#: Column names recognised without a mapping (compared case-insensitively), per canonical column.
CANDIDATES: dict[str, tuple[str, ...]] = {
    "user_id": (
        "user_id",
        "userid",
        "user",
        "uid",
        "customer_id",
        "visitorid",
        "visitor_id",
        "session_id",
    ),
    "item_id": (
        "item_id",
        "itemid",
        "item",
        "iid",
        "movie_id",
        "movieid",
        "product_id",
        "productid",
        "sku",
    ),
    "timestamp": ("timestamp", "time", "ts", "datetime", "date", "event_time", "created_at"),
    "type": ("type", "event", "event_type", "action", "behavior_type"),
    "value": ("value", "rating", "score", "weight"),
}
TABLE_SUFFIXES = (".csv", ".tsv", ".txt", ".csv.gz", ".tsv.gz", ".parquet", ".pq")


@contextmanager
def stages(names: list[str], show_progress: bool, desc: str) -> Iterator[Any]:
    """A progress bar over named steps (to stderr); yields ``step(name)`` to call as each starts."""
    bar = tqdm(
        total=len(names),
        desc=desc,
        disable=not show_progress,
        file=sys.stderr,
        leave=False,
        unit="step",
    )
    started: list[str] = []

    def step(name: str) -> None:
        if started:
            bar.update(1)
        started.append(name)
        bar.set_postfix_str(name)

    try:
        yield step
        bar.update(bar.total - bar.n)
    finally:
        bar.close()


def _suffix(path: Path) -> str:
    name = path.name.lower()
    return next(
        (s for s in sorted(TABLE_SUFFIXES, key=len, reverse=True) if name.endswith(s)),
        path.suffix.lower(),
    )


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())


def _columns_of(path: Path, sep: str | None) -> list[str]:
    kind = _suffix(path)
    try:
        if kind in (".parquet", ".pq"):
            import pyarrow.parquet as pq

            return list(pq.read_schema(path).names)
        return [str(c) for c in pd.read_csv(path, sep=_sep(path, sep), nrows=0).columns]
    except FileNotFoundError:
        raise DataError(f"{path} does not exist") from None
    except pd.errors.EmptyDataError:
        raise DataError(f"{path} is empty") from None
    except Exception as exc:  # pyarrow and pandas raise many types for a corrupted file
        raise DataError(f"{path} could not be read: {_one_line(exc)}") from exc


def _sep(path: Path, sep: str | None) -> str:
    if sep is not None:
        return sep
    return "\t" if _suffix(path) in (".tsv", ".tsv.gz") else ","


def resolve_mapping(
    columns: list[str], mapping: Mapping[str, str] | None, source: str
) -> dict[str, str]:
    """Canonical column -> source column: the given ``mapping``, the rest found by name.

    Raises ``DataError`` naming a mapped column that the source lacks, a key that is not a
    canonical column, or a required column (``user_id``, ``item_id``) that cannot be found.
    """
    mapping = dict(mapping or {})
    for key, col in mapping.items():
        if key not in COLUMNS:
            raise DataError(f"mapping key {key!r} is not one of {', '.join(COLUMNS)}")
        if col not in columns:
            raise DataError(
                f"column {col!r} (mapped to {key}) not found in {source}; columns: {', '.join(columns)}"
            )
    used = set(mapping.values())
    lower = {c.lower(): c for c in reversed(columns)}
    for key in COLUMNS:
        if key in mapping:
            continue
        found = next(
            (lower[c] for c in CANDIDATES[key] if c in lower and lower[c] not in used), None
        )
        if found is not None:
            mapping[key] = found
            used.add(found)
    for key in ("user_id", "item_id"):
        if key not in mapping:
            raise DataError(
                f"no {key} column in {source} (columns: {', '.join(columns)}); "
                f"name it in the mapping, e.g. {key}=COLUMN"
            )
    return mapping


def read_table(
    path: str | Path, mapping: Mapping[str, str] | None = None, *, sep: str | None = None
) -> pd.DataFrame:
    """Read a CSV or Parquet file's mapped columns, renamed to the canonical names (not cleaned)."""
    return _read_table(Path(path), mapping, sep)[0]


def _read_table(
    path: Path, mapping: Mapping[str, str] | None, sep: str | None
) -> tuple[pd.DataFrame, dict[str, str]]:
    if not path.is_file():
        raise DataError(f"{path} does not exist" if not path.exists() else f"{path} is not a file")
    kind = _suffix(path)
    if kind not in TABLE_SUFFIXES:
        raise DataError(
            f"{path}: unsupported file type {kind or '(none)'}; expected one of {', '.join(TABLE_SUFFIXES)}"
        )
    columns = _columns_of(path, sep)
    cols = resolve_mapping(columns, mapping, path.name)
    rename = {src: key for key, src in cols.items()}
    try:
        if kind in (".parquet", ".pq"):
            frame = pd.read_parquet(path, columns=list(rename))
        else:
            ids = {cols["user_id"]: str, cols["item_id"]: str}
            with warnings.catch_warnings():
                # more fields than header names: pandas would shift the columns or drop data; refuse.
                # (``usecols`` would hide such rows, so every column is read, then the mapped ones kept.)
                warnings.simplefilter("error", pd.errors.ParserWarning)
                frame = pd.read_csv(
                    path,
                    sep=_sep(path, sep),
                    dtype=ids,
                    keep_default_na=True,
                    engine="c",
                    encoding_errors="replace",
                    index_col=False,
                )[list(rename)]
    except Exception as exc:
        raise DataError(f"{path} is malformed: {_one_line(exc)}") from exc
    return frame.rename(columns=rename), cols


def _read_metadata(path: str | Path | None, key: str) -> pd.DataFrame | None:
    """Item or user metadata: a table whose ``key`` column (or first column) is the id."""
    if path is None:
        return None
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path} does not exist")
    try:
        frame = (
            pd.read_parquet(path)
            if _suffix(path) in (".parquet", ".pq")
            else pd.read_csv(path, sep=_sep(path, None), dtype=str, keep_default_na=False)
        )
    except Exception as exc:
        raise DataError(f"{path} could not be read: {_one_line(exc)}") from exc
    lower = {str(c).lower(): c for c in frame.columns}
    col = next((lower[c] for c in CANDIDATES[key] if c in lower), frame.columns[0])
    frame[col] = frame[col].astype(str)
    return frame.rename(columns={col: key}).drop_duplicates(subset=key).set_index(key)


def load_table(
    path: str | Path,
    mapping: Mapping[str, str] | None = None,
    timestamp_unit: TimestampUnit = "auto",
    *,
    cleaning: CleanOptions | None = None,
    sep: str | None = None,
    items: str | Path | None = None,
    users: str | Path | None = None,
    show_progress: bool = False,
) -> Dataset:
    """Load a CSV or Parquet interaction log with a column mapping, and clean it.

    Parameters
    ----------
    path
        ``.csv``, ``.tsv``, ``.txt`` (optionally ``.gz``), ``.parquet`` or ``.pq``.
    mapping
        Canonical column -> the file's column, e.g. ``{"user_id": "uid", "item_id": "sku"}``.
        Canonical columns left out are found by common names (``userId``, ``movieId``,
        ``rating``, ``event``...); ``user_id`` and ``item_id`` are required, ``timestamp``,
        ``type`` and ``value`` optional.
    timestamp_unit
        Unit of numeric timestamps (``auto`` guesses s/ms/us/ns); strings may be ISO-8601.
    cleaning
        Cleaning policies (default ``CleanOptions()``).
    sep
        CSV separator (default ``,``; tab for ``.tsv``).
    items, users
        Optional metadata tables keyed by ``item_id`` / ``user_id`` (or their first column).

    Raises
    ------
    DataError
        Missing or unreadable file, unknown column, too many malformed rows.
    """
    path = Path(path)
    opts = cleaning or CleanOptions()
    with stages(["read", "clean"], show_progress, f"loading {path.name}") as step:
        step("read")
        raw, cols = _read_table(path, mapping, sep)
        step("clean")
        inter, report = opts.apply(raw, timestamp_unit=timestamp_unit, source=path.name)
    if len(inter) == 0:
        raise DataError(f"{path} has no valid interactions ({report.rows_in:,} rows read)")
    return Dataset(
        inter,
        _read_metadata(items, "item_id"),
        _read_metadata(users, "user_id"),
        name=path.name,
        meta={"source": str(path), "cleaning": report, "mapping": cols},
    )


def _is_synthetic(folder: Path) -> bool:
    return (folder / "events.parquet").is_file() and (folder / "truth.json").is_file()


def load(
    name_or_path: str | Path,
    mapping: Mapping[str, str] | None = None,
    *,
    timestamp_unit: TimestampUnit = "auto",
    cleaning: CleanOptions | None = None,
    show_progress: bool = False,
    cache: Path | None = None,
) -> Dataset:
    """Load a data set by name or path, cleaned, with its metadata and ``meta["cleaning"]`` report.

    Parameters
    ----------
    name_or_path
        ``movielens-100k`` (offline mirror, cached); a GroupLens release folder or zip
        (ml-100k, ml-1m, ml-10m, ml-latest, ml-latest-small); a CSV / Parquet file; a folder
        written by ``recloop data synth`` (``meta["truth"]`` holds its ground truth).
    mapping
        Column mapping for CSV / Parquet files (see ``load_table``).
    cleaning
        Extra cleaning (duplicate policy, bots, k-core) applied on top of the source's own.

    Raises
    ------
    DataError
        Unknown name, missing path, unreadable or malformed data.
    """
    path = Path(name_or_path)
    key = str(name_or_path).strip().lower()
    if not path.exists() and key in _ALIASES:
        from recloop.data.movielens import load_movielens_100k

        if mapping:
            raise DataError(
                f"a column mapping applies to CSV or Parquet files, not to {name_or_path}"
            )
        with stages(["fetch", "clean"], show_progress, key) as step:
            step("fetch")
            ds = load_movielens_100k(cache)
            step("clean")
            inter, report = (cleaning or CleanOptions()).apply(
                ds.interactions, timestamp_unit="s", source=ds.name
            )
        ds.interactions = inter
        ds.meta.update(source="movielens-100k (offline mirror)", cleaning=report)
        return ds
    if not path.exists():
        if path.suffix or path.parent != Path("."):
            raise DataError(f"{name_or_path} does not exist")
        raise DataError(
            f"unknown dataset {str(name_or_path)!r}: not a file or folder, and not one of {', '.join(NAMES)}"
        )
    if path.is_file() and _suffix(path) in TABLE_SUFFIXES:
        return load_table(
            path, mapping, timestamp_unit, cleaning=cleaning, show_progress=show_progress
        )
    if mapping:
        raise DataError(f"a column mapping applies to CSV or Parquet files, not to {path}")
    if path.is_dir() and _is_synthetic(path):
        from recloop.data.synth import load_synthetic

        ds, truth = load_synthetic(path)
        ds.meta["truth"] = truth
    elif path.is_dir() or _suffix(path) == ".zip":
        from recloop.data.movielens import load_grouplens

        with stages(["read"], show_progress, f"loading {path.name}") as step:
            step("read")
            ds = load_grouplens(path)
    else:
        raise DataError(
            f"{path}: unsupported file type {_suffix(path) or '(none)'}; expected a folder, a .zip, "
            f"or one of {', '.join(TABLE_SUFFIXES)}"
        )
    if cleaning is not None:
        inter, extra = cleaning.apply(ds.interactions, timestamp_unit="s", source=ds.name)
        first = ds.meta.get("cleaning")
        ds.interactions = inter
        ds.meta["cleaning"] = first.then(extra) if isinstance(first, CleaningReport) else extra
    return ds


def _date(ts: float) -> str:
    return datetime.fromtimestamp(float(ts), tz=timezone.utc).strftime("%Y-%m-%d")


def summarize(ds: Dataset) -> dict[str, Any]:
    """Counts, sparsity, time span (UTC dates), event types, values, metadata, cleaning report."""
    inter = ds.interactions
    n, n_users, n_items = len(inter), ds.n_users, ds.n_items
    cells = n_users * n_items
    pairs = int(inter[["user_id", "item_id"]].drop_duplicates().shape[0]) if n else 0
    per_user = inter["user_id"].value_counts().to_numpy() if n else np.zeros(1)
    per_item = inter["item_id"].value_counts().to_numpy() if n else np.zeros(1)
    ts = inter["timestamp"].to_numpy() if n else np.zeros(1)
    values = inter["value"].to_numpy(dtype=np.float64) if n else np.zeros(1)
    out: dict[str, Any] = {
        "name": ds.name,
        "source": str(ds.meta.get("source", ds.name)),
        "interactions": n,
        "users": n_users,
        "items": n_items,
        "distinct_pairs": pairs,
        "density": pairs / cells if cells else 0.0,
        "sparsity": 1 - pairs / cells if cells else 1.0,
        "time_span": {
            "first": _date(ts.min()),
            "last": _date(ts.max()),
            "days": round(float(ts.max() - ts.min()) / 86400, 1),
        },
        "event_types": {str(k): int(v) for k, v in inter["type"].value_counts().items()},
        "value": {
            "min": float(values.min()),
            "mean": round(float(values.mean()), 4),
            "max": float(values.max()),
        },
        "per_user": {
            "min": int(per_user.min()),
            "median": float(np.median(per_user)),
            "max": int(per_user.max()),
        },
        "per_item": {
            "min": int(per_item.min()),
            "median": float(np.median(per_item)),
            "max": int(per_item.max()),
        },
        "item_metadata": _meta_summary(ds.items),
        "user_metadata": _meta_summary(ds.users),
    }
    report = ds.meta.get("cleaning")
    if isinstance(report, CleaningReport):
        out["cleaning"] = report.to_dict()
    truth = ds.meta.get("truth")
    if truth is not None and hasattr(truth, "summary"):
        out["ground_truth"] = truth.summary()
    return out


def _meta_summary(frame: pd.DataFrame | None) -> dict[str, Any] | None:
    if frame is None:
        return None
    return {"rows": int(len(frame)), "columns": [str(c) for c in frame.columns]}
