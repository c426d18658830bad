"""Neural collaborative filtering: NeuMF (He et al. 2017), GMF and MLP towers fused.

``logit(u, i) = h_g . (p_u * q_i) + h_m . MLP([p'_u, q'_i]) + b + b_i``

The GMF tower is a weighted dot product of one pair of embeddings, the MLP tower a
ReLU stack over a second, separate pair; a linear layer over both towers' last
vectors fuses them. Trained with binary cross-entropy on each positive and
``n_negatives`` uniformly sampled items, Adam, early stopping on validation NDCG@10.
With ``pretrain`` the two towers are first fitted alone and the fused model starts
from them (the paper's recipe); the default skips it, since on MovieLens-100K it
costs twice the time for no measured gain.

Scoring one user over every item is vectorised: the item half of the MLP's first
layer is cached per item, so a request costs one (n_items, layers[0]) add plus the
remaining small layers.

Users without a trained row (``user_idx`` -1, or a row added by ``grow`` after
``fit``) are *folded in*: a few Adam steps fit their two user vectors to their
history (positives) against sampled items, with every other parameter frozen and an
L2 pull towards the start point (their grown row, else the mean trained user). The
result is cached per (user, history) until a parameter changes. An empty history
scores as the mean user.
"""
from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from recloop.models.base import (FitOptions, OnlineBatch, RecModel, RowAdagrad, TrainData, as_long, grow_rows,
                                 seed_everything)
from recloop.models.registry import register

Mode = Literal["gmf", "mlp", "neumf"]
_SCORE_CHUNK = 64  # users per scoring chunk: bounds the (chunk, n_items, layers[0]) activation


class NeuMFNet(nn.Module):
    """The two towers and their fusion; ``mode`` switches a tower off for pretraining."""

    def __init__(self, n_users: int, n_items: int, gmf_dim: int, mlp_dim: int, layers: Sequence[int]) -> None:
        super().__init__()
        self.gmf_user = nn.Parameter(torch.randn(n_users, gmf_dim) * 0.01)
        self.gmf_item = nn.Parameter(torch.randn(n_items, gmf_dim) * 0.01)
        self.mlp_user = nn.Parameter(torch.randn(n_users, mlp_dim) * 0.01)
        self.mlp_item = nn.Parameter(torch.randn(n_items, mlp_dim) * 0.01)
        self.item_bias = nn.Parameter(torch.zeros(n_items))
        sizes = [2 * mlp_dim, *layers]
        self.mlp = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:]))
        for lin in self.mlp:
            nn.init.xavier_uniform_(lin.weight)
            nn.init.zeros_(lin.bias)
        self.h_gmf = nn.Parameter(torch.full((gmf_dim,), 1.0 / gmf_dim ** 0.5))
        self.h_mlp = nn.Parameter(torch.full((sizes[-1],), 1.0 / sizes[-1] ** 0.5))
        self.bias = nn.Parameter(torch.zeros(()))
        self.mode: Mode = "neumf"

    def dense_parameters(self) -> list[nn.Parameter]:
        """Every parameter that is not an embedding-table row."""
        return [*self.mlp.parameters(), self.h_gmf, self.h_mlp, self.bias]

    def logits(self, gu: torch.Tensor, mu: torch.Tensor, i: torch.Tensor) -> torch.Tensor:
        """Logits for user vectors ``gu``, ``mu`` (..., d) against items ``i`` (...)."""
        out = self.bias + self.item_bias[i]
        if self.mode != "mlp":
            out = out + (gu * self.gmf_item[i]) @ self.h_gmf
        if self.mode != "gmf":
            mi = self.mlp_item[i]
            h = torch.cat([mu.expand(*mi.shape[:-1], mu.shape[-1]), mi], -1)
            for lin in self.mlp:
                h = F.relu(lin(h))
            out = out + h @ self.h_mlp
        return out

    def forward(self, u: torch.Tensor, i: torch.Tensor) -> torch.Tensor:
        """Logits of users ``u`` (b,) for items ``i`` (b,) or (b, m)."""
        gu, mu = self.gmf_user[u], self.mlp_user[u]
        if i.dim() == 2:
            gu, mu = gu.unsqueeze(1), mu.unsqueeze(1)
        return self.logits(gu, mu, i)


