"""The epoch loop every model's ``fit`` runs: Adam, early stopping, best checkpoint, progress."""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from recloop.training.options import FitOptions, set_threads

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainConfig:
    """Training policy for one fit.

    ``patience`` counts validations without improvement before stopping; the
    parameters of the best validation are restored at the end.
    """

    epochs: int = 20
    lr: float = 1e-3
    weight_decay: float = 0.0
    patience: int = 3
    validate_every: int = 1
    grad_clip: float | None = None
    desc: str = "training"


def train(
    module: nn.Module,
    batches: Callable[[np.random.Generator, int], Iterable[Any]],
    loss_fn: Callable[[Any], torch.Tensor],
    config: TrainConfig,
    options: FitOptions,
    rng: np.random.Generator,
    validate: Callable[[], float] | None = None,
    optimizer: torch.optim.Optimizer | None = None,
) -> dict[str, Any]:
    """Fit ``module`` with Adam over ``batches(rng, epoch)`` for up to ``config.epochs``.

    ``validate`` returns a score to maximise (validation NDCG@10); when given, the
    best parameters are kept and restored, and training stops after ``patience``
    validations without improvement.
    """
    set_threads(options.threads)
    epochs = options.epochs if options.epochs is not None else config.epochs
    opt = optimizer or torch.optim.Adam(
        module.parameters(), lr=config.lr, weight_decay=config.weight_decay
    )
    best, best_state, best_epoch, bad = -np.inf, None, -1, 0
    history: list[dict[str, float]] = []
    start = time.perf_counter()
    bar = tqdm(
        range(epochs),
        desc=config.desc,
        disable=not options.show_progress,
        unit="epoch",
        leave=False,
    )
    for epoch in bar:
        module.train()
        total, n = 0.0, 0
        for batch in batches(rng, epoch):
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(batch)
            loss.backward()
            if config.grad_clip:
                nn.utils.clip_grad_norm_(module.parameters(), config.grad_clip)
            opt.step()
            total += float(loss.detach())
            n += 1
        row = {"epoch": epoch + 1, "loss": total / max(n, 1)}
        if validate is not None and (
            (epoch + 1) % config.validate_every == 0 or epoch + 1 == epochs
        ):
            module.eval()
            with torch.no_grad():
                metric = float(validate())
            row["valid_ndcg@10"] = metric
            if metric > best:
                best, best_epoch, bad = metric, epoch + 1, 0
                best_state = copy.deepcopy(module.state_dict())
            else:
                bad += 1
        history.append(row)
        bar.set_postfix({k: round(v, 4) for k, v in row.items() if k != "epoch"})
        if options.callback is not None:
            options.callback(epoch + 1, row)
        log.debug("%s epoch %d: %s", config.desc, epoch + 1, row)
        if validate is not None and bad >= config.patience:
            break
    if best_state is not None:
        module.load_state_dict(best_state)
    module.eval()
    return {
        "epochs_run": len(history),
        "best_epoch": best_epoch,
        "best_valid_ndcg@10": None if best_state is None else best,
        "fit_seconds": round(time.perf_counter() - start, 2),
        "history": history,
    }
