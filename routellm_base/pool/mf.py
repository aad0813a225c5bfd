"""A many-model matrix-factorisation pool router (RouteLLM's MF, Ong et al. 2025, section 4.2,
with one learned vector per model of a pool).

q_m(x) = sigmoid(u_m . (W e(x) + b) + beta_m): the prompt embedding e(x) (d,) is projected
to z = W e + b (h,); each model m has a vector u_m (h,) and a bias beta_m. Inference is one
matrix product, numpy only; training is :mod:`routellm_base.pool.training`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..embedders.base import Embedder
from ..errors import PoolError
from .models import Pool
from .routers import PoolRouter

MF_TENSORS = ("proj_weight", "proj_bias", "model_vectors", "model_bias")


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))


class PoolMFRouter(PoolRouter):
    """Predicted quality sigmoid(u_m . (W e + b) + beta_m) for each of ``models``.

    ``tensors``: ``proj_weight`` W (h, d), ``proj_bias`` b (h,), ``model_vectors`` U
    (len(models), h), ``model_bias`` beta (len(models),). Raises :class:`PoolError` for a
    missing tensor or mismatched shapes.
    """

    family = "pool_mf"

    def __init__(
        self,
        name: str,
        tensors: dict[str, np.ndarray],
        models: Sequence[str],
        *,
        embedder: Embedder | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(name, models=models, embedder=embedder, metadata=metadata)
        missing = [t for t in MF_TENSORS if t not in tensors]
        if missing:
            raise PoolError(f"pool MF router {name!r} lacks tensors {missing}")
        t = {k: np.asarray(tensors[k], dtype=np.float64) for k in MF_TENSORS}
        h, d = t["proj_weight"].shape
        if (
            t["proj_bias"].shape != (h,)
            or t["model_vectors"].shape != (len(models), h)
            or t["model_bias"].shape != (len(models),)
        ):
            raise PoolError(
                f"pool MF router {name!r}: tensor shapes "
                f"{ {k: v.shape for k, v in t.items()} } do not fit {len(models)} models"
            )
        self.weights = t
        # Folded: logits = e @ (W^T U^T) + (U b + beta), one (d, m) product at run time.
        self._direction = (t["proj_weight"].T @ t["model_vectors"].T).astype(np.float32)
        self._offset = t["model_vectors"] @ t["proj_bias"] + t["model_bias"]

    def project(self, x: np.ndarray) -> np.ndarray:
        """z = W e + b for unit embeddings ``x`` (n, d): shape (n, h)."""
        return np.asarray(x, np.float64) @ self.weights["proj_weight"].T + self.weights["proj_bias"]

    def logits_from_embeddings(
        self, x: np.ndarray, columns: Sequence[int] | None = None
    ) -> np.ndarray:
        """u_m . z + beta_m, shape (n, len(columns)) (default all models)."""
        out = np.asarray(x, np.float32) @ self._direction + self._offset
        return out if columns is None else out[:, list(columns)]

    def quality_from_embeddings(
        self, x: np.ndarray, columns: Sequence[int] | None = None
    ) -> np.ndarray:
        """Predicted quality in [0, 1], shape (n, len(columns))."""
        return sigmoid(self.logits_from_embeddings(x, columns))

    def _quality(self, texts: list[str], pool: Pool, columns: list[int] | None) -> np.ndarray:
        if self.embedder is None:
            raise PoolError(f"pool MF router {self.name!r} has no embedder")
        return self.quality_from_embeddings(self.embedder.embed(texts), columns)

    def tensors(self) -> dict[str, np.ndarray]:
        return {k: v.astype(np.float32) for k, v in self.weights.items()}

    def params(self) -> dict[str, Any]:
        return {}

    def with_model(self, name: str, vector: np.ndarray, bias: float) -> PoolMFRouter:
        """This router with one more model (its vector u (h,) and bias beta)."""
        if self.models is not None and name in self.models:
            raise PoolError(f"router {self.name!r} already knows {name!r}")
        t = dict(self.weights)
        t["model_vectors"] = np.vstack([t["model_vectors"], np.asarray(vector, np.float64)])
        t["model_bias"] = np.append(t["model_bias"], float(bias))
        return PoolMFRouter(
            self.name,
            t,
            [*(self.models or ()), name],
            embedder=self.embedder,
            metadata=self.metadata,
        )


class BlendPoolRouter(PoolRouter):
    """``weight`` * the first router's quality + (1 - ``weight``) * the second's (both trained
    on the same models, with the same embedder): a kNN/MF blend."""

    family = "pool_blend"

    def __init__(
        self,
        name: str,
        first: PoolRouter,
        second: PoolRouter,
        weight: float,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        if first.models != second.models:
            raise PoolError(f"blend {name!r}: the routers know different models")
        if not 0.0 <= weight <= 1.0:
            raise PoolError(f"blend {name!r}: weight must be in [0, 1], got {weight!r}")
        super().__init__(name, models=first.models, embedder=first.embedder, metadata=metadata)
        self.first, self.second, self.weight = first, second, float(weight)

    def quality_from_embeddings(
        self, x: np.ndarray, columns: Sequence[int] | None = None
    ) -> np.ndarray:
        a = self.first.quality_from_embeddings(x, columns)  # type: ignore[attr-defined]
        b = self.second.quality_from_embeddings(x, columns)  # type: ignore[attr-defined]
        return self.weight * a + (1.0 - self.weight) * b

    def _quality(self, texts: list[str], pool: Pool, columns: list[int] | None) -> np.ndarray:
        assert self.embedder is not None
        return self.quality_from_embeddings(self.embedder.embed(texts), columns)
