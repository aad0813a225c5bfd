"""Task-experts router: recognise the kind of task, then ask that kind's expert.

What a weak model fails at depends on the kind of task: on a knowledge quiz the gap to the
strong model follows the subject, on a maths word problem it follows the number of steps. One
linear function of the embedding has to trade these off against each other (fitting MMLU and
GSM8K together costs each of them); a linear expert per kind does not.

Each training source is one *task kind* (MMLU, GSM8K, your own traffic...). For a prompt with
embedding e and length features l:

- a gate, softmax regression on e, gives P(kind k | prompt);
- expert k, a ridge regression on (e, l), predicts the score gap strong minus weak that the
  training labels of kind k show for such a prompt (in [-1, 1] for 0/1 correctness);
- the expected gap is sum_k P(k) * gap_k, and the win rate (ties as half a win) is
  (1 + gap) / 2, which for 0/1 correctness is exactly P(strong better) + P(tie) / 2.

Inference is numpy only: two matrix products on the embedding.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import CheckpointError
from .base import Router

TASK_EXPERTS_TENSORS = ("gate_weight", "gate_bias", "expert_weight", "expert_bias")
LENGTH_FEATURES = ("log_chars", "log_words")
"""Features beyond the embedding, in this order after it: log(1 + characters), log(1 + words)."""


def length_features(texts: list[str]) -> np.ndarray:
    """(n, 2) float64: log(1 + characters) and log(1 + whitespace-separated words) of each text."""
    return np.log1p(np.array([[len(t), len(t.split())] for t in texts], dtype=np.float64))


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


class TaskExpertsRouter(Router):
    family = "task_experts"

    def __init__(
        self,
        name: str,
        tensors: dict[str, np.ndarray],
        models: list[str],
        strong_model: str,
        weak_model: str,
        *,
        kinds: list[str],
        features: list[str],
        **kwargs: Any,
    ) -> None:
        missing = [t for t in TASK_EXPERTS_TENSORS if t not in tensors]
        if missing:
            raise CheckpointError(f"task_experts checkpoint {name!r} lacks tensors {missing}")
        if list(features) != list(LENGTH_FEATURES):
            raise CheckpointError(
                f"task_experts checkpoint {name!r} uses features {features}; this library computes {list(LENGTH_FEATURES)}"
            )
        gate_w, gate_b = (
            np.asarray(tensors["gate_weight"], np.float64),
            np.asarray(tensors["gate_bias"], np.float64),
        )
        exp_w, exp_b = (
            np.asarray(tensors["expert_weight"], np.float64),
            np.asarray(tensors["expert_bias"], np.float64),
        )
        k = len(kinds)
        if (
            not (gate_w.shape[0] == gate_b.shape[0] == exp_w.shape[0] == exp_b.shape[0] == k)
            or k == 0
        ):
            raise CheckpointError(
                f"task_experts checkpoint {name!r}: {k} kinds but tensors of shapes gate {gate_w.shape}, "
                f"experts {exp_w.shape}"
            )
        if exp_w.shape[1] != gate_w.shape[1] + len(LENGTH_FEATURES):
            raise CheckpointError(
                f"task_experts checkpoint {name!r}: experts take {exp_w.shape[1]} features, the gate "
                f"{gate_w.shape[1]} embedding dimensions plus {len(LENGTH_FEATURES)} length features"
            )
        super().__init__(name, strong_model=strong_model, weak_model=weak_model, **kwargs)
        self.models = list(models)
        self.kinds = list(kinds)
        self.tensors = {
            "gate_weight": gate_w,
            "gate_bias": gate_b,
            "expert_weight": exp_w,
            "expert_bias": exp_b,
        }
        dim = gate_w.shape[1]
        if self.embedder is not None and self.embedder.dim != dim:
            raise CheckpointError(
                f"task_experts checkpoint {name!r} expects {dim}-d embeddings, its embedder gives {self.embedder.dim}"
            )

    def kind_probabilities(self, texts: list[str]) -> np.ndarray:
        """P(kind | prompt) for each text: (n, len(kinds)), columns in :attr:`kinds` order."""
        assert self.embedder is not None
        return self._gate(np.asarray(self.embedder.embed(texts), np.float64))

    def _gate(self, embeddings: np.ndarray) -> np.ndarray:
        return softmax(embeddings @ self.tensors["gate_weight"].T + self.tensors["gate_bias"])

    def expected_gap(self, texts: list[str]) -> np.ndarray:
        """Expected score gap, strong minus weak, for each text (the gate-weighted experts)."""
        assert self.embedder is not None
        embeddings = np.asarray(self.embedder.embed(texts), np.float64)
        features = np.hstack([embeddings, length_features(texts)])
        gaps = features @ self.tensors["expert_weight"].T + self.tensors["expert_bias"]
        return (self._gate(embeddings) * gaps).sum(axis=1)

    def _win_rate(self, texts: list[str]) -> np.ndarray:
        return (1.0 + self.expected_gap(texts)) / 2.0
