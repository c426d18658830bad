"""Matrix factorisation trained with BPR (Rendle et al. 2009), with a recency-aware user state.

A user's vector at request time is their learned row plus a *recency context*: a
weighted sum of context vectors of their last ``history_len`` items, the most recent
weighing most (``w_k ∝ recency_decay**k``), as in factorised personalised Markov
chains (FPMC, Rendle et al. 2010) and Fossil (He & McAuley 2016)::

    score(u, i) = <p_u + sum_k w_k c_{h_k}, q_i> + b_i

Both parts are learned together with BPR, each training positive seeing the items its
user had just before it. Why: MovieLens users rate in sessions, so the next item is
strongly tied to the last few, and a user in the stream is served from the items they
touched a moment ago without any parameter update. Users without a trained row are
*folded in*: their row is the ridge solution that scores their history high against an
implicit zero on all items (the ALS fold-in), recomputed at each request.

The recency helpers (``Recency``) are shared with ``lightgcn``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from scipy.linalg.lapack import sposv as _posv
from torch import nn

from recloop.errors import ConfigError, NotFittedError
from recloop.models.base import (
    FitOptions,
    OnlineBatch,
    Prefixes,
    RecModel,
    RowAdagrad,
    TrainData,
    as_long,
    check_positive,
    grow_rows,
    seed_everything,
    unique_rows,
)
from recloop.models.configs import MFConfig, build_config
from recloop.models.registry import register


class Recency:
    """The last ``length`` items of a history as padded indices and recency weights.

    Weights are ``decay**k`` for the k-th most recent item, normalised to sum to 1 over
    the items present (so a short history is not a weaker signal); padding has weight 0.
    """

    def __init__(self, length: int, decay: float) -> None:
        self.length = length
        self.base = torch.tensor([decay**k for k in range(length)], dtype=torch.float32)

    def _weights(self, mask: torch.Tensor) -> torch.Tensor:
        w = self.base * mask
        return w / w.sum(1, keepdim=True).clamp_min(1e-12)

    def from_histories(self, histories: Sequence[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
        """(batch, length) indices, most recent first, and (batch, length) weights."""
        n = len(histories)
        idx = np.zeros((n, self.length), np.int64)
        mask = np.zeros((n, self.length), np.float32)
        if isinstance(histories, Prefixes):  # the online learner's histories: no array per row
            lens, flat = histories.tails(self.length)
        else:
            tails = [np.asarray(h[-self.length :], np.int64) for h in histories]
            lens = np.fromiter((len(t) for t in tails), np.int64, n)
            flat = np.concatenate(tails) if n else np.zeros(0, np.int64)
        if len(flat):
            # each row's items oldest first in ``flat``; column 0 is the most recent
            rows = np.repeat(np.arange(n), lens)
            cols = np.repeat(np.cumsum(lens), lens) - 1 - np.arange(len(flat))
            idx[rows, cols] = flat
            mask[rows, cols] = 1.0
        return torch.from_numpy(idx), self._weights(torch.from_numpy(mask))

    def from_rows(self, users: np.ndarray, items: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """Context of each interaction row: the same user's previous rows (rows in time order)."""
        order = np.argsort(users, kind="stable")
        u_sorted, i_sorted = users[order], items[order]
        first = np.r_[True, u_sorted[1:] != u_sorted[:-1]]
        start = np.maximum.accumulate(np.where(first, np.arange(len(order)), 0))
        idx = np.zeros((len(order), self.length), np.int64)
        mask = np.zeros((len(order), self.length), np.float32)
        pos = np.arange(len(order))
        for k in range(1, self.length + 1):
            ok = pos - k >= start
            idx[order[ok], k - 1] = i_sorted[(pos - k)[ok]]
            mask[order[ok], k - 1] = 1.0
        return torch.from_numpy(idx), self._weights(torch.from_numpy(mask))

    @staticmethod
    def embed(table: torch.Tensor, idx: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """(batch, d): the weighted sum of ``table``'s rows ``idx``."""
        return torch.einsum("bl,bld->bd", weights, table[idx])


def fold_in_gram(items: torch.Tensor, reg: float) -> torch.Tensor:
    """(d, d) the history-independent part of ``ridge_fold_in``'s normal equations."""
    return items.T @ items / max(len(items), 1) * 10.0 + torch.eye(items.shape[1]) * reg


#: the fold-in reads a new user's last this many items
FOLD_IN_LEN = 200


def ridge_fold_in(
    items: torch.Tensor,
    histories: Sequence[np.ndarray],
    gram: torch.Tensor,
    max_len: int = FOLD_IN_LEN,
) -> torch.Tensor:
    """(batch, d) ALS fold-in: argmin_p sum_{h} (1 - <p, q_h>)^2 + 10 * mean_i <p, q_i>^2 + reg |p|^2,
    with ``gram = fold_in_gram(items, reg)``; one batched solve for all histories."""
    tails = [np.asarray(h[-max_len:], np.int64) for h in histories]
    lens = np.fromiter((len(t) for t in tails), np.int64, len(tails))
    width = int(lens.max()) if len(lens) else 0
    if width == 0:
        return torch.zeros(len(tails), items.shape[1])
    idx = np.zeros((len(tails), width), np.int64)
    rows = np.repeat(np.arange(len(tails)), lens)
    cols = np.arange(len(rows)) - np.repeat(np.cumsum(lens) - lens, lens)
    idx[rows, cols] = np.concatenate(tails)
    mask = torch.from_numpy(np.arange(width)[None, :] < lens[:, None]).to(items.dtype)
    qh = items[torch.from_numpy(idx)] * mask.unsqueeze(-1)  # (batch, width, d)
    a = torch.einsum("bld,ble->bde", qh, qh) + gram
    out: torch.Tensor = torch.linalg.solve(a, qh.sum(1))
    return out


def _solve_spd(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a^-1 b`` for a symmetric positive definite ``a`` (a ridge system) by LAPACK's
    Cholesky solver: a quarter of ``np.linalg.solve``'s time on a 64 x 64 system, most of
    which is its per-call overhead; a general solve if ``a`` is not positive definite."""
    _, x, info = _posv(a, b, lower=True)
    out: np.ndarray = x if info == 0 else np.linalg.solve(a, b)
    return out


@dataclass
class RecencyFactors:
    """Serving tables of a factor model with a recency context, and their online step.

    ``score(u, i) = <user part + sum_k w_k context[h_k], item[i]> + bias[i]``. The user
    part is ``user[u]`` for the first ``n_trained_users`` rows; for any other user it is
    the ridge fold-in of their history plus their grown row (zero until ``learn``
    touches it), so a new user is served from their history at once. Both ``mf`` and
    ``lightgcn`` serve and learn online through this class.
    """

    user: torch.Tensor  # (n_users, d)
    item: torch.Tensor  # (n_items, d)
    context: torch.Tensor  # (n_items, d)
    bias: torch.Tensor | None  # (n_items,) or None
    n_trained_users: int
    recency: Recency
    fold_in_reg: float
    _gram: torch.Tensor | None = field(default=None, init=False, repr=False)
    _views: tuple[tuple[Any, ...], tuple[Any, ...]] | None = field(
        default=None, init=False, repr=False
    )

    def _numpy_views(self) -> tuple[np.ndarray, ...]:
        """(recency weights, context, item, user, bias or None) as numpy views of the tables
        (shared memory: in-place steps show through; a table that ``grow`` replaced gets a
        new view). Converting them at every request costs more than the maths of one."""
        key = (self.user, self.item, self.context, self.bias)
        if self._views is None or any(a is not b for a, b in zip(self._views[0], key)):
            bias = None if self.bias is None else self.bias.detach().numpy()
            self._views = (
                key,
                (
                    self.recency.base.numpy(),
                    self.context.detach().numpy(),
                    self.item.detach().numpy(),
                    self.user.detach().numpy(),
                    bias,
                ),
            )
        return self._views[1]

    def invalidate(self) -> None:
        """Forget what is cached from the item table (call after changing it in place)."""
        self._gram = None

    def _fold_in_gram(self) -> torch.Tensor:
        # cached between changes of the item table: it costs about as much as the rest of a request
        if self._gram is None:
            self._gram = fold_in_gram(self.item, self.fold_in_reg)
        return self._gram

    def user_rows(self, user_idx: np.ndarray, histories: Sequence[np.ndarray]) -> torch.Tensor:
        """(batch, d) the learned part of each user's vector, without the recency context."""
        u = np.asarray(user_idx, np.int64)
        in_table = (u >= 0) & (u < self.user.shape[0])
        out = torch.zeros(len(u), self.user.shape[1])
        if in_table.all():
            out = self.user.index_select(0, torch.from_numpy(u))
        elif in_table.any():
            out[torch.from_numpy(in_table)] = self.user[torch.from_numpy(u[in_table])]
        cold = ~((u >= 0) & (u < self.n_trained_users))
        if cold.any():
            rows = np.flatnonzero(cold)
            out[torch.from_numpy(rows)] += ridge_fold_in(
                self.item, [histories[int(r)] for r in rows], self._fold_in_gram()
            )
        return out

    def states(self, user_idx: np.ndarray, histories: Sequence[np.ndarray]) -> torch.Tensor:
        """(batch, d) user vectors at request time: learned part + recency context."""
        ci, cw = self.recency.from_histories(histories)
        return self.user_rows(user_idx, histories) + Recency.embed(self.context, ci, cw)

    def score(self, user_idx: np.ndarray, histories: Sequence[np.ndarray]) -> np.ndarray:
        """(batch, n_items) float32 scores."""
        fast = self._score_few(np.asarray(user_idx, np.int64), histories)
        if fast is not None:
            return fast
        with torch.no_grad():
            states = self.states(user_idx, histories)
            if self.bias is None:
                return (states @ self.item.T).numpy()
            return torch.addmm(self.bias, states, self.item.T).numpy()

    def _score_few(self, u: np.ndarray, histories: Sequence[np.ndarray]) -> np.ndarray | None:
        """``score`` in numpy for a few known users (a request's worth): the same sums, and
        for users the fit never saw the same fold-in solve, without torch's per-operation
        overhead; None when it does not apply."""
        users = u.tolist()
        if len(users) > 4 or not users or min(users) < 0:
            return None
        length = self.recency.length
        base, context, item, user, bias = self._numpy_views()
        states = np.zeros((len(users), item.shape[1]), np.float32)
        for r, (x, h) in enumerate(zip(users, histories)):
            if x < user.shape[0]:
                states[r] = user[x]
            if x >= self.n_trained_users:  # as ridge_fold_in, for one history
                q = item[np.asarray(h[-FOLD_IN_LEN:], np.int64)]
                if len(q):
                    states[r] += _solve_spd(q.T @ q + self._fold_in_gram().numpy(), q.sum(0))
            recent = np.asarray(h[-length:], np.int64)[::-1]  # most recent first, as the weights
            if len(recent):
                w = base[: len(recent)]
                states[r] += (w / max(float(w.sum()), 1e-12)) @ context[recent]
        out: np.ndarray = states @ item.T
        if bias is not None:
            out += bias
        return out.astype(np.float32, copy=False)

    def grow(self, n_users: int, n_items: int, generator: torch.Generator) -> None:
        """New users get a zero row (their fold-in is their start); new items small random
        rows and the mean bias."""
        if n_users > self.user.shape[0]:
            self.user = grow_rows(self.user, n_users, 0.0)
        n_old = self.item.shape[0]
        if n_items > n_old:
            self.item = grow_rows(self.item, n_items, 0.01, generator)
            self.context = grow_rows(self.context, n_items, 0.01, generator)
            if self.bias is not None:
                fill = float(self.bias.mean()) if n_old else 0.0
                self.bias = torch.cat([self.bias, torch.full((n_items - n_old,), fill)])
            self.invalidate()

    def learn(
        self,
        batch: OnlineBatch,
        opts: dict[str, RowAdagrad],
        rng: np.random.Generator,
        n_negatives: int,
        reg: float,
    ) -> float:
        """One BPR step on the touched rows only: the events' users, items, sampled negatives
        and the context rows of each user's recent items, with row-wise Adagrad. A negative
        label (a skip) pushes the item below the sampled ones instead.

        The loss (returned) is ``sum_b w_b mean_k -log sigmoid(s_b (x_bi - x_bj_k)) / n`` plus
        ``reg (|state|^2 + |q_i|^2 + |q_j|^2) / n``, with ``x = <state, q> + bias`` and ``s_b``
        +1 for a positive, -1 for a negative; its gradients are written out (the same as
        autograd's, ``tests/models/test_mf.py`` checks) because on a step of a few thousand
        rows the autograd graph costs more than the arithmetic.
        """
        n = len(batch.item_idx)
        if n == 0:
            return 0.0
        k = n_negatives
        u = np.asarray(batch.user_idx, np.int64)
        pos = as_long(batch.item_idx)
        neg = as_long(rng.integers(0, self.item.shape[0], size=(n, k)))
        ci, cw = self.recency.from_histories(batch.histories)
        with torch.no_grad():
            d = self.item.shape[1]
            items = torch.cat([pos, neg.reshape(-1)])
            q = self.item.index_select(0, items)  # positives, then k negatives per event
            qi, qj = q[:n], q[n:].view(n, k, d)
            state = self.user_rows(u, batch.histories) + F.embedding_bag(
                ci, self.context, per_sample_weights=cw, mode="sum"
            )
            b = (
                self.bias.index_select(0, items)
                if self.bias is not None
                else torch.zeros(len(items))
            )
            diff = ((state * qi).sum(-1) + b[:n]).unsqueeze(1) - (
                torch.bmm(qj, state.unsqueeze(2)).squeeze(2) + b[n:].view(n, k)
            )
            sign = torch.from_numpy(
                np.where(np.asarray(batch.label) > 0.5, 1.0, -1.0).astype(np.float32)
            )
            w = torch.as_tensor(np.asarray(batch.weight, np.float32))
            x = sign.unsqueeze(1) * diff  # (n, k)
            flat_s, flat_q = state.reshape(-1), q.reshape(-1)
            loss = (-F.logsigmoid(x).mean(1) * w).sum() / n + reg * (
                flat_s.dot(flat_s) + flat_q.dot(flat_q)
            ) / n
            # gradients: dd = d loss / d diff, then through state = p_u + sum_l w_l c_l, q and the biases
            dd = torch.sigmoid(-x) * (-(sign * w) / (k * n)).unsqueeze(1)
            dsum = dd.sum(1, keepdim=True)
            c = 2.0 * reg / n
            g_state = torch.addcmul(state * c, dsum, qi) - torch.bmm(dd.unsqueeze(1), qj).squeeze(1)
            g_q = q.mul_(c)  # q is a copy and not read again: its buffer takes the item gradients
            g_q[:n].addcmul_(dsum, state)
            g_q[n:].view(n, k, d).addcmul_(dd.unsqueeze(2), state.unsqueeze(1), value=-1.0)
            opts["item"].step(self.item, items, g_q)
            self.invalidate()
            if self.bias is not None:
                opts["bias"].step(
                    self.bias.unsqueeze(1),
                    items,
                    torch.cat([dsum.squeeze(1), -dd.reshape(-1)]).unsqueeze(1),
                )
            flat_w = cw.reshape(-1)
            live = torch.nonzero(flat_w > 0).squeeze(1)
            if len(live):
                # context row r gets sum over (event b, slot l) holding r of w_bl * d loss / d state_b:
                # a sparse (rows x events) matrix times g_state, without an (n * length, d) copy
                rows, inv = unique_rows(ci.reshape(-1)[live], self.context.shape[0])
                spread = torch.sparse_coo_tensor(
                    torch.stack([inv, live // cw.shape[1]]),
                    flat_w[live],
                    (len(rows), n),
                    check_invariants=False,
                )
                opts["context"].step_summed(self.context, rows, torch.sparse.mm(spread, g_state))
            in_table = (u >= 0) & (u < self.user.shape[0])
            if in_table.all():
                opts["user"].step(self.user, torch.from_numpy(u), g_state)
            elif in_table.any():
                opts["user"].step(
                    self.user, torch.from_numpy(u[in_table]), g_state[torch.from_numpy(in_table)]
                )
        return float(loss)

    def get_state(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "user": self.user.clone(),
            "item": self.item.clone(),
            "context": self.context.clone(),
            "n_trained_users": self.n_trained_users,
        }
        if self.bias is not None:
            out["bias"] = self.bias.clone()
        return out

    @classmethod
    def from_state(
        cls, state: dict[str, Any], recency: Recency, fold_in_reg: float
    ) -> RecencyFactors:
        bias = state.get("bias")
        return cls(
            state["user"].clone(),
            state["item"].clone(),
            state["context"].clone(),
            None if bias is None else bias.clone(),
            int(state["n_trained_users"]),
            recency,
            fold_in_reg,
        )


def new_optimizers(lr: float) -> dict[str, RowAdagrad]:
    """One row-wise Adagrad per serving table."""
    return {k: RowAdagrad(lr) for k in ("user", "item", "bias", "context")}


class RecencyFactorsModel(RecModel):
    """Serving, online learning and persistence shared by the models whose fitted form is a
    ``RecencyFactors`` (``mf``, ``lightgcn``): subclasses only fit and set ``factors_``.

    Subclasses set ``factors_``, ``recency``, ``fold_in_reg``, ``reg``, ``online_negatives``,
    ``_opts`` (from ``new_optimizers``) and ``_steps``.
    """

    factors_: RecencyFactors | None
    recency: Recency
    fold_in_reg: float
    reg: float
    online_negatives: int
    _opts: dict[str, RowAdagrad]
    _steps: int

    def _init_factors(
        self,
        dim: int,
        epochs: int,
        lr: float,
        reg: float,
        batch_size: int,
        n_negatives: int,
        history_len: int,
        recency_decay: float,
        patience: int,
        fold_in_reg: float,
        online_lr: float,
        online_negatives: int,
    ) -> None:
        """Validate and keep the hyperparameters the subclasses share; empty online state."""
        check_positive(
            dim=dim,
            epochs=epochs,
            lr=lr,
            batch_size=batch_size,
            n_negatives=n_negatives,
            history_len=history_len,
            recency_decay=recency_decay,
            patience=patience,
            fold_in_reg=fold_in_reg,
            online_negatives=online_negatives,
        )
        if reg < 0 or recency_decay > 1:
            raise ConfigError(
                f"reg must be >= 0 and recency_decay <= 1, got reg={reg!r}, recency_decay={recency_decay!r}"
            )
        if not online_lr >= 0:
            raise ConfigError(
                f"online_lr must be >= 0 (0: no online parameter steps), got {online_lr!r}"
            )
        self.dim, self.epochs, self.lr, self.reg = dim, epochs, lr, reg
        self.batch_size, self.n_negatives, self.patience = batch_size, n_negatives, patience
        self.history_len, self.recency_decay, self.fold_in_reg = (
            history_len,
            recency_decay,
            fold_in_reg,
        )
        self.online_lr, self.online_negatives = online_lr, online_negatives
        self.recency = Recency(history_len, recency_decay)
        self.factors_ = None
        self._opts = new_optimizers(online_lr)
        self._steps = 0

    def _bpr_batches(
        self, users: np.ndarray, items: np.ndarray, n_items: int
    ) -> Callable[[np.random.Generator, int], Iterator[tuple[torch.Tensor, ...]]]:
        """An epoch's shuffled training batches of positive rows: (users, items, ``n_negatives``
        uniform negatives each, recency-context indices, context weights)."""
        from recloop.training import NegativeSampler

        ctx_idx, ctx_w = self.recency.from_rows(users, items)
        sampler = NegativeSampler(n_items)

        def batches(rng: np.random.Generator, epoch: int) -> Iterator[tuple[torch.Tensor, ...]]:
            order = rng.permutation(len(users))
            for s in range(0, len(order), self.batch_size):
                b = order[s : s + self.batch_size]
                tb = torch.from_numpy(b)
                yield (
                    as_long(users[b]),
                    as_long(items[b]),
                    as_long(sampler.sample(rng, (len(b), self.n_negatives))),
                    ctx_idx[tb],
                    ctx_w[tb],
                )

        return batches

    # ------------------------------------------------------------------ serving
    def _factors(self) -> RecencyFactors:
        if self.factors_ is None:
            raise NotFittedError(f"{self.name} is not fitted: call fit first")
        return self.factors_

    def score(self, user_idx: np.ndarray, histories: Sequence[np.ndarray]) -> np.ndarray:
        return self._factors().score(user_idx, histories)

    def user_states(self, user_idx: np.ndarray, histories: Sequence[np.ndarray]) -> torch.Tensor:
        """(batch, d) user vectors at request time (learned part + recency context)."""
        return self._factors().states(user_idx, histories)

    def item_vectors(self) -> np.ndarray | None:
        return None if self.factors_ is None else self.factors_.item.numpy()

    def item_bias(self) -> np.ndarray | None:
        """(n_items,) biases added to the dot product (None before fit, or without biases)."""
        bias = None if self.factors_ is None else self.factors_.bias
        return None if bias is None else bias.numpy()

    # ------------------------------------------------------------------ online
    def grow(self, n_users: int, n_items: int) -> None:
        super().grow(n_users, n_items)
        if self.factors_ is not None:
            self.factors_.grow(n_users, n_items, torch.Generator().manual_seed(self.seed + n_items))

    @property
    def updates_online(self) -> bool:
        """Whether ``learn`` steps the tables (``online_lr`` > 0)."""
        return self.online_lr > 0

    def learn(self, batch: OnlineBatch) -> float:
        """One BPR step on the touched rows only (see ``RecencyFactors.learn``); none with
        ``online_lr`` 0 (new users are still served by their history's fold-in)."""
        if self.online_lr == 0:
            return 0.0
        rng = np.random.default_rng((self.seed, self._steps))
        self._steps += 1
        return self._factors().learn(batch, self._opts, rng, self.online_negatives, self.reg)

    # ------------------------------------------------------------------ persistence
    def get_state(self) -> dict[str, Any]:
        return {
            "factors": self._factors().get_state(),
            "n_users": self.n_users_,
            "n_items": self.n_items_,
            "steps": self._steps,
            "opts": {k: o.get_state() for k, o in self._opts.items()},
        }

    def set_state(self, state: dict[str, Any]) -> None:
        self.factors_ = RecencyFactors.from_state(state["factors"], self.recency, self.fold_in_reg)
        self.n_users_, self.n_items_ = int(state["n_users"]), int(state["n_items"])
        self._steps = int(state["steps"])
        for k, o in self._opts.items():
            o.set_state(state["opts"][k])


class MFNet(nn.Module):
    """Training module: user rows p, item rows q, item biases b, item context rows c."""

    def __init__(self, n_users: int, n_items: int, dim: int) -> None:
        super().__init__()
        self.user = nn.Parameter(torch.randn(n_users, dim) * 0.01)
        self.item = nn.Parameter(torch.randn(n_items, dim) * 0.01)
        self.bias = nn.Parameter(torch.zeros(n_items))
        self.context = nn.Parameter(torch.randn(n_items, dim) * 0.01)

    def forward(
        self, users: torch.Tensor, ctx_idx: torch.Tensor, ctx_w: torch.Tensor
    ) -> torch.Tensor:
        """(batch, d) user states of trained users with their recency context."""
        return self.user[users] + Recency.embed(self.context, ctx_idx, ctx_w)


@register
class MF(RecencyFactorsModel):
    """BPR matrix factorisation with a recency context (see the module docstring).

    Parameters
    ----------
    dim : embedding size
    epochs : most epochs (early stopping on validation NDCG@10 with ``patience``)
    lr, reg : Adam learning rate; L2 weight on the user states and item rows of a batch
    batch_size, n_negatives : positives per step; uniform negatives per positive
    history_len, recency_decay : the recency context's window and per-step decay (0 < decay <= 1)
    fold_in_reg : ridge weight of the fold-in for users without a trained row
    online_lr, online_negatives : row-wise Adagrad rate (0: no online parameter steps) and
        negatives per event online
    """

    name = "mf"

    def __init__(self, seed: int = 0, config: MFConfig | None = None, **overrides: Any) -> None:
        super().__init__(seed)
        self.config = c = build_config("mf", MFConfig, config, overrides)
        (
            dim,
            epochs,
            lr,
            reg,
            batch_size,
            n_negatives,
            history_len,
            recency_decay,
            patience,
            fold_in_reg,
            online_lr,
            online_negatives,
        ) = (
            c.dim,
            c.epochs,
            c.lr,
            c.reg,
            c.batch_size,
            c.n_negatives,
            c.history_len,
            c.recency_decay,
            c.patience,
            c.fold_in_reg,
            c.online_lr,
            c.online_negatives,
        )
        self._init_factors(
            dim,
            epochs,
            lr,
            reg,
            batch_size,
            n_negatives,
            history_len,
            recency_decay,
            patience,
            fold_in_reg,
            online_lr,
            online_negatives,
        )

    # ------------------------------------------------------------------ fit
    def fit(self, data: TrainData, options: FitOptions) -> dict[str, Any]:
        from recloop.training import TrainConfig, bpr_loss, train
        from recloop.training.validate import validation_ndcg

        rng = seed_everything(self.seed)
        self.n_users_, self.n_items_ = data.n_users, data.n_items
        net = MFNet(data.n_users, data.n_items, self.dim)
        # views of the parameters (Adam and the best-state restore write in place), so
        # validation during training scores the current parameters
        self.factors_ = RecencyFactors(
            net.user.detach(),
            net.item.detach(),
            net.context.detach(),
            net.bias.detach(),
            data.n_users,
            self.recency,
            self.fold_in_reg,
        )
        self._opts = new_optimizers(self.online_lr)
        self._steps = 0
        pos = data.positives
        users, items = data.user_idx[pos], data.item_idx[pos]
        batches = self._bpr_batches(users, items, data.n_items)

        def loss_fn(batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
            u, i, j, ci, cw = batch
            state = net(u, ci, cw)
            qi, qj = net.item[i], net.item[j]
            pos_s = (state * qi).sum(-1) + net.bias[i]
            neg_s = torch.einsum("bd,bnd->bn", state, qj) + net.bias[j]
            l2 = self.reg * (state.pow(2).sum() + qi.pow(2).sum() + qj.pow(2).sum()) / len(u)
            loss: torch.Tensor = bpr_loss(pos_s, neg_s) + l2
            return loss

        def validate() -> float:
            self._factors().invalidate()  # the parameters moved since the last validation
            return validation_ndcg(self, data)

        report = train(
            net,
            batches,
            loss_fn,
            TrainConfig(epochs=self.epochs, lr=self.lr, patience=self.patience, desc="mf"),
            options,
            rng,
            validate=validate if len(data.valid_user_idx) else None,
        )
        f = self._factors()
        self.factors_ = RecencyFactors(
            f.user.clone(),
            f.item.clone(),
            f.context.clone(),
            None if f.bias is None else f.bias.clone(),
            f.n_trained_users,
            f.recency,
            f.fold_in_reg,
        )
        return report

    # ------------------------------------------------------------------ persistence
    def hyperparameters(self) -> dict[str, Any]:
        return {
            "dim": self.dim,
            "epochs": self.epochs,
            "lr": self.lr,
            "reg": self.reg,
            "batch_size": self.batch_size,
            "n_negatives": self.n_negatives,
            "history_len": self.history_len,
            "recency_decay": self.recency_decay,
            "patience": self.patience,
            "fold_in_reg": self.fold_in_reg,
            "online_lr": self.online_lr,
            "online_negatives": self.online_negatives,
        }
