"""The one interface every recloop model implements, and the helpers they share.

Models sit above ``recloop.training`` in the layers: a model's ``fit`` runs the shared
epoch loop, and training never imports a model. A model works on internal row indices only (``user_idx``, ``item_idx``); the engine owns
the vocabularies, the users' histories and seen-item filtering. Training *policy*
(samplers, losses, the epoch loop, early stopping) lives in ``recloop.training``; a model
only says how to turn a batch into a loss and how to score.
"""

from __future__ import annotations

import abc
import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol, runtime_checkable

import numpy as np
import torch
from torch import nn

from recloop.errors import ConfigError
from recloop.training.options import FitOptions, set_threads

__all__ = [
    "DotProduct",
    "FitOptions",
    "OnlineBatch",
    "Prefixes",
    "RecModel",
    "RowAdagrad",
    "TrainData",
    "set_threads",
]


@dataclass
class TrainData:
    """Interactions in index space, sorted by time, ready for fitting.

    Attributes
    ----------
    user_idx, item_idx : (n,) int64
    timestamp : (n,) int64 epoch seconds
    label : (n,) float32, 1 for a positive interaction, 0 for a negative (skip, low rating)
    weight : (n,) float32 >= 0
    value : (n,) float32, the raw value (rating, watch fraction)
    sequences : per user, the positive items in time order (``sequences[u]`` is an int64 array)
    valid_user_idx, valid_item_idx : held-out next item per user for early stopping (may be empty)
    features : (n, f) float32 numeric context features (the click model's ``behavior``), or None
    """

    n_users: int
    n_items: int
    user_idx: np.ndarray
    item_idx: np.ndarray
    timestamp: np.ndarray
    label: np.ndarray
    weight: np.ndarray
    value: np.ndarray
    sequences: list[np.ndarray]
    valid_user_idx: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    valid_item_idx: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    features: np.ndarray | None = None

    @property
    def positives(self) -> np.ndarray:
        return self.label > 0.5

    def item_counts(self) -> np.ndarray:
        return np.bincount(self.item_idx[self.positives], minlength=self.n_items).astype(np.float64)


class Prefixes(Sequence[np.ndarray]):
    """Histories given as prefixes of append-only sequences, read when a model needs them.

    Row ``r`` is ``seqs[r][max(0, ends[r] - max_len):ends[r]]`` as an int64 array: the
    last ``max_len`` items before position ``ends[r]`` of a list (or array) that only
    ever grows at its end, so reading it at step time gives what it held when the event
    came. The online learner hands a step's histories this way instead of copying one
    array per event; ``tails`` gives every row's last items in one pass.

    >>> seq = [5, 6, 7]
    >>> h = Prefixes([seq, seq], [1, 3], max_len=2)
    >>> seq.append(8)
    >>> [x.tolist() for x in h], h.tails(1)[0].tolist(), h.tails(1)[1].tolist()
    ([[5], [6, 7]], [1, 1], [5, 7])
    """

    __slots__ = ("_ends", "_seqs", "max_len")

    def __init__(
        self, seqs: Sequence[Sequence[int] | np.ndarray], ends: Sequence[int], max_len: int
    ) -> None:
        if len(seqs) != len(ends):
            raise ValueError(f"seqs and ends differ in length: {len(seqs)} vs {len(ends)}")
        self._seqs = seqs
        self._ends = ends
        self.max_len = max_len

    def __len__(self) -> int:
        return len(self._seqs)

    def _row(self, seq: Sequence[int] | np.ndarray, end: int) -> np.ndarray:
        return np.asarray(seq[max(0, end - self.max_len) : end], np.int64)

    def __getitem__(self, r: Any) -> Any:
        if isinstance(r, slice):
            return Prefixes(self._seqs[r], self._ends[r], self.max_len)
        return self._row(self._seqs[r], int(self._ends[r]))

    def __iter__(self) -> Any:
        row = self._row
        return (row(s, int(e)) for s, e in zip(self._seqs, self._ends))

    def whole(self, r: int) -> np.ndarray:
        """Row ``r`` uncut: every item before its event, not only the last ``max_len``."""
        return np.asarray(self._seqs[r][: int(self._ends[r])], np.int64)

    def tails(self, length: int) -> tuple[np.ndarray, np.ndarray]:
        """Each row's last ``min(length, max_len)`` items: (n,) counts and their concatenation
        (rows in order, each oldest first)."""
        k = min(length, self.max_len)
        parts = [s[e - k if e > k else 0 : e] for s, e in zip(self._seqs, self._ends)]
        lens = np.fromiter(map(len, parts), np.int64, len(parts))
        flat = np.fromiter(itertools.chain.from_iterable(parts), np.int64, int(lens.sum()))
        return lens, flat


def check_positive(**values: float) -> None:
    """Raise ``ConfigError`` naming the first hyperparameter that is not > 0."""
    for name, v in values.items():
        if not v > 0:
            raise ConfigError(f"{name} must be > 0, got {v!r}")


