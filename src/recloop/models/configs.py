"""Every registered model's hyperparameters and their defaults, one frozen dataclass per model.

Each field is a keyword of ``Recommender(model=NAME, **overrides)`` and of the model's
constructor; a model stores its config as ``self.config``, and ``hyperparameters()`` gives
the same keys back (JSON-able), so a snapshot rebuilds its model with
``create(name, seed=..., **hyperparameters)``. Defaults are tuned on MovieLens-100K
(``bench/offline.py`` and ``bench/stream.py``; figures and commands in
``docs/benchmarks.md``); the comment beside each says what it controls and why it has
that value.

``build_config`` turns keyword overrides into a config and names an unknown key.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from recloop.errors import ConfigError

C = TypeVar("C")


def build_config(model: str, cls: type[C], config: C | None, overrides: Mapping[str, Any]) -> C:
    """``config`` (default: ``cls()``) with ``overrides`` applied; ``ConfigError`` naming the
    first key that is not one of ``cls``'s fields."""
    names = [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
    for key in overrides:
        if key not in names:
            raise ConfigError(
                f"{model}: unknown hyperparameter {key!r}; allowed: {', '.join(names)}"
            )
    if config is None:
        return cls(**overrides)
    return dataclasses.replace(config, **overrides)  # type: ignore[type-var]


def as_jsonable(config: Any) -> dict[str, Any]:
    """A config's fields as a JSON-able dict (tuples become lists)."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(config):
        v = getattr(config, f.name)
        out[f.name] = list(v) if isinstance(v, tuple) else v
    return out


def _check_rate(name: str, value: float, positive: bool = False) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{name} must be a number, got {value!r}")
    if not (math.isfinite(value) and value >= 0) or (positive and value == 0):
        raise ConfigError(
            f"{name} must be a finite number {'> 0' if positive else '>= 0'}, got {value}"
        )


def _check_positive_ints(**values: Any) -> None:
    for name, v in values.items():
        if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
            raise ConfigError(f"{name} must be a positive integer, got {v!r}")


@dataclass(frozen=True)
class PopularityConfig:
    #: counts decay by half every this many positive events (0: all-time counts); a stream's
    #: popularity drifts, and 5,000 events follow it on the MovieLens-100K replay
    half_life_events: int = 5000


@dataclass(frozen=True)
class MFConfig:
    dim: int = 64  #: factors: 32 underfits ML-100K, 128 adds fit time and no hit rate
    epochs: int = 60  #: an upper bound: early stopping on validation NDCG@10 ends sooner
    lr: float = 4e-3  #: Adam's rate; higher rates stop at a worse validation NDCG@10
    reg: float = 1e-4  #: L2 on a batch's user states and item rows
    batch_size: int = 1024  #: positives per step; large batches keep an epoch cheap on CPU
    n_negatives: int = 16  #: uniform negatives per positive in the BPR loss
    history_len: int = 10  #: items in the recency context: the next item follows the last few
    recency_decay: float = 0.8  #: per-step decay of the recency context's weights
    patience: int = 4  #: validations without improvement before stopping
    fold_in_reg: float = 0.5  #: ridge weight of the fold-in for users without a trained row
    online_lr: float = 0.05  #: row-wise Adagrad rate online (0: no parameter steps)
    online_negatives: int = 4  #: negatives per event online: a step stays cheap


@dataclass(frozen=True)
class LightGCNConfig:
    dim: int = 64  #: ego-embedding width
    layers: int = 3  #: propagation steps over the normalised user-item graph (the paper's 3)
    epochs: int = 60  #: an upper bound: early stopping ends sooner
    lr: float = 2e-2  #: Adam's rate; the graph smooths the gradient, so it takes a high one
    reg: float = 1e-4  #: L2 on a batch's ego embeddings
    batch_size: int = 4096  #: positives per step; each step propagates the whole graph
    n_negatives: int = 8  #: uniform negatives per positive in the BPR loss
    history_len: int = 10  #: items in the recency context, as in ``mf``
    recency_decay: float = 0.8  #: per-step decay of the recency context's weights
    patience: int = 5  #: validations without improvement before stopping
    fold_in_reg: float = 0.5  #: ridge weight of the fold-in for users without a trained row
    online_lr: float = 0.05  #: row-wise Adagrad rate on the serving tables online
    online_negatives: int = 4  #: negatives per event online


@dataclass(frozen=True)
class NeuMFConfig:
    gmf_dim: int = 32  #: GMF tower's embedding width
    mlp_dim: int = 32  #: MLP tower's embedding width
    layers: tuple[int, ...] = (64, 32, 16)  #: MLP tower: the paper's halving stack
    history_len: int = 10  #: items in each tower's recency context
    recency_decay: float = 0.8  #: per-step decay of the recency context's weights
    epochs: int = 12  #: an upper bound: early stopping ends sooner
    lr: float = 5e-3  #: Adam's peak rate (cosine-decayed with ``cosine``)
    batch_size: int = 1024  #: positives per step
    n_negatives: int = 16  #: sampled items per positive in the loss
    reg: float = 0.0  #: L2 weight (the sampled softmax needs none on ML-100K)
    patience: int = 3  #: validations without improvement before stopping
    #: sampled softmax ranks better than the paper's pointwise BCE on ML-100K
    loss: Literal["softmax", "bce", "bpr"] = "softmax"
    #: redraw negatives the user had: raises validation NDCG but lowers sampled HR@10
    exclude_seen: bool = False
    cosine: bool = True  #: cosine-decay the rate over ``epochs``
    pretrain: bool = False  #: the paper's tower pretraining: twice the fit, a lower hit rate
    pretrain_epochs: int = 6  #: epochs of each tower alone with ``pretrain``
    alpha: float = 0.5  #: GMF's share when fusing pretrained towers
    online_lr: float = 0.01  #: RowAdagrad rate of embedding rows online: larger steps hurt
    dense_every: int = 16  #: online calls between the dense layers' Adam steps
    dense_lr: float = 1e-4  #: Adam rate of the dense layers online


@dataclass(frozen=True)
class MLPConfig:
    dim: int = 32  #: user and item embedding width
    hidden: tuple[int, ...] = (64, 32)  #: the design document's dense 64 -> 32
    epochs: int = 20  #: an upper bound: early stopping ends sooner
    lr: float = 5e-3  #: Adam's rate
    batch_size: int = 1024  #: rows per step
    weight_decay: float = 0.0  #: Adam's weight decay
    n_negatives: int = 4  #: uniform items per observed row for the exposure unit
    #: weight of sampled items as non-clicks on explicit data: above 0 trades AUC for hit rate
    neg_weight: float = 0.0
    click_threshold: float = 4.0  #: on explicit ratings, a click is a value >= this (4 stars)
    id_dropout: float = 0.02  #: share of ids replaced by the unknown row in training
    patience: int = 3  #: validations without improvement before stopping
    valid_fraction: float = 0.05  #: rows held out for the click log loss
    online_lr: float = 0.01  #: RowAdagrad rate of embedding rows online
    dense_every: int = 16  #: online calls between the dense layers' Adam steps
    dense_lr: float = 1e-4  #: Adam rate of the dense layers online


@dataclass(frozen=True)
class EASEConfig:
    reg: float = 100.0  #: ridge weight: 100-1,000 rank alike on ML-100K
    max_items: int = 4000  #: items in the dense table (64 MB of float32); the rest score 0
    history_len: int = 200  #: a user's last items summed at scoring
    recent_len: int = 10  #: the last items that count ``1 + recent_weight`` times
    recent_weight: float = 0.0  #: extra weight of the last ``recent_len`` items (0: none)
    refresh_every: int = 2000  #: online events between solves of ``B`` (0: never)


@dataclass(frozen=True)
class ContentConfig:
    half_life: float = 20.0  #: history items weigh half after this many later items
    history_len: int = 200  #: the last positive items that make the user's profile
    fallback_dim: int = 32  #: interaction-profile size when no content vectors are given
    l2: float = 1.0  #: ridge penalty of the bilinear map on each side
    similarity_weight: float = 0.5  #: plain similarity beside the bilinear score (genre fans)


@dataclass(frozen=True)
class SASRecConfig:
    """SASRec's hyperparameters (see ``SASRec`` for what each does)."""

    dim: int = 64  #: embedding width: 128 scored lower on ML-100K
    n_layers: int = 1  #: transformer blocks; one block has the compiled request-time state
    n_heads: int = 2  #: attention heads
    ffn_dim: int = 64  #: feed-forward width: 256 adds nothing
    dropout: float = 0.2  #: 0.1 overfits ML-100K's short sequences
    max_len: int = 10  #: recent items read: 20 or 50 score lower with the long-term mean
    long_term: bool = True  #: add the mean embedding of the whole history to the output
    epochs: int = 20  #: warm-up, then cosine decay to 0: the last epoch is the best one
    lr: float = 1e-2  #: peak Adam rate; 7e-3 and 1.4e-2 are no better
    batch_size: int = 32  #: windows per step
    weight_decay: float = 0.0  #: Adam's weight decay
    patience: int = 3  #: validations without improvement before stopping (with a hold-out)
    future_k: int = (
        3  #: each position predicts its next 3 items: same-second items' order is arbitrary
    )
    future_decay: float = 0.7  #: the j-th next item weighs ``future_decay ** j``
    mask_seen: bool = True  #: the user's earlier items are no candidates in the training softmax
    online_lr: float = 1e-4  #: Adam rate of ``learn``; larger steps on a fitted table hurt
    online_scope: Literal["items", "all"] = (
        "items"  #: all parameters: same hit rate, a third of the speed
    )
    shuffle_ties: bool = True  #: read same-second runs in a fresh random order each epoch
    tie_samples: int = 8  #: orders of same-second runs averaged at scoring; more add nothing
    extra_windows: tuple[int, ...] = (5, 2)  #: shorter windows averaged in at scoring

    def __post_init__(self) -> None:
        _check_positive_ints(
            dim=self.dim,
            n_layers=self.n_layers,
            n_heads=self.n_heads,
            ffn_dim=self.ffn_dim,
            max_len=self.max_len,
            epochs=self.epochs,
            batch_size=self.batch_size,
            patience=self.patience,
            future_k=self.future_k,
            tie_samples=self.tie_samples,
        )
        if self.dim % self.n_heads:
            raise ConfigError(
                f"dim must be a multiple of n_heads, got dim={self.dim}, n_heads={self.n_heads}"
            )
        windows = self.extra_windows
        if isinstance(windows, (str, bytes)) or not all(
            isinstance(x, int) and not isinstance(x, bool) and x > 0 for x in windows
        ):
            raise ConfigError(f"extra_windows must be a list of positive integers, got {windows!r}")
        object.__setattr__(self, "extra_windows", tuple(int(x) for x in windows))
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"dropout must be in [0, 1), got {self.dropout}")
        if not 0.0 < self.future_decay <= 1.0:
            raise ConfigError(f"future_decay must be in (0, 1], got {self.future_decay}")
        if self.online_scope not in ("items", "all"):
            raise ConfigError(f"online_scope must be 'items' or 'all', got {self.online_scope!r}")
        _check_rate("lr", self.lr, positive=True)
        _check_rate("weight_decay", self.weight_decay)
        _check_rate("online_lr", self.online_lr)
        object.__setattr__(self, "dropout", float(self.dropout))
        object.__setattr__(self, "future_decay", float(self.future_decay))