@register
class NeuMF(RecModel):
    """NeuMF; see the module docstring for scoring new users and online learning.

    Parameters
    ----------
    gmf_dim, mlp_dim
        Embedding sizes of the GMF tower and of each side of the MLP tower.
    layers
        Widths of the MLP tower's hidden layers.
    epochs, lr, batch_size, n_negatives, reg
        Offline fitting: Adam learning rate, positives per batch, sampled negatives per
        positive, L2 on the embedding rows of a batch.
    pretrain, pretrain_epochs, alpha
        Fit GMF alone and MLP alone first, then fuse them (``alpha`` weighs GMF).
    fold_in_steps, fold_in_lr, fold_in_reg
        Fold-in of users without a trained row.
    online_lr, dense_every, dense_lr
        Online: RowAdagrad rate of embedding rows; the dense layers take one Adam step
        (rate ``dense_lr``) on the gradients accumulated over ``dense_every`` calls.
    """

    name = "neumf"

    def __init__(self, seed: int = 0, gmf_dim: int = 32, mlp_dim: int = 32, layers: Sequence[int] = (64, 32, 16),
                 epochs: int = 30, lr: float = 2e-3, batch_size: int = 1024, n_negatives: int = 4, reg: float = 0.0,
                 pretrain: bool = False, pretrain_epochs: int = 10, alpha: float = 0.5,
                 fold_in_steps: int = 20, fold_in_lr: float = 0.05, fold_in_reg: float = 0.01,
                 online_lr: float = 0.05, dense_every: int = 16, dense_lr: float = 1e-4) -> None:
        super().__init__(seed)
        for nm, v in (("gmf_dim", gmf_dim), ("mlp_dim", mlp_dim), ("epochs", epochs), ("batch_size", batch_size),
                      ("n_negatives", n_negatives), ("pretrain_epochs", pretrain_epochs), ("dense_every", dense_every)):
            if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
                raise ValueError(f"{nm} must be a positive integer, got {v!r}")
        layers = tuple(int(x) for x in layers)
        if not layers or min(layers) <= 0:
            raise ValueError(f"layers must be a non-empty list of positive widths, got {layers!r}")
        for nm, f in (("lr", lr), ("online_lr", online_lr), ("dense_lr", dense_lr), ("fold_in_lr", fold_in_lr)):
            if not f > 0:
                raise ValueError(f"{nm} must be positive, got {f!r}")
        if reg < 0 or fold_in_reg < 0 or fold_in_steps < 0:
            raise ValueError(f"reg, fold_in_reg and fold_in_steps must be >= 0, got {reg}, {fold_in_reg}, {fold_in_steps}")
        if not 0 <= alpha <= 1:
            raise ValueError(f"alpha must be in [0, 1], got {alpha}")
        self.gmf_dim, self.mlp_dim, self.layers = gmf_dim, mlp_dim, layers
        self.epochs, self.lr, self.batch_size, self.n_negatives, self.reg = epochs, lr, batch_size, n_negatives, reg
        self.pretrain, self.pretrain_epochs, self.alpha = bool(pretrain), pretrain_epochs, alpha
        self.fold_in_steps, self.fold_in_lr, self.fold_in_reg = fold_in_steps, fold_in_lr, fold_in_reg
        self.online_lr, self.dense_every, self.dense_lr = online_lr, dense_every, dense_lr
        self.net: NeuMFNet | None = None
        self.n_trained_users_ = 0
        self._row_opts = {k: RowAdagrad(online_lr) for k in ("gmf_user", "mlp_user", "gmf_item", "mlp_item", "item_bias")}
        self._dense_opt: torch.optim.Adam | None = None
        self._learn_calls = 0
        self._item_cache: tuple[torch.Tensor, torch.Tensor] | None = None
        self._fold_cache: dict[tuple[int, int, int, int], tuple[torch.Tensor, torch.Tensor]] = {}

    # ------------------------------------------------------------------ fit
    def fit(self, data: TrainData, options: FitOptions) -> dict[str, Any]:
        from recloop.training import TrainConfig, train
        from recloop.training.validate import validation_ndcg

        rng = seed_everything(self.seed)
        self.n_users_, self.n_items_ = data.n_users, data.n_items
        self.n_trained_users_ = data.n_users
        self.net = net = NeuMFNet(data.n_users, data.n_items, self.gmf_dim, self.mlp_dim, self.layers)
        self._reset_online()
        pos = data.positives
        users, items = data.user_idx[pos], data.item_idx[pos]
        # tiny data sets still get a few steps per epoch
        bs = max(1, min(self.batch_size, -(-len(users) // 16)))
        k = self.n_negatives

        def batches(rng: np.random.Generator, epoch: int) -> Iterator[tuple[torch.Tensor, ...]]:
            order = rng.permutation(len(users))
            for s in range(0, len(order), bs):
                b = order[s:s + bs]
                neg = rng.integers(0, data.n_items, size=(len(b), k))
                yield as_long(users[b]), as_long(np.concatenate([items[b, None], neg], 1))

        labels = torch.zeros(1, 1 + k)
        labels[0, 0] = 1.0
        pos_w = torch.ones(1, 1 + k)
        pos_w[0, 0] = float(k)  # positives and negatives weigh alike in the loss

        def loss_fn(batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
            u, it = batch
            logit = net(u, it)
            loss = F.binary_cross_entropy_with_logits(logit, labels.expand_as(logit), weight=pos_w.expand_as(logit))
            if self.reg:
                loss = loss + self.reg * (net.gmf_user[u].pow(2).sum() + net.mlp_user[u].pow(2).sum()
                                          + net.gmf_item[it].pow(2).sum() + net.mlp_item[it].pow(2).sum()) / len(u)
            return loss

        def validate() -> float:
            self._invalidate()
            return validation_ndcg(self, data)

        has_valid = len(data.valid_user_idx) > 0
        report: dict[str, Any] = {}
        stages: list[tuple[Mode, int, float]] = [("neumf", self.epochs, self.lr)]
        if self.pretrain:
            stages = [("gmf", self.pretrain_epochs, self.lr), ("mlp", self.pretrain_epochs, self.lr),
                      ("neumf", self.epochs, self.lr / 2)]
        for mode, epochs, lr in stages:
            net.mode = mode
            if mode == "neumf" and self.pretrain:
                with torch.no_grad():
                    net.h_gmf.mul_(self.alpha)
                    net.h_mlp.mul_(1 - self.alpha)
            params = [p for n, p in net.named_parameters()
                      if not (mode == "gmf" and (n.startswith("mlp") or n == "h_mlp"))
                      and not (mode == "mlp" and (n.startswith("gmf") or n == "h_gmf"))]
            stage_opts = options if mode == "neumf" else FitOptions(None, options.show_progress, options.threads)
            rep = train(net, batches, loss_fn, TrainConfig(epochs=epochs, lr=lr, patience=3, desc=f"neumf/{mode}"),
                        stage_opts, rng, validate=validate if has_valid else None,
                        optimizer=torch.optim.Adam(params, lr=lr))
            if mode != "neumf":
                report[f"pretrain_{mode}"] = {k2: rep[k2] for k2 in ("epochs_run", "best_epoch", "best_valid_ndcg@10")}
            else:
                report = {**rep, **report}
        self._invalidate()
        return report

    # ------------------------------------------------------------------ scoring
    def _invalidate(self) -> None:
        self._item_cache = None
        self._fold_cache.clear()

    def _items(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Cached per-item part of the score: (n_items, gmf_dim) GMF rows and the MLP's
        first-layer pre-activation from the item side plus its bias, (n_items, layers[0])."""
        if self._item_cache is None:
            assert self.net is not None
            net = self.net
            first = net.mlp[0]
            with torch.no_grad():
                proj = net.mlp_item.detach() @ first.weight[:, self.mlp_dim:].T + first.bias
            self._item_cache = (net.gmf_item.detach(), proj)
        return self._item_cache

    def user_vectors(self, user_idx: np.ndarray, histories: Sequence[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
        """(batch, gmf_dim) and (batch, mlp_dim) user vectors: trained rows, else folded in."""
        assert self.net is not None
        net = self.net
        u = np.asarray(user_idx, np.int64)
        gu = torch.empty(len(u), self.gmf_dim)
        mu = torch.empty(len(u), self.mlp_dim)
        trained = (u >= 0) & (u < self.n_trained_users_)
        if trained.any():
            rows = as_long(u[trained])
            m = torch.as_tensor(trained)
            gu[m], mu[m] = net.gmf_user.detach()[rows], net.mlp_user.detach()[rows]
        for r in np.flatnonzero(~trained):
            gu[r], mu[r] = self._fold_in(int(u[r]), np.asarray(histories[r], np.int64))
        return gu, mu

    def _fold_in(self, uidx: int, history: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        assert self.net is not None
        net = self.net
        history = history[(history >= 0) & (history < net.gmf_item.shape[0])][-200:]
        key = (uidx, len(history), int(history[-1]) if len(history) else -1, int(history.sum()))
        hit = self._fold_cache.get(key)
        if hit is not None:
            return hit
        if 0 <= uidx < net.gmf_user.shape[0]:
            g0, m0 = net.gmf_user.detach()[uidx], net.mlp_user.detach()[uidx]
        else:
            n = max(self.n_trained_users_, 1)
            g0, m0 = net.gmf_user.detach()[:n].mean(0), net.mlp_user.detach()[:n].mean(0)
        if len(history) == 0 or self.fold_in_steps == 0:
            out = (g0.clone(), m0.clone())
        else:
            rng = np.random.default_rng([self.seed, len(history), int(history[-1])])
            k = self.n_negatives
            it = as_long(np.concatenate([history[:, None], rng.integers(0, net.gmf_item.shape[0], (len(history), k))], 1))
            target = torch.zeros(len(history), 1 + k)
            target[:, 0] = 1.0
            w = torch.ones(1, 1 + k)
            w[0, 0] = float(k)
            g = g0.clone().requires_grad_(True)
            m = m0.clone().requires_grad_(True)
            opt = torch.optim.Adam([g, m], lr=self.fold_in_lr)
            with torch.enable_grad():
                for _ in range(self.fold_in_steps):
                    opt.zero_grad(set_to_none=True)
                    logit = net.logits(g.expand(len(history), 1, -1), m.expand(len(history), 1, -1), it)
                    loss = F.binary_cross_entropy_with_logits(logit, target, weight=w.expand_as(logit))
                    loss = loss + self.fold_in_reg * ((g - g0).pow(2).sum() + (m - m0).pow(2).sum())
                    loss.backward()
                    opt.step()
            for p in net.parameters():
                p.grad = None
            out = (g.detach(), m.detach())
        if len(self._fold_cache) > 10_000:
            self._fold_cache.clear()
        self._fold_cache[key] = out
        return out

    def score(self, user_idx: np.ndarray, histories: Sequence[np.ndarray]) -> np.ndarray:
        if self.net is None:
            raise RuntimeError("neumf is not fitted")
        net = self.net
        with torch.no_grad():
            gu, mu = self.user_vectors(user_idx, histories)
            q, proj = self._items()
            w1u = net.mlp[0].weight[:, : self.mlp_dim]
            base = net.item_bias.detach() + net.bias.detach()
            out = np.empty((len(gu), q.shape[0]), np.float32)
            for s in range(0, len(gu), _SCORE_CHUNK):
                g, m = gu[s:s + _SCORE_CHUNK], mu[s:s + _SCORE_CHUNK]
                logit = base.expand(len(g), -1).clone()
                if net.mode != "mlp":
                    logit += (g * net.h_gmf) @ q.T
                if net.mode != "gmf":
                    h = F.relu(proj.unsqueeze(0) + (m @ w1u.T).unsqueeze(1))
                    for lin in net.mlp[1:]:
                        h = F.relu(lin(h))
                    logit += h @ net.h_mlp
                out[s:s + len(g)] = logit.numpy()
            return out

    # ------------------------------------------------------------------ online
    def _reset_online(self) -> None:
        self._row_opts = {k: RowAdagrad(self.online_lr) for k in self._row_opts}
        self._dense_opt = None
        self._learn_calls = 0

    def grow(self, n_users: int, n_items: int) -> None:
        super().grow(n_users, n_items)
        net = self.net
        if net is None:
            return
        g = torch.Generator().manual_seed(self.seed + n_users + 7919 * n_items)
        changed = False
        if n_users > net.gmf_user.shape[0]:
            # a new user starts as the mean trained user (fold-in refines it per request)
            n = max(self.n_trained_users_, 1)
            for nm in ("gmf_user", "mlp_user"):
                w = getattr(net, nm)
                new = grow_rows(w[:n], n_users - w.shape[0] + n, 0.0, g, mean_row=True)[n:]
                setattr(net, nm, nn.Parameter(torch.cat([w.detach(), new], 0)))
            changed = True
        if n_items > net.gmf_item.shape[0]:
            for nm in ("gmf_item", "mlp_item"):
                setattr(net, nm, nn.Parameter(grow_rows(getattr(net, nm), n_items, 0.01, g)))
            b = net.item_bias.detach()
            net.item_bias = nn.Parameter(torch.cat([b, torch.full((n_items - len(b),), float(b.mean()) if len(b) else 0.0)]))
            changed = True
        if changed:
            self._invalidate()

    def learn(self, batch: OnlineBatch) -> float:
        """BCE step on the events and ``n_negatives`` sampled items each.

        Touched user rows (those in the table) and item rows move with RowAdagrad; the
        dense layers accumulate gradients and take an Adam step every ``dense_every`` calls.
        """
        if self.net is None or len(batch.user_idx) == 0:
            return 0.0
        net = self.net
        self._learn_calls += 1
        n_items = net.gmf_item.shape[0]
        u = np.asarray(batch.user_idx, np.int64)
        items = np.asarray(batch.item_idx, np.int64)
        rng = np.random.default_rng([self.seed, self._learn_calls])
        k = self.n_negatives
        it = np.concatenate([items[:, None], rng.integers(0, n_items, (len(items), k))], 1)
        in_table = (u >= 0) & (u < net.gmf_user.shape[0])
        # learn on the rows themselves (grown users too); a user with no row at all
        # contributes through its folded-in vector, which nothing stores
        gu = torch.empty(len(u), self.gmf_dim)
        mu = torch.empty(len(u), self.mlp_dim)
        with torch.no_grad():
            if in_table.any():
                m = torch.as_tensor(in_table)
                gu[m] = net.gmf_user.detach()[as_long(u[in_table])]
                mu[m] = net.mlp_user.detach()[as_long(u[in_table])]
            for r in np.flatnonzero(~in_table):
                gu[r], mu[r] = self._fold_in(-1, np.asarray(batch.histories[r], np.int64))
        gu.requires_grad_(True)
        mu.requires_grad_(True)
        it_t = as_long(it)
        tables = {nm: getattr(net, nm).detach()[it_t].requires_grad_(True) for nm in ("gmf_item", "mlp_item", "item_bias")}
        logit = net.bias + tables["item_bias"]
        logit = logit + (gu.unsqueeze(1) * tables["gmf_item"]) @ net.h_gmf
        h = torch.cat([mu.unsqueeze(1).expand(-1, 1 + k, -1), tables["mlp_item"]], -1)
        for lin in net.mlp:
            h = F.relu(lin(h))
        logit = logit + h @ net.h_mlp
        target = torch.zeros_like(logit)
        target[:, 0] = torch.as_tensor(batch.label, dtype=torch.float32)
        w = torch.ones_like(logit)
        w[:, 0] = float(k)
        w = w * torch.as_tensor(batch.weight, dtype=torch.float32).unsqueeze(1)
        loss = F.binary_cross_entropy_with_logits(logit, target, weight=w, reduction="sum") / (2 * k)
        loss.backward()
        flat = it_t.reshape(-1)
        for nm, t in tables.items():
            grad = t.grad.reshape(len(flat), -1)  # type: ignore[union-attr]
            target_w = getattr(net, nm).data
            self._row_opts[nm].step(target_w if target_w.dim() == 2 else target_w.unsqueeze(1), flat, grad)
        if in_table.any():
            rows = as_long(u[in_table])
            m = torch.as_tensor(in_table)
            self._row_opts["gmf_user"].step(net.gmf_user.data, rows, gu.grad[m])  # type: ignore[index]
            self._row_opts["mlp_user"].step(net.mlp_user.data, rows, mu.grad[m])  # type: ignore[index]
        if self._learn_calls % self.dense_every == 0:
            if self._dense_opt is None:
                self._dense_opt = torch.optim.Adam(net.dense_parameters(), lr=self.dense_lr)
            self._dense_opt.step()
            self._dense_opt.zero_grad(set_to_none=True)
        self._invalidate()
        return float(loss.detach()) / max(len(u), 1)

    # ------------------------------------------------------------------ persistence
    def hyperparameters(self) -> dict[str, Any]:
        return {"gmf_dim": self.gmf_dim, "mlp_dim": self.mlp_dim, "layers": list(self.layers), "epochs": self.epochs,
                "lr": self.lr, "batch_size": self.batch_size, "n_negatives": self.n_negatives, "reg": self.reg,
                "pretrain": self.pretrain, "pretrain_epochs": self.pretrain_epochs, "alpha": self.alpha,
                "fold_in_steps": self.fold_in_steps, "fold_in_lr": self.fold_in_lr, "fold_in_reg": self.fold_in_reg,
                "online_lr": self.online_lr, "dense_every": self.dense_every, "dense_lr": self.dense_lr}

    def get_state(self) -> dict[str, Any]:
        if self.net is None:
            raise RuntimeError("neumf is not fitted")
        net = self.net
        dense_grads = [torch.zeros_like(p) if p.grad is None else p.grad.clone() for p in net.dense_parameters()]
        return {"net": {k: v.detach().clone() for k, v in net.state_dict().items()},
                "n_users": self.n_users_, "n_items": self.n_items_, "n_trained_users": self.n_trained_users_,
                "row_opts": {k: o.get_state() for k, o in self._row_opts.items()},
                "dense_opt": None if self._dense_opt is None else self._dense_opt.state_dict(),
                "dense_grads": dense_grads, "learn_calls": self._learn_calls}

    def set_state(self, state: dict[str, Any]) -> None:
        w = state["net"]
        layers = [w[f"mlp.{j}.weight"].shape[0] for j in range(len(self.layers))]
        self.net = net = NeuMFNet(w["gmf_user"].shape[0], w["gmf_item"].shape[0], w["gmf_user"].shape[1],
                                  w["mlp_user"].shape[1], layers)
        net.load_state_dict(w)
        self.n_users_, self.n_items_ = int(state["n_users"]), int(state["n_items"])
        self.n_trained_users_ = int(state["n_trained_users"])
        for k, o in self._row_opts.items():
            o.set_state(state["row_opts"][k])
        self._learn_calls = int(state["learn_calls"])
        self._dense_opt = None
        if state.get("dense_opt") is not None:
            self._dense_opt = torch.optim.Adam(net.dense_parameters(), lr=self.dense_lr)
            self._dense_opt.load_state_dict(state["dense_opt"])
        for p, g in zip(net.dense_parameters(), state.get("dense_grads", [])):
            p.grad = g.clone() if bool(g.any()) else None
        self._invalidate()
