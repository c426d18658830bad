"""Content-based scoring: a user's taste as the content vectors of what they interacted with.

The ``content`` model scores item ``j`` for a user as ``p W x_j``: ``x_j = [1, content]`` is
the item's content vector (``recloop.data.features``) with a constant, ``p`` the
recency-weighted mean of those vectors over the user's last ``history_len`` positive items
(the ``n``-th most recent weighs ``2 ** (-n / half_life)``), and ``W`` a bilinear map fitted
in closed form at ``fit`` (ridge ``l2`` on each side): ``W = (PᵀP + l2·I)⁻¹ PᵀRX (XᵀX +
l2·I)⁻¹``, with ``P`` the training users' profiles, ``R`` their binary user-item matrix and
``X`` the items' vectors. ``W`` learns which content goes with which (a user of dramas and
war films takes to a new war drama) and, through the constants, which content is popular.
``W`` also learns that fans of one genre watch the popular films of others, so a user whose
history is all documentaries would see a new documentary rank below blockbusters; the
score therefore adds ``similarity_weight`` times the plain similarity ``<p, x_j>``, each
part standardised over the user's row. The profile is read from the history at every
request, so an event moves the next answer with no parameter step, and an item with no
interactions scores like any other: by its content. Dimensions added after ``fit`` (a new
tag) count in the similarity at once and in ``W`` from the next fit.

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

from recloop.errors import ConfigError
from recloop.models.base import (
    FitOptions,
    RecModel,
    TrainData,
    check_positive,
    check_positive_ints,
)
from recloop.models.configs import ContentConfig, build_config
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
    out: np.ndarray = vec / np.maximum(norms, 1e-12)
    return out


def _standardise(rows: np.ndarray) -> np.ndarray:
    """Each row minus its mean, over its standard deviation (a constant row becomes 0)."""
    sd = rows.std(1, keepdims=True)
    out: np.ndarray = (rows - rows.mean(1, keepdims=True)) / np.where(sd > 0, sd, 1.0)
    return out.astype(np.float32)


def with_constant(vectors: np.ndarray) -> np.ndarray:
    """(n, 1 + d) float32: a column of ones, then ``vectors``."""
    vec = np.asarray(vectors, np.float32)
    return np.ascontiguousarray(np.hstack([np.ones((len(vec), 1), np.float32), vec]))


def fit_bilinear(
    vectors: np.ndarray, data: TrainData, half_life: float, history_len: int, l2: float
) -> np.ndarray:
    """(k, k) ``W`` minimising ``|R - P W Xᵀ|²`` with a ridge ``l2`` on each side (see the
    module docstring); only items with a positive interaction enter ``X``."""
    k = vectors.shape[1]
    pos = data.positives
    users, items = data.user_idx[pos], data.item_idx[pos]
    ok = items < len(vectors)
    users, items = users[ok], items[ok]
    if not len(items):
        return np.zeros((k, k), np.float32)
    prof = profiles(vectors, data.sequences, half_life, history_len).astype(np.float64)
    vec = vectors.astype(np.float64)
    rx = np.zeros((data.n_users, k))  # R X: per user, the sum of their items' vectors
    np.add.at(rx, users, vec[items])
    warm = np.unique(items)
    xtx = vec[warm].T @ vec[warm] + l2 * np.eye(k)
    ptp = prof.T @ prof + l2 * np.eye(k)
    w = np.linalg.solve(ptp, prof.T @ rx)
    return np.linalg.solve(xtx, w.T).T.astype(np.float32)  # w @ inv(xtx), xtx symmetric


@register
class Content(RecModel):
    """Scores items by the similarity of their content to the user's recent items.

    Its hyperparameters and their defaults are ``ContentConfig``'s (``models/configs.py``).
    """

    name = "content"
    uses_history = True
    learns_from_replay = False
    holds_out_validation = False  # nothing to stop early on

    def __init__(
        self, seed: int = 0, config: ContentConfig | None = None, **overrides: Any
    ) -> None:
        super().__init__(seed)
        self.config = c = build_config("content", ContentConfig, config, overrides)
        half_life, l2, similarity_weight = c.half_life, c.l2, c.similarity_weight
        history_len, fallback_dim = c.history_len, c.fallback_dim
        check_positive(half_life=half_life, l2=l2)
        if not similarity_weight >= 0:
            raise ConfigError(f"similarity_weight must be >= 0, got {similarity_weight!r}")
        self.similarity_weight = float(similarity_weight)
        check_positive_ints(history_len=history_len, fallback_dim=fallback_dim)
        self.half_life = float(half_life)
        self.history_len = history_len
        self.fallback_dim = fallback_dim
        self.l2 = float(l2)
        self.vectors_ = np.zeros((0, 0), np.float32)  # (n_items, 1 + d): a constant, then content
        self.w_ = np.zeros((0, 0), np.float32)  # (1 + d, 1 + d) the bilinear map
        self.from_features_ = False

    # --- features -------------------------------------------------------------
    def set_item_features(self, vectors: np.ndarray | None) -> None:
        """Use ``vectors`` ((n_items, d) float32, a zero row for an item without content) as
        the items' content; None keeps the current vectors."""
        if vectors is None:
            return
        self.vectors_ = with_constant(vectors)
        self.from_features_ = True
        self.n_items_ = max(self.n_items_, len(self.vectors_))

    # --- RecModel -------------------------------------------------------------
    def fit(self, data: TrainData, options: FitOptions) -> dict[str, Any]:
        self.n_users_, self.n_items_ = data.n_users, max(data.n_items, len(self.vectors_))
        if not self.from_features_:
            self.vectors_ = with_constant(interaction_factors(data, self.fallback_dim, self.seed))
        self.grow(data.n_users, data.n_items)
        self.w_ = fit_bilinear(self.vectors_, data, self.half_life, self.history_len, self.l2)
        return {"epochs_run": 0, "content": "features" if self.from_features_ else "interactions"}

    def score(self, user_idx: np.ndarray, histories: Sequence[np.ndarray]) -> np.ndarray:
        vec = self.vectors_
        out = np.zeros((len(user_idx), max(self.n_items_, len(vec))), np.float32)
        if vec.size and self.w_.size:
            prof = profiles(vec, histories, self.half_life, self.history_len)
            part = _standardise(self.user_map(prof) @ vec.T)
            if self.similarity_weight:
                part += self.similarity_weight * _standardise(prof[:, 1:] @ vec[:, 1:].T)
            out[:, : len(vec)] = part
        return out

    def user_map(self, prof: np.ndarray) -> np.ndarray:
        """(batch, 1 + d) ``p W``, padded with zeros for dimensions added after ``fit``."""
        d, k = prof.shape[1], len(self.w_)
        out = np.zeros((len(prof), d), np.float32)
        out[:, : min(d, k)] = (prof[:, :k] @ self.w_)[:, : min(d, k)]
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

    def get_state(self) -> dict[str, Any]:
        return {
            "vectors": self.vectors_,
            "w": self.w_,
            "from_features": int(self.from_features_),
            "n_users": self.n_users_,
            "n_items": self.n_items_,
        }

    def set_state(self, state: dict[str, Any]) -> None:
        vec = state["vectors"]
        self.vectors_ = np.asarray(vec.numpy() if hasattr(vec, "numpy") else vec, np.float32)
        w = state["w"]
        self.w_ = np.asarray(w.numpy() if hasattr(w, "numpy") else w, np.float32)
        self.from_features_ = bool(int(state["from_features"]))
        self.n_users_, self.n_items_ = int(state["n_users"]), int(state["n_items"])
