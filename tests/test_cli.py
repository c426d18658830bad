"""End-to-end through the `recloop` executable: train, evaluate, replay, and bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from synthdata import synthetic

EXE = [sys.executable, "-m", "recloop"]


def run(*args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([*EXE, *args], capture_output=True, text=True, timeout=600)
    if ok:
        assert proc.returncode == 0, proc.stderr[-2000:]
    return proc


@pytest.fixture(scope="module")
def csv_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("data") / "events.csv"
    synthetic(n_users=80, n_items=60, per_user=15).to_csv(path, index=False)
    return path


def test_train_then_evaluate_json(csv_file, tmp_path):
    out = tmp_path / "runs" / "mf"
    report = json.loads(
        run(
            "train",
            "--data",
            str(csv_file),
            "--model",
            "mf",
            "--out",
            str(out),
            "--json",
            "--no-progress",
        ).stdout
    )
    assert report["model"] == "mf" and report["heldout_rows"] == 80 and (out / "meta.json").exists()
    res = json.loads(run("evaluate", str(out), "--protocol", "full", "--json").stdout)
    assert set(res) >= {"run", "model", "full"}
    assert 0 <= res["full"]["ndcg@10"] <= res["full"]["hr@10"] <= 1 and res["full"]["n_users"] == 80
    # the held-out item is in the user's own taste group: far better than chance (10/30 unseen items of 60)
    assert res["full"]["hr@10"] > 0.45


def test_replay_json_and_plot(csv_file, tmp_path):
    png = tmp_path / "replay.png"
    res = json.loads(
        run(
            "replay",
            "--data",
            str(csv_file),
            "--model",
            "popularity,mf",
            "--modes",
            "static,online",
            "--max-events",
            "150",
            "--window",
            "50",
            "--json",
            "--plot",
            str(png),
            "--no-progress",
        ).stdout
    )
    assert len(res["results"]) == 4
    for r in res["results"]:
        assert r["n_events"] == 150 and len(r["windows"]) == 3 and 0 <= r["hr"] <= 1
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(
    "args, needle",
    [
        (
            ["train", "--data", "no/such/file.csv", "--model", "mf", "--out", "x"],
            "no/such/file.csv",
        ),
        (["train", "--data", "{csv}", "--model", "nope", "--out", "x"], "nope"),
        (["evaluate", "no-such-run"], "no-such-run"),
        (["replay", "--data", "{csv}", "--modes", "sometimes"], "--modes"),
        (["replay", "--data", "{csv}", "--history", "1.5"], "--history"),
        (["train", "--data", "{csv}"], "--model"),
    ],
)
def test_bad_input_exits_2_with_one_line(csv_file, args, needle):
    args = [a.replace("{csv}", str(csv_file)) for a in args]
    if args == ["train", "--data", str(csv_file)]:
        args += ["--model", "mf"]  # missing --out: argparse's own error
        needle = "--out"
    proc = run(*args, ok=False)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert needle in lines[0]
