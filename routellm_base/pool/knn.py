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
MERGE_JACCARD = 0.9
"""Columns whose scored prompts overlap at least this much share one neighbour search."""


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
        # Rows ordered by which models score them, so that each group of models' prompts is
        # one contiguous slice; the order of stored prompts carries no meaning.
        pattern = np.isfinite(self.scores)
        order = np.lexsort(pattern.T[::-1]) if pattern.size else np.arange(0)
        self.embeddings = np.ascontiguousarray(self.embeddings[order])
        self.scores = self.scores[order]
        self._embeddings_t = np.ascontiguousarray(self.embeddings.T)
        self._groups = self._column_groups()

    def _column_groups(
        self,
    ) -> list[tuple[np.ndarray, slice | np.ndarray, np.ndarray, np.ndarray | None]]:
        """Columns that share their scored prompts: (columns, rows, scores[rows][:, cols] with
        0 for NaN, 1.0/0.0 where scored or ``None`` when all are).

        Columns whose scored prompts nearly coincide (Jaccard >= :data:`MERGE_JACCARD`, e.g.
        models of one battle set where a model lacks a battle or two) share one neighbour
        search over the union of their prompts; a neighbour without a score for a column is
        skipped there. Stored rows are ordered by scoring pattern at construction, so a
        group's rows are usually a contiguous slice (no copy per query).
        """
        scored = np.isfinite(self.scores)
        groups: list[tuple[list[int], np.ndarray]] = []
        for j in range(scored.shape[1]):
            for cols, mask in groups:
                inter = np.logical_and(mask, scored[:, j]).sum()
                union = np.logical_or(mask, scored[:, j]).sum()
                if union and inter / union >= MERGE_JACCARD:
                    cols.append(j)
                    mask |= scored[:, j]
                    break
            else:
                groups.append(([j], scored[:, j].copy()))
        out = []
        for cols, mask in groups:
            rows = np.flatnonzero(mask)
            contiguous = rows.size and rows[-1] - rows[0] + 1 == rows.size
            index = slice(int(rows[0]), int(rows[-1]) + 1) if contiguous else rows
            block = self.scores[np.ix_(rows, cols)]
            has = np.isfinite(block)
            out.append(
                (
                    np.array(cols),
                    index,
                    np.ascontiguousarray(np.where(has, block, 0.0), dtype=np.float32),
                    None if has.all() else has.astype(np.float32),
                )
            )
        return out

    def quality_from_embeddings(
        self, x: np.ndarray, columns: Sequence[int] | None = None
    ) -> np.ndarray:
        """Predicted quality (n, len(columns)) for unit embeddings ``x`` (n, d); ``columns``
        index :attr:`models` (default all)."""
        x = np.asarray(x, dtype=np.float32)
        sims = x @ self._embeddings_t
        n = len(x)
        out = np.empty((n, len(self.models or ())))
        for cols, rows, filled, has in self._groups:
            s = sims[:, rows]
            size = s.shape[1]
            k = min(self.k, size)
            # The k-th largest similarity per query (np.partition is several times faster
            # than argpartition here); prompts at or above it are the neighbours (a tie at
            # the k-th similarity takes all tied prompts).
            kth = np.partition(s, size - k, axis=1)[:, size - k, None]
            chosen = s >= kth
            if self.weighted:
                w = np.maximum(s, 0.0)
                w *= chosen
                # no neighbour with a positive similarity: the plain mean
                flat = w.sum(axis=1) <= 0
                if flat.any():
                    w[flat] = chosen[flat]
            else:
                w = chosen.astype(np.float32)
            summed = w @ filled  # (n, len(cols))
            # a neighbour without a score for a column (``has`` 0) is skipped there
            total = w.sum(axis=1, keepdims=True, dtype=np.float64) if has is None else w @ has
            with np.errstate(invalid="ignore", divide="ignore"):
                # NaN where no neighbour scores a column: quality() reads it as 0.5
                out[:, cols] = np.where(total > 0, summed / total, np.nan)
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