def check_positive_ints(**values: int) -> None:
    """Raise ``ConfigError`` naming the first hyperparameter that is not an integer > 0."""
    for name, v in values.items():
        if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
            raise ConfigError(f"{name} must be a positive integer, got {v!r}")


@dataclass
class OnlineBatch:
    """Events to learn from online, in index space (histories are *before* each event)."""

    user_idx: np.ndarray
    item_idx: np.ndarray
    label: np.ndarray
    weight: np.ndarray
    histories: Sequence[np.ndarray]
    features: np.ndarray | None = None
    #: the first ``n_fresh`` rows are new events, the rest replayed from the reservoir
    #: (None: all new)
    n_fresh: int | None = None


class RecModel(abc.ABC):
    """Contract of every model in the registry.

    Subclasses declare ``name``; their ``__init__`` takes ``seed`` and keyword
    hyperparameters, validates and stores them, and builds nothing that depends on
    data (that happens in ``fit``).
    """

    name: ClassVar[str]
    #: whether the model reads the user's history at request time (sequence models)
    uses_history: ClassVar[bool] = False
    #: whether ``score`` (and ``user_states``) take ``times=``: each history's event timestamps
    uses_times: ClassVar[bool] = False
    #: whether ``learn`` reads replayed events (the rows past ``OnlineBatch.n_fresh``); a model
    #: that reads only the new ones says False, and the learner draws none for it
    learns_from_replay: bool = True
    #: whether ``Recommender.fit`` holds out each user's last positive for early stopping
    #: unless told otherwise (a model whose schedule needs no stopping point can train on it)
    holds_out_validation: ClassVar[bool] = True

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed
        self.n_users_ = 0
        self.n_items_ = 0

    # --- offline ----------------------------------------------------------------
    @abc.abstractmethod
    def fit(self, data: TrainData, options: FitOptions) -> dict[str, Any]:
        """Fit on ``data``; return a small report (epochs run, best validation metric...)."""

    # --- serving ----------------------------------------------------------------
    @abc.abstractmethod
    def score(self, user_idx: np.ndarray, histories: Sequence[np.ndarray]) -> np.ndarray:
        """Scores of every item for each user: (batch, n_items) float32, higher is better.

        ``user_idx`` may hold -1 or indices beyond the trained table for users the
        model has not learned a row for; the model must still score them (from
        ``histories``, or by popularity).
        """

    def can_personalise(self, user_idx: np.ndarray, histories: Sequence[np.ndarray]) -> np.ndarray:
        """(batch,) bool: which users ``score`` ranks better than popularity.

        The engine gives the others its recent popularity. Default: every user.
        """
        return np.ones(len(user_idx), bool)

    def item_vectors(self) -> np.ndarray | None:
        """(n_items, d) vectors for dot-product retrieval, if the model has them."""
        return None

    # --- online -----------------------------------------------------------------
    def grow(self, n_users: int, n_items: int) -> None:
        """Make room for users and items up to these counts (new rows initialised sensibly)."""
        self.n_users_ = max(self.n_users_, n_users)
        self.n_items_ = max(self.n_items_, n_items)

    def learn(self, batch: OnlineBatch) -> float:
        """One online step on ``batch``; returns the loss. Default: no parameter update."""
        return 0.0

    def forget_users(self, user_idx: np.ndarray) -> None:
        """Reset what the model learned for these user rows: the engine evicted their users,
        and a row may go to a new user. Default: nothing (a model that keeps no per-user
        parameters, or one whose rows a new user may inherit)."""
        return

    def served(
        self, user_idx: np.ndarray, histories: Sequence[np.ndarray], scores: np.ndarray
    ) -> None:
        """The rows ``score`` just returned for a request, as the engine serves them.

        The engine calls it after scoring for users it personalises (before it masks
        anything), so that a step can reuse what a user was shown instead of scoring them
        again. Default: ignored (``WithOnlineBias`` keeps them for its next step).
        """
        return None

    @property
    def updates_online(self) -> bool:
        """Whether ``learn`` can change what ``score`` returns for a user with the same history.

        A wrapper that reuses scores served before a step (``WithOnlineBias``) reads it.
        Default: True, unless the class keeps ``RecModel.learn`` (no parameter update).
        """
        return type(self).learn is not RecModel.learn

    # --- persistence ------------------------------------------------------------
    def hyperparameters(self) -> dict[str, Any]:
        """JSON-able keyword arguments that rebuild an unfitted copy with ``cls(seed=..., **h)``.

        Default: the fields of the model's config (``self.config``, ``models/configs.py``).
        """
        from recloop.models.configs import as_jsonable

        return as_jsonable(getattr(self, "config"))  # noqa: B009 (set by every subclass)

    @abc.abstractmethod
    def get_state(self) -> dict[str, Any]:
        """Everything fitted, as tensors / numpy arrays / plain values (``torch.save``-able)."""

    @abc.abstractmethod
    def set_state(self, state: dict[str, Any]) -> None:
        """Restore what ``get_state`` returned."""


