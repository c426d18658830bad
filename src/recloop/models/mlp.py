"""The design document's click model: ``(user, item, behavior) -> P(click)``.

Dense 64 -> 32 with ReLU, then a sigmoid output, binary cross-entropy and Adam, as the
design document has it, but fed with learned user and item embeddings (ids are
categories, not numbers) concatenated with numeric context features that are
standardised with the training rows' mean and standard deviation.

**The click label.** On explicit ratings (a data set whose values go above 1, such as
MovieLens' 1-5 stars) a click is an interaction with ``value >= click_threshold``
(4 by default); on implicit data (every value <= 1: clicks, views, watch fractions) it
is the interaction's ``label``.

**Two outputs, so that ranking works without spoiling the click probability.** The
last layer has a second unit beside the click logit: an *exposure* logit, trained on
every observed row (1) against ``n_negatives`` uniformly drawn items (0). The click
unit learns ``P(click | the user meets the item)`` from the observed rows (the sampled
items count as non-clicks only with weight ``neg_weight``, default 0, on explicit data;
on implicit data they are its only negatives, at full weight). ``predict_proba``
answers the click unit; ``score`` ranks by ``log P(exposure) + log P(click)``, the log
probability that the user meets *and* clicks the item. On MovieLens-100K (random
80/20 split) this gets AUC 0.782 and log loss 0.557 with a sampled HR@10 of 0.52 on
the leave-last-out split, where one output with the sampled items as weighted
non-clicks traded one against the other (AUC 0.781 / HR 0.28 at weight 0.1, AUC 0.743
/ HR 0.50 at weight 1).

**Fitting.** Adam with early stopping: on the click log loss of a held-out
``valid_fraction`` of the rows when both outcomes are present, else on validation
NDCG@10.

**behavior** is the one context feature when ``TrainData.features`` is None. It is
what the design document's example got wrong (it used the rating that defines the
label, so its accuracy was 1.0); ours is known *before* the outcome: the user's share
of clicks among their earlier interactions, ``(clicks + 1) / (interactions + 2)``
over the interactions with a strictly earlier timestamp (0.5 with no history, and
shrunk towards 0.5 while the history is short);
``recloop.evaluation.click.prior_click_share`` computes it.
A caller of ``predict_proba`` passes it raw (a share in [0, 1]); ``None`` means the
training mean, which is also what ``score`` (ranking) and ``learn`` assume.

**Unknown ids.** Row 0 of each table is a learned "unknown" user / item: during
``fit`` a random ``id_dropout`` share of rows sees it instead of their id, so it
learns the average. Index -1 (or beyond the table) maps to it, and ``grow`` starts new
rows as copies of it.

The file is longer than most (about 600 lines): the click label, the feature scaling, the
two outputs and their two validations are one model's parts and read best together.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, cast

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from recloop.errors import ConfigError, InvalidInputError, NotFittedError
from recloop.evaluation.click import prior_click_share
from recloop.models.base import (
    FitOptions,
    OnlineBatch,
    RecModel,
    RowAdagrad,
    TrainData,
    as_long,
    check_positive,
    check_positive_ints,
    seed_everything,
)
from recloop.models.configs import MLPConfig, build_config
from recloop.models.registry import register
from recloop.training import TrainConfig, train
from recloop.training.validate import validation_ndcg

_MIN_STEPS = 64  # gradient steps per epoch at least: tiny data sets escape the initial plateau


def click_labels(data: TrainData, threshold: float) -> np.ndarray:
    """Click labels of ``data``'s rows (see the module docstring), float32."""
    positive = data.label > 0.5
    if len(data.value) and float(np.max(data.value)) > 1.0:
        return (positive & (data.value >= threshold)).astype(np.float32)
    return positive.astype(np.float32)


