"""Item and user attributes held by the engine, their content vectors, and the content path
that scores items the collaborative model knows nothing about.

``Metadata`` keeps the attribute tables (indexed by external id), a ``FeatureEncoder`` for
each, the item vectors aligned to the engine's item rows, and a ``content`` model fitted
beside the engine's model on the same data (``fit_content``), whatever that model is.
``fill_cold`` gives items with metadata but no positive interaction (or no row in the
model's table yet) a score on the model's own scale: the item's content score for the
user (the ``content`` model's) is ranked among the content
scores of the items the model does know, and the item takes the model's score at that
rank, moved towards the top by ``new_item_boost`` (the share of items above it, ``1 - q``,
becomes ``(1 - q) ** new_item_boost``). So with the default 2, a new item whose content
matches the user's recent items better than 97% of the catalogue does sits in the top
0.1% of the model's ranking, one that matches better than half of it sits at 75%, and
items with interactions keep exactly the scores the model gives them.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from recloop.data.features import FeatureEncoder, normalise_rows
from recloop.data.vocab import Vocab
from recloop.errors import InvalidInputError
from recloop.models import FitOptions, TrainData
from recloop.models.content import Content, profiles

log = logging.getLogger(__name__)

#: how many items with interactions a cold item's content score is ranked among
CALIBRATION_ITEMS = 4096


def _merge(old: pd.DataFrame | None, new: pd.DataFrame) -> pd.DataFrame:
    """``new``'s rows over ``old``'s: a given cell replaces the old one, others stay."""
    if old is None or not len(old):
        return new
    both = new.index.intersection(old.index)
    if not len(both):
        return pd.concat([old, new])
    merged = new.loc[both].combine_first(old.loc[both])
    rest = new.loc[new.index.difference(both, sort=False)]
    out = pd.concat([old.drop(index=both), merged, rest])
    out.index.name = new.index.name
    return out


def attach_content(model: Any, metadata: Metadata, n_items: int) -> None:
    """Hand the items' content vectors to a model that reads them (``set_item_features``)."""
    setter = getattr(model, "set_item_features", None)
    if setter is not None and metadata.has_content:
        setter(metadata.item_matrix(n_items))


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return [_jsonable(v) for v in value.tolist()]
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    return value


