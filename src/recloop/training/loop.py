"""The epoch loop every model's ``fit`` runs: Adam, early stopping, best checkpoint, progress."""

from __future__ import annotations

import copy
import logging
import math
import time
from collections.abc import Callable, Iterable, Sized
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from recloop.training.options import FitOptions, set_threads

log = logging.getLogger(__name__)


#: the learning rate of a step: ``schedule(step, batches_per_epoch, epochs)``, where ``step``
#: counts the steps of the whole fit from 0 and ``batches_per_epoch`` is the current
#: epoch's number of batches (the loop needs ``batches`` to return a sized iterable)
LRSchedule = Callable[[int, int, int], float]


def warmup_cosine(base: float) -> LRSchedule:
    """Linear warm-up over the first epoch's steps, then cosine decay to 0 at the last step.

    >>> s = warmup_cosine(1.0)
    >>> [round(s(k, 2, 3), 3) for k in range(6)]
    [0.5, 1.0, 1.0, 0.854, 0.5, 0.146]
    """

    def schedule(step: int, per_epoch: int, epochs: int) -> float:
        warm, total = per_epoch, epochs * per_epoch
        if step < warm:
            return base * (step + 1) / warm
        return base * 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warm) / max(1, total - warm))))

    return schedule


@dataclass(frozen=True)
class TrainConfig:
    """Training policy for one fit.

    ``patience`` counts validations without improvement before stopping; the
    parameters of the best validation are restored at the end. ``validate_from_epoch``
    (0-based) skips validation before that epoch: under a rate that decays to zero the
    late epochs are the good ones, and one held-out item per user makes NDCG@10 noisy
    enough to crown a lucky early epoch. ``lr_schedule`` sets the learning rate before
    every step (see ``LRSchedule``); None keeps ``lr``.
    """

    epochs: int = 20
    lr: float = 1e-3
    weight_decay: float = 0.0
    patience: int = 3
    validate_every: int = 1
    grad_clip: float | None = None
    desc: str = "training"
    validate_from_epoch: int = 0
    lr_schedule: LRSchedule | None = None


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
    """Fit ``module`` with Adam (or ``optimizer``) over ``batches(rng, epoch)`` for up to
    ``config.epochs``.

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
    step = 0
    for epoch in bar:
        module.train()
        total, n = 0.0, 0
        epoch_batches = batches(rng, epoch)
        per_epoch = 0
        if config.lr_schedule is not None:
            if not isinstance(epoch_batches, Sized):
                raise TypeError("train: an lr_schedule needs batches() to return a sized iterable")
            per_epoch = len(epoch_batches)
        for batch in epoch_batches:
            if config.lr_schedule is not None:
                rate = config.lr_schedule(step, per_epoch, epochs)
                for g in opt.param_groups:
                    g["lr"] = rate
            step += 1
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(batch)
            loss.backward()  # type: ignore[no-untyped-call]
            if config.grad_clip:
                nn.utils.clip_grad_norm_(module.parameters(), config.grad_clip)
            opt.step()
            total += float(loss.detach())
            n += 1
        row = {"epoch": epoch + 1, "loss": total / max(n, 1)}
        if (
            validate is not None
            and epoch >= config.validate_from_epoch
            and ((epoch + 1) % config.validate_every == 0 or epoch + 1 == epochs)
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
