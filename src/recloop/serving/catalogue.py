"""What the dashboard knows of items and users: titles, genres and searches.

Built from the engine's public methods only (``item_metadata``, ``user_ids``,
``users_with_item``); every search is bounded, so a catalogue of a million items or users
is searched, never listed.
"""

from __future__ import annotations

import heapq
from typing import Any

import numpy as np
import pandas as pd

from recloop.engine import Recommender

#: title matches whose raters a user search lists
TITLE_MATCHES = 3


class Catalogue:
    """Item titles and genres for display and search, read once from ``item_table()``.

    Parameters
    ----------
    rec
        The served recommender.
    """

    def __init__(self, rec: Recommender) -> None:
        self.rec = rec
        meta = rec.item_table()
        self.meta = meta
        self.index: pd.Index | None = None
        self.titles: np.ndarray | None = None
        self.genres: np.ndarray | None = None
        self.blob = ""  # every title, lower case, one a line: one str.find scans them all
        self.starts = np.zeros(0, np.int64)  # where each title starts in blob
        if meta is not None and len(meta):
            self.index = pd.Index(meta.index.astype(str))
            if "title" in meta.columns:
                self.titles = _strings(meta["title"])
                lower = [(t or "").lower().replace("\n", " ") for t in self.titles]
                self.blob = "\n".join(lower)
                lengths = np.fromiter((len(t) + 1 for t in lower), np.int64, len(lower))
                self.starts = np.concatenate(([0], np.cumsum(lengths)[:-1]))
            if "genres" in meta.columns:
                self.genres = _strings(meta["genres"])

    @property
    def has_titles(self) -> bool:
        return self.titles is not None

    def describe(self, item_ids: list[str]) -> list[dict[str, Any]]:
        """``{"item_id", "title", "genres"}`` per id (``None`` where unknown)."""
        out = [{"item_id": i, "title": None, "genres": None} for i in item_ids]
        if self.index is None or not item_ids:
            return out
        pos = self.index.get_indexer(pd.Index(item_ids))
        for row, p in zip(out, pos.tolist()):
            if p >= 0:
                if self.titles is not None:
                    row["title"] = self.titles[p]
                if self.genres is not None:
                    row["genres"] = self.genres[p]
        return out

    def search_items(self, q: str, limit: int) -> list[dict[str, Any]]:
        """Items whose id is ``q``, then whose title contains ``q`` (any case), in table order."""
        ids: list[str] = []
        if self.rec.knows_item(q):
            ids.append(q)
        if self.titles is not None and self.index is not None:
            for p in self._title_rows(q.lower(), limit + 1):
                iid = str(self.index[p])
                if iid != q:
                    ids.append(iid)
        return self.describe(ids[:limit])

    def _title_rows(self, q: str, limit: int) -> list[int]:
        """Rows of the first ``limit`` titles containing ``q`` (lower case), in table order."""
        rows: list[int] = []
        if not q or "\n" in q:
            return rows
        blob, starts = self.blob, self.starts
        at = blob.find(q)
        while at >= 0 and len(rows) < limit:
            row = int(np.searchsorted(starts, at, side="right")) - 1
            rows.append(row)
            if row + 1 >= len(starts):
                break
            at = blob.find(q, int(starts[row + 1]))
        return rows

    def search_users(self, q: str, limit: int) -> list[dict[str, Any]]:
        """Users whose id is ``q`` or starts with it (shortest first), then users who rated
        an item whose title contains ``q``."""
        out: list[dict[str, Any]] = []
        ids = self.rec.user_ids()
        matches = [u for u in ids if u.startswith(q)]
        for uid in heapq.nsmallest(limit, matches, key=lambda u: (len(u), u)):
            out.append({"user_id": uid, "match": "id"})
        if len(out) < limit and self.titles is not None and len(q) >= 2:
            taken = {u["user_id"] for u in out}
            for item in self.search_items(q, TITLE_MATCHES):
                if item["item_id"] == q:
                    continue
                for uid in self.rec.users_with_item(item["item_id"], limit - len(out)):
                    if uid not in taken:
                        taken.add(uid)
                        out.append({"user_id": uid, "match": f"rated {item['title']}"})
                if len(out) >= limit:
                    break
        return out[:limit]


def _strings(col: pd.Series) -> np.ndarray:
    """The column as an object array of ``str``, ``None`` where missing."""
    values = col.to_numpy(dtype=object)
    return np.array([None if v is None or v != v else str(v) for v in values], dtype=object)
