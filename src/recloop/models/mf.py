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

The serving tables (``_factors.RecencyFactors``) and what serves them
(``RecencyFactorsModel``) are shared with ``lightgcn``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from recloop.errors import ConfigError, NotFittedError
from recloop.models._factors import (
    Recency,
    RecencyFactors,
    new_optimizers,
)
from recloop.models.base import (
    FitOptions,
    OnlineBatch,
    RecModel,
    RowAdagrad,
    TrainData,
    as_long,
    check_positive,
    seed_everything,
)
from recloop.models.configs import LightGCNConfig, MFConfig, build_config
from recloop.models.registry import register


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

    def _init_factors(self, c: MFConfig | LightGCNConfig) -> None:
        """Validate and keep the hyperparameters the subclasses share; empty online state."""
        dim, epochs, lr, reg, batch_size = c.dim, c.epochs, c.lr, c.reg, c.batch_size
        n_negatives, history_len, recency_decay = c.n_negatives, c.history_len, c.recency_decay
        patience, fold_in_reg = c.patience, c.fold_in_reg
        online_lr, online_negatives = c.online_lr, c.online_negatives
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

    def forget_users(self, user_idx: np.ndarray) -> None:
        if self.factors_ is not None and len(user_idx):
            self.factors_.forget_users(user_idx, self._opts)

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
        self._init_factors(c)

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
