"""LightGCN (He et al. 2020) trained with BPR, with a recency-aware user state.

Ego embeddings of users and items are smoothed over the normalised user-item graph
``A_hat = D^-1/2 A D^-1/2`` for ``layers`` propagation steps and averaged over layers;
no feature transforms, no non-linearities. As in ``mf``, the user's vector at request
time adds a recency context (a decayed sum of context vectors of their last items),
learned jointly with BPR, because the next item a user rates is tied to the last few.

After fitting, the propagated embeddings are computed once and become the *serving
tables* (``RecencyFactors``): scoring is one dot product per item, online ``learn``
updates their touched rows with row-wise Adagrad, and ``grow`` appends rows. A refit
propagates again. Users without a trained row are folded in over the propagated item
embeddings.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import torch
from torch import nn

from recloop.models._factors import Recency, RecencyFactors, new_optimizers
from recloop.models.base import (
    FitOptions,
    TrainData,
    check_positive,
    seed_everything,
)
from recloop.models.configs import LightGCNConfig, build_config
from recloop.models.mf import RecencyFactorsModel
from recloop.models.registry import register


class _SymmetricSpMM(torch.autograd.Function):
    """``adj @ x`` for a symmetric sparse ``adj``; the backward is ``adj @ grad``.

    torch's own backward for sparse CSR products transposes ``adj`` at every step
    (3-4x slower on CPU); symmetry makes that unnecessary.
    """

    @staticmethod
    def forward(ctx: Any, adj: torch.Tensor, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        ctx.adj = adj
        out: torch.Tensor = torch.sparse.mm(adj, x)
        return out

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[None, torch.Tensor]:  # noqa: D102
        return None, torch.sparse.mm(ctx.adj, grad)


def normalized_adjacency(
    users: np.ndarray, items: np.ndarray, n_users: int, n_items: int
) -> torch.Tensor:
    """(n_users + n_items, n_users + n_items) sparse CSR ``D^-1/2 A D^-1/2`` of the
    bipartite graph (repeated pairs count once)."""
    n = n_users + n_items
    pairs = (
        np.unique(np.stack([users, items], 1), axis=0) if len(users) else np.zeros((0, 2), np.int64)
    )
    rows = np.concatenate([pairs[:, 0], n_users + pairs[:, 1]])
    cols = np.concatenate([n_users + pairs[:, 1], pairs[:, 0]])
    deg = np.bincount(rows, minlength=n).astype(np.float64)
    d_inv = 1.0 / np.sqrt(np.maximum(deg, 1.0))
    vals = torch.from_numpy((d_inv[rows] * d_inv[cols]).astype(np.float32))
    with torch.sparse.check_sparse_tensor_invariants(True):  # type: ignore[no-untyped-call]
        coo = torch.sparse_coo_tensor(
            torch.from_numpy(np.stack([rows, cols])), vals, (n, n)
        ).coalesce()
    with (
        warnings.catch_warnings()
    ):  # "sparse CSR support is in beta": sparse.mm on CSR is stable enough here
        warnings.simplefilter("ignore", UserWarning)
        return coo.to_sparse_csr()


class LightGCNNet(nn.Module):
    """Training module: ego embeddings of users and items, and item context rows."""

    def __init__(
        self, n_users: int, n_items: int, dim: int, layers: int, adj: torch.Tensor
    ) -> None:
        super().__init__()
        self.n_users, self.layers, self.adj = n_users, layers, adj
        self.user = nn.Parameter(torch.randn(n_users, dim) * 0.1)
        self.item = nn.Parameter(torch.randn(n_items, dim) * 0.1)
        self.context = nn.Parameter(torch.randn(n_items, dim) * 0.01)

    def forward(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Propagated user (n_users, d) and item (n_items, d) embeddings: the mean over layers."""
        e = torch.cat([self.user, self.item])
        total = e
        for _ in range(self.layers):
            e = _SymmetricSpMM.apply(self.adj, e)  # type: ignore[no-untyped-call]
            total = total + e
        total = total / (self.layers + 1)
        return total[: self.n_users], total[self.n_users :]


@register
class LightGCN(RecencyFactorsModel):
    """LightGCN with BPR and a recency context (see the module docstring).

    Parameters
    ----------
    dim, layers : embedding size; propagation steps
    epochs, patience : most epochs; validations without improvement before stopping
    lr, reg : Adam learning rate; L2 weight on the batch's ego embeddings (the paper's)
    batch_size, n_negatives : positives per step (one propagation each); uniform negatives per positive
    history_len, recency_decay : the recency context's window and per-step decay
    fold_in_reg : ridge weight of the fold-in for users without a trained row
    online_lr, online_negatives : row-wise Adagrad rate (0: no online parameter steps) and
        negatives per event online
    """

    name = "lightgcn"

    def __init__(
        self, seed: int = 0, config: LightGCNConfig | None = None, **overrides: Any
    ) -> None:
        super().__init__(seed)
        self.config = c = build_config("lightgcn", LightGCNConfig, config, overrides)
        check_positive(layers=c.layers)
        self.layers = c.layers
        self._init_factors(c)

    # ------------------------------------------------------------------ fit
    def fit(self, data: TrainData, options: FitOptions) -> dict[str, Any]:
        from recloop.training import TrainConfig, bpr_loss, train
        from recloop.training.validate import validation_ndcg

        rng = seed_everything(self.seed)
        self.n_users_, self.n_items_ = data.n_users, data.n_items
        pos = data.positives
        users, items = data.user_idx[pos], data.item_idx[pos]
        adj = normalized_adjacency(users, items, data.n_users, data.n_items)
        net = LightGCNNet(data.n_users, data.n_items, self.dim, self.layers, adj)
        batches = self._bpr_batches(users, items, data.n_items)
        self._opts = new_optimizers(self.online_lr)
        self._steps = 0

        def loss_fn(batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
            u, i, j, ci, cw = batch
            user_final, item_final = net()
            state = user_final[u] + Recency.embed(net.context, ci, cw)
            pos_s = (state * item_final[i]).sum(-1)
            neg_s = torch.einsum("bd,bnd->bn", state, item_final[j])
            ego = (
                net.user[u].pow(2).sum()
                + net.item[i].pow(2).sum()
                + net.item[j].pow(2).sum() / self.n_negatives
            )
            return bpr_loss(pos_s, neg_s) + self.reg * ego / (2 * len(u))

        def refresh() -> None:
            with torch.no_grad():
                user_final, item_final = net()
            self.factors_ = RecencyFactors(
                user_final,
                item_final,
                net.context.detach().clone(),
                None,
                data.n_users,
                self.recency,
                self.fold_in_reg,
            )

        def validate() -> float:
            refresh()
            return validation_ndcg(self, data)

        report = train(
            net,
            batches,
            loss_fn,
            TrainConfig(epochs=self.epochs, lr=self.lr, patience=self.patience, desc="lightgcn"),
            options,
            rng,
            validate=validate if len(data.valid_user_idx) else None,
        )
        refresh()
        return report

    # ------------------------------------------------------------------ persistence
