"""Growable id vocabularies: external string id <-> internal row index.

A vocabulary only grows: an unseen id gets the next index, and an index once given
is never renumbered, so embedding rows stay attached to their ids across save/load.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from recloop.errors import DataError


class Vocab:
    """Map string ids to dense row indices ``0 .. len-1``.

    Examples
    --------
    >>> v = Vocab(["a", "b"])
    >>> v.add("c"), v.index("a"), v.id(1)
    (2, 0, 'b')
    """

    __slots__ = ("_index", "_ids")

    def __init__(self, ids: Iterable[str] = ()) -> None:
        self._index: dict[str, int] = {}
        self._ids: list[str] = []
        self.add_many(ids)

    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, item_id: object) -> bool:
        return item_id in self._index

    def add(self, key: str) -> int:
        """Index of ``key``, adding it at the end if it is new."""
        idx = self._index.get(key)
        if idx is None:
            idx = len(self._ids)
            self._index[key] = idx
            self._ids.append(key)
        return idx

    def add_many(self, keys: Iterable[str]) -> np.ndarray:
        return np.fromiter((self.add(k) for k in keys), dtype=np.int64)

    def index(self, key: str) -> int:
        """Index of a known ``key``; raises ``KeyError`` for an unknown one."""
        return self._index[key]

    def get(self, key: str, default: int = -1) -> int:
        return self._index.get(key, default)

    def lookup(self, keys: Iterable[str], default: int = -1) -> np.ndarray:
        """Indices of ``keys``, ``default`` where unknown (no growth)."""
        get = self._index.get
        return np.fromiter((get(k, default) for k in keys), dtype=np.int64)

    def id(self, idx: int) -> str:
        return self._ids[idx]

    def ids(self, idxs: Sequence[int] | np.ndarray) -> list[str]:
        ids = self._ids
        return [ids[i] for i in idxs]

    def to_list(self) -> list[str]:
        return list(self._ids)

    @classmethod
    def from_list(cls, ids: list[str]) -> Vocab:
        v = cls(ids)
        if len(v) != len(ids):
            dup = next(k for n, k in enumerate(ids) if v.index(k) != n)
            raise DataError(
                f"vocabulary list has duplicate ids (first: {dup!r}); a saved vocabulary is corrupted"
            )
        return v
