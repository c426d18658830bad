"""``recloop log info|export`` and training on an exported log."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from recloop import Recommender
from recloop.cli.main import main
from recloop.storage import open_log
from storage.storage_helpers import save_model


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("log-cli")
    rec = Recommender.load(save_model(root / "model"))
    durable = rec.attach_log(open_log(f"sqlite://{root}/data/events.db"))
    rec.update(
        [
            {"user_id": f"u{j % 6}", "item_id": f"i{j % 11}", "timestamp": 1.8e9 + j}
            for j in range(60)
        ]
        + [{"user_id": "u0", "item_id": "i0", "timestamp": 1.8e9 + 99, "context": {"page": 2}}]
    )
    durable.log.trim(3)
    durable.close()
    return root / "data"


def test_info_reports_events_offsets_size_and_time_range(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["log", "info", str(data_dir), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert (info["events"], info["first_offset"], info["last_offset"]) == (59, 3, 61)
    assert info["oldest"] == "2027-01-15T08:00:02+00:00" and info["size_bytes"] > 0
    assert main(["log", "info", str(data_dir / "events.db")]) == 0
    assert "last_offset: 61" in capsys.readouterr().out


def test_export_writes_parquet_that_train_accepts(
    data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "events.parquet"
    assert main(["log", "export", str(data_dir), "--out", str(out)]) == 0
    df = pd.read_parquet(out)
    assert len(df) == 59 and df["offset"].tolist() == list(range(3, 62))
    assert json.loads(df["context"].iloc[-1]) == {"page": 2} and df["context"].isna().sum() == 58
    code = main(
        [
            "train",
            "--data",
            str(out),
            "--model",
            "popularity",
            "--out",
            str(tmp_path / "run"),
            "--holdout",
            "none",
            "--no-progress",
        ]
    )
    assert code == 0
    rec = Recommender.load(tmp_path / "run")
    assert rec.n_users == 6 and rec.n_items == 11


def test_a_folder_without_a_log_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["log", "info", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"recloop: error: data: {str(tmp_path)!r} holds no event log (no events.db)"
