"""The ``Recommender`` facade."""

from recloop.engine.recommender import Recommender

__all__ = ["Recommender"]
