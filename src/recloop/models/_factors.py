"""The fitted form shared by ``mf`` and ``lightgcn``: serving tables with a recency context.

``Recency`` weighs a user's last items, ``RecencyFactors`` holds the user, item, context and
bias tables and scores a user as ``<p_u + sum_k w_k c_{h_k}, q_i> + b_i``, folding in users
without a trained row by ridge regression over their history (``ridge_fold_in``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from scipy.linalg.lapack import sposv as _posv

from recloop.models.base import (
    OnlineBatch,
    Prefixes,
    RowAdagrad,
    as_long,
    grow_rows,
    unique_rows,
)


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

    def forget_users(self, user_idx: np.ndarray, opts: dict[str, RowAdagrad]) -> None:
        """Zero these users' learned rows (a new user's start) and their step sizes' state."""
        u = torch.from_numpy(np.asarray(user_idx, np.int64))
        u = u[u < self.user.shape[0]]
        with torch.no_grad():
            self.user[u] = 0.0
        state = opts["user"].state
        if state.numel():
            state[u[u < state.numel()]] = opts["user"].initial

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
