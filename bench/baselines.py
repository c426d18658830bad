"""Outside baselines with the Recommender surface (fit / recommend / update), for bench/ only.

- ``ISGD``: incremental SGD matrix factorisation for positive-only feedback
  (Vinagre, Jorge & Gama 2014), written from the paper.
- ``RiverBiasedMF``: River's ``reco.BiasedMF`` (PyPI ``river``), learning each event as
  y=1 and one uniformly sampled item as y=0 (it is a rating model; without negatives it
  predicts a constant).
- ``Cooccurrence``: online item-to-item co-occurrence over the user's recent items, the
  strongest outside system on the streaming replay.
- ``ImplicitALS``: implicit's ALS (PyPI ``implicit``), batch only, for the offline table.
"""

from __future__ import annotations

from collections import defaultdict, deque
from typing import Any

import numpy as np
import pandas as pd


class _Base:
    def __init__(self, seed: int = 0) -> None:
        self.rng = np.random.default_rng(seed)
        self.seen: dict[str, set[str]] = defaultdict(set)
        self.items: list[str] = []
        self.item_index: dict[str, int] = {}
        self.counts = np.zeros(0)

    def _item(self, iid: str) -> int:
        j = self.item_index.get(iid)
        if j is None:
            j = self.item_index[iid] = len(self.items)
            self.items.append(iid)
            self.counts = np.append(self.counts, 0.0)
        return j

    def _top(self, uid: str, scores: np.ndarray, k: int) -> list[str]:
        scores = scores.astype(np.float64, copy=True)
        for iid in self.seen.get(uid, ()):
            scores[self.item_index[iid]] = -np.inf
        k = min(k, int(np.isfinite(scores).sum()))
        top = np.argpartition(-scores, k - 1)[:k] if k < len(scores) else np.arange(len(scores))
        return [self.items[j] for j in top[np.argsort(-scores[top], kind="stable")]]

    def fit(self, df: pd.DataFrame) -> Any:
        for u, i in zip(df["user_id"].astype(str), df["item_id"].astype(str)):
            self._learn(u, i)
        return self

    def update(self, event: dict[str, Any]) -> None:
        self._learn(str(event["user_id"]), str(event["item_id"]))

    def _learn(self, u: str, i: str) -> None:
        raise NotImplementedError


class ISGD(_Base):
    """score(u, i) = p_u . q_i; each positive event takes one SGD step towards 1."""

    def __init__(self, dim: int = 32, lr: float = 0.05, reg: float = 0.01, seed: int = 0) -> None:
        super().__init__(seed)
        self.dim, self.lr, self.reg = dim, lr, reg
        self.P: dict[str, np.ndarray] = {}
        self.Q = np.zeros((0, dim))

    def _learn(self, u: str, i: str) -> None:
        j = self._item(i)
        if j >= len(self.Q):
            self.Q = np.vstack([self.Q, self.rng.normal(0, 0.1, (j + 1 - len(self.Q), self.dim))])
        p = self.P.get(u)
        if p is None:
            p = self.P[u] = self.rng.normal(0, 0.1, self.dim)
        q = self.Q[j]
        err = 1.0 - p @ q
        p_new = p + self.lr * (err * q - self.reg * p)
        self.Q[j] = q + self.lr * (err * p - self.reg * q)
        self.P[u] = p_new
        self.seen[u].add(i)
        self.counts[j] += 1

    def recommend(self, uid: object, k: int = 10) -> list[str]:
        u = str(uid)
        p = self.P.get(u)
        scores = self.Q @ p if p is not None else np.log1p(self.counts)
        return self._top(u, scores, k)


