"""Content-based scoring: a user's taste as the content vectors of what they interacted with.

The ``content`` model scores item ``j`` for a user as ``<profile, x_j>``, where ``x_j`` is
the item's content vector (``recloop.data.features``) and ``profile`` is the
recency-weighted mean of the vectors of the user's last ``history_len`` positive items
(the ``n``-th most recent weighs ``2 ** (-n / half_life)``). The profile is read from the
history at every request, so an event moves the next answer with no parameter step, and
an item with no interactions scores like any other: by its content.

The engine hands the vectors over with ``set_item_features`` (before ``fit``, and again
whenever items are added or changed). Without them (no metadata) the model falls back to
the items' interaction profiles: a rank-``fallback_dim`` factorisation of the item-user
matrix from ``fit``, so it still ranks by item-to-item similarity.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from recloop.models.base import (
    FitOptions,
    RecModel,
    TrainData,
    check_positive,
    check_positive_ints,
)
from recloop.models.registry import register


def recency_weights(n: int, half_life: float) -> np.ndarray:
    """(n,) float32 weights of a history's items, oldest first: the last weighs 1, the
    ``k``-th before it ``2 ** (-k / half_life)``.

    >>> recency_weights(3, 1.0).tolist()
    [0.25, 0.5, 1.0]
    """
    return np.exp2(-(n - 1 - np.arange(n)) / half_life).astype(np.float32)


def profiles(
    vectors: np.ndarray, histories: Sequence[np.ndarray], half_life: float, history_len: int
) -> np.ndarray:
    """(batch, d) recency-weighted mean content vector of each history's last
    ``history_len`` items (items beyond ``vectors`` count as zero vectors); an empty
    history gives zeros."""
    n, d = vectors.shape
    out = np.zeros((len(histories), d), np.float32)
    for r, h in enumerate(histories):
        h = np.asarray(h, np.int64)[-history_len:]
        if not len(h):
            continue
        w = recency_weights(len(h), half_life)
        ok = (h >= 0) & (h < n)
        if ok.any():
            out[r] = w[ok] @ vectors[h[ok]]
        out[r] /= w.sum()
    return out


def interaction_factors(data: TrainData, dim: int, seed: int) -> np.ndarray:
    """(n_items, dim) item factors of the binary item-user matrix (a seeded randomized SVD,
    rows L2-normalised): the items' interaction profiles, for when there is no metadata."""
    pos = data.positives
    items = torch.as_tensor(data.item_idx[pos], dtype=torch.long)
    users = torch.as_tensor(data.user_idx[pos], dtype=torch.long)
    n_items, n_users = data.n_items, data.n_users
    if not len(items) or n_items == 0:
        return np.zeros((n_items, dim), np.float32)
    mat = torch.zeros(n_items, n_users)
    mat[items, users] = 1.0
    # scale down very popular items, so the factors describe taste rather than popularity
    mat = mat / mat.sum(1, keepdim=True).clamp(min=1.0).sqrt()
    q = min(dim, n_items, n_users)
    gen = torch.Generator().manual_seed(seed)
    state = torch.random.get_rng_state()
    torch.manual_seed(int(torch.randint(0, 2**31 - 1, (1,), generator=gen)))
    try:
        u, s, _ = torch.svd_lowrank(mat, q=q, niter=4)
    finally:
        torch.random.set_rng_state(state)
    vec = (u * s.sqrt()).numpy().astype(np.float32)
    if q < dim:
        vec = np.pad(vec, ((0, 0), (0, dim - q)))
    norms = np.linalg.norm(vec, axis=1, keepdims=True)
    return vec / np.maximum(norms, 1e-12)


@register
class Content(RecModel):
    """Scores items by the similarity of their content to the user's recent items.

    Parameters
    ----------
    half_life
        History items weigh half after this many later items (default 20).
    history_len
        Only the last ``history_len`` positive items make the profile (default 200).
    fallback_dim
        Dimension of the interaction profiles used when no content vectors are given.
    """

    name = "content"
    uses_history = True
    learns_from_replay = False
    holds_out_validation = False  # nothing to stop early on

    def __init__(
        self,
        seed: int = 0,
        half_life: float = 20.0,
        history_len: int = 200,
        fallback_dim: int = 32,
    ) -> None:
        super().__init__(seed)
        check_positive(half_life=half_life)
        check_positive_ints(history_len=history_len, fallback_dim=fallback_dim)
        self.half_life = float(half_life)
        self.history_len = history_len
        self.fallback_dim = fallback_dim
        self.vectors_ = np.zeros((0, 0), np.float32)
        self.from_features_ = False

    # --- features -------------------------------------------------------------
    def set_item_features(self, vectors: np.ndarray | None) -> None:
        """Use ``vectors`` ((n_items, d) float32, a zero row for an item without content) as
        the items' content; None keeps the current vectors."""
        if vectors is None:
            return
        self.vectors_ = np.ascontiguousarray(vectors, np.float32)
        self.from_features_ = True
        self.n_items_ = max(self.n_items_, len(self.vectors_))

    # --- RecModel -------------------------------------------------------------
    def fit(self, data: TrainData, options: FitOptions) -> dict[str, Any]:
        self.n_users_, self.n_items_ = data.n_users, max(data.n_items, len(self.vectors_))
        if not self.from_features_:
            self.vectors_ = interaction_factors(data, self.fallback_dim, self.seed)
        self.grow(data.n_users, data.n_items)
        return {"epochs_run": 0, "content": "features" if self.from_features_ else "interactions"}

    def score(self, user_idx: np.ndarray, histories: Sequence[np.ndarray]) -> np.ndarray:
        vec = self.vectors_
        prof = profiles(vec, histories, self.half_life, self.history_len)
        out = np.zeros((len(user_idx), max(self.n_items_, len(vec))), np.float32)
        if vec.size:
            out[:, : len(vec)] = prof @ vec.T
        return out

    def can_personalise(self, user_idx: np.ndarray, histories: Sequence[np.ndarray]) -> np.ndarray:
        return np.array([len(h) > 0 for h in histories], bool)

    def grow(self, n_users: int, n_items: int) -> None:
        super().grow(n_users, n_items)
        if len(self.vectors_) < n_items:
            d = self.vectors_.shape[1] if self.vectors_.ndim == 2 else 0
            pad = np.zeros((n_items - len(self.vectors_), d), np.float32)
            self.vectors_ = np.concatenate([self.vectors_.reshape(-1, d), pad], 0)

    def item_content(self) -> np.ndarray:
        """(n_items, d) the content vectors scored against (for explanations)."""
        return self.vectors_

    def hyperparameters(self) -> dict[str, Any]:
        return {
            "half_life": self.half_life,
            "history_len": self.history_len,
            "fallback_dim": self.fallback_dim,
        }

    def get_state(self) -> dict[str, Any]:
        return {
            "vectors": self.vectors_,
            "from_features": int(self.from_features_),
            "n_users": self.n_users_,
            "n_items": self.n_items_,
        }

    def set_state(self, state: dict[str, Any]) -> None:
        vec = state["vectors"]
        self.vectors_ = np.asarray(vec.numpy() if hasattr(vec, "numpy") else vec, np.float32)
        self.from_features_ = bool(int(state["from_features"]))
        self.n_users_, self.n_items_ = int(state["n_users"]), int(state["n_items"])
