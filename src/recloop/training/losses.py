"""Losses for implicit feedback."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def bpr_loss(
    pos: torch.Tensor, neg: torch.Tensor, weight: torch.Tensor | None = None
) -> torch.Tensor:
    """Bayesian personalised ranking: -log sigmoid(pos - neg). ``neg`` may be (b,) or (b, m)."""
    if neg.dim() == 2 and pos.dim() == 1:
        pos = pos.unsqueeze(1)
    loss = -F.logsigmoid(pos - neg)
    if loss.dim() == 2:
        loss = loss.mean(1)
    if weight is not None:
        return (loss * weight).sum() / weight.sum().clamp_min(1e-8)
    return loss.mean()


def bce_loss(
    logits: torch.Tensor, labels: torch.Tensor, weight: torch.Tensor | None = None
) -> torch.Tensor:
    """Binary cross-entropy on logits."""
    return F.binary_cross_entropy_with_logits(logits, labels, weight=weight)


def sampled_softmax_loss(
    pos: torch.Tensor,
    neg: torch.Tensor,
    log_q_neg: torch.Tensor | None = None,
    log_q_pos: torch.Tensor | None = None,
) -> torch.Tensor:
    """Softmax cross-entropy of the positive among sampled negatives.

    pos: (b,), neg: (b, m). With ``log_q_*`` (log sampling probabilities) the logits are
    corrected for the sampling bias (Yi et al. 2019's logQ correction).
    """
    if log_q_neg is not None:
        neg = neg - log_q_neg
    if log_q_pos is not None:
        pos = pos - log_q_pos
    logits = torch.cat([pos.unsqueeze(1), neg], 1)
    return F.cross_entropy(logits, torch.zeros(len(pos), dtype=torch.long))
