"""SASRec: self-attentive sequential recommendation (Kang & McAuley 2018), trained better.

The user is their recent items: a causal transformer reads the last ``max_len`` items
of the history and its output at the last position scores every item by a dot product
with the (tied) item embeddings. Nothing is keyed by user, so a new event changes the
very next recommendation without a parameter step, and users the fit never saw are
served from their first event.

Departures from the paper, each for quality or CPU speed:

* full softmax cross-entropy over the catalogue at every position, instead of binary
  cross-entropy against one sampled negative (Klenitskiy & Vasilev 2023, "Turning
  Dross Into Gold Loss: is BERT4Rec really better than SASRec?");
* pre-LayerNorm blocks with GELU, learned positions aligned to the *end* of the window
  (the latest item always sits at the last position);
* each user's whole sequence is cut into windows of ``max_len`` (with a random phase
  per epoch), so every interaction is a training target, not only the last window;
* online, ``learn`` takes a small Adam step on new events (history before each event
  predicts its item) and ``grow`` adds item rows around the mean item.
"""
from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from recloop.errors import ConfigError
from recloop.models.base import FitOptions, OnlineBatch, RecModel, TrainData, seed_everything
from recloop.models.registry import register


class _Block(nn.Module):
    """Pre-LN transformer block: causal self-attention, then a GELU feed-forward."""

    def __init__(self, dim: int, n_heads: int, dropout: float, ffn_dim: int) -> None:
        super().__init__()
        self.n_heads = n_heads
        self.ln1 = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.ln2 = nn.LayerNorm(dim)
        self.ff1 = nn.Linear(dim, ffn_dim)
        self.ff2 = nn.Linear(ffn_dim, dim)
        self.dropout = dropout

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """x: (batch, length, dim); mask: (batch, 1, length, length) bool (True: may attend) or
        None for an unpadded causal batch."""
        b, n, d = x.shape
        q, k, v = self.qkv(self.ln1(x)).view(b, n, 3, self.n_heads, d // self.n_heads).permute(2, 0, 3, 1, 4)
        p = self.dropout if self.training else 0.0
        if mask is None:
            a = F.scaled_dot_product_attention(q, k, v, dropout_p=p, is_causal=True)
        else:
            a = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p)
        x = x + F.dropout(self.proj(a.transpose(1, 2).reshape(b, n, d)), p, self.training)
        return x + F.dropout(self.ff2(F.gelu(self.ff1(self.ln2(x)))), p, self.training)


class SASRecNet(nn.Module):
    """Item sequence (batch, length) of ``item_idx + 1`` (0 pads, on the left) → hidden states.

    ``item`` has ``n_items + 1`` rows (row 0 is the padding row, kept at zero).
    """

    def __init__(self, n_items: int, dim: int, max_len: int, n_layers: int, n_heads: int, dropout: float,
                 ffn_dim: int) -> None:
        super().__init__()
        self.dim, self.max_len = dim, max_len
        self.item = nn.Parameter(torch.randn(n_items + 1, dim) * dim ** -0.5)
        with torch.no_grad():
            self.item[0].zero_()
        self.pos = nn.Parameter(torch.randn(max_len, dim) * 0.02)
        self.blocks = nn.ModuleList(_Block(dim, n_heads, dropout, ffn_dim) for _ in range(n_layers))
        self.ln = nn.LayerNorm(dim)
        self.bias = nn.Parameter(torch.zeros(n_items))
        self.dropout = dropout

    def forward(self, seq: torch.Tensor, padded: bool = True) -> torch.Tensor:
        """seq: (batch, length) → (batch, length, dim); ``padded=False`` promises no zeros."""
        n = seq.shape[1]
        x = F.embedding(seq, self.item) * math.sqrt(self.dim) + self.pos[self.max_len - n:]
        x = F.dropout(x, self.dropout, self.training)
        mask = None
        if padded:
            real = seq > 0
            causal = torch.ones(n, n, dtype=torch.bool).tril_()
            # a padding query may see itself, so no row of the softmax is empty (no NaN)
            mask = (causal & (real.unsqueeze(1) | torch.eye(n, dtype=torch.bool))).unsqueeze(1)
            x = x * real.unsqueeze(-1)
        for block in self.blocks:
            x = block(x, mask)
        return self.ln(x)

    def logits(self, h: torch.Tensor) -> torch.Tensor:
        """(..., dim) hidden states → (..., n_items) scores against the tied item table."""
        return h @ self.item[1:].T + self.bias


