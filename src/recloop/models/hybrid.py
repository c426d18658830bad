"""Hybrid: the sequence model blended with two collaborative ones.

``score = (1 - mf_weight) * sasrec + mf_weight * mf + ease_weight * ease``. SASRec reads the
user's recent items in order; ``mf`` (BPR with a ridge fold-in of the whole history for
users the fit never saw) reads the set of everything they had through a low-rank table;
``ease`` (a closed-form item-to-item regression) reads the same set item by item, its last
10 items weighing 2.5 times the rest. They err differently, so the blend ranks better than
any one of them: on the MovieLens-100K streaming replay (``bench/stream.py``) ``mf_weight``
0.3 was chosen in session 3 on the first 10,000 replayed events and held on the last
10,000; the EASE part (session 7) added about 0.003 HR@10 on both halves and for two fitted
seeds, ``mf_weight`` moving to 0.35 with it (scratch replays in ``docs/benchmarks.md``).

Adding raw scores is adding log-softmax scores up to a per-user constant, so the blend
ranks as a blend of the models' probabilities would. Without the EASE part it is a dot
product (``user_states`` and ``item_vectors`` concatenate the low-rank parts'), which the
serving layer's retrieval index uses; with it, ``item_vectors`` is None and requests are
scored in full, as they are on a catalogue of MovieLens' size anyway.

The parts fit the same data, so the blend keeps ``Recommender.fit``'s usual hold-out of
each user's latest item (``mf`` stops early on it) although ``sasrec`` alone trains on it:
without the hold-out the replay gave 0.2351 against 0.2389 with it. ``ease`` counts the
held-out items too (a closed form has nothing to stop on).

Online, an item offset (``OnlineBias``) is added to the blend and learned from every new
positive event against the blend's own prediction for that user, so the ranking follows
what people choose now rather than what the fitted log made popular: on the replay HR@10
went from 0.2390 to 0.2420 with it (0.2407 to 0.2440 with the part's 4 orders). A user's
first event, for whom the blend has no history to read, teaches it against the offset's
own prediction: newcomers' first choices are what is popular with newcomers now (+0.0018
on the replay).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from recloop.errors import ConfigError, NotFittedError
from recloop.models.base import FitOptions, OnlineBatch, Prefixes, RecModel, TrainData
from recloop.models.online_bias import OnlineBias
from recloop.models.registry import create, register

#: the parts, in blending order: the sequence model, then the collaborative ones
PARTS = ("sasrec", "mf", "ease")
#: scores held at once by the online offset's step (rows x items): 32 MB; the step costs
#: O(items) per event, so on a large catalogue it takes many smaller steps
STEP_FLOATS = 8_000_000
#: defaults of the parts that differ from their own: no online parameter steps. The blend
#: adapts through state (SASRec reads the new events, ``mf`` folds in the user's history,
#: ``ease`` sums its rows over it) and through its online item offset; on the replay the
#: parts' steps were neutral (HR@10 0.2359 with ``mf``'s, 0.2367 with none) and the online
#: learner holding the model for them cut recommend + update from 1,860 to 1,110 events/s
#: (740 with SASRec's as well). Either part's ``online_lr`` (``ease``'s ``refresh_every``)
#: turns them on. SASRec's part keeps its own 8 orders of same-second events, each read with
#: windows of 10, 5 and 2 items (4 orders until session 8, for speed: 0.2502–0.2505 HR@10 on
#: the replay against 0.2507–0.2511 with 8, once the compiled state made them cheap).
#: EASE's last 10 items weigh 1 + 1.5 times the rest (``recent_weight``).
PART_DEFAULTS: dict[str, dict[str, Any]] = {
    "sasrec": {"online_lr": 0.0},
    "mf": {"online_lr": 0.0},
    "ease": {"refresh_every": 0, "recent_weight": 1.5},
}


def _numpy(x: Any) -> np.ndarray:
    out: np.ndarray = x.detach().numpy() if hasattr(x, "detach") else np.asarray(x)
    return out


@register
class Hybrid(RecModel):
    """``sasrec``, ``mf`` and ``ease`` fitted on the same data, scores blended.

    Parameters
    ----------
    mf_weight
        Share of ``mf`` against ``sasrec``, in [0, 1] (0: ``sasrec`` alone, 1: ``mf`` alone).
    ease_weight
        Weight of ``ease``'s scores added on top, >= 0 (0 leaves it out: the blend is then a
        dot product, ``item_vectors`` gives the retrieval index its vectors).
    sasrec, mf, ease
        Hyperparameters of each part: their own defaults where left out, except those in
        ``PART_DEFAULTS``: no online parameter steps (``online_lr`` 0, ``refresh_every``
        0) and EASE's weight on the user's last 10 items (``recent_weight`` 1.5).
    online_bias_lr
        Learning rate of the blend's online item offset (``OnlineBias``): every new positive
        event steps it towards the item chosen, against the blend's own prediction for that
        user. 0 turns it off. On the MovieLens-100K replay 0.02–0.05 gave the same gain
        (scratch replays in ``docs/benchmarks.md``).
    """

    name = "hybrid"
    uses_history = True
    uses_times = True  # passed on to the parts that read them (sasrec)

    def __init__(
        self,
        seed: int = 0,
        mf_weight: float = 0.35,
        ease_weight: float = 0.75,
        sasrec: dict[str, Any] | None = None,
        mf: dict[str, Any] | None = None,
        ease: dict[str, Any] | None = None,
        online_bias_lr: float = 0.03,
    ) -> None:
        super().__init__(seed)
        if (
            isinstance(mf_weight, bool)
            or not isinstance(mf_weight, (int, float))
            or not (math.isfinite(mf_weight) and 0.0 <= mf_weight <= 1.0)
        ):
            raise ConfigError(f"mf_weight must be a number in [0, 1], got {mf_weight!r}")
        if (
            isinstance(ease_weight, bool)
            or not isinstance(ease_weight, (int, float))
            or not (math.isfinite(ease_weight) and ease_weight >= 0.0)
        ):
            raise ConfigError(f"ease_weight must be a number >= 0, got {ease_weight!r}")
        for key, value in (("sasrec", sasrec), ("mf", mf), ("ease", ease)):
            if value is not None and not isinstance(value, dict):
                raise ConfigError(
                    f"{key} must be a dict of that model's hyperparameters, got {type(value).__name__}"
                )
        self.mf_weight, self.ease_weight = float(mf_weight), float(ease_weight)
        given = {"sasrec": sasrec, "mf": mf, "ease": ease}
        self.part_hyperparameters = {
            name: {**PART_DEFAULTS[name], **(given[name] or {})} for name in PARTS
        }
        # built here so a bad part hyperparameter fails now, not after a long fit
        self.parts = {
            name: create(name, seed=seed, **self.part_hyperparameters[name]) for name in PARTS
        }
        self.online_bias = OnlineBias(online_bias_lr)
        #: whether no part takes online parameter steps (then served scores stay valid)
        self._frozen = all(
            getattr(p, "online_lr", 0) == 0 and getattr(p, "refresh_every", 0) == 0
            for p in self.parts.values()
        )
        self.fitted_ = False

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
        self.online_bias = OnlineBias(self.online_bias.lr, data.n_items)
        self.fitted_ = True
        return report

    # ------------------------------------------------------------------ scoring
    def _check(self) -> None:
        if not self.fitted_:
            raise NotFittedError("hybrid is not fitted")

    def _times(self, name: str, times: Sequence[np.ndarray] | None) -> dict[str, Any]:
        return {"times": times} if times is not None and self.parts[name].uses_times else {}

    def _blend(
        self,
        user_idx: np.ndarray,
        histories: Sequence[np.ndarray],
        times: Sequence[np.ndarray] | None = None,
    ) -> np.ndarray:
        """The parts' weighted scores, without the online offset."""
        out: np.ndarray | None = None
        for name, w in self.weights.items():
            if w == 0.0:
                continue
            s = self.parts[name].score(user_idx, histories, **self._times(name, times))
            out = w * s if out is None else out + w * s
        assert out is not None  # sasrec's and mf's weights sum to 1
        return out.astype(np.float32, copy=False)

    def score(
        self,
        user_idx: np.ndarray,
        histories: Sequence[np.ndarray],
        times: Sequence[np.ndarray] | None = None,
    ) -> np.ndarray:
        self._check()
        out = self._blend(user_idx, histories, times)
        if self._frozen:  # the parts do not step: what is served now is what the step would compute
            self.online_bias.remember(user_idx, [len(h) for h in histories], out)
        return self.online_bias.add_to(out)

    def user_states(
        self,
        user_idx: np.ndarray,
        histories: Sequence[np.ndarray],
        times: Sequence[np.ndarray] | None = None,
    ) -> np.ndarray:
        """(batch, d_sasrec + d_mf): each part's request-time user vector times its weight,
        so ``score == user_states @ item_vectors().T + item_bias()``."""
        self._check()
        parts: dict[str, Any] = self.parts  # both parts have user_states (not on RecModel)
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
        parts: dict[str, Any] = self.parts  # both parts have item_bias (not on RecModel)
        biases = [(w, parts[name].item_bias()) for name, w in self.low_rank.items()]
        kept = [w * np.asarray(b, np.float64) for w, b in biases if b is not None]
        if not kept:
            return None
        out: np.ndarray = np.sum(kept, axis=0).astype(np.float32)
        return self.online_bias.add_to(out[None])[0]

    # ------------------------------------------------------------------ online
    @property
    def learns_from_replay(self) -> bool:  # type: ignore[override]
        """Only when a part steps: the offset learns from new events alone."""
        return not self._frozen

    def grow(self, n_users: int, n_items: int) -> None:
        super().grow(n_users, n_items)
        for part in self.parts.values():
            part.grow(n_users, n_items)
        self.online_bias.grow(self.n_items_)

    def forget_users(self, user_idx: np.ndarray) -> None:
        for part in self.parts.values():
            part.forget_users(user_idx)

    def learn(self, batch: OnlineBatch) -> float:
        """Each part takes its own online step on ``batch`` (none with its ``online_lr`` 0,
        the default here), then the online item offset its step on the new positive events
        (the replayed ones are old news); returns the offset's loss, or the parts' mean loss
        when it is off.

        The offset's step scores each event's user as of just before it, from the whole
        history (``batch.histories`` keeps the last few items; the long-term parts read all),
        and masks everything in that history; a user with no history yet is scored by the
        offset alone.
        """
        loss = float(np.mean([part.learn(batch) for part in self.parts.values()]))
        if self.online_bias.lr == 0 or not self.fitted_:
            return loss
        n = len(batch.item_idx) if batch.n_fresh is None else batch.n_fresh
        hists = batch.histories
        whole = hists.whole if isinstance(hists, Prefixes) else hists.__getitem__
        # every new positive event; a user's first one (no history: served by popularity)
        # teaches the offset against its own prediction, as the blend knows nothing of them
        picked = [(r, whole(r)) for r in range(n) if batch.label[r] > 0.5]
        if not picked:
            return loss
        rows = [r for r, _ in picked]
        seen = [h for _, h in picked]
        users = np.asarray(batch.user_idx, np.int64)[rows]
        items = np.asarray(batch.item_idx, np.int64)[rows]
        bias = self.online_bias
        if not self._frozen:
            bias.forget()
        n_items = self.n_items_
        chunk = max(1, STEP_FLOATS // max(1, n_items))  # bounded memory on a large catalogue
        losses = []
        for a in range(0, len(rows), chunk):
            u, h = users[a : a + chunk], seen[a : a + chunk]
            kept = [
                bias.recall(int(x), len(y), n_items) if len(y) else None
                for x, y in zip(u.tolist(), h)
            ]
            missed = [r for r, row in enumerate(kept) if row is None and len(h[r])]
            scores = np.zeros((len(u), n_items), np.float32)  # no history: the offset alone
            if missed:
                scores[missed] = self._blend(u[missed], [h[r] for r in missed])[:, :n_items]
            for r, row in enumerate(kept):
                if row is not None:
                    scores[r] = row
            losses.append(bias.step(bias.add_to(scores), items[a : a + chunk], h) * len(u))
        return float(sum(losses) / len(rows))

    # ------------------------------------------------------------------ persistence
    def hyperparameters(self) -> dict[str, Any]:
        return {
            "mf_weight": self.mf_weight,
            "ease_weight": self.ease_weight,
            "online_bias_lr": self.online_bias.lr,
            **{name: self.parts[name].hyperparameters() for name in PARTS},
        }

    def get_state(self) -> dict[str, Any]:
        self._check()
        return {
            "parts": {name: part.get_state() for name, part in self.parts.items()},
            "n_users": self.n_users_,
            "n_items": self.n_items_,
            "online_bias": self.online_bias.value.copy(),
        }

    def set_state(self, state: dict[str, Any]) -> None:
        for name, part in self.parts.items():
            if name in state["parts"]:
                part.set_state(state["parts"][name])
        if "ease" not in state["parts"]:  # a snapshot from before the part: blended as it was
            self.ease_weight = 0.0
        self.n_users_, self.n_items_ = int(state["n_users"]), int(state["n_items"])
        self.online_bias = OnlineBias(self.online_bias.lr, self.n_items_)
        if state.get("online_bias") is not None:  # snapshots from before it start at 0
            given = np.asarray(state["online_bias"], np.float32)
            self.online_bias.value[: len(given)] = given[: self.n_items_]
        self.fitted_ = True
