"""Approximate retrieval for large catalogues: a faiss index, then exact re-ranking.

Above ``faiss_threshold`` items, scoring every item per request (one ``(d,) @ (d, n)``
product and an argpartition over ``n``) costs tens of milliseconds at a million items.
For dot-product models (``score = <user_vector, item_vector> + item_bias``) the
``Retriever`` asks an inverted-file faiss index for a few hundred candidates, re-scores
them exactly with the live vectors, drops seen items, and keeps the top ``k``.

Maximum inner product search becomes nearest-neighbour search by the usual augmentation
(Bachrach et al. 2014): item ``x = [q, b]`` is stored as ``[x, sqrt(M² − |x|²)]`` and
the user as ``[u, 1, 0]``, so the L2 order is the score order, bias included.

Online learning moves item vectors after the index is built: candidates come from the
build-time vectors, scores from the live ones. Items added since the build are scored
exactly as extra candidates; when they pass ``rebuild_after`` the index is rebuilt in
the background and swapped in.

``Recommender.recommend`` decides who is personalised and asks the ``Retriever`` for
those users only; everyone else is scored exactly or gets popularity there.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from recloop.engine.userstate import known_history

if TYPE_CHECKING:
    from recloop.engine.recommender import Recommender

log = logging.getLogger(__name__)

UserVectors = Callable[..., Any]  # (user_idx, histories[, times=])


class RetrievalIndex:
    """An IVF-Flat faiss index over item vectors, for maximum inner product search.

    Parameters
    ----------
    vectors
        ``(n_items, d)`` item vectors.
    bias
        ``(n_items,)`` item biases added to the dot product, or ``None``.
    nlist
        Inverted lists (default ``sqrt(n_items)``, at least 1).
    nprobe
        Lists visited per query.
    seed
        Seeds k-means, so a build reproduces.
    threads
        OpenMP threads faiss may use.
    """

    def __init__(
        self,
        vectors: np.ndarray,
        bias: np.ndarray | None = None,
        *,
        nlist: int | None = None,
        nprobe: int = 48,
        seed: int = 0,
        threads: int = 1,
    ) -> None:
        import faiss

        faiss.omp_set_num_threads(max(1, threads))
        q = np.asarray(vectors, np.float32)
        n, d = q.shape
        x = np.empty((n, d + 2), np.float32)
        x[:, :d] = q
        x[:, d] = 0.0 if bias is None else np.asarray(bias, np.float32)
        norms = np.einsum("ij,ij->i", x[:, : d + 1], x[:, : d + 1])
        top = float(norms.max()) if n else 0.0
        x[:, d + 1] = np.sqrt(np.maximum(top - norms, 0.0))
        self.n_items = n
        self.dim = d
        self.nlist = max(
            1, min(nlist or min(int(math.sqrt(n)), n // 39), n)
        )  # faiss wants >= 39 points a list
        self.nprobe = max(1, min(nprobe, self.nlist))
        quantizer = faiss.IndexFlatL2(d + 2)
        index = faiss.IndexIVFFlat(quantizer, d + 2, self.nlist, faiss.METRIC_L2)
        index.cp.seed = seed
        index.cp.niter = 20
        rng = np.random.default_rng(seed)
        sample = x if n <= 64 * self.nlist else x[rng.choice(n, 64 * self.nlist, replace=False)]
        index.train(sample)
        index.add(x)
        index.nprobe = self.nprobe
        self._index = index
        self._quantizer = quantizer  # faiss does not own it from Python: keep it alive

    def search(self, user_vector: np.ndarray, n: int) -> np.ndarray:
        """Indices of about the ``n`` best items for ``user_vector`` (unordered, no -1s)."""
        query = np.zeros((1, self.dim + 2), np.float32)
        query[0, : self.dim] = user_vector
        query[0, self.dim] = 1.0
        _, idx = self._index.search(query, min(n, self.n_items))
        row: np.ndarray = idx[0]
        return row[row >= 0]


#: methods that give a dot-product model's request-time user vectors, (batch, d) from
#: ``(user_idx, histories)``; the first one the model has is used
USER_VECTOR_METHODS = ("user_states", "user_vectors")


def _model_parts(model: Any) -> tuple[UserVectors, np.ndarray, np.ndarray | None] | None:
    """``(user_vectors, item_vectors, item_bias)`` when the model looks like a dot-product model.

    Duck-typed: ``Retriever`` checks on real users that the scores agree before trusting
    them.
    """
    user_vectors = next(
        (f for f in (getattr(model, m, None) for m in USER_VECTOR_METHODS) if callable(f)), None
    )
    if user_vectors is None:
        return None
    items = model.item_vectors()
    if items is None:
        return None
    bias = _item_bias(model)
    if bias is not None:
        bias = _numpy(bias).reshape(-1)
        if len(bias) != len(items):
            return None
    return user_vectors, np.asarray(items), bias


def _item_bias(model: Any) -> Any:
    """The model's item biases: an ``item_bias()`` method, else the bias table of the
    factor models' serving tables (``factors_``, as ``mf`` and ``lightgcn`` keep them) or
    network (``net``); ``None`` when there is none (a wrong guess fails the consistency
    check, and the index is not used)."""
    method = getattr(model, "item_bias", None)
    if callable(method):
        return method()
    for holder in ("factors_", "net"):
        bias = getattr(getattr(model, holder, None), "bias", None)
        if bias is not None:
            return bias
    return None


def _numpy(x: Any) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x, np.float32)


Status = Literal["exact", "building", "faiss"]


class Retriever:
    """faiss candidates + exact re-ranking for a ``Recommender``'s dot-product model.

    The ``Recommender`` owns it (``Recommender.use_retrieval``) and reads its state for it.

    Parameters
    ----------
    rec
        The fitted recommender served.
    threshold
        Use the index only when the catalogue has more items than this.
    nprobe
        Inverted lists visited per query.
    threads
        faiss threads for building.
    rebuild_after
        Items added since the build that trigger a background rebuild (default: 1% of
        the indexed items, at least 1,000).
    """

    def __init__(
        self,
        rec: Recommender,
        threshold: int,
        nprobe: int = 48,
        threads: int = 1,
        rebuild_after: int | None = None,
    ) -> None:
        self.rec = rec
        self.threshold = threshold
        self.nprobe = nprobe
        self.threads = threads
        self.rebuild_after = rebuild_after
        self.index: RetrievalIndex | None = None
        self.build_seconds = 0.0
        self._building: threading.Thread | None = None
        self._guard = threading.Lock()
        self.disabled_reason = ""

    # ------------------------------------------------------------------ building
    @property
    def status(self) -> Status:
        if self.index is not None:
            return "faiss"
        if self._building is not None and self._building.is_alive():
            return "building"
        return "exact"

    def wanted(self) -> bool:
        """Whether the catalogue is large enough and the model is a dot-product model."""
        return self.rec.is_fitted and self.rec.n_items > self.threshold and not self.disabled_reason

    def start(self, background: bool = True) -> None:
        """Build (or rebuild) the index if it is wanted and missing or stale; in a daemon
        thread when ``background``."""
        if not self.wanted() or not self._stale():
            return
        with self._guard:
            if self._building is not None and self._building.is_alive():
                return
            if background:
                self._building = threading.Thread(
                    target=self._build_logged, name="recloop-faiss", daemon=True
                )
                self._building.start()
                return
        self.build()

    def _build_logged(self) -> None:
        try:
            self.build()
        except Exception:  # keep serving exactly; the failure is in the log
            log.exception("building the retrieval index failed; /recommend stays exact")

    def build(self) -> None:
        """Build the index now from the model's current item vectors and swap it in."""
        t0 = time.perf_counter()
        rec = self.rec
        users, hist, times = _sample_states(rec, 4)
        with rec._model_lock:
            parts = _model_parts(rec.model_)
            if parts is None:
                self.disabled_reason = (
                    "the model is not a dot-product model (no user vectors or item vectors)"
                )
                log.info("retrieval index not built: %s", self.disabled_reason)
                return
            _, items, bias = parts
            if not self._consistent(parts, users, hist, times):
                self.disabled_reason = "the model's scores are not user·item + bias"
                log.warning("retrieval index not built: %s", self.disabled_reason)
                return
            items = items.copy()
            bias = None if bias is None else bias.copy()
        index = RetrievalIndex(items, bias, nprobe=self.nprobe, seed=rec.seed, threads=self.threads)
        self.index = index
        self.build_seconds = time.perf_counter() - t0
        log.info(
            "retrieval index: %d items, %d lists, built in %.1f s",
            index.n_items,
            index.nlist,
            self.build_seconds,
        )

    def _consistent(
        self,
        parts: tuple[UserVectors, np.ndarray, np.ndarray | None],
        users: np.ndarray,
        hist: list[np.ndarray],
        times: list[np.ndarray] | None = None,
    ) -> bool:
        """Whether ``score`` equals ``user_vectors @ items.T + bias`` for these users and histories."""
        user_vectors, items, bias = parts
        if not len(users):
            return False
        hist, extra = known_history(hist, times, len(items))
        exact = np.asarray(self.rec.model_.score(users, hist, **extra))[:, : len(items)]
        approx = _numpy(user_vectors(users, hist, **extra)) @ items.T + (
            0.0 if bias is None else bias
        )
        return bool(np.allclose(exact, approx, rtol=1e-3, atol=1e-3))

    def info(self) -> dict[str, Any]:
        """``status``, ``items`` (0 without an index), ``nlist``, ``nprobe``,
        ``build_seconds`` and ``disabled_reason``."""
        index = self.index
        return {
            "status": self.status,
            "items": index.n_items if index is not None else 0,
            "nlist": index.nlist if index is not None else None,
            "nprobe": index.nprobe if index is not None else None,
            "build_seconds": self.build_seconds,
            "disabled_reason": self.disabled_reason,
        }

    # ------------------------------------------------------------------ serving
    def recommend_rows(
        self,
        uidxs: list[int],
        hist: list[np.ndarray],
        seen: list[np.ndarray],
        times: list[np.ndarray] | None,
        n_items: int,
        k: int,
        exclude_seen: bool,
    ) -> list[tuple[list[int], np.ndarray]]:
        """Top-``k`` ``(item indices, scores)`` per user: the users the model personalises
        from the index, the others (and any the index cannot fill) through the engine's
        exact scoring, which gives users it cannot personalise recent popularity."""
        rec = self.rec
        arr = np.asarray(uidxs, np.int64)
        with rec._model_lock:
            warm = rec._personalised(arr, known_history(hist, None, rec.model_.n_items_)[0])
        out: list[tuple[list[int], np.ndarray] | None] = [None] * len(uidxs)
        for r in np.flatnonzero(warm).tolist():
            ex = seen[r] if exclude_seen else seen[r][:0]
            found = self.top(uidxs[r], hist[r], None if times is None else times[r], ex, k)
            if found is not None:
                out[r] = (found[0].tolist(), found[1])
        rest = [r for r, row in enumerate(out) if row is None]
        if rest:
            scores = rec._scores(
                [uidxs[r] for r in rest],
                [hist[r] for r in rest],
                n_items,
                None if times is None else [times[r] for r in rest],
                warm[rest],
            )
            tops = rec._top_rows(scores, [seen[r] for r in rest], k, exclude_seen)
            for n, r in enumerate(rest):
                out[r] = (tops[n], scores[n, tops[n]])
        return [row if row is not None else ([], np.zeros(0, np.float32)) for row in out]

    def top(
        self,
        uidx: int,
        hist: np.ndarray,
        times: np.ndarray | None,
        seen: np.ndarray,
        k: int,
    ) -> tuple[np.ndarray, np.ndarray] | None:
        """Top-``k`` ``(item indices, scores)`` of a personalised user via the index, best
        first, without the items in ``seen``; ``None`` when no index is ready or filtering
        leaves fewer than ``k`` (the caller then scores every item)."""
        index = self.index
        if index is None:
            return None
        rec = self.rec
        with rec._model_lock:
            parts = _model_parts(rec.model_)
            if parts is None:
                return None
            user_vectors, items, bias = parts
            n_model = len(items)
            (hist,), extra = known_history([hist], None if times is None else [times], n_model)
            u = _numpy(user_vectors(np.asarray([uidx], np.int64), [hist], **extra))[0]
            cand = index.search(u, k + len(seen) + max(k, 32))
            fresh = n_model - index.n_items
            if fresh > 0:
                cand = np.concatenate([cand, np.arange(index.n_items, n_model, dtype=cand.dtype)])
            scores = items[cand] @ u
            if bias is not None:
                scores += bias[cand]
        self._maybe_rebuild(fresh)
        if len(seen):
            keep = ~np.isin(cand, seen)
            cand, scores = cand[keep], scores[keep]
        if len(cand) < k and len(cand) < n_model - len(seen):
            return None
        order = np.argsort(-scores, kind="stable")[:k]
        return cand[order].astype(np.int64), scores[order].astype(np.float32)

    def _limit(self, index: RetrievalIndex) -> int:
        return (
            self.rebuild_after
            if self.rebuild_after is not None
            else max(1000, index.n_items // 100)
        )

    def _stale(self) -> bool:
        """No index yet, or enough items were added since it was built."""
        index = self.index
        if index is None:
            return True
        vectors = self.rec.model_.item_vectors()
        return vectors is not None and len(vectors) - index.n_items >= self._limit(index)

    def _maybe_rebuild(self, fresh: int) -> None:
        index = self.index
        if index is not None and fresh >= self._limit(index):
            self.start(background=True)


def _sample_states(
    rec: Recommender, n: int
) -> tuple[np.ndarray, list[np.ndarray], list[np.ndarray] | None]:
    """Up to ``n`` user rows spread over the table with their histories (and timestamps when
    the model reads them): what the consistency check scores."""
    with rec._lock:
        rows = len(rec.users_)
        users = np.unique(np.linspace(0, rows - 1, num=min(n, rows)).astype(np.int64))
        hist, _, _, times = rec._gather(users.tolist())
    return users, hist, times
