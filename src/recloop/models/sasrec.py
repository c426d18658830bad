"""SASRec: self-attentive sequential recommendation (Kang & McAuley 2018).

The user is their history: a causal transformer reads the last ``max_len`` items, and its
output at the last position scores every item by a dot product with the (tied) item
embeddings. Nothing is keyed by user, so an event changes the very next recommendation
without a parameter step, and a user the fit never saw is served from their first event.

Departures from the paper (their effect on MovieLens-100K is in ``docs/benchmarks.md``):

* full softmax cross-entropy over the catalogue at every position instead of binary
  cross-entropy against one sampled negative (Klenitskiy & Vasilev 2023), with the items
  the user already had masked out of the softmax, as the engine never recommends them;
* each position predicts its next ``future_k`` items (weights ``future_decay ** j``):
  half of ML-100K's consecutive ratings share a second, so "the next" one is arbitrary;
* a short window plus a *long-term* term, the mean embedding of everything the user had
  before, added to each output;
* events that share a timestamp (a page of ratings sent at once) come in an arbitrary
  order, so each epoch reads them in a fresh random order (``_sasrec_ties``);
* every interaction is a target: sequences are cut into windows (random phase per epoch);
  the training loop warms the rate up over one epoch, then decays it to zero, so
  ``Recommender.fit`` keeps each user's latest item in training (``holds_out_validation``):
  the last epoch is the best one;
* at scoring, the output is averaged over views that training prepared it for: the logged
  order and seeded shuffles of the same-second runs in the window (``tie_samples``), each
  read with the full window and with only its last few items (``extra_windows``; the rest
  goes to the long-term mean). The states are averaged, so scores stay dot products;
* online, ``learn`` takes a small Adam step on new events (the history before each event
  predicts its item) and ``grow`` adds item rows around the mean item.

The files: ``_sasrec_net`` (the torch module), ``_sasrec_state`` and ``_sasrec_jit`` (the
request-time state in numpy and compiled), ``_sasrec_ties`` (orders of same-second events),
this one (training, scoring, online steps, persistence).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from recloop.errors import NotFittedError
from recloop.models._sasrec_net import SASRecNet
from recloop.models._sasrec_state import _NumpyWeights, jit_state, numpy_state
from recloop.models._sasrec_ties import _shuffle_ties, _tie_runs, tie_orders
from recloop.models._sasrec_train import Batches, item_bag, sequence_loss, windows
from recloop.models.base import (
    FitOptions,
    OnlineBatch,
    RecModel,
    TrainData,
    seed_everything,
)
from recloop.models.configs import SASRecConfig, build_config
from recloop.models.registry import register

__all__ = ["SASRec", "SASRecConfig", "SASRecNet", "jit_state", "numpy_state", "tie_orders"]

#: up to this many users are scored in numpy one by one; more go through torch in one batch
_NUMPY_ROWS = 4


@register
class SASRec(RecModel):
    """Causal self-attention over the user's recent items, full softmax loss.

    Takes a ``SASRecConfig`` and/or its fields as keywords (``SASRec(dim=32)``).

    Parameters
    ----------
    dim, n_layers, n_heads, ffn_dim, dropout
        Transformer: embedding width, blocks, attention heads, feed-forward width, dropout.
    max_len
        Recent items the transformer reads.
    long_term
        Add the mean embedding of the whole history to the output (the user's long-run taste).
    epochs, lr, batch_size, weight_decay, patience
        Offline training: ``epochs`` passes (warm-up, then cosine decay of ``lr``), Adam.
        ``Recommender.fit`` holds nothing out for this model unless asked
        (``validation=True``); then the best of the last quarter's validations (NDCG@10) is kept.
    future_k, future_decay
        Each position predicts its next ``future_k`` items, the j-th weighted ``future_decay ** j``.
    mask_seen
        Leave the items a user already had out of the training softmax.
    shuffle_ties
        Each epoch, put a user's events that share a timestamp in a random order (their
        logged order is arbitrary); False reads them as logged.
    tie_samples
        At scoring, when the window holds events that share a timestamp, the output is the
        mean over this many orders of them (the logged one and ``tie_samples - 1``
        shuffles, fixed by the seed); 1 reads them as logged. The engine passes the
        timestamps (``uses_times``).
    extra_windows
        At scoring, the output is also read with only the last few items in the window (each
        of these lengths under ``max_len``; the rest goes to the long-term mean, as for the
        early positions of a training window) and the states are averaged; () reads the
        full window alone.
    online_lr
        Adam step size of ``learn``; 0 turns parameter updates off (histories still adapt).
    online_scope
        What ``learn`` updates: ``"items"`` (default) the item table and biases, with the
        transformer as fitted — a step costs a forward pass, not a backward through the
        blocks; ``"all"`` every parameter.
    """

    name = "sasrec"
    uses_history = True
    uses_times = True
    holds_out_validation = False

    def __init__(self, seed: int = 0, config: SASRecConfig | None = None, **overrides: Any) -> None:
        super().__init__(seed)
        self.config = build_config("sasrec", SASRecConfig, config, overrides)
        self.net: SASRecNet | None = None
        self._online_opt: torch.optim.Adam | None = None
        self._np_weights: _NumpyWeights | None = None
        self.online_steps_ = 0

    @property
    def updates_online(self) -> bool:
        """Whether ``learn`` steps parameters (``online_lr`` > 0)."""
        return self.config.online_lr > 0

    # ------------------------------------------------------------------ fit
    def fit(self, data: TrainData, options: FitOptions) -> dict[str, Any]:
        """Train on every window of every sequence (see ``_windows``) with the loop's warm-up
        and cosine schedule; with a hold-out, validate over the last quarter of the epochs."""
        from recloop.training import TrainConfig, train, warmup_cosine
        from recloop.training.validate import validation_ndcg

        c = self.config
        rng = seed_everything(self.seed)
        self.n_users_, self.n_items_ = data.n_users, data.n_items
        self.net = net = SASRecNet(
            data.n_items,
            c.dim,
            c.max_len,
            c.n_layers,
            c.n_heads,
            c.dropout,
            c.ffn_dim,
            c.long_term,
        )
        self._online_opt = None
        epochs = options.epochs if options.epochs is not None else c.epochs
        runs = _tie_runs(data) if c.shuffle_ties else None

        def batches(rng: np.random.Generator, epoch: int) -> Batches:
            seqs = data.sequences if runs is None else _shuffle_ties(data.sequences, runs, rng)
            win, src = windows(seqs, c.max_len, c.future_k, rng)
            return Batches(seqs, win, src, rng.permutation(len(win)), c.batch_size)

        def loss_fn(batch: tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]) -> torch.Tensor:
            return sequence_loss(net, batch[0], batch[1], data.n_items, c)

        report = train(
            net,
            batches,
            loss_fn,
            TrainConfig(
                epochs=epochs,
                lr=c.lr,
                weight_decay=c.weight_decay,
                patience=c.patience,
                desc="sasrec",
                validate_from_epoch=epochs - max(1, epochs // 4),
                lr_schedule=warmup_cosine(c.lr),
            ),
            options,
            rng,
            validate=(lambda: validation_ndcg(self, data)) if len(data.valid_user_idx) else None,
        )
        with torch.no_grad():
            net.item[0].zero_()
        self._warm_jit()
        return report

    # ------------------------------------------------------------------ scoring
    def _batch(
        self, histories: Sequence[np.ndarray], max_len: int
    ) -> tuple[torch.Tensor, bool, tuple[torch.Tensor, torch.Tensor]]:
        """Left-padded (batch, length) tensor of the last ``max_len`` items + 1, whether it
        pads, and the earlier items as a bag."""
        cut = [np.asarray(h[-max_len:], np.int64) for h in histories]
        before = item_bag([np.asarray(h[:-max_len], np.int64) for h in histories])
        n = max(1, max(len(h) for h in cut))
        if len(cut) == 1 and len(cut[0]) == n:
            return torch.from_numpy(cut[0] + 1).unsqueeze(0), False, before
        out = np.zeros((len(cut), n), np.int64)
        for r, h in enumerate(cut):
            if len(h):
                out[r, n - len(h) :] = h + 1
        return torch.from_numpy(out), True, before

    def _states(
        self, histories: Sequence[np.ndarray], times: Sequence[np.ndarray] | None
    ) -> np.ndarray:
        """(batch, dim) outputs at each history's end, averaged over the window read whole
        and cut to each of ``extra_windows``; with ``times`` (each history's event
        timestamps), also over ``tie_samples`` orders of its same-second events."""
        net = self._net()
        w = self._numpy_weights(net)  # checked here, so that score can use them as they are
        n_orders = self.config.tie_samples if times is not None else 1
        orders = [
            tie_orders(
                np.asarray(h, np.int64),
                None if times is None else np.asarray(times[r]),
                self.config.max_len,
                n_orders,
                self.seed,
            )
            for r, h in enumerate(histories)
        ]
        windows = [
            self.config.max_len,
            *(x for x in self.config.extra_windows if x < self.config.max_len),
        ]
        if 0 < len(histories) <= _NUMPY_ROWS and all(len(h) for h in histories):
            if w.jit is not None:
                return np.stack([jit_state(w, o, windows) for o in orders])
            return np.stack([numpy_state(w, o, windows).mean(0) for o in orders])
        rows = [row for o in orders for row in o]
        with torch.inference_mode():
            out: np.ndarray = sum(
                net(*self._batch(rows, x), last_only=True)[:, -1] for x in windows
            ).numpy() / len(windows)
        if len(rows) == len(histories):
            return out
        counts = np.fromiter((len(o) for o in orders), np.int64, len(orders))
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
        mean: np.ndarray = np.add.reduceat(out, starts, 0) / counts[:, None].astype(np.float32)
        return mean

    def user_states(
        self,
        user_idx: np.ndarray,
        histories: Sequence[np.ndarray],
        times: Sequence[np.ndarray] | None = None,
    ) -> np.ndarray:
        """(batch, dim) query vectors from ``histories`` (and ``times``) only (``user_idx`` is
        not read): ``score == user_states @ item_vectors().T + item_bias()``, so dot-product
        retrieval (the serving layer's faiss index) applies."""
        return self._states(histories, times)

    def score(
        self,
        user_idx: np.ndarray,
        histories: Sequence[np.ndarray],
        times: Sequence[np.ndarray] | None = None,
    ) -> np.ndarray:
        """Scores from ``histories`` (and ``times``) only; ``user_idx`` is not read, so users
        the fit never saw are scored like any other."""
        states = self._states(histories, times)
        w = self._np_weights  # the views _states just checked
        assert w is not None and w.key[0] is self.net
        logits: np.ndarray = states @ w.item[1:].T + w.bias
        return logits

    def item_vectors(self) -> np.ndarray | None:
        return None if self.net is None else self.net.item.detach()[1:].numpy()

    def item_bias(self) -> np.ndarray | None:
        return None if self.net is None else self.net.bias.detach().numpy()

    def _numpy_weights(self, net: SASRecNet) -> _NumpyWeights:
        w = self._np_weights
        if w is None or any(a is not b for a, b in zip(w.key, (net, net.item, net.bias))):
            w = self._np_weights = _NumpyWeights(net)
        return w

    def _warm_jit(self) -> None:
        """Compile ``jit_state`` (or load it from numba's on-disk cache) now, not in the
        first request: seconds the first time on a machine, a fraction of one after."""
        w = self._numpy_weights(self._net())
        if w.jit is not None:
            jit_state(w, np.zeros((1, 1), np.int64), [self.config.max_len])

    def _net(self) -> SASRecNet:
        if self.net is None:
            raise NotFittedError("sasrec is not fitted")
        if self.net.training:
            self.net.eval()
        return self.net

    # ------------------------------------------------------------------ online
    def grow(self, n_users: int, n_items: int) -> None:
        """Add item rows: small random vectors around the mean item, with a low bias (a new
        item has to earn its place); the online optimiser keeps its moments (zeros for new rows)."""
        super().grow(n_users, n_items)
        net = self.net
        if net is None or n_items <= net.bias.shape[0]:
            return
        old = net.bias.shape[0]
        moments = self._optimizer_moments()
        g = torch.Generator().manual_seed(self.seed * 7919 + n_items)
        w, bias = net.item.detach(), net.bias.detach()
        real = w[1:]
        extra = (
            real.mean(0, keepdim=True)
            + torch.randn(n_items - old, self.config.dim, generator=g)
            * real.std(0, keepdim=True)
            * 0.1
        )
        b_new = torch.full((n_items - old,), float(bias.quantile(0.25)) if old else 0.0)
        net.item = nn.Parameter(torch.cat([w, extra]))
        net.bias = nn.Parameter(torch.cat([bias, b_new]))
        if moments is not None:
            self._make_optimizer(moments)

    def _optimizer_moments(self) -> dict[str, dict[str, torch.Tensor]] | None:
        """The online Adam's state keyed by parameter name (None before the first step)."""
        if self._online_opt is None or self.net is None:
            return None
        out = {}
        for name, p in self.net.named_parameters():
            st = self._online_opt.state.get(p)
            if st:
                out[name] = {
                    "step": st["step"].detach().clone().float().reshape(()),
                    "exp_avg": st["exp_avg"].clone(),
                    "exp_avg_sq": st["exp_avg_sq"].clone(),
                }
        return out

    def _make_optimizer(
        self, moments: dict[str, dict[str, torch.Tensor]] | None = None
    ) -> torch.optim.Adam:
        """A fresh online Adam over the current parameters, seeded with ``moments`` (rows a
        table gained since get zero moments)."""
        if self.net is None:
            raise NotFittedError("sasrec is not fitted")
        scoped = [
            (name, p)
            for name, p in self.net.named_parameters()
            if self.config.online_scope == "all" or name in ("item", "bias")
        ]
        opt = torch.optim.Adam([p for _, p in scoped], lr=self.config.online_lr)
        for name, p in scoped:
            st = (moments or {}).get(name)
            if st is None:
                continue
            state = {"step": st["step"].clone().float().reshape(())}
            for key in ("exp_avg", "exp_avg_sq"):
                t = st[key]
                if t.shape != p.shape:  # the table grew: pad new rows with zeros
                    t = torch.cat([t, t.new_zeros((p.shape[0] - t.shape[0], *t.shape[1:]))])
                state[key] = t.clone()
            opt.state[p] = state
        self._online_opt = opt
        return opt

    def learn(self, batch: OnlineBatch) -> float:
        """One Adam step of softmax cross-entropy: each event's history predicts its item.

        Events with an empty history or a negative label are skipped (nothing to read, or
        nothing to imitate). Dropout is off, so a step depends on its events only.
        """
        net = self.net
        if net is None or self.config.online_lr <= 0:
            return 0.0
        ok = (np.asarray(batch.label) > 0.5) & np.fromiter(
            (len(h) > 0 for h in batch.histories), bool, len(batch.histories)
        )
        keep = np.flatnonzero(ok & (np.asarray(batch.item_idx) < net.bias.shape[0]))
        if not len(keep):
            return 0.0
        opt = self._online_opt or self._make_optimizer()
        seq, padded, bag = self._batch([batch.histories[int(j)] for j in keep], self.config.max_len)
        target = torch.from_numpy(np.asarray(batch.item_idx, np.int64)[keep])
        weight = torch.from_numpy(np.asarray(batch.weight, np.float32)[keep])
        net.eval()
        opt.zero_grad(set_to_none=True)
        if (
            self.config.online_scope == "items"
        ):  # the transformer stays as fitted: no backward through it
            with torch.no_grad():
                h = net(seq, padded, bag, last_only=True)[:, -1]
            logits = net.logits(h)
        else:
            logits = net.logits(net(seq, padded, bag, last_only=True)[:, -1])
        loss = (
            F.cross_entropy(logits, target, reduction="none") * weight
        ).sum() / weight.sum().clamp_min(1e-8)
        loss.backward()  # type: ignore[no-untyped-call]
        opt.step()
        self.online_steps_ += 1
        return float(loss.detach())

    # ------------------------------------------------------------------ persistence

    def get_state(self) -> dict[str, Any]:
        if self.net is None:
            raise NotFittedError("sasrec is not fitted")
        state: dict[str, Any] = {
            "net": {k: v.detach().clone() for k, v in self.net.state_dict().items()},
            "n_users": self.n_users_,
            "n_items": self.n_items_,
            "online_steps": self.online_steps_,
        }
        moments = self._optimizer_moments()
        if moments is not None:
            state["online_opt"] = moments
        return state

    def set_state(self, state: dict[str, Any]) -> None:
        w = state["net"]
        n_items, dim = w["item"].shape[0] - 1, w["item"].shape[1]
        self.net = SASRecNet(
            n_items,
            dim,
            w["pos"].shape[0],
            self.config.n_layers,
            self.config.n_heads,
            self.config.dropout,
            self.config.ffn_dim,
            "long.weight" in w,
        )
        self.net.load_state_dict(w)
        self.net.eval()
        self.n_users_, self.n_items_ = int(state["n_users"]), int(state["n_items"])
        self.online_steps_ = int(state.get("online_steps", 0))
        self._online_opt = None
        if state.get("online_opt"):
            self._make_optimizer(state["online_opt"])
        self._warm_jit()
