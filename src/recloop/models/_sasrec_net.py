"""The SASRec network: a causal transformer over item sequences, tied item table."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


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

    def forward(
        self, x: torch.Tensor, mask: torch.Tensor | None, last_only: bool = False
    ) -> torch.Tensor:
        """x: (batch, length, dim); mask: (batch, 1, length, length) bool (True: may attend) or
        None for an unpadded causal batch. ``last_only`` computes the last position alone
        (batch, 1, dim): all that scoring needs from the top block."""
        b, n, d = x.shape
        h = self.ln1(x)
        p = self.dropout if self.training else 0.0
        if last_only:
            q = F.linear(h[:, -1:], self.qkv.weight[:d], self.qkv.bias[:d])
            k, v = (
                F.linear(h, self.qkv.weight[d:], self.qkv.bias[d:])
                .view(b, n, 2, self.n_heads, d // self.n_heads)
                .permute(2, 0, 3, 1, 4)
            )
            q = q.view(b, 1, self.n_heads, d // self.n_heads).transpose(1, 2)
            a = F.scaled_dot_product_attention(
                q, k, v, attn_mask=None if mask is None else mask[:, :, -1:], dropout_p=p
            )
            x, n = x[:, -1:], 1
        else:
            q, k, v = (
                self.qkv(h).view(b, n, 3, self.n_heads, d // self.n_heads).permute(2, 0, 3, 1, 4)
            )
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

    def __init__(
        self,
        n_items: int,
        dim: int,
        max_len: int,
        n_layers: int,
        n_heads: int,
        dropout: float,
        ffn_dim: int,
        long_term: bool = False,
    ) -> None:
        super().__init__()
        self.dim, self.max_len = dim, max_len
        self.item = nn.Parameter(torch.randn(n_items + 1, dim) * dim**-0.5)
        with torch.no_grad():
            self.item[0].zero_()
        self.pos = nn.Parameter(torch.randn(max_len, dim) * 0.02)
        self.blocks = nn.ModuleList(_Block(dim, n_heads, dropout, ffn_dim) for _ in range(n_layers))
        self.ln = nn.LayerNorm(dim)
        self.bias = nn.Parameter(torch.zeros(n_items))
        self.dropout = dropout
        self.long = nn.Linear(dim, dim) if long_term else None

    def forward(
        self,
        seq: torch.Tensor,
        padded: bool = True,
        before: tuple[torch.Tensor, torch.Tensor] | None = None,
        last_only: bool = False,
    ) -> torch.Tensor:
        """seq: (batch, length) → (batch, length, dim), or (batch, 1, dim) with ``last_only``.

        ``padded=False`` promises no zeros in ``seq``. ``before``: the items each row's user
        had before ``seq``, as a bag (flat ``item + 1``, offsets); with ``long_term`` the mean
        embedding of every item up to a position is added to its output (the user's
        long-run taste next to the recent window).
        """
        n = seq.shape[1]
        e = F.embedding(seq, self.item)
        x = e * math.sqrt(self.dim) + self.pos[self.max_len - n :]
        x = F.dropout(x, self.dropout, self.training)
        mask = None
        real = seq > 0
        if padded:
            causal = torch.ones(n, n, dtype=torch.bool).tril_()
            # a padding query may see itself, so no row of the softmax is empty (no NaN)
            mask = (causal & (real.unsqueeze(1) | torch.eye(n, dtype=torch.bool))).unsqueeze(1)
            x = x * real.unsqueeze(-1)
        for j, block in enumerate(self.blocks):
            x = block(x, mask, last_only and j == len(self.blocks) - 1)
        if self.long is not None:
            if last_only:
                total, count = e.sum(1, keepdim=True), real.sum(1).view(-1, 1, 1).float()
            else:
                total, count = e.cumsum(1), real.cumsum(1).unsqueeze(-1).float()
            if before is not None:
                flat, offsets = before
                total = total + F.embedding_bag(flat, self.item, offsets, mode="sum").unsqueeze(1)
                count = (
                    count
                    + torch.diff(offsets, append=torch.tensor([len(flat)])).view(-1, 1, 1).float()
                )
            x = x + self.long(total / count.clamp_min(1.0))
        out: torch.Tensor = self.ln(x)
        return out

    def logits(self, h: torch.Tensor) -> torch.Tensor:
        """(n, dim) hidden states → (n, n_items) scores against the tied item table."""
        return torch.addmm(self.bias, h, self.item[1:].T)
