"""Item and user attributes to vectors: tags, categories, numbers and text.

``FeatureEncoder`` reads a table of rows (items or users, one id per row) and learns a
layout from it:

- **text** — columns named like ``title``/``text``/``description``: joined per row and
  embedded by ``TextEmbedder`` (MiniLM, or a hashed bag of words without it);
- **tags** — ``genres``/``tags``-like columns (a list, or a ``|``-separated string) and
  0/1 flag columns (the flag's column name is the tag), multi-hot over one vocabulary;
- **categorical** — other string columns with few distinct values (``gender``,
  ``occupation``), one-hot as ``column=value`` tokens; near-unique strings (urls, zip
  codes) are identifiers and skipped;
- **numeric** — other numbers (and ``*date*`` columns, as a fractional year),
  standardised with the first fit's mean and deviation, clipped to ±3 deviations.

The vector is ``[text | numeric | tokens]``. Each part is scaled to a fixed weight
(``FeatureWeights``): a row's text vector and its tokens of each column are
L2-normalised, so an item with five genres does not outweigh one with one. New tags and
categories (``partial_fit``) append dimensions at the end, so earlier rows stay valid
once padded with zeros.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from recloop.data.text import TextEmbedder
from recloop.events import parse_id

TEXT_COLUMNS = ("title", "name", "text", "description", "overview", "summary", "plot")
TAG_COLUMNS = ("genres", "genre", "tags", "tag", "categories", "category_list", "keywords")
ID_COLUMNS = ("item_id", "user_id")
TAG_GROUP = "tags"


def split_tags(value: Any) -> list[str]:
    """Tags of one cell: a list (or tuple, array) of strings, or one ``|``-separated string.

    Blank tags and missing cells give nothing; duplicates are kept once, in order.

    >>> split_tags("Action|Comedy| |Action")
    ['Action', 'Comedy']
    >>> split_tags(["Sci-Fi", "Drama"])
    ['Sci-Fi', 'Drama']
    >>> split_tags(None)
    []
    """
    if value is None:
        return []
    if isinstance(value, str):
        parts: Iterable[Any] = value.split("|")
    elif isinstance(value, (list, tuple, np.ndarray, pd.Series, set, frozenset)):
        parts = value
    elif isinstance(value, float) and math.isnan(value):
        return []
    else:
        parts = [value]
    out: list[str] = []
    for p in parts:
        if p is None or (isinstance(p, float) and math.isnan(p)):
            continue
        s = str(p).strip()
        if s and s not in out:
            out.append(s)
    return out


@dataclass(frozen=True)
class FeatureWeights:
    """Squared norm of each part of a row's vector when the row has it."""

    text: float = 0.5
    tags: float = 1.0
    categorical: float = 0.5
    numeric: float = 0.5


@dataclass
class _Layout:
    text: list[str] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    flags: list[str] = field(default_factory=list)
    categorical: list[str] = field(default_factory=list)
    numeric: list[str] = field(default_factory=list)
    dates: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def _is_flag(col: pd.Series) -> bool:
    if pd.api.types.is_bool_dtype(col):
        return True
    if not pd.api.types.is_numeric_dtype(col):
        return False
    vals = pd.unique(col.dropna())
    return len(vals) > 0 and set(np.asarray(vals, np.float64).tolist()) <= {0.0, 1.0}


def _as_year(col: pd.Series) -> pd.Series:
    if pd.api.types.is_numeric_dtype(col):
        return col.astype(np.float64)
    parsed = pd.to_datetime(col, errors="coerce", format="mixed")
    return parsed.dt.year + (parsed.dt.dayofyear - 1) / 365.25