class RiverBiasedMF(_Base):
    def __init__(self, n_factors: int = 10, seed: int = 0) -> None:
        super().__init__(seed)
        from river import optim, reco

        self.model = reco.BiasedMF(
            n_factors=n_factors,
            bias_optimizer=optim.SGD(0.025),
            latent_optimizer=optim.SGD(0.05),
            l2_latent=0.001,
            seed=seed,
        )

    def _learn(self, u: str, i: str) -> None:
        self._item(i)
        self.model.learn_one(u, i, 1.0)
        neg = self.items[int(self.rng.integers(0, len(self.items)))]
        if neg != i:
            self.model.learn_one(u, neg, 0.0)
        self.seen[u].add(i)
        self.counts[self.item_index[i]] += 1

    def recommend(self, uid: object, k: int = 10) -> list[str]:
        u = str(uid)
        scores = np.fromiter(
            (self.model.predict_one(u, it) for it in self.items), np.float64, len(self.items)
        )
        return self._top(u, scores, k)


class Cooccurrence(_Base):
    """score(i) = sum over the user's last ``window`` items j of count(j -> i) / sqrt(count(i))."""

    def __init__(self, window: int = 20, seed: int = 0) -> None:
        super().__init__(seed)
        self.window = window
        self.recent: dict[str, deque[int]] = defaultdict(lambda: deque(maxlen=self.window))
        self.co: dict[int, dict[int, float]] = defaultdict(lambda: defaultdict(float))

    def _learn(self, u: str, i: str) -> None:
        j = self._item(i)
        for h in self.recent[u]:
            self.co[h][j] += 1.0
            self.co[j][h] += 1.0
        self.recent[u].append(j)
        self.seen[u].add(i)
        self.counts[j] += 1

    def recommend(self, uid: object, k: int = 10) -> list[str]:
        u = str(uid)
        scores = np.log1p(self.counts) * 1e-3
        norm = np.sqrt(self.counts + 1.0)
        for h in self.recent.get(u, ()):
            row = self.co.get(h)
            if row:
                idx = np.fromiter(row.keys(), np.int64, len(row))
                scores[idx] += np.fromiter(row.values(), np.float64, len(row)) / norm[idx]
        return self._top(u, scores, k)


class ImplicitALS(_Base):
    """implicit's ALS with bm25-free raw counts; batch fit only (no update)."""

    def __init__(
        self,
        factors: int = 64,
        regularization: float = 0.05,
        iterations: int = 15,
        alpha: float = 1.0,
        seed: int = 0,
    ) -> None:
        super().__init__(seed)
        self.params = dict(
            factors=factors,
            regularization=regularization,
            iterations=iterations,
            alpha=alpha,
            random_state=seed,
        )

    def fit(self, df: pd.DataFrame) -> Any:
        import scipy.sparse as sp
        from implicit.als import AlternatingLeastSquares
        from threadpoolctl import threadpool_limits

        users = {u: n for n, u in enumerate(df["user_id"].astype(str).unique())}
        self.user_index = users
        rows = df["user_id"].astype(str).map(users).to_numpy()
        cols = np.array([self._item(i) for i in df["item_id"].astype(str)])
        for u, i in zip(df["user_id"].astype(str), df["item_id"].astype(str)):
            self.seen[u].add(i)
        np.add.at(self.counts, cols, 1.0)
        m = sp.csr_matrix(
            (np.ones(len(rows), np.float32), (rows, cols)), shape=(len(users), len(self.items))
        )
        m.sum_duplicates()
        m.data[:] = 1.0
        self.model = AlternatingLeastSquares(**self.params)
        with threadpool_limits(1):
            self.model.fit(m, show_progress=False)
        return self

    def score(self, uid: object, item_ids: list[object]) -> np.ndarray:
        ids, s = self.score_all(uid)
        pos = self.item_index
        return np.array([s[pos[str(i)]] if str(i) in pos else -1e9 for i in item_ids])

    def score_all(self, uid: object) -> tuple[list[str], np.ndarray]:
        u = self.user_index.get(str(uid))
        if u is None:
            return self.items, np.log1p(self.counts)
        return self.items, np.asarray(self.model.item_factors @ self.model.user_factors[u])

    def recommend(self, uid: object, k: int = 10) -> list[str]:
        return self._top(str(uid), self.score_all(uid)[1], k)
