"""PyTorch models behind one interface, and their registry."""

from recloop.models.base import FitOptions, OnlineBatch, RecModel, TrainData
from recloop.models.registry import available, create, register

__all__ = ["FitOptions", "OnlineBatch", "RecModel", "TrainData", "available", "create", "register"]
