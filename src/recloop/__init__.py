"""recloop: a real-time recommender engine that learns from every click.

``Recommender`` is imported lazily so that ``recloop data …`` and ``import recloop.data``
do not pay for importing torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from recloop.events import Event

if TYPE_CHECKING:
    from recloop.engine import Recommender

__version__ = "0.1.0"
__all__ = ["Event", "Recommender", "__version__"]


def __getattr__(name: str) -> Any:
    if name == "Recommender":
        from recloop.engine import Recommender

        return Recommender
    raise AttributeError(f"module 'recloop' has no attribute {name!r}")
