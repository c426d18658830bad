"""One router per resource; each ``router(state)`` builds its routes around one app's state."""

from __future__ import annotations

from recloop.serving.routes import admin, events, items, predict, recommend, system, ui, users

ALL = (predict, recommend, events, users, items, system, admin, ui)

__all__ = ["ALL"]
