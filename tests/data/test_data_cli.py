"""``recloop data fetch | info | synth`` end to end, through the installed ``recloop`` script.

Every command starts a fresh interpreter (torch included, 2-3 s of CPU), so a few run
concurrently, once per module, and the tests read their results; more cases go through
``main()`` in this process, which is the same code path below the script's entry point.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pandas as pd
import pytest

from recloop.cli.main import main
from recloop.data import SynthConfig, generate, write_synthetic

SCRIPT = Path(sys.executable).with_name("recloop")
BASE = [str(SCRIPT)] if SCRIPT.exists() else [sys.executable, "-m", "recloop.cli"]


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("cli")
    pd.DataFrame(
        {
            "uid": [1, 2, 3],
            "sku": ["a", "b", "c"],
            "ts": [1_700_000_000, 1_700_000_100, 1_700_000_200],
        }
    ).to_csv(d / "log.csv", index=False)
    rows = "user_id,item_id,timestamp\n" + "".join(
        f"{u},i,{'bad' if u < 30 else 1_700_000_000 + u}\n" for u in range(100)
    )
    (d / "malformed.csv").write_text(rows)
    ds, truth = generate(
        SynthConfig(n_users=60, n_items=40, n_events=2_000, n_clusters=4, seed=5, drift_share=0.25)
    )
    write_synthetic(d / "syn", ds, truth)
    (d / "occupied").mkdir()
    (d / "occupied" / "keep.txt").write_text("x")
    return d


@pytest.fixture(scope="module")
def runs(files):
    commands = {
        "info-ml100k": ["data", "info", "movielens-100k"],
        "fetch": ["data", "fetch", "movielens-100k", "--json"],
        "synth": [
            "data",
            "synth",
            "--out",
            str(files / "new"),
            "--users",
            "80",
            "--items",
            "30",
            "--events",
            "3000",
            "--seed",
            "3",
            "--drift-share",
            "0.5",
        ],
        "unknown-column": [
            "data",
            "info",
            str(files / "log.csv"),
            "--map",
            "user_id=customer",
            "--map",
            "item_id=sku",
        ],
        "malformed": ["data", "info", str(files / "malformed.csv")],
    }
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}

    def run(argv: list[str]) -> subprocess.CompletedProcess[str]:
        return subprocess.run(BASE + argv, capture_output=True, text=True, timeout=300, env=env)

    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = {name: pool.submit(run, argv) for name, argv in commands.items()}
        return {name: f.result() for name, f in futures.items()}


def test_info_movielens_100k(runs):
    r = runs["info-ml100k"]
    assert r.returncode == 0, r.stderr
    first = r.stdout.splitlines()[0]
    assert (
        first
        == "movielens-100k: 100,000 interactions, 943 users, 1,682 items, 1997-09-20 to 1998-04-22"
    )
    assert "time span      1997-09-20 to 1998-04-22" in r.stdout
    assert (
        "sparsity       93.70%" in r.stdout
        and "cleaning: 100,000 rows in, 100,000 out, 0 dropped" in r.stdout
    )
    assert "title" in r.stdout and "occupation" in r.stdout  # metadata kept


def test_fetch_movielens_100k(runs):
    r = runs["fetch"]
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert (out["interactions"], out["users"], out["items"]) == (100_000, 943, 1_682)
    assert (Path(out["path"]) / "data.parquet").is_file()


def test_synth_then_info(runs, files, capsys):
    r = runs["synth"]
    assert r.returncode == 0, r.stderr
    assert "3,000 events" in r.stdout and "40 users drift" in r.stdout
    assert {p.name for p in (files / "new").iterdir()} >= {
        "events.parquet",
        "items.parquet",
        "truth.json",
    }
    assert main(["data", "info", str(files / "new"), "--json"]) == 0
    s = json.loads(capsys.readouterr().out)
    assert s["interactions"] == 3_000 and s["ground_truth"]["drifted_users"] == 40
    assert s["cleaning"]["rows_out"] == 3_000 and s["time_span"]["first"] == "2024-01-01"


@pytest.mark.parametrize(
    ("name", "words"),
    [
        ("unknown-column", "column 'customer' (mapped to user_id) not found in log.csv"),
        ("malformed", "30 of 100 rows (30.0%) are malformed"),
    ],
)
def test_bad_input_exits_2_with_one_line(runs, name, words):
    r = runs[name]
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("recloop: error: ") and words in lines[0]
    assert "Traceback" not in r.stderr and r.stdout == ""


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["data", "info", "{d}/nope.csv"], "nope.csv does not exist"),
        (["data", "info", "movielens-1b"], "unknown dataset 'movielens-1b'"),
        (["data", "info", "{d}/log.csv", "--map", "user_id"], "--map: expects COLUMN=SOURCE"),
        (["data", "info", "{d}/log.csv", "--k-core", "0"], "--k-core: must be an integer >= 1"),
        (["data", "synth", "--out", "{d}/occupied"], "is not empty"),
        (["data", "synth", "--out", "{d}/x", "--users", "0"], "n_users: must be an integer >= 1"),
        (
            ["data", "synth", "--out", "{d}/x", "--drift-share", "2"],
            "drift_share: must be a fraction",
        ),
        (["data", "synth", "--out", "{d}/log.csv"], "exists and is not a folder"),
        (["data", "fetch", "movielens-1m"], "unknown dataset 'movielens-1m'"),
        (["data", "info"], "the following arguments are required: PATH_OR_NAME"),
        (["data", "frobnicate"], "invalid choice"),
    ],
)
def test_more_bad_input_in_process(files, capsys, argv, words):
    code = (
        main([a.format(d=files) for a in argv])
        if "frobnicate" not in argv and argv != ["data", "info"]
        else None
    )
    if code is None:
        with pytest.raises(SystemExit) as info:
            main(argv)
        code = info.value.code
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and words in err[0], err


def test_every_command_has_help(capsys):
    for argv in (["data"], ["data", "fetch"], ["data", "info"], ["data", "synth"]):
        with pytest.raises(SystemExit) as info:
            main([*argv, "--help"])
        assert info.value.code == 0
        assert "usage: recloop data" in capsys.readouterr().out


def test_info_options_in_process(files, capsys):
    assert main(["data", "info", str(files / "syn"), "--k-core", "5", "--duplicates", "first"]) == 0
    out = capsys.readouterr().out
    assert (
        "outside the k-core" in out
        and "repeated (user, item, type) merged" in out
        and "ground truth" in out
    )
    assert (
        main(
            [
                "data",
                "info",
                str(files / "log.csv"),
                "--map",
                "user_id=uid",
                "--map",
                "item_id=sku",
                "--json",
            ]
        )
        == 0
    )
    s = json.loads(capsys.readouterr().out)
    assert (s["interactions"], s["users"], s["items"]) == (3, 3, 3)