#: ``hybrid``'s parts' settings that differ from their own defaults. No part takes online
#: parameter steps (the blend adapts through state: SASRec reads the new events, ``mf``
#: folds in the history, ``ease`` sums its rows over it; and through the online item
#: offset): on the replay the parts' steps are neutral and cost a third of the events/s.
#: EASE's last 10 items weigh 1 + 1.5 times the rest: the latest taste matters most.
HYBRID_PART_DEFAULTS: dict[str, dict[str, Any]] = {
    "sasrec": {"online_lr": 0.0},
    "mf": {"online_lr": 0.0},
    "ease": {"refresh_every": 0, "recent_weight": 1.5},
}


@dataclass(frozen=True)
class HybridConfig:
    """``hybrid``'s blend: ``(1 - mf_weight) * sasrec + mf_weight * mf + ease_weight * ease``."""

    mf_weight: float = 0.35  #: share of ``mf`` against ``sasrec``; 0.3-0.4 rank alike on the replay
    ease_weight: float = 0.75  #: ``ease`` on top (0: the blend is a dot product)
    #: each part's overrides, on top of ``HYBRID_PART_DEFAULTS`` and its own defaults
    sasrec: Mapping[str, Any] = field(default_factory=dict)
    mf: Mapping[str, Any] = field(default_factory=dict)
    ease: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        w = self.mf_weight
        if (
            isinstance(w, bool)
            or not isinstance(w, (int, float))
            or not (math.isfinite(w) and 0.0 <= w <= 1.0)
        ):
            raise ConfigError(f"mf_weight must be a number in [0, 1], got {w!r}")
        e = self.ease_weight
        if (
            isinstance(e, bool)
            or not isinstance(e, (int, float))
            or not (math.isfinite(e) and e >= 0.0)
        ):
            raise ConfigError(f"ease_weight must be a number >= 0, got {e!r}")
        for key in ("sasrec", "mf", "ease"):
            value = getattr(self, key)
            if value is None:
                object.__setattr__(self, key, {})
            elif not isinstance(value, Mapping):
                raise ConfigError(
                    f"{key} must be a dict of that model's hyperparameters, got {type(value).__name__}"
                )
        object.__setattr__(self, "mf_weight", float(w))
        object.__setattr__(self, "ease_weight", float(e))


#: ``online_bias_lr`` of each model when ``Recommender`` is not told: ``hybrid`` wraps its
#: blend in ``WithOnlineBias`` at 0.03 (0.02-0.05 gain alike on the replay); the others
#: leave it off unless asked
ONLINE_BIAS_DEFAULTS: dict[str, float] = {"hybrid": 0.03}