class ClickNet(nn.Module):
    """[user row, item row, features] -> 64 -> 32 -> [click, exposure] logits; row 0 is the unknown id."""

    def __init__(
        self, n_users: int, n_items: int, dim: int, n_features: int, hidden: Sequence[int]
    ) -> None:
        super().__init__()
        self.user = nn.Parameter(torch.randn(n_users + 1, dim) * 0.1)
        self.item = nn.Parameter(torch.randn(n_items + 1, dim) * 0.1)
        sizes = [2 * dim + n_features, *hidden]
        self.hidden = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:]))
        self.out = nn.Linear(sizes[-1], 2)  # [click, exposure] logits
        self.dim = dim

    def dense_parameters(self) -> list[nn.Parameter]:
        return [*self.hidden.parameters(), *self.out.parameters()]

    def linears(self) -> list[nn.Linear]:
        return cast("list[nn.Linear]", list(self.hidden))

    def logits_from(
        self, user_vec: torch.Tensor, item_vec: torch.Tensor, feats: torch.Tensor
    ) -> torch.Tensor:
        """(..., 2) click and exposure logits for broadcastable user (..., d), item (..., d),
        features (..., f)."""
        first, *rest = self.linears()
        d = self.dim
        w = first.weight
        h = user_vec @ w[:, :d].T + item_vec @ w[:, d : 2 * d].T + first.bias
        if feats.shape[-1]:
            h = h + feats @ w[:, 2 * d :].T
        h = F.relu(h)
        for lin in rest:
            h = F.relu(lin(h))
        out: torch.Tensor = self.out(h)
        return out

    def forward(
        self, u_row: torch.Tensor, i_row: torch.Tensor, feats: torch.Tensor
    ) -> torch.Tensor:
        return self.logits_from(self.user[u_row], self.item[i_row], feats)


def _numpy_click(
    net: ClickNet, u_rows: np.ndarray, i_rows: np.ndarray, feats: np.ndarray
) -> np.ndarray:
    """``sigmoid(net(u, i, feats)[:, 0])`` in numpy (float64), for a few rows."""
    first, *rest = net.linears()
    d = net.dim
    w = first.weight.detach().numpy()
    h = (
        net.user.detach().numpy()[u_rows] @ w[:, :d].T
        + net.item.detach().numpy()[i_rows] @ w[:, d : 2 * d].T
    )
    h += first.bias.detach().numpy()
    if feats.shape[-1]:
        h += feats @ w[:, 2 * d :].T
    h = np.maximum(h, 0.0)
    for lin in rest:
        h = np.maximum(h @ lin.weight.detach().numpy().T + lin.bias.detach().numpy(), 0.0)
    logit = h @ net.out.weight.detach().numpy()[0] + float(net.out.bias.detach()[0])
    out: np.ndarray = 1.0 / (1.0 + np.exp(-logit.astype(np.float64)))
    return out


