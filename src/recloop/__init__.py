"""recloop: a real-time recommender engine that learns from every click."""
from recloop.engine import Recommender
from recloop.events import Event

__version__ = "0.1.0"
__all__ = ["Event", "Recommender", "__version__"]
