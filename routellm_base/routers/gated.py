"""Gated router: recognise the kind of traffic from the text, then ask that kind's own router.

Different traffic needs different evidence: a knowledge quiz, a maths word problem and an
open-ended chat request each have their own labels, and one model fitted to all of them trades
them against each other (docs/results.md, "Open-ended chat"). This router keeps one router per
*task kind* and a gate that says which kind a prompt is:

- the gate gives P(kind k | text): softmax regression on character n-gram TF-IDF features
  (:class:`TextGate`);
- expert k is one router checkpoint, or several (seeds of one recipe) whose gaps are averaged;
  its gap 2 * win_rate - 1 is put on a common scale by an affine map ``scale_k * gap + shift_k``
  stored in the checkpoint (experts trained on different labels have different levels);
- win rate = (1 + sum_k P(k) * (scale_k * mean_j(2 w_kj - 1) + shift_k)) / 2, clipped to [0, 1].

Why character n-grams for the gate: they see the *format* of a prompt (a multiple-choice block
ending in ``Answer:``, a word problem's numbers), which a sentence embedding, built to see topic,
blurs. On held-out folds they tell MMLU, GSM8K and RMB chat prompts apart 99.5 / 100 / 96.6% of
the time, against 93.9 / 98.7 / 84.6% for a logistic regression on all-MiniLM-L6-v2 embeddings
(``scripts/chat_gate_comparison.py``; docs/results.md).

A checkpoint folder holds the gate in ``weights.safetensors`` and each expert as a checkpoint
folder of its own under it (``experts/<name>/``); ``config.json`` pins the sha256 of every
expert's ``config.json``, which pins that expert's weights. The gate needs scikit-learn (its
hashing vectoriser: the ``gated`` extra); the experts need whatever their families need.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import CheckpointError, MissingDependencyError
from .base import Router

GATE_TENSORS = ("gate_idf", "gate_weight", "gate_bias")
GATE_SETTINGS = {
    "analyzer": "char_wb",
    "ngram_range": [2, 5],
    "n_features": 2**18,
    "lowercase": False,
}
"""The gate's features: character n-grams of 2-5 inside word boundaries, hashed into 2**18 buckets
(no vocabulary to store), case kept (``A.``-``D.`` option labels are part of a quiz's format)."""


def _sklearn() -> tuple[Any, Any]:
    try:
        from sklearn.feature_extraction.text import HashingVectorizer
        from sklearn.preprocessing import normalize
    except ImportError as exc:
        raise MissingDependencyError(
            "the gated router's gate needs scikit-learn: pip install 'langchain-routellm[gated]'"
        ) from exc
    return HashingVectorizer, normalize


class TextGate:
    """P(kind | text) from character n-gram TF-IDF features and a softmax regression.

    Features: counts of hashed character n-grams (:data:`GATE_SETTINGS`), sublinear term
    frequency 1 + log(count), times ``idf`` (shape (n_features,)), L2-normalised per text, as
    scikit-learn's ``TfidfVectorizer(sublinear_tf=True)`` computes them. Logits:
    features @ ``weight``.T + ``bias``; ``weight`` is (kinds, n_features), ``bias`` (kinds,).
    """

    def __init__(
        self,
        idf: np.ndarray,
        weight: np.ndarray,
        bias: np.ndarray,
        settings: dict[str, Any] | None = None,
    ) -> None:
        self.settings = dict(settings or GATE_SETTINGS)
        n_features = int(self.settings["n_features"])
        self.idf = np.asarray(idf, np.float64)
        self.weight = np.asarray(weight, np.float64)
        self.bias = np.asarray(bias, np.float64)
        if (
            self.idf.shape != (n_features,)
            or self.weight.ndim != 2
            or self.weight.shape[1] != n_features
        ):
            raise CheckpointError(
                f"gate tensors do not match {n_features} hashed features: idf {self.idf.shape}, weight {self.weight.shape}"
            )
        if self.bias.shape != (self.weight.shape[0],):
            raise CheckpointError(
                f"gate bias {self.bias.shape} does not match weight {self.weight.shape}"
            )
        hashing_vectorizer, self._normalize = _sklearn()
        self._vectorizer = hashing_vectorizer(
            analyzer=self.settings["analyzer"],
            ngram_range=tuple(self.settings["ngram_range"]),
            n_features=n_features,
            lowercase=bool(self.settings["lowercase"]),
            alternate_sign=False,
            norm=None,
        )

    @property
    def n_kinds(self) -> int:
        return int(self.weight.shape[0])

    def counts(self, texts: Sequence[str]) -> Any:
        """Sparse (n, n_features) hashed n-gram counts."""
        return self._vectorizer.transform(list(texts))

    def features(self, texts: Sequence[str]) -> Any:
        """Sparse (n, n_features) TF-IDF rows, L2-normalised (a text with no n-gram is all zero)."""
        counts = self.counts(texts).astype(np.float64)
        counts.data = 1.0 + np.log(counts.data)
        return self._normalize(counts.multiply(self.idf[None, :]).tocsr())

    def probabilities(self, texts: Sequence[str]) -> np.ndarray:
        """(n, kinds) float64: P(kind | text), rows summing to 1."""
        logits = np.asarray(self.features(texts) @ self.weight.T) + self.bias
        logits -= logits.max(axis=1, keepdims=True)
        exp = np.exp(logits)
        return exp / exp.sum(axis=1, keepdims=True)

    def tensors(self) -> dict[str, np.ndarray]:
        # C order: safetensors writes an array's buffer as it lies (scikit-learn's coef_ need not be C).
        return {
            "gate_idf": np.ascontiguousarray(self.idf, np.float32),
            "gate_weight": np.ascontiguousarray(self.weight, np.float32),
            "gate_bias": np.ascontiguousarray(self.bias, np.float32),
        }


class GatedRouter(Router):
    """One router per task kind behind a text gate (module docstring).

    ``experts[k]`` are the routers of kind ``kinds[k]`` (their gaps are averaged);
    ``expert_scale``/``expert_shift`` (one per kind) map each kind's gap to the common scale.
    Built from a checkpoint by :func:`routellm_base.load_router`, or in memory by a recipe.
    """

    family = "gated"
    uses_embedder = False

    def __init__(
        self,
        name: str,
        tensors: dict[str, np.ndarray],
        models: list[str],
        strong_model: str,
        weak_model: str,
        *,
        kinds: list[str],
        experts: dict[str, list[str]] | None = None,
        expert_scale: list[float],
        expert_shift: list[float],
        gate: dict[str, Any] | None = None,
        expert_routers: dict[str, list[Router]] | None = None,
        **kwargs: Any,
    ) -> None:
        """``experts`` maps each kind to expert checkpoint folders relative to the checkpoint
        (``metadata["path"]``); a recipe passes already-built ``expert_routers`` instead."""
        missing = [t for t in GATE_TENSORS if t not in tensors]
        if missing:
            raise CheckpointError(f"gated checkpoint {name!r} lacks tensors {missing}")
        super().__init__(name, strong_model=strong_model, weak_model=weak_model, **kwargs)
        self.models = list(models)
        self.kinds = list(kinds)
        self.gate = TextGate(
            tensors["gate_idf"], tensors["gate_weight"], tensors["gate_bias"], gate
        )
        k = len(self.kinds)
        if k == 0 or self.gate.n_kinds != k or len(expert_scale) != k or len(expert_shift) != k:
            raise CheckpointError(
                f"gated checkpoint {name!r}: {k} kinds, a gate over {self.gate.n_kinds}, "
                f"{len(expert_scale)} scales and {len(expert_shift)} shifts"
            )
        self.expert_scale = np.asarray(expert_scale, np.float64)
        self.expert_shift = np.asarray(expert_shift, np.float64)
        self.experts = (
            expert_routers if expert_routers is not None else self._load_experts(experts or {})
        )
        lacking = [kind for kind in self.kinds if not self.experts.get(kind)]
        if lacking:
            raise CheckpointError(f"gated checkpoint {name!r} has no expert for kinds {lacking}")

    def _load_experts(self, paths_by_kind: dict[str, list[str]]) -> dict[str, list[Router]]:
        from ..checkpoints import load_router  # the checkpoint module builds this class

        root = self.metadata.get("path")
        if root is None:
            raise CheckpointError(
                f"gated router {self.name!r} names expert folders but no checkpoint path"
            )
        experts: dict[str, list[Router]] = {}
        for kind, paths in paths_by_kind.items():
            if kind not in self.kinds:
                raise CheckpointError(
                    f"gated checkpoint {self.name!r}: expert kind {kind!r} is not one of {self.kinds}"
                )
            for relative in paths:
                folder = (Path(root) / relative).resolve()
                if Path(root).resolve() not in folder.parents:
                    raise CheckpointError(
                        f"gated checkpoint {self.name!r}: expert {relative!r} lies outside it"
                    )
                experts.setdefault(kind, []).append(load_router(folder))
        return experts

    def kind_probabilities(self, texts: list[str]) -> np.ndarray:
        """P(kind | prompt) for each text: (n, len(kinds)), columns in :attr:`kinds` order."""
        return self.gate.probabilities(texts)

    def kind_gaps(self, texts: list[str]) -> np.ndarray:
        """(n, len(kinds)): each kind's expert gap on the common scale, before the gate weighs it."""
        return np.stack([self._kind_gap(k, texts) for k in range(len(self.kinds))], axis=1)

    def _kind_gap(self, k: int, texts: list[str]) -> np.ndarray:
        gaps = np.mean(
            [2.0 * r.strong_win_rate(texts) - 1.0 for r in self.experts[self.kinds[k]]], axis=0
        )
        return self.expert_scale[k] * gaps + self.expert_shift[k]

    def expected_gap(self, texts: list[str]) -> np.ndarray:
        """The gate-weighted gap, strong minus weak, for each text."""
        gate = self.kind_probabilities(texts)
        return (gate * self.kind_gaps(texts)).sum(axis=1)

    def _win_rate(self, texts: list[str]) -> np.ndarray:
        return (1.0 + self.expected_gap(texts)) / 2.0
