"""Hybrid: the sequence model blended with two collaborative ones.

``score = (1 - mf_weight) * sasrec + mf_weight * mf + ease_weight * ease``. SASRec reads the
user's recent items in order; ``mf`` (BPR with a ridge fold-in of the whole history for
users the fit never saw) reads the set of everything they had through a low-rank table;
``ease`` (a closed-form item-to-item regression) reads the same set item by item, its last
10 items weighing 2.5 times the rest. They err differently, so the blend ranks better than
any one of them on the MovieLens-100K streaming replay (``bench/stream.py``; the weights
are in ``HybridConfig``, the figures in ``docs/benchmarks.md``).

Adding raw scores is adding log-softmax scores up to a per-user constant, so the blend
ranks as a blend of the models' probabilities would. Without the EASE part it is a dot
product (``DotProduct``: ``user_states`` and ``item_vectors`` concatenate the low-rank
parts'), which the serving layer's retrieval index uses; with it, ``item_vectors`` is None
and requests are scored in full, as they are on a catalogue of MovieLens' size anyway.

The parts fit the same data, so the blend keeps ``Recommender.fit``'s usual hold-out of
each user's latest item (``mf`` stops early on it) although ``sasrec`` alone trains on it:
the replay ranks better with the hold-out. ``ease`` counts the held-out items too (a
closed form has nothing to stop on).

Online, the parts take no parameter steps by default (``HYBRID_PART_DEFAULTS``): the blend
adapts through state (SASRec reads the new events, ``mf`` folds in the history, ``ease``
sums its rows over it). ``Recommender(model="hybrid")`` wraps it in ``WithOnlineBias``
(``online_bias_lr``, 0.03 by default), an item offset learned from every new positive
event, so the ranking follows what people choose now rather than what the fitted log made
popular.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any, cast

import numpy as np

from recloop.errors import NotFittedError
from recloop.models.base import DotProduct, FitOptions, OnlineBatch, RecModel, TrainData
from recloop.models.configs import HYBRID_PART_DEFAULTS, HybridConfig, build_config
from recloop.models.registry import create, register

#: the parts, in blending order: the sequence model, then the collaborative ones
PARTS = ("sasrec", "mf", "ease")


def _numpy(x: Any) -> np.ndarray:
    out: np.ndarray = x.detach().numpy() if hasattr(x, "detach") else np.asarray(x)
    return out


@register
class Hybrid(RecModel):
    """``sasrec``, ``mf`` and ``ease`` fitted on the same data, scores blended.

    Takes a ``HybridConfig`` and/or its fields as keywords.

    Parameters
    ----------
    mf_weight
        Share of ``mf`` against ``sasrec``, in [0, 1] (0: ``sasrec`` alone, 1: ``mf`` alone).
    ease_weight
        Weight of ``ease``'s scores added on top, >= 0 (0 leaves it out: the blend is then a
        dot product, ``item_vectors`` gives the retrieval index its vectors).
    sasrec, mf, ease
        Hyperparameters of each part: their own defaults where left out, except those in
        ``HYBRID_PART_DEFAULTS``: no online parameter steps (``online_lr`` 0,
        ``refresh_every`` 0) and EASE's weight on the user's last 10 items
        (``recent_weight`` 1.5).
    """

    name = "hybrid"
    uses_history = True
    uses_times = True  # passed on to the parts that read them (sasrec)

    def __init__(self, seed: int = 0, config: HybridConfig | None = None, **overrides: Any) -> None:
        super().__init__(seed)
        self.config = c = build_config("hybrid", HybridConfig, config, overrides)
        self.part_hyperparameters = {
            name: {**HYBRID_PART_DEFAULTS[name], **dict(getattr(c, name))} for name in PARTS
        }
        # built here so a bad part hyperparameter fails now, not after a long fit
        self.parts = {
            name: create(name, seed=seed, **self.part_hyperparameters[name]) for name in PARTS
        }
        self.fitted_ = False

    @property
    def mf_weight(self) -> float:
        return self.config.mf_weight

    @property
    def ease_weight(self) -> float:
        return self.config.ease_weight

    @property
    def weights(self) -> dict[str, float]:
        return {"sasrec": 1.0 - self.mf_weight, "mf": self.mf_weight, "ease": self.ease_weight}

    @property
    def low_rank(self) -> dict[str, float]:
        """The weights of the parts that are dot products (all but ``ease``)."""
        return {name: w for name, w in self.weights.items() if name != "ease"}

    # ------------------------------------------------------------------ fit
    def fit(self, data: TrainData, options: FitOptions) -> dict[str, Any]:
        report = {name: part.fit(data, options) for name, part in self.parts.items()}
        self.n_users_, self.n_items_ = data.n_users, data.n_items
        self.fitted_ = True
        return report

    # ------------------------------------------------------------------ scoring
    def _check(self) -> None:
        if not self.fitted_:
            raise NotFittedError("hybrid is not fitted")

    def _times(self, name: str, times: Sequence[np.ndarray] | None) -> dict[str, Any]:
        return {"times": times} if times is not None and self.parts[name].uses_times else {}

    def score(
        self,
        user_idx: np.ndarray,
        histories: Sequence[np.ndarray],
        times: Sequence[np.ndarray] | None = None,
    ) -> np.ndarray:
        """The parts' weighted scores."""
        self._check()
        out: np.ndarray | None = None
        for name, w in self.weights.items():
            if w == 0.0:
                continue
            s = self.parts[name].score(user_idx, histories, **self._times(name, times))
            out = w * s if out is None else out + w * s
        assert out is not None  # sasrec's and mf's weights sum to 1
        return out.astype(np.float32, copy=False)

    def _dot_parts(self) -> dict[str, DotProduct]:
        return {name: cast(DotProduct, self.parts[name]) for name in self.low_rank}

    def user_states(
        self,
        user_idx: np.ndarray,
        histories: Sequence[np.ndarray],
        times: Sequence[np.ndarray] | None = None,
    ) -> np.ndarray:
        """(batch, d_sasrec + d_mf): each part's request-time user vector times its weight,
        so ``score == user_states @ item_vectors().T + item_bias()``."""
        self._check()
        parts = self._dot_parts()
        return np.concatenate(
            [
                w * _numpy(parts[name].user_states(user_idx, histories, **self._times(name, times)))
                for name, w in self.low_rank.items()
            ],
            axis=1,
        )

    def item_vectors(self) -> np.ndarray | None:
        if not self.fitted_ or self.ease_weight > 0:  # EASE's item-item sums are no dot product
            return None
        parts = [self.parts[name].item_vectors() for name in self.low_rank]
        if any(p is None for p in parts):
            return None
        return np.concatenate([np.asarray(p) for p in parts], axis=1)

    def item_bias(self) -> np.ndarray | None:
        if not self.fitted_:
            return None
        parts = self._dot_parts()
        biases = [(w, parts[name].item_bias()) for name, w in self.low_rank.items()]
        kept = [w * np.asarray(b, np.float64) for w, b in biases if b is not None]
        if not kept:
            return None
        out: np.ndarray = np.sum(kept, axis=0).astype(np.float32)
        return out

    # ------------------------------------------------------------------ online
    @property
    def updates_online(self) -> bool:
        """Whether any part takes online parameter steps (none by default)."""
        return any(part.updates_online for part in self.parts.values())

    @property
    def learns_from_replay(self) -> bool:  # type: ignore[override]
        """Only when a part steps."""
        return self.updates_online

    def grow(self, n_users: int, n_items: int) -> None:
        super().grow(n_users, n_items)
        for part in self.parts.values():
            part.grow(n_users, n_items)

    def forget_users(self, user_idx: np.ndarray) -> None:
        for part in self.parts.values():
            part.forget_users(user_idx)

    def learn(self, batch: OnlineBatch) -> float:
        """Each part takes its own online step on ``batch`` (none with its ``online_lr`` 0,
        the default here); returns their mean loss."""
        return float(np.mean([part.learn(batch) for part in self.parts.values()]))

    # ------------------------------------------------------------------ persistence
    def hyperparameters(self) -> dict[str, Any]:
        return {
            "mf_weight": self.mf_weight,
            "ease_weight": self.ease_weight,
            **{name: self.parts[name].hyperparameters() for name in PARTS},
        }

    def get_state(self) -> dict[str, Any]:
        self._check()
        return {
            "parts": {name: part.get_state() for name, part in self.parts.items()},
            "n_users": self.n_users_,
            "n_items": self.n_items_,
        }

    def set_state(self, state: dict[str, Any]) -> None:
        for name, part in self.parts.items():
            if name in state["parts"]:
                part.set_state(state["parts"][name])
        if "ease" not in state["parts"]:  # a snapshot without an EASE part blends the other two
            self.config = dataclasses.replace(self.config, ease_weight=0.0)
        self.n_users_, self.n_items_ = int(state["n_users"]), int(state["n_items"])
        self.fitted_ = True
