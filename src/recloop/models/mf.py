"""Matrix factorisation trained with BPR (Rendle et al. 2009), with fold-in for new users."""
from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from recloop.models.base import (FitOptions, OnlineBatch, RecModel, RowAdagrad, TrainData, as_long,
                                 grow_rows, seed_everything)
from recloop.models.registry import register


class MFNet(nn.Module):
    """score(u, i) = <p_u, q_i> + b_i."""

    def __init__(self, n_users: int, n_items: int, dim: int) -> None:
        super().__init__()
        self.user = nn.Parameter(torch.randn(n_users, dim) * 0.01)
        self.item = nn.Parameter(torch.randn(n_items, dim) * 0.01)
        self.bias = nn.Parameter(torch.zeros(n_items))

    def forward(self, u: torch.Tensor, i: torch.Tensor) -> torch.Tensor:
        return (self.user[u].unsqueeze(-2) * self.item[i]).sum(-1).squeeze(-1) + self.bias[i]


@register
class MF(RecModel):
    """BPR matrix factorisation.

    Users without a learned row (new in the stream) are *folded in*: their vector is the
    ridge solution that scores their history items high, against an implicit zero target
    on all items (the ALS fold-in), recomputed from their latest history at each request.
    """

    name = "mf"

    def __init__(self, seed: int = 0, dim: int = 64, epochs: int = 40, lr: float = 5e-3, reg: float = 1e-5,
                 batch_size: int = 1024, n_negatives: int = 4, fold_in_reg: float = 0.5,
                 online_lr: float = 0.05) -> None:
        super().__init__(seed)
        for nm, v in (("dim", dim), ("epochs", epochs), ("batch_size", batch_size), ("n_negatives", n_negatives)):
            if v <= 0:
                raise ValueError(f"{nm} must be positive, got {v}")
        self.dim, self.epochs, self.lr, self.reg = dim, epochs, lr, reg
        self.batch_size, self.n_negatives, self.fold_in_reg, self.online_lr = batch_size, n_negatives, fold_in_reg, online_lr
        self.net: MFNet | None = None
        self.n_trained_users_ = 0
        self._user_opt = RowAdagrad(online_lr)
        self._item_opt = RowAdagrad(online_lr)
        self._gram: torch.Tensor | None = None

    # ------------------------------------------------------------------ fit
    def fit(self, data: TrainData, options: FitOptions) -> dict[str, Any]:
        from recloop.training import TrainConfig, bpr_loss, train
        from recloop.training.validate import validation_ndcg

        rng = seed_everything(self.seed)
        self.n_users_, self.n_items_ = data.n_users, data.n_items
        self.net = net = MFNet(data.n_users, data.n_items, self.dim)
        pos = data.positives
        users, items = data.user_idx[pos], data.item_idx[pos]

        def batches(rng: np.random.Generator, epoch: int) -> Iterator[tuple[torch.Tensor, ...]]:
            order = rng.permutation(len(users))
            for s in range(0, len(order), self.batch_size):
                b = order[s:s + self.batch_size]
                neg = rng.integers(0, data.n_items, size=(len(b), self.n_negatives))
                yield as_long(users[b]), as_long(items[b]), as_long(neg)

        def loss_fn(batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
            u, i, j = batch
            pu, qi, qj = net.user[u], net.item[i], net.item[j]
            pos_s = (pu * qi).sum(-1) + net.bias[i]
            neg_s = (pu.unsqueeze(1) * qj).sum(-1) + net.bias[j]
            l2 = self.reg * (pu.pow(2).sum() + qi.pow(2).sum() + qj.pow(2).sum()) / len(u)
            return bpr_loss(pos_s, neg_s) + l2

        self.n_trained_users_ = data.n_users
        self._gram = None
        report = train(net, batches, loss_fn, TrainConfig(epochs=self.epochs, lr=self.lr, patience=4, desc="mf"),
                       options, rng, validate=(lambda: validation_ndcg(self, data)) if len(data.valid_user_idx) else None)
        self._gram = None
        return report

    # ------------------------------------------------------------------ scoring
    def _fold_in(self, histories: Sequence[np.ndarray]) -> torch.Tensor:
        assert self.net is not None
        q = self.net.item.detach()
        if self._gram is None or self._gram.shape[0] != q.shape[1]:
            self._gram = q.T @ q / max(len(q), 1)
        out = torch.zeros(len(histories), q.shape[1])
        eye = torch.eye(q.shape[1]) * self.fold_in_reg
        for r, h in enumerate(histories):
            if len(h) == 0:
                continue
            qh = q[as_long(h[-200:])]
            a = qh.T @ qh + self._gram * 10.0 + eye
            out[r] = torch.linalg.solve(a, qh.sum(0))
        return out

    def user_vectors(self, user_idx: np.ndarray, histories: Sequence[np.ndarray]) -> torch.Tensor:
        assert self.net is not None
        u = np.asarray(user_idx)
        known = (u >= 0) & (u < self.net.user.shape[0])
        vec = torch.zeros(len(u), self.dim)
        if known.any():
            vec[torch.as_tensor(known)] = self.net.user.detach()[as_long(u[known])]
        cold = ~known
        if cold.any():
            vec[torch.as_tensor(cold)] = self._fold_in([histories[r] for r in np.flatnonzero(cold)])
        return vec

    def score(self, user_idx: np.ndarray, histories: Sequence[np.ndarray]) -> np.ndarray:
        if self.net is None:
            raise RuntimeError("mf is not fitted")
        with torch.no_grad():
            vec = self.user_vectors(user_idx, histories)
            return (vec @ self.net.item.detach().T + self.net.bias.detach()).numpy()

    def item_vectors(self) -> np.ndarray | None:
        return None if self.net is None else self.net.item.detach().numpy()

    # ------------------------------------------------------------------ online
    def grow(self, n_users: int, n_items: int) -> None:
        super().grow(n_users, n_items)
        if self.net is None:
            return
        g = torch.Generator().manual_seed(self.seed + n_items)
        if n_items > self.net.item.shape[0]:
            self.net.item = nn.Parameter(grow_rows(self.net.item, n_items, 0.01, g))
            self.net.bias = nn.Parameter(torch.cat([self.net.bias.detach(),
                                                    torch.full((n_items - len(self.net.bias),), float(self.net.bias.detach().mean()))]))
            self._gram = None

    def learn(self, batch: OnlineBatch) -> float:
        """BPR step on the events' item rows (and known users' rows), one sampled negative each."""
        if self.net is None:
            return 0.0
        net = self.net
        rng = np.random.default_rng(self.seed + int(batch.item_idx.sum()))
        neg = rng.integers(0, net.item.shape[0], size=len(batch.item_idx))
        u_vec = self.user_vectors(batch.user_idx, batch.histories).requires_grad_(True)
        qi = net.item.detach()[as_long(batch.item_idx)].requires_grad_(True)
        qj = net.item.detach()[as_long(neg)].requires_grad_(True)
        sign = torch.as_tensor(np.where(batch.label > 0.5, 1.0, -1.0), dtype=torch.float32)
        w = torch.as_tensor(batch.weight, dtype=torch.float32)
        diff = (u_vec * (qi - qj)).sum(-1)
        loss = (-torch.nn.functional.logsigmoid(sign * diff) * w).sum()
        loss.backward()
        items = torch.cat([as_long(batch.item_idx), as_long(neg)])
        grads = torch.cat([qi.grad, qj.grad])  # type: ignore[list-item]
        self._item_opt.step(net.item.data, items, grads)
        known = (batch.user_idx >= 0) & (batch.user_idx < net.user.shape[0])
        if known.any():
            self._user_opt.step(net.user.data, as_long(batch.user_idx[known]), u_vec.grad[torch.as_tensor(known)])  # type: ignore[index]
        self._gram = None
        return float(loss.detach()) / max(len(w), 1)

    # ------------------------------------------------------------------ persistence
    def hyperparameters(self) -> dict[str, Any]:
        return {"dim": self.dim, "epochs": self.epochs, "lr": self.lr, "reg": self.reg, "batch_size": self.batch_size,
                "n_negatives": self.n_negatives, "fold_in_reg": self.fold_in_reg, "online_lr": self.online_lr}

    def get_state(self) -> dict[str, Any]:
        assert self.net is not None
        return {"net": {k: v.clone() for k, v in self.net.state_dict().items()},
                "n_users": self.n_users_, "n_items": self.n_items_,
                "user_opt": self._user_opt.get_state(), "item_opt": self._item_opt.get_state()}

    def set_state(self, state: dict[str, Any]) -> None:
        w = state["net"]
        self.net = MFNet(w["user"].shape[0], w["item"].shape[0], w["user"].shape[1])
        self.net.load_state_dict(w)
        self.n_users_, self.n_items_ = int(state["n_users"]), int(state["n_items"])
        self._user_opt.set_state(state["user_opt"])
        self._item_opt.set_state(state["item_opt"])
        self._gram = None
