"""Matrix-factorisation router (RouteLLM, section 4.2).

Each model m has a learned embedding v_m; a prompt embedding q is projected, x = W q + b, and the
model's quality score is s(m, q) = w . (v_m * x). The strong model's win rate is
sigmoid(s(strong, q) - s(weak, q)). For a fixed pair the score difference is linear in q, so
inference folds the weights into one vector and a bias: a single matrix-vector product.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import CheckpointError
from .base import Router, sigmoid

MF_TENSORS = ("model_embeddings", "proj_weight", "proj_bias", "classifier_weight")


class MFRouter(Router):
    family = "mf"

    def __init__(
        self,
        name: str,
        tensors: dict[str, np.ndarray],
        models: list[str],
        strong_model: str,
        weak_model: str,
        **kwargs: Any,
    ) -> None:
        missing = [t for t in MF_TENSORS if t not in tensors]
        if missing:
            raise CheckpointError(f"MF checkpoint {name!r} lacks tensors {missing}")
        for model in (strong_model, weak_model):
            if model not in models:
                raise CheckpointError(
                    f"MF checkpoint {name!r} does not know model {model!r}; it knows {models}"
                )
        super().__init__(name, strong_model=strong_model, weak_model=weak_model, **kwargs)
        self.models = list(models)
        self.tensors = {k: np.asarray(tensors[k], dtype=np.float64) for k in MF_TENSORS}
        self._direction, self._offset = self._fold(strong_model, weak_model)

    def _fold(self, strong: str, weak: str) -> tuple[np.ndarray, float]:
        v = self.tensors["model_embeddings"]
        v = v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)
        w = self.tensors["classifier_weight"]
        delta = w * (v[self.models.index(strong)] - v[self.models.index(weak)])
        direction = self.tensors["proj_weight"].T @ delta
        offset = float(delta @ self.tensors["proj_bias"])
        return direction.astype(np.float32), offset

    def for_pair(self, strong_model: str, weak_model: str) -> MFRouter:
        """The same checkpoint comparing another pair of the models it was trained on."""
        return MFRouter(
            self.name,
            self.tensors,
            self.models,
            strong_model,
            weak_model,
            embedder=self.embedder,
            calibration=None
            if (strong_model, weak_model) != (self.strong_model, self.weak_model)
            else self.calibration,
            metadata=self.metadata,
        )

    def _win_rate(self, texts: list[str]) -> np.ndarray:
        assert self.embedder is not None
        embeddings = self.embedder.embed(texts)
        return sigmoid(embeddings @ self._direction + self._offset)
