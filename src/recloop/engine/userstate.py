"""Per-user state in columns: each user's positive sequence (with timestamps) and seen items.

Layout (no Python object per user):

- an **arena** of two parallel arrays, ``int32`` item indices and ``float64`` timestamps,
  in which each user owns one chunk: ``start[u]``, ``length[u]``, ``cap[u]``. A user's
  events are appended to their chunk; a full chunk moves to the arena's end with 1.5× room
  (a burst of events that arrives together gets an exact fit), and the space it leaves is
  reclaimed by compaction once it exceeds the live part. 12 bytes per positive event.
- **seen items** are the sequence's items plus, for the rare user with non-positive
  events (a skip), a sorted ``int32`` array of the other items (``extra``): nothing more
  per positive event.
- ``last_active[u]`` (a counter bumped by every ``append``) orders users for eviction.

The online learner keeps, per queued event, a user's sequence and the sequence's length at
the event (``models.base.Prefixes``). ``append`` hands it one copy of each touched user's
sequence per call (not one per event): chunks move and rows change hands, a copy does not,
and reading it at step time costs a plain slice.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

_EMPTY_I = np.zeros(0, np.int64)
_EMPTY_F = np.zeros(0, np.float64)
_MIN_ARENA = 1024
_FEW = 8  # events per append below which scalar steps beat the vectorised passes
#: ``last_active`` of a free row: never the least recently active
FREE = np.iinfo(np.int64).max


def _grown(a: np.ndarray, size: int) -> np.ndarray:
    """``a`` with room for ``size`` entries (geometric growth; new entries 0). The room is
    ``np.zeros``: pages the process has not written yet take no memory."""
    if size <= len(a):
        return a
    out = np.zeros(max(size, len(a) + len(a) // 2, 64), a.dtype)
    out[: len(a)] = a
    return out


class UserState:
    """Sequences, timestamps and seen items of users ``0 .. len-1`` (rows may be free)."""

    def __init__(self) -> None:
        self.items = np.zeros(_MIN_ARENA, np.int32)
        self.stamps = np.zeros(_MIN_ARENA, np.float64)
        self.top = 0  # arena entries in use, live or not
        self.live = 0  # arena entries reserved by users' chunks (top - live is garbage)
        self.start = np.zeros(0, np.int64)
        self.length = np.zeros(0, np.int32)
        self.cap = np.zeros(0, np.int32)
        self.last_active = np.zeros(0, np.int64)
        self.extra: dict[int, np.ndarray] = {}  # user -> seen items outside the sequence
        self.n = 0
        self.clock = 0

    def __len__(self) -> int:
        return self.n

    # ------------------------------------------------------------------ size
    def ensure(self, n_users: int) -> None:
        """Give users up to ``n_users - 1`` an (empty) row."""
        if n_users <= self.n:
            return
        self.start = _grown(self.start, n_users)
        self.length = _grown(self.length, n_users)
        self.cap = _grown(self.cap, n_users)
        self.last_active = _grown(self.last_active, n_users)
        self.n = n_users

    def nbytes(self) -> int:
        """Bytes held by the arrays (their capacity) and the extra seen items."""
        arrays = (self.items, self.stamps, self.start, self.length, self.cap)
        per = sum(a.nbytes for a in arrays) + self.last_active.nbytes
        return per + sum(a.nbytes + 100 for a in self.extra.values())

    # ------------------------------------------------------------------ reading
    def history(self, u: int) -> np.ndarray:
        """(n,) int64 positive items of user ``u`` in time order (empty for ``u < 0``)."""
        if u < 0:
            return _EMPTY_I
        s = int(self.start[u])
        return self.items[s : s + int(self.length[u])].astype(np.int64)

    def times(self, u: int) -> np.ndarray:
        """(n,) float64 timestamps of ``history(u)``."""
        if u < 0:
            return _EMPTY_F
        s = int(self.start[u])
        return self.stamps[s : s + int(self.length[u])].copy()

    def seen(self, u: int) -> np.ndarray:
        """(m,) int64 every item user ``u`` interacted with, each once, sorted."""
        if u < 0:
            return _EMPTY_I
        h = self.history(u)
        extra = self.extra.get(u)
        return np.unique(h if extra is None else np.concatenate([h, extra]))

    def seen_unsorted(self, u: int) -> np.ndarray:
        """``seen(u)`` possibly with repeats and in any order (cheaper; for filtering)."""
        if u < 0:
            return _EMPTY_I
        h = self.history(u)
        extra = self.extra.get(u)
        return h if extra is None else np.concatenate([h, extra])

    def least_active(self, lo: int, count: int) -> np.ndarray:
        """The ``count`` rows from ``lo`` on whose users were active least recently (free
        rows never), oldest first."""
        active = self.last_active[lo : self.n]
        count = min(count, int((active != FREE).sum()))
        if count <= 0:
            return _EMPTY_I
        pick = (
            np.argpartition(active, count - 1)[:count]
            if count < len(active)
            else np.arange(len(active))
        )
        return (lo + pick[np.argsort(active[pick], kind="stable")]).astype(np.int64)

    # ------------------------------------------------------------------ writing
    def reset(
        self,
        sequences: Sequence[np.ndarray],
        times: Sequence[np.ndarray],
        seen: Sequence[np.ndarray],
    ) -> None:
        """Replace every user's state (index ``u`` of each list is user ``u``)."""
        lengths = np.array([len(s) for s in sequences], np.int64)
        flat = (
            np.concatenate(sequences).astype(np.int32) if len(sequences) else np.zeros(0, np.int32)
        )
        stamps = np.concatenate(times).astype(np.float64) if len(times) else _EMPTY_F
        self._load(lengths, flat, stamps)
        seen_len = np.array([len(s) for s in seen], np.int64)
        seen_flat = np.concatenate(seen).astype(np.int64) if len(seen) else _EMPTY_I
        # seen items outside the sequence, found for every user at once by (user, item) keys
        seq_keys = (np.repeat(np.arange(len(lengths)), lengths) << 32) | flat.astype(np.int64)
        owner = np.repeat(np.arange(len(seen_len)), seen_len)
        outside = ~np.isin((owner << 32) | seen_flat, seq_keys)
        self.extra = {}
        for u, items in zip(*_groups(owner[outside], seen_flat[outside])):
            self.extra[u] = np.unique(items).astype(np.int32)

    def _load(self, lengths: np.ndarray, flat: np.ndarray, stamps: np.ndarray) -> None:
        n = len(lengths)
        size = max(_MIN_ARENA, int(len(flat) * 1.25))
        self.items = np.zeros(size, np.int32)
        self.stamps = np.zeros(size, np.float64)
        self.items[: len(flat)] = flat
        self.stamps[: len(flat)] = stamps
        self.top = self.live = len(flat)
        self.start = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
        self.length = lengths.astype(np.int32)
        self.cap = lengths.astype(np.int32)
        self.last_active = np.zeros(n, np.int64)
        self.n = n

    def _add_extra(self, u: int, items: np.ndarray) -> None:
        """Record ``items`` as seen by ``u`` where its sequence does not hold them."""
        have = self.history(u)
        new = np.setdiff1d(items, have)
        if len(new):
            old = self.extra.get(u)
            merged = new if old is None else np.union1d(old, new)
            self.extra[u] = merged.astype(np.int32)

    def append(
        self,
        users: Sequence[int],
        items: Sequence[int],
        positive: Sequence[bool],
        stamps: Sequence[float],
        refs: bool,
    ) -> tuple[list[np.ndarray], list[int]]:
        """Apply events in order: each item joins its user's seen items, and a positive one
        the user's sequence; every user touched becomes the most recently active. With
        ``refs``, also returns per event its user's sequence after this call (one copy per
        user, shared by their events) and the sequence's length before the event."""
        n = len(users)
        if n == 0:
            return [], []
        self.clock += 1
        if n <= _FEW:
            return self._append_few(users, items, positive, stamps, refs)
        u = np.asarray(users, np.int64)
        pos = np.asarray(positive, bool)
        self.last_active[u] = self.clock
        ends: list[int] = []
        out_refs: list[np.ndarray] = []
        if refs:
            # each event's history end: the user's length plus their earlier positives here
            before = self.length[u].astype(np.int64)
            order = np.argsort(u, kind="stable")
            su = u[order]
            first = np.r_[True, su[1:] != su[:-1]]
            cum = np.cumsum(pos[order]) - pos[order]
            group_start = np.maximum.accumulate(np.where(first, np.arange(n), 0))
            earlier = np.empty(n, np.int64)
            earlier[order] = cum - cum[group_start]
            ends = (before + earlier).tolist()
        if pos.any():
            self._append_positive(u[pos], np.asarray(items, np.int64)[pos], np.asarray(stamps)[pos])
        if not pos.all():
            it = np.asarray(items, np.int64)
            for x in np.flatnonzero(~pos).tolist():
                self._add_extra(int(u[x]), it[x : x + 1])
        if refs:
            out_refs = self._copies(users)
        return out_refs, ends

    def _copies(self, users: Sequence[int]) -> list[np.ndarray]:
        """Per event, a copy of its user's sequence (one per user, shared by their events;
        ``int32`` as stored: ``Prefixes`` reads rows as int64)."""
        start, length, arena = self.start, self.length, self.items
        made: dict[int, np.ndarray] = {}
        out = []
        for x in users:
            h = made.get(x)
            if h is None:
                s = int(start[x])
                h = made[x] = arena[s : s + int(length[x])].copy()
            out.append(h)
        return out

    def _append_few(
        self,
        users: Sequence[int],
        items: Sequence[int],
        positive: Sequence[bool],
        stamps: Sequence[float],
        refs: bool,
    ) -> tuple[list[np.ndarray], list[int]]:
        """``append`` for a request's few events: scalar steps cost less than the vectorised
        passes' set-up. A chunk filled one event at a time grows to at least 4 entries."""
        ends: list[int] = []
        for x, i, p, t in zip(users, items, positive, stamps):
            x = int(x)
            self.last_active[x] = self.clock
            n = int(self.length[x])
            if refs:
                ends.append(n)
            if not p:
                self._add_extra(x, np.array([i], np.int64))
                continue
            if n == int(self.cap[x]):
                self._move(np.array([x], np.int64), np.array([n + 1], np.int64), min_cap=4)
            at = int(self.start[x]) + n
            self.items[at] = i
            self.stamps[at] = t
            self.length[x] = n + 1
        return (self._copies(users) if refs else []), ends

    def _append_positive(self, u: np.ndarray, items: np.ndarray, stamps: np.ndarray) -> None:
        """Append positive events (in order) to their users' chunks."""
        order = np.argsort(u, kind="stable")
        su = u[order]
        users, first, counts = np.unique(su, return_index=True, return_counts=True)
        need = self.length[users].astype(np.int64) + counts
        move = need > self.cap[users]
        if move.any():
            self._move(users[move], need[move])
        # position of each event: its user's start + length + its rank among theirs
        rank = np.arange(len(su)) - np.repeat(first, counts)
        at = np.repeat(self.start[users] + self.length[users], counts) + rank
        self.items[at] = items[order]
        self.stamps[at] = stamps[order]
        self.length[users] += counts.astype(np.int32)

    def _move(self, users: np.ndarray, need: np.ndarray, min_cap: int = 0) -> None:
        """Give ``users`` chunks of room for ``need`` entries (at least ``min_cap``) at the
        arena's end; a user who had a chunk gets 1.5× room."""
        old_cap = self.cap[users].astype(np.int64)
        cap = np.where(old_cap > 0, np.maximum(need, old_cap + old_cap // 2), need)
        cap = np.maximum(cap, min_cap)
        total = int(cap.sum())
        if self.top + total > len(self.items):
            garbage = self.top - self.live
            if garbage > self.live and garbage > total:
                self._compact()
            if self.top + total > len(self.items):
                size = max(self.top + total, len(self.items) * 3 // 2)
                self.items = _grown(self.items, size)
                self.stamps = _grown(self.stamps, size)
        new_start = self.top + np.concatenate([[0], np.cumsum(cap)[:-1]])
        lengths = self.length[users].astype(np.int64)
        if lengths.any():
            src = np.repeat(self.start[users], lengths) + _ranks(lengths)
            dst = np.repeat(new_start, lengths) + _ranks(lengths)
            self.items[dst] = self.items[src]
            self.stamps[dst] = self.stamps[src]
        self.live += total - int(old_cap.sum())  # what the users left behind is garbage
        self.start[users] = new_start
        self.cap[users] = cap
        self.top += total

    def _compact(self) -> None:
        """Move every chunk to the front, in user order, each with its own room kept."""
        n = self.n
        cap = self.cap[:n].astype(np.int64)
        lengths = self.length[:n].astype(np.int64)
        new_start = np.concatenate([[0], np.cumsum(cap)[:-1]]).astype(np.int64)
        src = np.repeat(self.start[:n], lengths) + _ranks(lengths)
        dst = np.repeat(new_start, lengths) + _ranks(lengths)
        size = max(_MIN_ARENA, int(cap.sum() * 1.25))
        items = np.zeros(size, np.int32)
        stamps = np.zeros(size, np.float64)
        items[dst] = self.items[src]
        stamps[dst] = self.stamps[src]
        self.items, self.stamps = items, stamps
        self.start[:n] = new_start
        self.top = int(cap.sum())
        self.live = int(cap.sum())  # room inside chunks counts as live: it is reserved

    def clear(self, users: np.ndarray) -> None:
        """Forget ``users``' state (their rows go to new users): empty sequences, no seen
        items."""
        self.live -= int(self.cap[users].sum())
        self.length[users] = 0
        self.cap[users] = 0
        self.last_active[users] = FREE
        for x in users.tolist():
            self.extra.pop(x, None)

    # ------------------------------------------------------------------ persistence
    def to_flat(self) -> dict[str, np.ndarray]:
        """Flat arrays for a snapshot: ``seq_len``, ``seq_flat``, ``seq_time``, ``seen_len``,
        ``seen_flat`` (each user's seen items outside the sequence, sorted)."""
        n = self.n
        lengths = self.length[:n].astype(np.int64)
        src = np.repeat(self.start[:n], lengths) + _ranks(lengths)
        extra_len = np.zeros(n, np.int64)
        for u, a in self.extra.items():
            extra_len[u] = len(a)
        extra = [self.extra[u] for u in sorted(self.extra)]
        return {
            "seq_len": lengths,
            "seq_flat": self.items[src].astype(np.int64),
            "seq_time": self.stamps[src].copy(),
            "seen_len": extra_len,
            "seen_flat": np.concatenate(extra).astype(np.int64) if extra else _EMPTY_I.copy(),
        }

    @classmethod
    def from_flat(cls, flat: dict[str, np.ndarray]) -> UserState:
        """The state ``to_flat`` wrote."""
        out = cls()
        out._load(flat["seq_len"], flat["seq_flat"], flat["seq_time"])
        bounds = np.concatenate([[0], np.cumsum(flat["seen_len"])])
        for u in np.flatnonzero(flat["seen_len"]).tolist():
            out.extra[u] = flat["seen_flat"][bounds[u] : bounds[u + 1]].astype(np.int32)
        return out


def _groups(owner: np.ndarray, values: np.ndarray) -> tuple[list[int], list[np.ndarray]]:
    """The distinct owners (ascending) and each one's values."""
    order = np.argsort(owner, kind="stable")
    keys, first = np.unique(owner[order], return_index=True)
    return keys.tolist(), np.split(values[order], first[1:])


def _ranks(lengths: np.ndarray) -> np.ndarray:
    """``0 .. lengths[g]-1`` for each group ``g``, concatenated."""
    total = int(lengths.sum())
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    out: np.ndarray = np.arange(total) - np.repeat(starts, lengths)
    return out


def known_history(
    hist: list[np.ndarray], times: list[np.ndarray] | None, n_items: int
) -> tuple[list[np.ndarray], dict[str, list[np.ndarray]]]:
    """Histories without the items a model has no row for yet (tables grow lazily, in the
    learner's step), and the keyword arguments that pass their timestamps, cut alike, to
    ``score`` / ``user_states`` (none when ``times`` is None)."""
    keep = [None if not len(h) or h.max() < n_items else h < n_items for h in hist]
    cut = [h if k is None else h[k] for h, k in zip(hist, keep)]
    if times is None:
        return cut, {}
    return cut, {"times": [t if k is None else t[k] for t, k in zip(times, keep)]}
