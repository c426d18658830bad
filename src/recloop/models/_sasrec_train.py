"""SASRec's training data and loss: windows cut from every sequence, their batches, and the
softmax cross-entropy of each position's next few items."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from recloop.models._sasrec_net import SASRecNet
from recloop.models.configs import SASRecConfig


def item_bag(parts: Sequence[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    """Item lists as one bag batch: (flat ``item + 1``, offsets)."""
    lengths = np.fromiter((len(p) for p in parts), np.int64, len(parts))
    flat = np.concatenate(parts) + 1 if lengths.sum() else np.zeros(0, np.int64)
    offsets = np.zeros(len(parts), np.int64)
    np.cumsum(lengths[:-1], out=offsets[1:])
    return torch.from_numpy(flat.astype(np.int64)), torch.from_numpy(offsets)


class Batches:
    """One epoch's batches: (windows, bag of the items before each) in ``order``, ``size`` rows
    at a time; sized, so the training loop's learning-rate schedule knows the epoch's steps."""

    def __init__(
        self,
        seqs: Sequence[np.ndarray],
        windows: np.ndarray,
        src: np.ndarray,
        order: np.ndarray,
        size: int,
    ) -> None:
        self.seqs, self.windows, self.src, self.order, self.size = seqs, windows, src, order, size

    def __len__(self) -> int:
        return -(-len(self.order) // self.size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]]:
        for s in range(0, len(self.order), self.size):
            rows = self.order[s : s + self.size]
            bag_ = item_bag([self.seqs[r][:a] for r, a in self.src[rows]])
            yield torch.from_numpy(self.windows[rows]), bag_


def windows(
    sequences: Sequence[np.ndarray], max_len: int, future_k: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Every sequence cut into windows of ``max_len`` inputs and ``future_k`` more targets.

    Row layout (items + 1, 0 pads): ``max_len`` input columns, right-aligned (left
    padding), then ``future_k`` columns that continue the sequence (right padding
    past its end); input column ``p`` is followed by targets ``p + 1 .. p + future_k``.
    The first window's inputs end one before the sequence's end (as at serving time);
    earlier ones step back ``max_len`` from a random phase, so each epoch cuts anew.
    Also returns, per row, (sequence number, index of its first input item).
    """
    m, k = max_len, future_k
    rows: list[np.ndarray] = []
    src: list[tuple[int, int]] = []
    for r, s in enumerate(sequences):
        n = len(s)
        if n < 2:
            continue
        ends = [n - 1]
        ends.extend(range(n - 1 - int(rng.integers(1, m + 1)), 0, -m))
        for b in ends:
            a = max(0, b - m)
            w = s[a : min(n, b + k)] + 1
            rows.append(np.pad(w, (m - (b - a), k + (b - a) - len(w))))
            src.append((r, a))
    if not rows:
        return np.zeros((0, m + k), np.int64), np.zeros((0, 2), np.int64)
    return np.stack(rows), np.asarray(src, np.int64)


def sequence_loss(
    net: SASRecNet,
    w: torch.Tensor,
    bag: tuple[torch.Tensor, torch.Tensor],
    n_items: int,
    config: SASRecConfig,
) -> torch.Tensor:
    """Mean weighted cross-entropy of each position's next ``future_k`` items.

    w: (batch, max_len + future_k) windows from ``windows``; bag: the items before each.
    """
    m, k = config.max_len, config.future_k
    inp = w[:, :m]
    keep = (inp > 0) & (w[:, 1 : m + 1] > 0)
    logits = net.logits(net(inp, True, bag)[keep])
    targets = [w[:, j + 1 : j + 1 + m][keep] for j in range(k)]
    if config.mask_seen:
        # what the user had by then is no candidate (the engine filters it at serving time)
        flat, offsets = bag
        rows = torch.repeat_interleave(
            torch.arange(len(w)), torch.diff(offsets, append=torch.tensor([len(flat)]))
        )
        seen = torch.zeros(len(w), n_items + 1, dtype=torch.bool)
        seen[rows, flat] = True
        upto = inp.unsqueeze(1).expand(-1, m, -1) * torch.ones(m, m, dtype=torch.long).tril_()
        seen = seen.unsqueeze(1).repeat(1, m, 1).scatter_(2, upto, True)[keep][:, 1:]
        for t in targets:  # a target seen before (a repeat event) stays a candidate
            ok = t > 0
            seen[ok.nonzero().squeeze(1), t[ok] - 1] = False
        logits = logits.masked_fill_(seen, float("-inf"))
    if k == 1:
        return F.cross_entropy(logits, targets[0] - 1)
    logp = torch.log_softmax(logits, -1)
    total, norm = logits.new_zeros(()), logits.new_zeros(())
    for j, t in enumerate(targets):
        ok = t > 0
        # a target past the sequence's end gathers a placeholder that may be masked (-inf):
        # select, not multiply by 0, or the reported loss is NaN (the gradient is the same)
        picked = torch.where(ok, logp.gather(1, (t - 1).clamp_min(0).unsqueeze(1)).squeeze(1), 0.0)
        total = total - config.future_decay**j * picked.sum()
        norm = norm + config.future_decay**j * ok.sum()
    return total / norm.clamp_min(1.0)
