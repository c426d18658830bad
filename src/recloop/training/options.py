"""Options of one fit, shared by every model (re-exported by ``recloop.models.base``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch


@dataclass
class FitOptions:
    """How to fit: the training policy, separate from the architecture's hyperparameters."""

    epochs: int | None = None  # None: the model's default
    show_progress: bool = False
    threads: int | None = None
    callback: Any = None  # called as callback(epoch, metrics: dict) after each epoch


def set_threads(threads: int | None) -> None:
    """Set torch's intra-op threads (MACHINE.md: oversubscription is 50x slower)."""
    if threads is not None and threads > 0 and torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