@runtime_checkable
class DotProduct(Protocol):
    """A model whose scores are ``user_states(u, h) @ item_vectors().T + item_bias()``.

    The serving layer's retrieval index searches such a model's item vectors with each
    request's user state instead of scoring the whole catalogue. ``item_vectors`` (and
    ``item_bias``) may return None where the model is not fitted, or not a dot product in
    its current setting (``hybrid`` with an EASE part).
    """

    def user_states(self, user_idx: np.ndarray, histories: Sequence[np.ndarray], **kw: Any) -> Any:
        """(batch, d) user vectors as of ``histories`` (numpy or torch); ``times=`` for a
        model that reads them, as ``score`` does."""

    def item_vectors(self) -> np.ndarray | None:
        """(n_items, d) item vectors."""

    def item_bias(self) -> np.ndarray | None:
        """(n_items,) added to every user's scores, or None for no bias."""


# ---------------------------------------------------------------- shared helpers


def seed_everything(seed: int) -> np.random.Generator:
    torch.manual_seed(seed)
    return np.random.default_rng(seed)


def grow_rows(
    weight: torch.Tensor,
    n_rows: int,
    init_std: float,
    generator: torch.Generator | None = None,
    mean_row: bool = False,
) -> torch.Tensor:
    """Return ``weight`` extended to ``n_rows`` rows.

    New rows are small random vectors around the mean of the existing rows when
    ``mean_row`` (a new user starts as the average user, not as zero), else around 0.
    """
    n, d = weight.shape
    if n_rows <= n:
        return weight
    extra = torch.randn(n_rows - n, d, generator=generator, dtype=weight.dtype) * init_std
    if mean_row and n > 0:
        extra += weight.detach().mean(0, keepdim=True)
    return torch.cat([weight.detach(), extra], 0)


def unique_rows(rows: torch.Tensor, n_rows: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``torch.unique(rows, return_inverse=True)`` for indices into a table of ``n_rows`` rows
    (sorted distinct rows, and each index's position among them); without a sort when the
    table is small next to ``rows``.

    >>> unique_rows(torch.tensor([3, 1, 3]), 5)
    (tensor([1, 3]), tensor([1, 0, 1]))
    """
    if n_rows <= 4 * len(rows):
        touched = torch.zeros(n_rows, dtype=torch.bool)
        touched[rows] = True
        uniq = touched.nonzero().squeeze(1)
        where = torch.empty(n_rows, dtype=torch.long)
        where[uniq] = torch.arange(len(uniq))
        return uniq, where[rows]
    uniq, inv = torch.unique(rows, return_inverse=True)
    return uniq, inv


class RowAdagrad:
    """Row-sparse Adagrad on a growable 2-D parameter: only touched rows change.

    Per-row adaptive state (one accumulator per row, as in row-wise Adagrad of
    TorchRec/FBGEMM), so frequent users/items take smaller steps than new ones.
    """

    def __init__(self, lr: float = 0.05, eps: float = 1e-8, initial: float = 0.1) -> None:
        self.lr = lr
        self.eps = eps
        self.initial = initial
        self.state: torch.Tensor = torch.zeros(0)

    def grow(self, n_rows: int) -> None:
        if self.state.numel() < n_rows:
            self.state = torch.cat(
                [self.state, torch.full((n_rows - self.state.numel(),), self.initial)]
            )

    def step(self, weight: torch.Tensor, rows: torch.Tensor, grad: torch.Tensor) -> None:
        """``weight[rows] -= lr * grad / sqrt(acc)``; duplicate rows are summed first."""
        uniq, inv = unique_rows(rows, weight.shape[0])
        self.step_summed(
            weight,
            uniq,
            torch.zeros(len(uniq), grad.shape[1], dtype=grad.dtype).index_add_(0, inv, grad),
        )

    def step_summed(self, weight: torch.Tensor, uniq: torch.Tensor, g: torch.Tensor) -> None:
        """``step`` given distinct ``uniq`` rows and each one's summed gradient ``g``."""
        self.grow(weight.shape[0])
        acc = self.state[uniq] + g.pow(2).mean(1)
        self.state[uniq] = acc
        with torch.no_grad():
            weight.index_add_(0, uniq, -self.lr * g / (acc.sqrt() + self.eps).unsqueeze(1))

    def get_state(self) -> torch.Tensor:
        return self.state.clone()

    def set_state(self, state: torch.Tensor) -> None:
        self.state = state.clone()


def xavier_(module: nn.Module) -> None:
    for p in module.parameters():
        if p.dim() > 1:
            nn.init.xavier_uniform_(p)


def log_popularity(counts: np.ndarray) -> np.ndarray:
    """Popularity prior as a score: log(1 + count), float32."""
    out: np.ndarray = np.log1p(counts).astype(np.float32)
    return out


def as_long(x: np.ndarray | Sequence[int]) -> torch.Tensor:
    return torch.as_tensor(np.asarray(x, dtype=np.int64))


def cosine_lr(step: int, total: int, base: float) -> float:
    return base * 0.5 * (1 + math.cos(math.pi * min(step, total) / max(total, 1)))
