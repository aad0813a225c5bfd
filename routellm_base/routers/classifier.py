"""Routers that classify a prompt into (strong wins, tie, weak wins): ``bert`` and ``causal_llm``.

Win rate = P(strong wins) + ``tie_weight`` * P(tie): a tie counts as half a win by default, as
ties count in the battles the other routers learn from; ``tie_weight`` = 0 gives RouteLLM's
released formula, P(strong wins) alone.
"""

from __future__ import annotations

import threading
from abc import abstractmethod
from typing import Any

import numpy as np

from ..errors import CheckpointError
from .base import Router

CLASSIFIER_LABELS = ("strong_wins", "tie", "weak_wins")
"""The classes, from the strong model's point of view, in the order of the logits."""


class ClassifierRouter(Router):
    """Batched, thread-safe class probabilities over a torch model; subclasses give the logits."""

    uses_embedder = False
    """The router tokenises its own input: checkpoints record no embedder for it."""

    def __init__(
        self, name: str, *, tie_weight: float, batch_size: int, torch: Any, **kwargs: Any
    ) -> None:
        if not 0.0 <= tie_weight <= 1.0:
            raise CheckpointError(
                f"{self.family} checkpoint {name!r}: tie_weight {tie_weight} is not in [0, 1]"
            )
        super().__init__(name, **kwargs)
        self.tie_weight = float(tie_weight)
        self.batch_size = int(batch_size)
        self._torch = torch
        self._lock = threading.Lock()  # one model, shared by every thread routing through it

    @abstractmethod
    def _logits(self, texts: list[str]) -> Any:
        """Logits (n, 3) of one batch of texts, in :data:`CLASSIFIER_LABELS` order."""

    def class_probabilities(self, texts: list[str]) -> np.ndarray:
        """Softmax over (strong wins, tie, weak wins) for each text: float64 array (n, 3)."""
        torch = self._torch
        out = []
        with self._lock, torch.no_grad():
            for start in range(0, len(texts), self.batch_size):
                logits = self._logits(texts[start : start + self.batch_size])
                out.append(torch.softmax(logits.double(), dim=-1).cpu().numpy())
        return np.concatenate(out)

    def _win_rate(self, texts: list[str]) -> np.ndarray:
        probs = self.class_probabilities(texts)
        return probs[:, 0] + self.tie_weight * probs[:, 1]
