"""``UserIds``: the user vocabulary, whose rows can be given back and reused.

Like ``recloop.data.vocab.Vocab`` (external id <-> row index), plus ``remove``: an evicted
user's row goes on a free list and the next new user takes it, so the number of rows (and
of every table indexed by them) stays bounded by the number of resident users.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from recloop.errors import DataError


class UserIds:
    """Map user ids to rows ``0 .. len-1``; a removed row is free until a new id takes it.

    Examples
    --------
    >>> v = UserIds(["a", "b", "c"])
    >>> v.remove([1])
    ['b']
    >>> v.add("d"), v.get("b"), len(v), v.n_resident
    (1, -1, 3, 3)
    """

    __slots__ = ("_free", "_ids", "_index", "reuse_from")

    def __init__(self, ids: Iterable[str] = ()) -> None:
        self._index: dict[str, int] = {}
        self._ids: list[str | None] = []
        self._free: list[int] = []
        #: rows below this are never given to another id once removed (a fitted model's
        #: rows belong to the users it was trained on)
        self.reuse_from = 0
        self.add_many(ids)

    def __len__(self) -> int:
        """Rows in use or free: the size tables indexed by user must have."""
        return len(self._ids)

    def __contains__(self, key: object) -> bool:
        return key in self._index

    @property
    def n_resident(self) -> int:
        """Users that hold a row now."""
        return len(self._index)

    def add(self, key: str) -> int:
        """Row of ``key``, giving it a free row (or a new one at the end) if it is new."""
        idx = self._index.get(key)
        if idx is None:
            if self._free:
                idx = self._free.pop()
                self._ids[idx] = key
            else:
                idx = len(self._ids)
                self._ids.append(key)
            self._index[key] = idx
        return idx

    def add_many(self, keys: Iterable[str]) -> np.ndarray:
        return np.fromiter((self.add(k) for k in keys), dtype=np.int64)

    def get(self, key: str, default: int = -1) -> int:
        return self._index.get(key, default)

    def index(self, key: str) -> int:
        """Row of a known ``key``; ``KeyError`` for an unknown one."""
        return self._index[key]

    def lookup(self, keys: Iterable[str], default: int = -1) -> np.ndarray:
        """Rows of ``keys``, ``default`` where unknown (no growth)."""
        get = self._index.get
        return np.fromiter((get(k, default) for k in keys), dtype=np.int64)

    def id(self, idx: int) -> str:
        key = self._ids[idx]
        if key is None:
            raise KeyError(f"user row {idx} is free")
        return key

    def ids(self, idxs: Sequence[int] | np.ndarray) -> list[str]:
        return [self.id(int(i)) for i in idxs]

    def remove(self, idxs: Sequence[int] | np.ndarray) -> list[str]:
        """Free the rows ``idxs``; returns the ids that held them."""
        out = []
        for i in np.asarray(idxs, np.int64).tolist():
            key = self._ids[i]
            if key is not None:
                del self._index[key]
                self._ids[i] = None
                if i >= self.reuse_from:
                    self._free.append(i)
                out.append(key)
        return out

    def to_list(self) -> list[str]:
        """Every row's id, ``""`` for a free row (ids are never empty)."""
        return [k if k is not None else "" for k in self._ids]

    @classmethod
    def from_list(cls, ids: list[str], reuse_from: int = 0) -> UserIds:
        """The vocabulary ``to_list`` wrote (free rows from ``reuse_from`` on are reused)."""
        v = cls()
        v.reuse_from = reuse_from
        for n, key in enumerate(ids):
            if key == "":
                v._ids.append(None)
                if n >= reuse_from:
                    v._free.append(n)
                continue
            if key in v._index:
                raise DataError(
                    f"user vocabulary has duplicate ids (first: {key!r}); the snapshot is corrupted"
                )
            v._index[key] = n
            v._ids.append(key)
        v._free.reverse()  # the lowest free row is taken first
        return v
