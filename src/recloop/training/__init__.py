"""Offline fitting policy: samplers, losses, the epoch loop with early stopping."""

from recloop.training.loop import LRSchedule, TrainConfig, train, warmup_cosine
from recloop.training.losses import bce_loss, bpr_loss, sampled_softmax_loss
from recloop.training.options import FitOptions
from recloop.training.samplers import NegativeSampler

__all__ = [
    "FitOptions",
    "LRSchedule",
    "NegativeSampler",
    "TrainConfig",
    "bce_loss",
    "bpr_loss",
    "sampled_softmax_loss",
    "train",
    "warmup_cosine",
]
