"""``recloop.training.train``: its validation and learning-rate schedules are hooks of the loop,
so a model states the policy and the loop applies it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from recloop.training import FitOptions, TrainConfig, train, warmup_cosine


def _setup(n_batches: int = 3) -> tuple[nn.Module, Any, Any]:
    torch.manual_seed(0)
    module = nn.Linear(2, 1)
    x = torch.randn(n_batches, 4, 2)

    def batches(rng: np.random.Generator, epoch: int) -> list[torch.Tensor]:
        return [x[b] for b in range(n_batches)]

    def loss_fn(batch: torch.Tensor) -> torch.Tensor:
        return module(batch).pow(2).mean()

    return module, batches, loss_fn


def test_validation_starts_at_validate_from_epoch() -> None:
    module, batches, loss_fn = _setup()
    seen: list[int] = []

    def validate() -> float:
        seen.append(len(seen))
        return float(len(seen))  # rising: never stops early

    report = train(
        module,
        batches,
        loss_fn,
        TrainConfig(epochs=6, validate_from_epoch=4),
        FitOptions(),
        np.random.default_rng(0),
        validate=validate,
    )
    assert len(seen) == 2  # epochs 5 and 6 (0-based 4 and 5)
    assert [("valid_ndcg@10" in row) for row in report["history"]] == [False] * 4 + [True] * 2
    assert report["best_epoch"] == 6


def test_the_schedule_sets_the_rate_before_every_step() -> None:
    module, batches, loss_fn = _setup(n_batches=3)
    opt = torch.optim.Adam(module.parameters(), lr=1.0)
    rates: list[float] = []
    step = opt.step

    def recorded(*args: Any, **kw: Any) -> Any:
        rates.append(opt.param_groups[0]["lr"])
        return step(*args, **kw)

    opt.step = recorded  # type: ignore[method-assign]
    schedule = warmup_cosine(0.1)
    train(
        module,
        batches,
        loss_fn,
        TrainConfig(epochs=2, lr_schedule=schedule),
        FitOptions(),
        np.random.default_rng(0),
        optimizer=opt,
    )
    assert rates == pytest.approx([schedule(k, 3, 2) for k in range(6)])
    assert rates[:3] == pytest.approx([0.1 / 3, 0.2 / 3, 0.1])  # warm-up over the first epoch
    assert rates[3] == pytest.approx(0.1) and rates[3] > rates[4] > rates[5]  # then decay


def test_a_schedule_needs_sized_batches() -> None:
    module, _, loss_fn = _setup()

    def lazy(rng: np.random.Generator, epoch: int) -> Iterator[torch.Tensor]:
        yield torch.zeros(4, 2)

    with pytest.raises(TypeError, match="sized"):
        train(
            module,
            lazy,
            loss_fn,
            TrainConfig(epochs=1, lr_schedule=warmup_cosine(0.1)),
            FitOptions(),
            np.random.default_rng(0),
        )
