"""Online learning: apply each event to the live model within milliseconds."""

from recloop.online.learner import OnlineConfig, OnlineLearner

__all__ = ["OnlineConfig", "OnlineLearner"]