@register
class ClickMLP(RecModel):
    """The click model; see the module docstring.

    Parameters
    ----------
    dim
        Size of the user and item embeddings.
    hidden
        Widths of the hidden layers (the design document's 64, 32).
    epochs, lr, batch_size, weight_decay
        Offline fitting with Adam (``weight_decay`` on every parameter).
    n_negatives, neg_weight
        Sampled unobserved items per observed row (negatives of the exposure unit), and
        their weight as non-clicks in the click unit's loss on explicit data.
    click_threshold
        A rating at or above it is a click (explicit data only).
    id_dropout
        Share of training rows that see the unknown user (and, independently, item).
    online_lr, dense_every, dense_lr
        Online: RowAdagrad rate of embedding rows; the dense layers take one Adam step
        on the gradients accumulated over ``dense_every`` calls to ``learn``.
    """

    name = "mlp"

    def __init__(self, seed: int = 0, config: MLPConfig | None = None, **overrides: Any) -> None:
        super().__init__(seed)
        self.config = c = build_config("mlp", MLPConfig, config, overrides)
        (
            dim,
            hidden,
            epochs,
            lr,
            batch_size,
            weight_decay,
            n_negatives,
            neg_weight,
            click_threshold,
            id_dropout,
            patience,
            valid_fraction,
            online_lr,
            dense_every,
            dense_lr,
        ) = (
            c.dim,
            c.hidden,
            c.epochs,
            c.lr,
            c.batch_size,
            c.weight_decay,
            c.n_negatives,
            c.neg_weight,
            c.click_threshold,
            c.id_dropout,
            c.patience,
            c.valid_fraction,
            c.online_lr,
            c.dense_every,
            c.dense_lr,
        )
        check_positive_ints(
            dim=dim,
            epochs=epochs,
            batch_size=batch_size,
            patience=patience,
            dense_every=dense_every,
        )
        hidden = tuple(int(x) for x in hidden)
        if not hidden or min(hidden) <= 0:
            raise ConfigError(f"hidden must be a non-empty list of positive widths, got {hidden!r}")
        if isinstance(n_negatives, bool) or not isinstance(n_negatives, int) or n_negatives < 0:
            raise ConfigError(f"n_negatives must be an integer >= 0, got {n_negatives!r}")
        check_positive(lr=lr, online_lr=online_lr, dense_lr=dense_lr)
        if weight_decay < 0 or neg_weight < 0:
            raise ConfigError(
                f"weight_decay and neg_weight must be >= 0, got {weight_decay}, {neg_weight}"
            )
        if not 0 <= valid_fraction < 1:
            raise ConfigError(f"valid_fraction must be in [0, 1), got {valid_fraction}")
        if not 0 <= id_dropout < 1:
            raise ConfigError(f"id_dropout must be in [0, 1), got {id_dropout}")
        self.dim, self.hidden, self.epochs, self.lr, self.batch_size = (
            dim,
            hidden,
            epochs,
            lr,
            batch_size,
        )
        self.weight_decay, self.n_negatives, self.neg_weight = weight_decay, n_negatives, neg_weight
        self.click_threshold, self.id_dropout, self.patience = (
            float(click_threshold),
            id_dropout,
            patience,
        )
        self.valid_fraction = valid_fraction
        self.online_lr, self.dense_every, self.dense_lr = online_lr, dense_every, dense_lr
        self.net: ClickNet | None = None
        self.feature_mean_ = np.zeros(0, np.float32)
        self.feature_std_ = np.ones(0, np.float32)
        self._user_opt = RowAdagrad(online_lr)
        self._item_opt = RowAdagrad(online_lr)
        self._dense_opt: torch.optim.Adam | None = None
        self._learn_calls = 0
        self._item_cache: torch.Tensor | None = None
        self.new_item_row_ = torch.zeros(dim)
        self.explicit_ = False

    # ------------------------------------------------------------------ fit
    def fit(self, data: TrainData, options: FitOptions) -> dict[str, Any]:
        rng = seed_everything(self.seed)
        self.n_users_, self.n_items_ = data.n_users, data.n_items
        self.n_fit_users_ = data.n_users
        click = click_labels(data, self.click_threshold)
        if data.features is not None:
            raw = np.asarray(data.features, np.float32).reshape(len(data.user_idx), -1)
        else:
            raw = prior_click_share(data.user_idx, data.timestamp, click)[:, None]
        self.feature_mean_ = (
            raw.mean(0).astype(np.float32) if len(raw) else np.zeros(raw.shape[1], np.float32)
        )
        std = raw.std(0).astype(np.float32) if len(raw) else np.ones(raw.shape[1], np.float32)
        self.feature_std_ = np.where(std > 1e-6, std, 1.0).astype(np.float32)
        feats = torch.from_numpy((raw - self.feature_mean_) / self.feature_std_)
        self.net = net = ClickNet(data.n_users, data.n_items, self.dim, raw.shape[1], self.hidden)
        self._reset_online()
        users, items = as_long(data.user_idx + 1), as_long(data.item_idx + 1)
        labels = torch.from_numpy(click)
        # with both outcomes present, a random share of rows is held out to stop on their
        # click log loss (the quantity this model is for); else on validation NDCG@10
        held = np.zeros(len(click), bool)
        if self.valid_fraction and 0 < click.mean() < 1:  # both outcomes present
            held = np.random.default_rng([self.seed, 1]).random(len(click)) < self.valid_fraction
        fit_rows = np.flatnonzero(~held)
        k = self.n_negatives
        n = len(fit_rows)
        bs = max(1, min(self.batch_size, -(-n // _MIN_STEPS)))
        # on explicit data unobserved items are a weak extra signal next to the observed
        # non-clicks; on implicit data they are the only negatives, at full weight
        explicit = bool(0 < click.mean() < 1)
        self.explicit_ = explicit
        neg_w = torch.full((1, k), self.neg_weight if explicit else 1.0)

        def batches(rng: np.random.Generator, epoch: int) -> Iterator[tuple[torch.Tensor, ...]]:
            order = fit_rows[rng.permutation(n)]
            for s in range(0, n, bs):
                b = torch.from_numpy(order[s : s + bs])
                u, i = users[b].clone(), items[b].clone()
                if self.id_dropout:
                    u[torch.from_numpy(rng.random(len(b)) < self.id_dropout)] = 0
                    i[torch.from_numpy(rng.random(len(b)) < self.id_dropout)] = 0
                neg = as_long(rng.integers(1, data.n_items + 1, size=(len(b), k)))
                yield u, i, neg, feats[b], labels[b]

        def loss_fn(batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
            u, i, neg, f, y = batch
            uv = net.user[u]
            lo = net.logits_from(uv, net.item[i], f)
            loss = F.binary_cross_entropy_with_logits(
                lo[:, 0], y, reduction="sum"
            ) + F.binary_cross_entropy_with_logits(lo[:, 1], torch.ones_like(y), reduction="sum")
            if k:
                nl = net.logits_from(uv.unsqueeze(1), net.item[neg], f.unsqueeze(1))
                zero = torch.zeros_like(nl[..., 0])
                loss = (
                    loss
                    + F.binary_cross_entropy_with_logits(nl[..., 1], zero, reduction="sum")
                    + F.binary_cross_entropy_with_logits(
                        nl[..., 0], zero, weight=neg_w.expand_as(zero), reduction="sum"
                    )
                )
            return loss / len(u)

        hu, hi, hf, hy = users[held], items[held], feats[held], labels[held]

        def validate_clicks() -> float:
            return -float(F.binary_cross_entropy_with_logits(net(hu, hi, hf)[:, 0], hy))

        def validate_ranking() -> float:
            self._item_cache = None
            return validation_ndcg(self, data)

        validate = (
            validate_clicks
            if held.any()
            else validate_ranking
            if len(data.valid_user_idx)
            else None
        )
        report = train(
            net,
            batches,
            loss_fn,
            TrainConfig(
                epochs=self.epochs,
                lr=self.lr,
                weight_decay=self.weight_decay,
                patience=self.patience,
                desc="mlp",
            ),
            options,
            rng,
            validate=validate,
        )
        if validate is validate_clicks:  # the loop names its metric after ranking; say what it was
            best = report.pop("best_valid_ndcg@10")
            report["best_valid_log_loss"] = None if best is None else -best
            for row in report["history"]:
                row["valid_log_loss"] = -row.pop("valid_ndcg@10")
        self._item_cache = None
        counts = np.bincount(np.asarray(data.item_idx, np.int64), minlength=data.n_items)
        rare = (
            np.flatnonzero(counts <= np.quantile(counts, 0.25))
            if len(counts)
            else np.zeros(0, np.int64)
        )
        self.new_item_row_ = (
            net.item.detach()[torch.from_numpy(rare + 1)].mean(0)
            if len(rare)
            else net.item.detach()[0].clone()
        )
        return report

    # ------------------------------------------------------------------ serving
    def _rows(self, idx: np.ndarray, table: torch.Tensor) -> torch.Tensor:
        """Table rows of indices: idx + 1, or 0 (unknown) for -1 and out-of-table."""
        x = np.asarray(idx, np.int64).reshape(-1)
        ok = (x >= 0) & (x < table.shape[0] - 1)
        return as_long(np.where(ok, x + 1, 0))

    def _features(self, features: np.ndarray | None, n: int) -> torch.Tensor:
        f = len(self.feature_mean_)
        if features is None:
            return torch.zeros(n, f)
        arr = (
            np.asarray(features, np.float32).reshape(n, -1) if np.size(features) == n * f else None
        )
        if arr is None or arr.shape[1] != f:
            raise InvalidInputError(
                "features", f"must have shape ({n}, {f}), got {np.shape(features)}"
            )
        if not np.all(np.isfinite(arr)):
            raise InvalidInputError("features", "must be finite numbers")
        return torch.from_numpy((arr - self.feature_mean_) / self.feature_std_)

    def predict_proba(
        self, user_idx: np.ndarray, item_idx: np.ndarray, features: np.ndarray | None
    ) -> np.ndarray:
        """P(click) for each (user, item) pair given request-time ``features`` (n, f) or None.

        ``features`` are raw values (``behavior``: a click share in [0, 1]); None means
        their training mean. Index -1 is an unknown user / item. Returns (n,) float64 in [0, 1].
        """
        if self.net is None:
            raise NotFittedError("mlp is not fitted")
        net = self.net
        u = self._rows(user_idx, net.user)
        i = self._rows(item_idx, net.item)
        if len(u) != len(i):
            raise InvalidInputError(
                "item_idx", f"must have as many entries as user_idx ({len(u)}), got {len(i)}"
            )
        feats = self._features(features, len(u))
        if (
            len(u) <= 16
        ):  # a request's worth: the same layers in numpy, without torch's per-operation overhead
            p = _numpy_click(net, u.numpy(), i.numpy(), feats.numpy())
        else:
            with torch.no_grad():
                p = torch.sigmoid(net(u, i, feats)[:, 0]).double().numpy()
        return cast(np.ndarray, np.clip(p, 0.0, 1.0))

    def score(self, user_idx: np.ndarray, histories: Sequence[np.ndarray]) -> np.ndarray:
        """Click logits of every item, features at their training mean; unknown users use row 0."""
        if self.net is None:
            raise NotFittedError("mlp is not fitted")
        net = self.net
        with torch.no_grad():
            first, *rest = net.linears()
            d = self.dim
            if self._item_cache is None:
                self._item_cache = net.item.detach()[1:] @ first.weight[:, d : 2 * d].T + first.bias
            uproj = net.user.detach()[self._rows(user_idx, net.user)] @ first.weight[:, :d].T
            out = np.empty((len(uproj), self._item_cache.shape[0]), np.float32)
            for s in range(0, len(uproj), 64):
                h = F.relu(self._item_cache.unsqueeze(0) + uproj[s : s + 64].unsqueeze(1))
                for lin in rest:
                    h = F.relu(lin(h))
                lo = net.out(h)
                out[s : s + len(h)] = (F.logsigmoid(lo[..., 0]) + F.logsigmoid(lo[..., 1])).numpy()
            return out

    def can_personalise(self, user_idx: np.ndarray, histories: Sequence[np.ndarray]) -> np.ndarray:
        """Only users with a row from ``fit``: a row grown online from a few events ranks
        worse than the engine's popularity (replay: 0.039 vs 0.073 HR@10)."""
        return np.asarray(user_idx) < getattr(self, "n_fit_users_", self.n_users_)

    # ------------------------------------------------------------------ online
    def _reset_online(self) -> None:
        self._user_opt = RowAdagrad(self.online_lr)
        self._item_opt = RowAdagrad(self.online_lr)
        self._dense_opt = None
        self._learn_calls = 0

    def grow(self, n_users: int, n_items: int) -> None:
        """New users start as copies of the learned unknown user. New items start near the
        mean row of the rarest quarter of the fitted items, with a little noise: an item
        nobody has met yet should not outrank what the user is known to meet (as copies of
        the unknown, average item, they cost the replay HR@10 0.0741 -> 0.0717), and
        ``learn`` moves a row once users meet it."""
        super().grow(n_users, n_items)
        if self.net is None:
            return
        w = self.net.user.detach()
        if n_users + 1 > w.shape[0]:
            self.net.user = nn.Parameter(
                torch.cat([w, w[:1].expand(n_users + 1 - w.shape[0], -1)], 0)
            )
        w = self.net.item.detach()
        if n_items + 1 > w.shape[0]:
            g = torch.Generator().manual_seed(self.seed * 7919 + n_items)
            extra = (
                self.new_item_row_
                + torch.randn(n_items + 1 - w.shape[0], self.dim, generator=g) * 0.01
            )
            self.net.item = nn.Parameter(torch.cat([w, extra], 0))
        self._item_cache = None

    def learn(self, batch: OnlineBatch) -> float:
        """BCE on the events (label from ``batch.label``) and ``n_negatives`` sampled items each.

        Touched user and item rows move with RowAdagrad (the unknown row 0 too, when an
        id has no row); the dense layers step every ``dense_every`` calls.
        """
        if self.net is None or len(batch.user_idx) == 0:
            return 0.0
        net = self.net
        self._learn_calls += 1
        n = len(batch.user_idx)
        rng = np.random.default_rng([self.seed, self._learn_calls])
        u = self._rows(batch.user_idx, net.user)
        i = self._rows(batch.item_idx, net.item)
        k = self.n_negatives
        neg = as_long(rng.integers(1, net.item.shape[0], size=(n, k)))
        f = self._features(batch.features, n)
        uv = net.user.detach()[u].requires_grad_(True)
        iv = net.item.detach()[i].requires_grad_(True)
        nv = net.item.detach()[neg].requires_grad_(True)
        y = torch.as_tensor(batch.label, dtype=torch.float32)
        w = torch.as_tensor(batch.weight, dtype=torch.float32)
        lo = net.logits_from(uv, iv, f)
        loss = F.binary_cross_entropy_with_logits(
            lo[:, 0], y, weight=w, reduction="sum"
        ) + F.binary_cross_entropy_with_logits(
            lo[:, 1], torch.ones_like(y), weight=w, reduction="sum"
        )
        if k:
            nl = net.logits_from(uv.unsqueeze(1), nv, f.unsqueeze(1))
            zero = torch.zeros_like(nl[..., 0])
            loss = (
                loss
                + F.binary_cross_entropy_with_logits(nl[..., 1], zero, reduction="sum")
                + F.binary_cross_entropy_with_logits(nl[..., 0], zero, reduction="sum")
                * (self.neg_weight if self.explicit_ else 1.0)
            )
        loss.backward()  # type: ignore[no-untyped-call]
        self._user_opt.step(net.user.data, u, uv.grad)  # type: ignore[arg-type]
        self._item_opt.step(
            net.item.data,
            torch.cat([i, neg.reshape(-1)]),
            torch.cat([iv.grad, nv.grad.reshape(-1, self.dim)]),  # type: ignore[union-attr, list-item]
        )
        if self._learn_calls % self.dense_every == 0:
            if self._dense_opt is None:
                self._dense_opt = torch.optim.Adam(net.dense_parameters(), lr=self.dense_lr)
            self._dense_opt.step()
            self._dense_opt.zero_grad(set_to_none=True)
        self._item_cache = None
        return float(loss.detach()) / n

    # ------------------------------------------------------------------ persistence

    def get_state(self) -> dict[str, Any]:
        if self.net is None:
            raise NotFittedError("mlp is not fitted")
        net = self.net
        return {
            "net": {k: v.detach().clone() for k, v in net.state_dict().items()},
            "n_users": self.n_users_,
            "n_items": self.n_items_,
            "feature_mean": torch.from_numpy(self.feature_mean_.copy()),
            "feature_std": torch.from_numpy(self.feature_std_.copy()),
            "user_opt": self._user_opt.get_state(),
            "item_opt": self._item_opt.get_state(),
            "dense_opt": None if self._dense_opt is None else self._dense_opt.state_dict(),
            "dense_grads": [
                torch.zeros_like(p) if p.grad is None else p.grad.clone()
                for p in net.dense_parameters()
            ],
            "learn_calls": self._learn_calls,
            "explicit": self.explicit_,
            "n_fit_users": self.n_fit_users_,
            "new_item_row": self.new_item_row_.clone(),
        }

    def set_state(self, state: dict[str, Any]) -> None:
        w = state["net"]
        mean = np.asarray(state["feature_mean"], np.float32)
        self.net = net = ClickNet(
            w["user"].shape[0] - 1,
            w["item"].shape[0] - 1,
            w["user"].shape[1],
            len(mean),
            [w[f"hidden.{j}.weight"].shape[0] for j in range(len(self.hidden))],
        )
        net.load_state_dict(w)
        self.n_users_, self.n_items_ = int(state["n_users"]), int(state["n_items"])
        self.n_fit_users_ = int(state.get("n_fit_users", self.n_users_))
        self.new_item_row_ = (
            state["new_item_row"].clone()
            if "new_item_row" in state
            else net.item.detach()[0].clone()
        )
        self.feature_mean_ = mean
        self.feature_std_ = np.asarray(state["feature_std"], np.float32)
        self._user_opt.set_state(state["user_opt"])
        self._item_opt.set_state(state["item_opt"])
        self._learn_calls = int(state["learn_calls"])
        self.explicit_ = bool(state["explicit"])
        self._dense_opt = None
        if state.get("dense_opt") is not None:
            self._dense_opt = torch.optim.Adam(net.dense_parameters(), lr=self.dense_lr)
            self._dense_opt.load_state_dict(state["dense_opt"])
        for p, g in zip(net.dense_parameters(), state.get("dense_grads", [])):
            p.grad = g.clone() if bool(g.any()) else None
        self._item_cache = None
