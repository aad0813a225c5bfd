"""A k-nearest-neighbour pool router: a prompt's quality for a model is what that model scored
on the most similar stored prompts (the kNN router of RouterBench, Hu et al. 2024, and of
Shnitzer et al. 2023). Inference is numpy only."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..embedders.base import Embedder
from ..errors import PoolError
from .models import Pool
from .routers import PoolRouter

KNN_TENSORS = ("embeddings", "scores")


class KnnPoolRouter(PoolRouter):
    """q_m(x) = the mean score for m of the ``k`` stored prompts most similar to x (cosine on
    the embedder's unit vectors), skipping stored prompts with no score for m; with
    ``weighted`` the mean is weighted by each neighbour's similarity (clipped at 0).

    ``embeddings`` (N, d) are the stored prompts' unit embeddings; ``scores`` (N, len(models))
    their scores in [0, 1], NaN where a model has none. A model with fewer than ``k`` scored
    prompts uses all of them. Raises :class:`PoolError` for mismatched shapes, ``k < 1`` or a
    model without any scored prompt.
    """

    family = "pool_knn"

    def __init__(
        self,
        name: str,
        embeddings: np.ndarray,
        scores: np.ndarray,
        models: Sequence[str],
        *,
        k: int = 20,
        weighted: bool = False,
        embedder: Embedder | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(name, models=models, embedder=embedder, metadata=metadata)
        self.embeddings = np.ascontiguousarray(embeddings, dtype=np.float32)
        self.scores = np.asarray(scores, dtype=np.float64)
        if self.embeddings.ndim != 2 or self.scores.shape != (len(self.embeddings), len(models)):
            raise PoolError(
                f"kNN router {name!r}: embeddings {self.embeddings.shape} and scores "
                f"{self.scores.shape} do not fit {len(models)} models"
            )
        if isinstance(k, bool) or int(k) < 1:
            raise PoolError(f"kNN router {name!r}: k must be >= 1, got {k!r}")
        empty = [m for m, ok in zip(models, np.isfinite(self.scores).any(axis=0)) if not ok]
        if empty:
            raise PoolError(f"kNN router {name!r}: no stored prompt has a score for {empty}")
        self.k = int(k)
        self.weighted = bool(weighted)
        self._groups = self._column_groups()

    def _column_groups(self) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """Columns sharing one pattern of scored prompts: (columns, rows, scores[rows][:, cols])."""
        masks: dict[bytes, list[int]] = {}
        scored = np.isfinite(self.scores)
        for j in range(scored.shape[1]):
            masks.setdefault(scored[:, j].tobytes(), []).append(j)
        groups = []
        for cols in masks.values():
            rows = np.flatnonzero(scored[:, cols[0]])
            groups.append(
                (
                    np.array(cols),
                    rows,
                    np.ascontiguousarray(self.scores[np.ix_(rows, cols)]),
                )
            )
        return groups

    def quality_from_embeddings(
        self, x: np.ndarray, columns: Sequence[int] | None = None
    ) -> np.ndarray:
        """Predicted quality (n, len(columns)) for unit embeddings ``x`` (n, d); ``columns``
        index :attr:`models` (default all)."""
        x = np.asarray(x, dtype=np.float32)
        sims = x @ self.embeddings.T
        out = np.empty((len(x), len(self.models or ())))
        for cols, rows, block in self._groups:
            s = sims[:, rows] if len(rows) < sims.shape[1] else sims
            k = min(self.k, len(rows))
            idx = (
                np.argpartition(-s, k - 1, axis=1)[:, :k]
                if k < len(rows)
                else np.broadcast_to(np.arange(len(rows)), (len(x), len(rows)))
            )
            neighbours = block[idx]  # (n, k, len(cols))
            if self.weighted:
                w = np.maximum(np.take_along_axis(s, idx, axis=1), 0.0).astype(np.float64)
                total = w.sum(axis=1, keepdims=True)
                w = np.where(total > 0, w / np.where(total > 0, total, 1.0), 1.0 / k)
                out[:, cols] = np.einsum("nk,nkc->nc", w, neighbours)
            else:
                out[:, cols] = neighbours.mean(axis=1)
        return out if columns is None else out[:, list(columns)]

    def _quality(self, texts: list[str], pool: Pool, columns: list[int] | None) -> np.ndarray:
        if self.embedder is None:
            raise PoolError(f"kNN router {self.name!r} has no embedder")
        return self.quality_from_embeddings(self.embedder.embed(texts), columns)

    def tensors(self) -> dict[str, np.ndarray]:
        """What a checkpoint stores: embeddings as float16 (half the size; cosines move by
        about 1e-3) and scores as float32 (NaN kept)."""
        return {
            "embeddings": self.embeddings.astype(np.float16),
            "scores": self.scores.astype(np.float32),
        }

    def params(self) -> dict[str, Any]:
        return {"k": self.k, "weighted": self.weighted}

    def with_model(self, name: str, column: np.ndarray) -> KnnPoolRouter:
        """This router with one more model whose stored scores are ``column`` (N,)."""
        if self.models is not None and name in self.models:
            raise PoolError(f"router {self.name!r} already knows {name!r}")
        return KnnPoolRouter(
            self.name,
            self.embeddings,
            np.column_stack([self.scores, np.asarray(column, dtype=np.float64)]),
            [*(self.models or ()), name],
            k=self.k,
            weighted=self.weighted,
            embedder=self.embedder,
            metadata=self.metadata,
        )
