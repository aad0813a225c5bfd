"""Similarity-weighted (SW) ranking router (RouteLLM, section 4.2).

Every stored battle is weighted by how similar its prompt is to the query,
w_i = 10 * 10 ** (sim_i / max_j sim_j) as in RouteLLM, and a Bradley-Terry model is fitted to the
weighted battles; the win rate is the strong model's BT probability against the weak one.

RouteLLM refits a logistic regression per query in a Python loop. Here the weighted evidence for a
whole batch is gathered with two matrix products (queries x prompts, then prompts x model pairs;
battles of one prompt share its weight, so they are summed per prompt once, at load time), and
the BT fit runs as vectorised minorise-maximise (Hunter, 2004) updates over the batch.
Ties count half a win to each side.

Tensors: ``prompt_embeddings`` (P x D), ``model_a``/``model_b``/``outcome`` per battle (N), and
``battle_prompt`` (N, index into the prompts; absent means one prompt per battle).
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np

from ..errors import CheckpointError
from .base import Router

SW_TENSORS = ("prompt_embeddings", "model_a", "model_b", "outcome")
"""Required tensors; ``battle_prompt`` is optional."""


class SWRankingRouter(Router):
    family = "sw_ranking"

    def __init__(
        self,
        name: str,
        tensors: dict[str, np.ndarray],
        models: list[str],
        strong_model: str,
        weak_model: str,
        *,
        prior_battles: float = 1.0,
        iterations: int = 50,
        query_batch: int = 256,
        **kwargs: Any,
    ) -> None:
        missing = [t for t in SW_TENSORS if t not in tensors]
        if missing:
            raise CheckpointError(f"SW ranking checkpoint {name!r} lacks tensors {missing}")
        for model in (strong_model, weak_model):
            if model not in models:
                raise CheckpointError(
                    f"SW ranking checkpoint {name!r} does not know model {model!r}"
                )
        super().__init__(name, strong_model=strong_model, weak_model=weak_model, **kwargs)
        self.models = list(models)
        self.prompt_embeddings = np.asarray(tensors["prompt_embeddings"], dtype=np.float32)
        n_prompts = len(self.prompt_embeddings)
        a = np.asarray(tensors["model_a"], dtype=np.int64)
        b = np.asarray(tensors["model_b"], dtype=np.int64)
        outcome = np.asarray(tensors["outcome"], dtype=np.float32)
        n_models = len(models)
        if a.max(initial=0) >= n_models or b.max(initial=0) >= n_models:
            raise CheckpointError(
                f"SW ranking checkpoint {name!r} names a model index out of range"
            )
        if "battle_prompt" in tensors:
            battle_prompt = np.asarray(tensors["battle_prompt"], dtype=np.int64)
        elif len(a) == n_prompts:
            battle_prompt = np.arange(n_prompts)
        else:
            raise CheckpointError(
                f"SW ranking checkpoint {name!r}: battles and prompts differ in number and no battle_prompt index"
            )
        if battle_prompt.shape != a.shape or battle_prompt.max(initial=0) >= n_prompts:
            raise CheckpointError(
                f"SW ranking checkpoint {name!r}: battle_prompt does not index its prompts"
            )
        self.strong_index = models.index(strong_model)
        self.weak_index = models.index(weak_model)
        self.prior_battles = prior_battles
        self.iterations = iterations
        self.query_batch = query_batch
        # Unordered pairs present in the data; battle -> pair incidence and per-model credit.
        lo, hi = np.minimum(a, b), np.maximum(a, b)
        pair_ids, pair_index = np.unique(lo * n_models + hi, return_inverse=True)
        self.pair_lo = (pair_ids // n_models).astype(np.int64)
        self.pair_hi = (pair_ids % n_models).astype(np.int64)
        n_pairs = len(pair_ids)
        # Per prompt: how many battles of each pair it holds, and each model's credit.
        self.prompt_pair = np.zeros((n_prompts, n_pairs), dtype=np.float32)
        np.add.at(self.prompt_pair, (battle_prompt, pair_index), 1.0)
        # Pair -> the two models it involves, to sum per-pair terms per model with one product.
        self.pair_models = np.zeros((n_pairs, n_models), dtype=np.float64)
        self.pair_models[np.arange(n_pairs), self.pair_lo] = 1.0
        self.pair_models[np.arange(n_pairs), self.pair_hi] = 1.0
        self.prompt_credit = np.zeros((n_prompts, n_models), dtype=np.float32)
        np.add.at(self.prompt_credit, (battle_prompt, a), outcome)
        np.add.at(self.prompt_credit, (battle_prompt, b), 1.0 - outcome)

    def for_pair(self, strong_model: str, weak_model: str) -> SWRankingRouter:
        """The same battle index comparing another pair of the models it holds battles of."""
        for model in (strong_model, weak_model):
            if model not in self.models:
                raise CheckpointError(
                    f"SW ranking checkpoint {self.name!r} does not know model {model!r}; it knows {self.models}"
                )
        other = copy.copy(self)  # shares the (read-only) battle arrays
        other.strong_model, other.weak_model = strong_model, weak_model
        other.strong_index, other.weak_index = (
            self.models.index(strong_model),
            self.models.index(weak_model),
        )
        if (strong_model, weak_model) != (self.strong_model, self.weak_model):
            other.calibration = None  # the stored quantiles describe the reference pair only
        return other

    def _win_rate(self, texts: list[str]) -> np.ndarray:
        assert self.embedder is not None
        queries = self.embedder.embed(texts)
        return np.concatenate(
            [
                self._batch(queries[i : i + self.query_batch])
                for i in range(0, len(queries), self.query_batch)
            ]
        )

    def _batch(self, queries: np.ndarray) -> np.ndarray:
        sims = queries @ self.prompt_embeddings.T  # (Q, N)
        max_sim = np.max(sims, axis=1, keepdims=True)
        max_sim = np.where(max_sim > 0, max_sim, 1.0)
        weights = 10.0 * np.power(10.0, sims / max_sim, dtype=np.float32)
        wins = (weights @ self.prompt_credit).astype(np.float64)  # (Q, M)
        pair_counts = (weights @ self.prompt_pair).astype(np.float64)  # (Q, pairs)
        # A weak prior of one tied battle per observed pair keeps the fit finite.
        prior = self.prior_battles
        wins += (
            prior
            * 0.5
            * (
                np.bincount(self.pair_lo, minlength=len(self.models))
                + np.bincount(self.pair_hi, minlength=len(self.models))
            )
        )
        pair_counts += prior
        strength = np.ones_like(wins)
        for _ in range(self.iterations):
            p_lo = strength[:, self.pair_lo]
            p_hi = strength[:, self.pair_hi]
            denom = (pair_counts / (p_lo + p_hi)) @ self.pair_models
            strength = np.where(denom > 0, wins / np.maximum(denom, 1e-300), strength)
            strength /= np.exp(np.mean(np.log(np.maximum(strength, 1e-300)), axis=1, keepdims=True))
        s = strength[:, self.strong_index]
        w = strength[:, self.weak_index]
        return s / (s + w)