@register
class SASRec(RecModel):
    """Causal self-attention over the user's last ``max_len`` items, full softmax loss.

    Parameters
    ----------
    dim, n_layers, n_heads, dropout
        Architecture: embedding width, transformer blocks, attention heads, dropout rate.
    max_len
        Items of history the model reads (the latest ones).
    epochs, lr, batch_size, weight_decay, patience
        Offline training: at most ``epochs`` passes over every user's windows, Adam,
        early stopping on validation NDCG@10 after ``patience`` epochs without gain.
    online_lr
        Adam step size of ``learn``; 0 turns parameter updates off (histories still adapt).
    online_max_len
        History items each online event reads in ``learn`` (shorter is faster).
    """

    name = "sasrec"
    uses_history = True

    def __init__(self, seed: int = 0, dim: int = 64, n_layers: int = 2, n_heads: int = 2, dropout: float = 0.3,
                 max_len: int = 50, epochs: int = 200, lr: float = 1e-3, batch_size: int = 128,
                 weight_decay: float = 0.0, patience: int = 5, online_lr: float = 1e-4,
                 online_max_len: int = 50, ffn_dim: int = 64) -> None:
        super().__init__(seed)
        for nm, v in (("dim", dim), ("n_layers", n_layers), ("n_heads", n_heads), ("max_len", max_len),
                      ("epochs", epochs), ("batch_size", batch_size), ("patience", patience),
                      ("online_max_len", online_max_len), ("ffn_dim", ffn_dim)):
            if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
                raise ConfigError(f"{nm} must be a positive integer, got {v!r}")
        if dim % n_heads:
            raise ConfigError(f"dim must be a multiple of n_heads, got dim={dim}, n_heads={n_heads}")
        if not 0.0 <= dropout < 1.0:
            raise ConfigError(f"dropout must be in [0, 1), got {dropout}")
        for nm, f in (("lr", lr), ("weight_decay", weight_decay), ("online_lr", online_lr)):
            if not (f >= 0 and math.isfinite(f)) or (nm == "lr" and f == 0):
                raise ConfigError(f"{nm} must be a finite number >= 0 (lr > 0), got {f}")
        self.dim, self.n_layers, self.n_heads, self.dropout, self.max_len = dim, n_layers, n_heads, dropout, max_len
        self.epochs, self.lr, self.batch_size, self.weight_decay, self.patience = epochs, lr, batch_size, weight_decay, patience
        self.online_lr, self.online_max_len, self.ffn_dim = online_lr, online_max_len, ffn_dim
        self.net: SASRecNet | None = None
        self._online_opt: torch.optim.Adam | None = None
        self.online_steps_ = 0

    # ------------------------------------------------------------------ fit
    def _windows(self, sequences: Sequence[np.ndarray], rng: np.random.Generator) -> np.ndarray:
        """Every sequence cut into (max_len + 1)-item windows, right-aligned, 0-padded, shifted by 1.

        The first window ends at the sequence's end (as at serving time); earlier ones
        start a random phase back, so each epoch sees different cuts.
        """
        width = self.max_len + 1
        rows: list[np.ndarray] = []
        for s in sequences:
            n = len(s)
            if n < 2:
                continue
            ends = [n]
            ends.extend(range(n - int(rng.integers(1, self.max_len + 1)), 1, -self.max_len))
            for e in ends:
                w = s[max(0, e - width):e] + 1
                rows.append(np.pad(w, (width - len(w), 0)))
        return np.stack(rows) if rows else np.zeros((0, width), np.int64)

    def fit(self, data: TrainData, options: FitOptions) -> dict[str, Any]:
        from recloop.training import TrainConfig, train
        from recloop.training.validate import validation_ndcg

        rng = seed_everything(self.seed)
        self.n_users_, self.n_items_ = data.n_users, data.n_items
        self.net = net = SASRecNet(data.n_items, self.dim, self.max_len, self.n_layers, self.n_heads, self.dropout,
                                   self.ffn_dim)
        self._online_opt = None

        def batches(rng: np.random.Generator, epoch: int) -> Iterator[torch.Tensor]:
            win = self._windows(data.sequences, rng)
            order = rng.permutation(len(win))
            for s in range(0, len(order), self.batch_size):
                yield torch.from_numpy(win[order[s:s + self.batch_size]])

        def loss_fn(batch: torch.Tensor) -> torch.Tensor:
            inp, tgt = batch[:, :-1], batch[:, 1:]
            h = net(inp)
            keep = (inp > 0) & (tgt > 0)
            return F.cross_entropy(net.logits(h[keep]), tgt[keep] - 1)

        report = train(net, batches, loss_fn,
                       TrainConfig(epochs=self.epochs, lr=self.lr, weight_decay=self.weight_decay,
                                   patience=self.patience, desc="sasrec"),
                       options, rng, validate=(lambda: validation_ndcg(self, data)) if len(data.valid_user_idx) else None)
        with torch.no_grad():
            net.item[0].zero_()
        return report

    # ------------------------------------------------------------------ scoring
    def _batch(self, histories: Sequence[np.ndarray], max_len: int) -> tuple[torch.Tensor, bool]:
        """Left-padded (batch, length) tensor of the last ``max_len`` items + 1; whether it pads."""
        cut = [np.asarray(h[-max_len:], np.int64) for h in histories]
        n = max(1, max(len(h) for h in cut))
        if len(cut) == 1 and len(cut[0]) == n:
            return torch.from_numpy(cut[0] + 1).unsqueeze(0), False
        out = np.zeros((len(cut), n), np.int64)
        for r, h in enumerate(cut):
            if len(h):
                out[r, n - len(h):] = h + 1
        return torch.from_numpy(out), True

    def score(self, user_idx: np.ndarray, histories: Sequence[np.ndarray]) -> np.ndarray:
        """Scores from ``histories`` only (``user_idx`` is not read); an empty history scores
        from the position embeddings alone."""
        if self.net is None:
            raise RuntimeError("sasrec is not fitted")
        net = self.net
        if net.training:
            net.eval()
        with torch.inference_mode():
            seq, padded = self._batch(histories, self.max_len)
            h = net(seq, padded)[:, -1]
            return net.logits(h).numpy()

    def item_vectors(self) -> np.ndarray | None:
        return None if self.net is None else self.net.item.detach()[1:].numpy()

    # ------------------------------------------------------------------ online
    def grow(self, n_users: int, n_items: int) -> None:
        super().grow(n_users, n_items)
        net = self.net
        if net is None or n_items <= net.bias.shape[0]:
            return
        old = net.bias.shape[0]
        g = torch.Generator().manual_seed(self.seed * 7919 + n_items)
        w = net.item.detach()
        real = w[1:]
        extra = real.mean(0, keepdim=True) + torch.randn(n_items - old, self.dim, generator=g) * real.std(0, keepdim=True) * 0.1
        bias = net.bias.detach()
        # a new item starts below the typical item: it has to earn its place
        b_new = torch.full((n_items - old,), float(bias.quantile(0.25)) if old else 0.0)
        net.item = nn.Parameter(torch.cat([w, extra]))
        net.bias = nn.Parameter(torch.cat([bias, b_new]))
        self._online_opt = None  # its moment estimates have the old shapes

    def learn(self, batch: OnlineBatch) -> float:
        """One Adam step of softmax cross-entropy: each event's history predicts its item.

        Events with an empty history or a non-positive label are skipped (nothing to
        read, or nothing to imitate).
        """
        net = self.net
        if net is None or self.online_lr <= 0:
            return 0.0
        keep = np.flatnonzero((np.asarray(batch.label) > 0.5) & np.fromiter((len(h) > 0 for h in batch.histories), bool, len(batch.histories)))
        if not len(keep):
            return 0.0
        if self._online_opt is None:
            self._online_opt = torch.optim.Adam(net.parameters(), lr=self.online_lr)
        seq, padded = self._batch([batch.histories[j] for j in keep], min(self.online_max_len, self.max_len))
        target = torch.as_tensor(np.asarray(batch.item_idx, np.int64)[keep])
        weight = torch.as_tensor(np.asarray(batch.weight, np.float32)[keep])
        net.eval()  # no dropout online: a step depends on its events only
        self._online_opt.zero_grad(set_to_none=True)
        loss = (F.cross_entropy(net.logits(net(seq, padded)[:, -1]), target, reduction="none") * weight).sum() / weight.sum().clamp_min(1e-8)
        loss.backward()
        self._online_opt.step()
        with torch.no_grad():
            net.item[0].zero_()
        self.online_steps_ += 1
        return float(loss.detach())

    # ------------------------------------------------------------------ persistence
    def hyperparameters(self) -> dict[str, Any]:
        return {"dim": self.dim, "n_layers": self.n_layers, "n_heads": self.n_heads, "dropout": self.dropout,
                "max_len": self.max_len, "epochs": self.epochs, "lr": self.lr, "batch_size": self.batch_size,
                "weight_decay": self.weight_decay, "patience": self.patience, "online_lr": self.online_lr,
                "online_max_len": self.online_max_len, "ffn_dim": self.ffn_dim}

    def get_state(self) -> dict[str, Any]:
        if self.net is None:
            raise RuntimeError("sasrec is not fitted")
        state: dict[str, Any] = {"net": {k: v.detach().clone() for k, v in self.net.state_dict().items()},
                                 "n_users": self.n_users_, "n_items": self.n_items_, "online_steps": self.online_steps_}
        if self._online_opt is not None:
            opt = self._online_opt.state_dict()
            state["online_opt"] = {"step": [float(opt["state"][j]["step"]) if j in opt["state"] else 0.0 for j in range(len(opt["param_groups"][0]["params"]))],
                                   "exp_avg": [opt["state"][j]["exp_avg"].clone() for j in opt["state"]],
                                   "exp_avg_sq": [opt["state"][j]["exp_avg_sq"].clone() for j in opt["state"]]}
        return state

    def set_state(self, state: dict[str, Any]) -> None:
        w = state["net"]
        n_items, dim = w["item"].shape[0] - 1, w["item"].shape[1]
        self.net = SASRecNet(n_items, dim, w["pos"].shape[0], self.n_layers, self.n_heads, self.dropout, self.ffn_dim)
        self.net.load_state_dict(w)
        self.net.eval()
        self.n_users_, self.n_items_ = int(state["n_users"]), int(state["n_items"])
        self.online_steps_ = int(state.get("online_steps", 0))
        self._online_opt = None
        opt = state.get("online_opt")
        if opt is not None and len(opt["exp_avg"]) == len(list(self.net.parameters())):
            self._online_opt = torch.optim.Adam(self.net.parameters(), lr=self.online_lr)
            sd = self._online_opt.state_dict()
            sd["state"] = {j: {"step": torch.tensor(float(opt["step"][j])), "exp_avg": opt["exp_avg"][j].clone(),
                               "exp_avg_sq": opt["exp_avg_sq"][j].clone()} for j in range(len(opt["exp_avg"]))}
            self._online_opt.load_state_dict(sd)