class Metadata:
    """Attributes of items and users, and the items' content vectors by item row.

    Parameters
    ----------
    new_item_boost
        How far ``fill_cold`` lifts a content-scored item towards the top (1: not at all).
    half_life, history_len
        The user profile's recency weighting (as the ``content`` model's).
    """

    def __init__(
        self, new_item_boost: float = 2.0, half_life: float = 20.0, history_len: int = 200
    ) -> None:
        self.new_item_boost = new_item_boost
        self.half_life = half_life
        self.history_len = history_len
        self.items: pd.DataFrame | None = None
        self.users: pd.DataFrame | None = None
        self.item_encoder = FeatureEncoder()
        self.user_encoder = FeatureEncoder()
        self.item_vectors_ = np.zeros((0, 0), np.float32)
        self.has_item_ = np.zeros(0, bool)
        self.user_vectors_: dict[str, np.ndarray] = {}
        self.scorer_: Content | None = None  # the content model behind fill_cold

    def fit_content(self, data: TrainData, seed: int) -> None:
        """Fit the content scorer on the engine's training data (nothing without content)."""
        if not self.has_content:
            self.scorer_ = None
            return
        scorer = Content(seed=seed, half_life=self.half_life, history_len=self.history_len)
        scorer.set_item_features(self.item_matrix(data.n_items))
        scorer.fit(data, FitOptions(show_progress=False))
        self.scorer_ = scorer

    # ------------------------------------------------------------------ writes
    def put_items(self, frame: pd.DataFrame, vocab: Vocab) -> np.ndarray:
        """Merge item rows into the table, add unknown ids to ``vocab`` and encode the rows.

        Returns the (n,) item rows written. The caller holds the engine's state lock.
        """
        frame = normalise_rows(_check_frame(frame, "items"), "item_id")
        self.items = _merge(self.items, frame)
        enc = self.item_encoder
        before = (enc.text_dim, len(enc.layout_.numeric)) if enc.fitted_ else None
        enc.partial_fit(self.items if before is None else frame)
        rows = vocab.add_many(frame.index.to_numpy())
        n = len(vocab)
        if before is not None and before != (enc.text_dim, len(enc.layout_.numeric)):
            before = None  # the fixed parts changed shape: encode every row again
        if before is None:
            ids = [i for i in self.items.index if i in vocab]
            self._grow(n, enc.dim, reset=True)
            idx = vocab.lookup(ids)
            self.item_vectors_[idx] = enc.transform(self.items.loc[ids])
            self.has_item_[idx] = True
        else:
            self._grow(n, enc.dim)
            self.item_vectors_[rows] = enc.transform(self.items.loc[frame.index])
            self.has_item_[rows] = True
        if self.scorer_ is not None:
            self.scorer_.set_item_features(self.item_matrix(n))
        return rows

    def put_users(self, frame: pd.DataFrame) -> list[str]:
        """Merge user rows into the table and encode them; returns their ids."""
        frame = normalise_rows(_check_frame(frame, "users"), "user_id")
        self.users = _merge(self.users, frame)
        enc = self.user_encoder
        refit = not enc.fitted_
        enc.partial_fit(self.users if refit else frame)
        rows = self.users if refit else frame
        vecs = enc.transform(rows)
        if refit:
            self.user_vectors_ = {}
        self.user_vectors_.update(zip(rows.index.tolist(), vecs))
        return frame.index.tolist()

    def _grow(self, n_rows: int, dim: int, reset: bool = False) -> None:
        old, has = self.item_vectors_, self.has_item_
        if reset:
            self.item_vectors_ = np.zeros((max(n_rows, 1), dim), np.float32)
            self.has_item_ = np.zeros(max(n_rows, 1), bool)
            return
        rows = len(old) if len(old) >= n_rows else max(2 * len(old), n_rows, 64)
        if rows == len(old) and old.shape[1] == dim:
            return
        grown = np.zeros((rows, dim), np.float32)
        grown[: len(old), : old.shape[1]] = old
        flags = np.zeros(rows, bool)
        flags[: len(has)] = has
        self.item_vectors_, self.has_item_ = grown, flags

    # ------------------------------------------------------------------ reads
    @property
    def has_content(self) -> bool:
        return bool(self.has_item_.any())

    def item_matrix(self, n_items: int) -> np.ndarray:
        """(n_items, d) content vectors by item row (zeros for an item without metadata)."""
        vec = self.item_vectors_
        if len(vec) >= n_items:
            return vec[:n_items]
        return np.concatenate([vec, np.zeros((n_items - len(vec), vec.shape[1]), np.float32)])

    def item(self, item_id: str) -> dict[str, Any] | None:
        """The item's attributes (missing cells left out), or None when it has none."""
        return self._row(self.items, item_id)

    def user(self, user_id: str) -> dict[str, Any] | None:
        return self._row(self.users, user_id)

    @staticmethod
    def _row(frame: pd.DataFrame | None, key: str) -> dict[str, Any] | None:
        if frame is None or key not in frame.index:
            return None
        row = frame.loc[key]
        out: dict[str, Any] = {}
        for col, value in row.items():
            v = _jsonable(value)
            if v is not None:
                out[str(col)] = v
        return out

    def tags(self, item_rows: Sequence[int], vocab: Vocab) -> list[list[str]]:
        """Per item row, its tags (genres and the like)."""
        if self.items is None:
            return [[] for _ in item_rows]
        ids = vocab.ids(list(item_rows))
        known = [i for i in ids if i in self.items.index]
        found = dict(zip(known, self.item_encoder.tags(self.items.loc[known]))) if known else {}
        return [found.get(i, []) for i in ids]

    # ------------------------------------------------------------------ scoring
    def content_scores(self, histories: Sequence[np.ndarray], n_items: int) -> np.ndarray:
        """(batch, n_items) the content scorer's scores for each history (before
        ``fit_content``: ``<profile, x_j>``, see ``models.content``)."""
        if self.scorer_ is not None:
            s = self.scorer_.score(np.full(len(histories), -1, np.int64), histories)
            if s.shape[1] >= n_items:
                return s[:, :n_items]
            return np.pad(s, ((0, 0), (0, n_items - s.shape[1])))
        vec = self.item_matrix(n_items)
        out: np.ndarray = profiles(vec, histories, self.half_life, self.history_len) @ vec.T
        return out

    def fill_cold(
        self,
        out: np.ndarray,
        rows: np.ndarray,
        histories: Sequence[np.ndarray],
        counts: np.ndarray,
        model_items: int,
    ) -> None:
        """Score, in place, the items of ``out[rows]`` that have metadata but no positive
        interaction or no model row (see the module docstring)."""
        n_items = out.shape[1]
        if not len(rows) or not self.has_content:
            return
        flags = self.has_item_  # read once: set_items may replace it meanwhile
        has = np.zeros(n_items, bool)
        m = min(n_items, len(flags))
        has[:m] = flags[:m]
        no_row = np.arange(n_items) >= model_items
        zero = np.zeros(n_items, bool)
        zero[: min(n_items, len(counts))] = counts[:n_items] <= 0
        cold = has & (zero | no_row)
        if not cold.any():
            return
        warm_items = np.flatnonzero(has & ~cold)
        if not len(warm_items):
            return
        if len(warm_items) > CALIBRATION_ITEMS:
            warm_items = warm_items[:: math.ceil(len(warm_items) / CALIBRATION_ITEMS)]
        cold_items = np.flatnonzero(cold)
        content = self.content_scores([histories[r] for r in rows], n_items)
        boost = max(self.new_item_boost, 1.0)
        for k, r in enumerate(rows):
            model = out[r, warm_items]
            model = np.sort(model[np.isfinite(model)])
            if not len(model):
                continue
            ref = np.sort(content[k, warm_items])
            q = np.searchsorted(ref, content[k, cold_items], side="right") / len(ref)
            q = 1.0 - (1.0 - q) ** boost
            mapped = np.interp(q * (len(model) - 1), np.arange(len(model)), model)
            # cold items that land on one model score keep their content order
            order = np.argsort(np.argsort(content[k, cold_items], kind="stable"), kind="stable")
            span = max(float(model[-1] - model[0]), 1e-6)
            out[r, cold_items] = mapped - 1e-6 * span * (1.0 - order / len(cold_items))

    # ------------------------------------------------------------------ persistence
    def save(self, folder: Path) -> None:
        """Write ``items.jsonl`` / ``users.jsonl`` (one JSON object per row: cells may mix
        lists and strings, which columnar formats refuse)."""
        for name, frame in (("items", self.items), ("users", self.users)):
            if frame is not None:
                frame.reset_index().to_json(
                    folder / f"{name}.jsonl", orient="records", lines=True, date_format="iso"
                )
        if self.scorer_ is not None:
            state = self.scorer_.get_state()
            torch.save(
                {
                    k: torch.from_numpy(v) if isinstance(v, np.ndarray) else v
                    for k, v in state.items()
                },
                folder / "content.pt",
            )

    def load(self, folder: Path, vocab: Vocab) -> None:
        """Read what ``save`` wrote (and ``items.parquet`` of older snapshots)."""
        for name, key in (("items", "item_id"), ("users", "user_id")):
            path = folder / f"{name}.jsonl"
            if path.exists():
                frame = pd.read_json(
                    path, orient="records", lines=True, dtype=False, convert_dates=False
                )
            elif name == "items" and (folder / "items.parquet").exists():
                frame = pd.read_parquet(folder / "items.parquet")
            else:
                continue
            if key not in frame.columns and frame.index.name != key:
                frame = frame.reset_index().rename(columns={"index": key})
            if name == "items":
                self.put_items(frame, vocab)
            else:
                self.put_users(frame)
        if (folder / "content.pt").exists():
            scorer = Content(half_life=self.half_life, history_len=self.history_len)
            scorer.set_state(torch.load(folder / "content.pt", weights_only=True))
            scorer.set_item_features(self.item_matrix(len(vocab)))
            self.scorer_ = scorer


def _check_frame(frame: object, name: str) -> pd.DataFrame:
    if not isinstance(frame, pd.DataFrame):
        raise InvalidInputError(name, f"must be a pandas DataFrame, got {type(frame).__name__}")
    key = "item_id" if name == "items" else "user_id"
    if key not in frame.columns and frame.index.name != key:
        raise InvalidInputError(
            key, f"{name} need an {key} column or index; got columns {list(frame.columns)}"
        )
    return frame
