"""Why an item was recommended, measured rather than guessed.

A history item's weight for a recommended item is how much the item's score falls when
that one history item is taken out of the user's history (leave one out over the last
``window`` distinct items, scored by the served model in one batch). The reasons are
therefore faithful by construction: removing a named item lowers the recommended item's
score by its weight, for any model that reads the history (``sasrec``, ``ease``,
``hybrid``, ``content``, the fold-in of ``mf``). Shared tags (``genres``) come from the
metadata; an item that no history item lifts is ``popular_now`` when the user is not
personalised or the item is among the most popular now.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np

WINDOW = 20
TOP = 3


def leave_one_out(
    history: np.ndarray, times: np.ndarray | None, window: int = WINDOW
) -> tuple[np.ndarray, list[np.ndarray], list[np.ndarray] | None]:
    """The last ``window`` distinct items of ``history`` and, for each, the history without
    it (every occurrence), with the matching timestamps when ``times`` is given."""
    seen: list[int] = []
    for item in history[::-1].tolist():
        if item not in seen:
            seen.append(item)
            if len(seen) == window:
                break
    cands = np.array(seen, np.int64)
    hists = [history[history != c] for c in cands]
    cut = None if times is None else [times[history != c] for c in cands]
    return cands, hists, cut


def contributions(
    full: np.ndarray, without: np.ndarray, cands: np.ndarray, items: Sequence[int], top: int = TOP
) -> list[list[tuple[int, float]]]:
    """Per item (a column of ``full``), the up-to-``top`` candidates whose removal lowers its
    score most, with that fall; only falls > 0 count.

    ``full`` is (n_items,) scores with the whole history, ``without`` (len(cands), n_items)
    with each candidate left out.
    """
    out: list[list[tuple[int, float]]] = []
    for j in items:
        if j < 0 or j >= len(full) or not np.isfinite(full[j]) or not len(cands):
            out.append([])
            continue
        drop = full[j] - without[:, j]
        drop = np.where(np.isfinite(drop), drop, 0.0)
        order = np.argsort(-drop, kind="stable")[:top]
        out.append([(int(cands[r]), float(drop[r])) for r in order if drop[r] > 1e-7])
    return out


def shared_tags(item_tags: list[str], history_tags: Sequence[list[str]], top: int = 3) -> list[str]:
    """The item's tags that the history has, most frequent in the history first."""
    counts = Counter(t for tags in history_tags for t in tags)
    return sorted((t for t in item_tags if counts[t]), key=lambda t: (-counts[t], t))[:top]


def reason(
    item_id: str,
    because: list[tuple[str, float]],
    genres: list[str],
    popular: bool,
) -> dict[str, Any]:
    """One explanation object."""
    out: dict[str, Any] = {"item_id": item_id}
    if because:
        out["because"] = [{"item_id": i, "weight": round(w, 6)} for i, w in because]
    if genres:
        out["genres"] = genres
    if popular or not (because or genres):
        out["popular_now"] = True
    return out
