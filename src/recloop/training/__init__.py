"""Offline fitting policy: samplers, losses, the epoch loop with early stopping."""

from recloop.training.loop import TrainConfig, train
from recloop.training.losses import bce_loss, bpr_loss, sampled_softmax_loss
from recloop.training.options import FitOptions
from recloop.training.samplers import NegativeSampler

__all__ = [
    "FitOptions",
    "NegativeSampler",
    "TrainConfig",
    "bce_loss",
    "bpr_loss",
    "sampled_softmax_loss",
    "train",
]
