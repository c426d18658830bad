"""``--plot`` on train and evaluate, and ``recloop demo --serve`` (the dashboard's command)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from recloop.cli import plots
from recloop.cli.main import main
from synthdata import synthetic

EXE = [sys.executable, "-m", "recloop"]
PNG = b"\x89PNG\r\n\x1a\n"


def run(*args: str) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([*EXE, *args], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc


@pytest.fixture(scope="module")
def csv_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("data") / "events.csv"
    synthetic(n_users=80, n_items=60, per_user=15).to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def runs(csv_file: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("runs")
    out = {}
    for model in ("mf", "popularity"):
        out[model] = base / model
        args = ["train", "--data", str(csv_file), "--model", model, "--out", str(out[model])]
        if model == "mf":
            args += ["--epochs", "4", "--plot", str(base / "fit.png")]
        assert "plot written to" in run(*args, "--no-progress").stdout or model != "mf"
    return out


def test_train_plot_is_a_png_of_the_fit(runs: dict[str, Path]) -> None:
    png = runs["mf"].parent / "fit.png"
    assert png.read_bytes()[:8] == PNG and png.stat().st_size > 10_000
    report = json.loads((runs["mf"] / "meta.json").read_text())["fit_report"]
    rows = plots.fit_histories(report, "mf")["mf"]
    assert len(rows) == 4 and all("loss" in r for r in rows)


def test_evaluate_plot_over_k_for_several_runs(runs: dict[str, Path], tmp_path: Path) -> None:
    png = tmp_path / "k.png"
    out = run(
        "evaluate", str(runs["mf"]), str(runs["popularity"]), "--protocol", "full",
        "--plot", str(png), "--plot-ks", "1,5,10,20", "--json",
    )  # fmt: skip
    res = json.loads(out.stdout)
    assert [r["model"] for r in res] == ["mf", "popularity"]
    assert png.read_bytes()[:8] == PNG and png.stat().st_size > 10_000


def test_plot_without_matplotlib_fails_at_once_with_one_line(
    csv_file: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    real = plots.importlib.util.find_spec
    monkeypatch.setattr(
        plots.importlib.util,
        "find_spec",
        lambda name, *a: None if name == "matplotlib" else real(name, *a),
    )
    out = tmp_path / "never"
    code = main(
        ["train", "--data", str(csv_file), "--model", "mf", "--out", str(out), "--plot", "x.png"]
    )
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert "--plot" in err and "recloop[plot]" in err
    assert not out.exists()  # refused before fitting


def test_train_plot_of_a_model_without_epochs_says_so(
    csv_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        ["train", "--data", str(csv_file), "--model", "ease", "--out", str(tmp_path / "e"),
         "--no-progress", "--plot", str(tmp_path / "e.png")]
    )  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and "no per-epoch history" in err and not (tmp_path / "e.png").exists()


@pytest.mark.parametrize("ks", ["0,5", "a,b", ""])
def test_bad_plot_ks_exit_2(runs: dict[str, Path], ks: str, capsys) -> None:
    assert main(["evaluate", str(runs["mf"]), "--plot", "x.png", "--plot-ks", ks]) == 2
    assert "--plot-ks" in capsys.readouterr().err


def test_demo_serve_serves_an_existing_run(
    runs: dict[str, Path], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from fastapi.testclient import TestClient

    from recloop.cli import serve_cmd

    served = {}
    monkeypatch.setattr(
        serve_cmd, "serve", lambda app, settings: served.update(app=app, s=settings)
    )
    assert main(["demo", "--serve", "--run", str(runs["mf"]), "--port", "8123"]) == 0
    assert "http://127.0.0.1:8123/ui" in capsys.readouterr().out
    assert served["s"].port == 8123 and served["s"].model_path == runs["mf"]
    with TestClient(served["app"]) as client:
        assert client.get("/ui").status_code == 200
        assert client.get("/ui/api/users/1").json()["known"] is True