class FeatureEncoder:
    """Rows of attributes to fixed-meaning vectors (see the module docstring).

    Parameters
    ----------
    text
        The text embedder (default: ``TextEmbedder()``, MiniLM when installed).
    weights
        The weight of each part.
    """

    def __init__(
        self, text: TextEmbedder | None = None, weights: FeatureWeights | None = None
    ) -> None:
        self.weights = weights or FeatureWeights()
        self._text = text
        self.layout_ = _Layout()
        self.tokens_: dict[str, int] = {}  # token -> position in the token part
        self.token_group_: list[str] = []  # per token: its column group
        self.mean_: dict[str, float] = {}
        self.std_: dict[str, float] = {}
        self.fitted_ = False

    @property
    def text(self) -> TextEmbedder:
        if self._text is None:
            self._text = TextEmbedder()
        return self._text

    @property
    def text_dim(self) -> int:
        return self.text.dim if self.layout_.text else 0

    @property
    def dim(self) -> int:
        return self.text_dim + len(self.layout_.numeric) + len(self.tokens_)

    def _decide(self, frame: pd.DataFrame) -> None:
        """Give every column of ``frame`` not seen before a kind."""
        lay = self.layout_
        known = {
            *lay.text,
            *lay.tags,
            *lay.flags,
            *lay.categorical,
            *lay.numeric,
            *lay.dates,
            *lay.skipped,
        }
        n = len(frame)
        for name in frame.columns:
            if name in known or name in ID_COLUMNS:
                continue
            col = frame[name]
            low = str(name).lower()
            sample = col.dropna()
            if not len(sample):
                continue  # decided once a row has a value
            if low in TEXT_COLUMNS:
                lay.text.append(name)
            elif low in TAG_COLUMNS or (
                len(sample) and isinstance(sample.iloc[0], (list, tuple, np.ndarray))
            ):
                lay.tags.append(name)
            elif _is_flag(col):
                lay.flags.append(name)
            elif self.fitted_ and pd.api.types.is_numeric_dtype(col):
                lay.skipped.append(name)  # numeric parts are fixed by the first fit
            elif pd.api.types.is_numeric_dtype(col):
                if sample.nunique() > 1:
                    lay.numeric.append(name)
                else:
                    lay.skipped.append(name)
            elif "date" in low and not self.fitted_:
                years = _as_year(col).dropna()
                if len(years) >= max(1, len(sample) // 2) and years.nunique() > 1:
                    lay.numeric.append(name)
                    lay.dates.append(name)
                else:
                    lay.skipped.append(name)
            else:
                distinct = sample.astype(str).nunique()
                if len(sample) and distinct <= max(2, n // 2) and distinct <= 10_000:
                    lay.categorical.append(name)
                else:
                    lay.skipped.append(name)

    def _row_tokens(self, frame: pd.DataFrame) -> list[list[tuple[str, str]]]:
        """Per row, its (group, token) pairs."""
        lay = self.layout_
        rows: list[list[tuple[str, str]]] = [[] for _ in range(len(frame))]
        for name in lay.tags:
            if name in frame.columns:
                for r, cell in enumerate(frame[name].tolist()):
                    rows[r].extend((TAG_GROUP, t) for t in split_tags(cell))
        for name in lay.flags:
            if name in frame.columns:
                on = pd.to_numeric(frame[name], errors="coerce").fillna(0).to_numpy() > 0.5
                for r in np.flatnonzero(on).tolist():
                    rows[r].append((TAG_GROUP, str(name)))
        for name in lay.categorical:
            if name in frame.columns:
                for r, cell in enumerate(frame[name].tolist()):
                    if cell is not None and not (isinstance(cell, float) and math.isnan(cell)):
                        rows[r].append((str(name), f"{name}={cell}"))
        return [list(dict.fromkeys(r)) for r in rows]

    def partial_fit(self, frame: pd.DataFrame) -> FeatureEncoder:
        """Learn new columns' kinds, new tags and categories; numeric statistics come from the
        first call that has numeric columns."""
        self._decide(frame)
        if not self.mean_:
            for name in self.layout_.numeric:
                vals = self._numeric(frame, name)
                vals = vals[np.isfinite(vals)]
                self.mean_[name] = float(vals.mean()) if len(vals) else 0.0
                sd = float(vals.std()) if len(vals) else 0.0
                self.std_[name] = sd if sd > 0 else 1.0
        for row in self._row_tokens(frame):
            for group, tok in row:
                if tok not in self.tokens_:
                    self.tokens_[tok] = len(self.tokens_)
                    self.token_group_.append(group)
        self.fitted_ = True
        return self

    def _numeric(self, frame: pd.DataFrame, name: str) -> np.ndarray:
        if name not in frame.columns:
            return np.full(len(frame), np.nan)
        col = frame[name]
        if name in self.layout_.dates:
            return np.asarray(_as_year(col), np.float64)
        return np.asarray(pd.to_numeric(col, errors="coerce"), np.float64)

    def transform(self, frame: pd.DataFrame) -> np.ndarray:
        """(len(frame), dim) float32. Unknown tags and categories count for nothing; a missing
        number sits at the mean."""
        w = self.weights
        n = len(frame)
        out = np.zeros((n, self.dim), np.float32)
        lay = self.layout_
        at = 0
        if lay.text:
            present = [c for c in lay.text if c in frame.columns]
            texts = (
                [
                    " ".join(str(v) for v in vals if isinstance(v, str) and v.strip())
                    for vals in zip(*(frame[c].tolist() for c in present))
                ]
                if present
                else [""] * n
            )
            out[:, : self.text_dim] = self.text.embed(texts) * math.sqrt(w.text)
            at = self.text_dim
        if lay.numeric:
            scale = math.sqrt(w.numeric / len(lay.numeric))
            for j, name in enumerate(lay.numeric):
                z = (self._numeric(frame, name) - self.mean_.get(name, 0.0)) / self.std_.get(
                    name, 1.0
                )
                z = np.clip(np.nan_to_num(z, nan=0.0), -3.0, 3.0) / 3.0
                out[:, at + j] = z * scale
            at += len(lay.numeric)
        for r, row in enumerate(self._row_tokens(frame)):
            groups: dict[str, list[int]] = {}
            for group, tok in row:
                pos = self.tokens_.get(tok)
                if pos is not None:
                    groups.setdefault(group, []).append(pos)
            for group, cols in groups.items():
                weight = w.tags if group == TAG_GROUP else w.categorical
                out[r, [at + j for j in cols]] = math.sqrt(weight / len(cols))
        return out

    def tags(self, frame: pd.DataFrame) -> list[list[str]]:
        """Per row, its tags (``genres``, ``tags``, flag columns), for explanations."""
        return [[t for g, t in row if g == TAG_GROUP] for row in self._row_tokens(frame)]

    def describe(self) -> dict[str, Any]:
        """The learned layout, for reports."""
        lay = self.layout_
        return {
            "text": lay.text,
            "text_encoder": self.text.name if lay.text else None,
            "tags": lay.tags + lay.flags,
            "categorical": lay.categorical,
            "numeric": lay.numeric,
            "skipped": lay.skipped,
            "dim": self.dim,
        }


def normalise_rows(frame: pd.DataFrame, key: str) -> pd.DataFrame:
    """``frame`` indexed by string ``key`` ids (taken from the ``key`` column or the index),
    the last row kept for a repeated id."""
    if key in frame.columns:
        frame = frame.set_index(key)
    frame = frame.copy()
    frame.index = pd.Index(
        [parse_id(x, f"{key}[{n}]") for n, x in enumerate(frame.index)], name=key
    )
    return frame[~frame.index.duplicated(keep="last")]


def tag_list(frame: pd.DataFrame, ids: Sequence[str], encoder: FeatureEncoder) -> list[list[str]]:
    """Tags of the rows ``ids`` of ``frame`` (an id not in it has none)."""
    known = [i for i in ids if i in frame.index]
    tags = dict(zip(known, encoder.tags(frame.loc[known]))) if known else {}
    return [tags.get(i, []) for i in ids]
