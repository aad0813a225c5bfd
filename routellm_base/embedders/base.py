"""The embedder interface and its bounded cache."""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..errors import EmbedderMismatchError

DEFAULT_CACHE_SIZE = 4096


class Embedder(ABC):
    """Maps texts to L2-normalised float32 vectors, caching repeated texts.

    Subclasses implement :meth:`_embed_uncached`; :meth:`embed` handles the cache, which holds at
    most ``cache_size`` texts (least recently used evicted first) and is safe across threads.
    """

    kind: str
    """Embedder family, e.g. ``static`` or ``sentence_transformer``."""

    def __init__(self, name: str, dim: int, cache_size: int = DEFAULT_CACHE_SIZE) -> None:
        if cache_size < 0:
            raise ValueError(f"cache_size must be >= 0, got {cache_size}")
        self.name = name
        self.dim = dim
        self.cache_size = cache_size
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()
        self.cache_hits = 0
        self.cache_misses = 0

    @property
    def identity(self) -> dict[str, Any]:
        """What a checkpoint records to check that it is used with the same embedder."""
        return {"type": self.kind, "name": self.name, "dim": self.dim}

    def check_matches(self, expected: dict[str, Any], checkpoint: str) -> None:
        mine = self.identity
        if any(mine.get(k) != expected.get(k) for k in ("type", "name", "dim")):
            raise EmbedderMismatchError(
                f"checkpoint {checkpoint!r} was trained with embedder "
                f"{expected.get('type')}:{expected.get('name')} (dim {expected.get('dim')}) but is "
                f"being loaded with {mine['type']}:{mine['name']} (dim {mine['dim']}); "
                "its weights are meaningless on other embeddings"
            )

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Embeddings of ``texts``, shape ``(len(texts), dim)``, rows of unit norm (or zero)."""
        if isinstance(texts, str):
            raise TypeError("embed() takes a sequence of texts, not a single string")
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        missing: dict[str, list[int]] = {}
        with self._lock:
            for i, text in enumerate(texts):
                cached = self._cache.get(text) if self.cache_size else None
                if cached is None:
                    missing.setdefault(text, []).append(i)
                else:
                    self._cache.move_to_end(text)
                    out[i] = cached
            self.cache_hits += len(texts) - sum(len(v) for v in missing.values())
            self.cache_misses += len(missing)
        if missing:
            unique = list(missing)
            vectors = self._embed_uncached(unique)
            with self._lock:
                for text, vector in zip(unique, vectors):
                    out[missing[text]] = vector
                    if self.cache_size:
                        self._cache[text] = vector
                        self._cache.move_to_end(text)
                        while len(self._cache) > self.cache_size:
                            self._cache.popitem(last=False)
        return out

    def known_token_counts(self, texts: Sequence[str]) -> np.ndarray | None:
        """How many tokens of each text the embedder has vectors for, shape ``(len(texts),)``;
        ``None`` when the embedder cannot tell (a neural encoder embeds any text)."""
        return None

    def unreadable(self, texts: Sequence[str]) -> np.ndarray | None:
        """Bool ``(len(texts),)``: which texts the embedder has no token for, so that they embed
        as nothing; ``None`` when the embedder cannot tell. Routing asks this before scoring."""
        return None

    @abstractmethod
    def _embed_uncached(self, texts: list[str]) -> np.ndarray:
        """Embed distinct texts; return float32 ``(len(texts), dim)`` with unit-norm rows."""


def l2_normalise(matrix: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return (matrix / np.maximum(norms, 1e-12)).astype(np.float32, copy=False)
