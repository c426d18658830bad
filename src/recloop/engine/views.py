"""What the engine hands out about its state: copies and read-only views, never its storage."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from recloop.engine.userstate import UserState


@dataclass(frozen=True)
class UserView:
    """One user's state as the engine holds it (``Recommender.user_state``).

    Attributes
    ----------
    user_id : the user
    items : positive items in time order (what sequence models read)
    timestamps : the timestamp of each of ``items``
    seen : every item the user interacted with (what ``exclude_seen`` drops)
    """

    user_id: str
    items: list[str]
    timestamps: list[float]
    seen: list[str]


@dataclass(frozen=True)
class LearnerStatus:
    """The online learner's figures (``Recommender.learner_status``).

    Attributes
    ----------
    enabled : whether parameters learn online
    pending : events queued for the next parameter step
    steps : parameter steps taken since the fit or load
    step_ms : latency of the recent steps, oldest first
    """

    enabled: bool
    pending: int
    steps: int
    step_ms: list[float]


class Rows(Sequence[list[Any]]):
    """A read-only per-user view (``Recommender.sequences_`` and kin): row ``u`` as a list."""

    def __init__(self, state: UserState, kind: Literal["history", "times", "seen"]) -> None:
        self._state, self._kind = state, kind

    def __len__(self) -> int:
        return len(self._state)

    def __getitem__(self, u: Any) -> Any:
        if isinstance(u, slice):
            return [self[x] for x in range(len(self))[u]]
        u = int(u)
        if not 0 <= u < len(self):
            raise IndexError(u)
        row: list[Any] = getattr(self._state, self._kind)(u).tolist()
        return row

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Sequence) and list(self) == list(other)

    __hash__ = None  # type: ignore[assignment]
