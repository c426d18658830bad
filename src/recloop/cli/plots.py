"""PNG plots for ``--plot FILE``: a fit's loss and validation metric per epoch, and HR@K /
NDCG@K over K per model. matplotlib is the optional ``plot`` extra
(``pip install 'recloop[plot]'``); without it ``--plot`` fails at once with one line.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from recloop.errors import InvalidInputError


def require_matplotlib(option: str = "--plot") -> None:
    """Raise ``InvalidInputError`` naming ``option`` when matplotlib is not installed."""
    if importlib.util.find_spec("matplotlib") is None:
        raise InvalidInputError(
            option, "needs matplotlib, which is not installed: pip install 'recloop[plot]'"
        )


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def fit_histories(report: Mapping[str, Any], name: str) -> dict[str, list[dict[str, float]]]:
    """Per-epoch rows of a fit report, by part: ``{name: rows}``, or one entry per part of a
    model whose report holds its parts' reports (``hybrid``)."""
    if isinstance(report.get("history"), list) and report["history"]:
        return {name: list(report["history"])}
    out: dict[str, list[dict[str, float]]] = {}
    for part, sub in report.items():
        if isinstance(sub, Mapping) and isinstance(sub.get("history"), list) and sub["history"]:
            out[f"{name}.{part}"] = list(sub["history"])
    return out


def plot_fit(report: Mapping[str, Any], name: str, path: str | Path) -> Path:
    """Loss (left) and every validation metric (right) per epoch, from ``fit_report_``."""
    histories = fit_histories(report, name)
    if not histories:
        raise InvalidInputError(
            "--plot", f"model {name!r} has no per-epoch history to plot (it fits in closed form)"
        )
    plt = _pyplot()
    fig, loss_ax = plt.subplots(figsize=(8, 4.5), dpi=110)
    metric_ax = loss_ax.twinx()
    colours = plt.get_cmap("tab10")
    for n, (label, rows) in enumerate(histories.items()):
        epochs = [r["epoch"] for r in rows if "loss" in r]
        loss_ax.plot(epochs, [r["loss"] for r in rows if "loss" in r], "-", color=colours(n),
                     label=f"{label} loss")  # fmt: skip
        for key in sorted({k for r in rows for k in r if k.startswith("valid")}):
            pts = [(r["epoch"], r[key]) for r in rows if r.get(key) is not None]
            if pts:
                metric_ax.plot(*zip(*pts), "o--", color=colours(n), label=f"{label} {key}")
    best = report.get("best_epoch")
    if isinstance(best, int) and best > 0:
        loss_ax.axvline(best, color="grey", linestyle=":", label=f"best epoch {best}")
    loss_ax.set_xlabel("epoch")
    loss_ax.set_ylabel("training loss")
    metric_ax.set_ylabel("validation metric")
    loss_ax.grid(alpha=0.3)
    handles = loss_ax.get_legend_handles_labels()
    more = metric_ax.get_legend_handles_labels()
    loss_ax.legend(handles[0] + more[0], handles[1] + more[1], fontsize=8, loc="best")
    loss_ax.set_title(f"fit of {name}")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return Path(path)


def plot_over_k(
    results: Mapping[str, Mapping[str, Sequence[tuple[int, float, float]]]], path: str | Path
) -> Path:
    """HR@K and NDCG@K over K: ``results[label][protocol] = [(k, hr, ndcg), ...]``."""
    plt = _pyplot()
    protocols = list(dict.fromkeys(p for r in results.values() for p in r))
    fig, axes = plt.subplots(
        len(protocols), 2, figsize=(10, 3.8 * len(protocols)), dpi=110, squeeze=False
    )
    colours = plt.get_cmap("tab10")
    for row, protocol in enumerate(protocols):
        for n, (label, by_protocol) in enumerate(results.items()):
            pts = by_protocol.get(protocol)
            if not pts:
                continue
            ks = [p[0] for p in pts]
            for col, j, metric in ((0, 1, "HR"), (1, 2, "NDCG")):
                ax = axes[row][col]
                ax.plot(ks, [p[j] for p in pts], "o-", color=colours(n % 10), label=label)
                ax.set_xscale("log")
                ax.set_xticks(ks, [str(k) for k in ks])
                ax.set_xlabel("K")
                ax.set_ylabel(f"{metric}@K")
                ax.set_title(f"{metric}@K, {protocol} ranking")
                ax.grid(alpha=0.3)
                ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return Path(path)
