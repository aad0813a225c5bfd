"""Fitting pool routers: the many-model MF (numpy, Adam written out, no torch) and kNN.

The MF's loss over the prompts' unit embeddings X (n, d) is, with logits L = (X W^T + b) U^T
+ beta (n, m):

* pointwise: binary cross-entropy of sigmoid(L[i, m]) against each observed score in [0, 1]
  (NaN cells skipped), averaged over observed cells;
* pairwise: Bradley-Terry, P(a beats b on prompt i) = sigmoid(L[i, a] - L[i, b]), cross-entropy
  against the battle's outcome (1 win, 0 loss, 0.5 tie, or a soft value), averaged over
  battles and weighted by ``battle_weight``;
* an L2 penalty ``weight_decay`` * (|W|^2 + |U|^2).

Full-batch Adam; the step with the lowest loss on a validation split of the prompts (split by
sha1 of the text) is kept.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from ..errors import PoolError
from .data import PoolData
from .knn import KnnPoolRouter
from .mf import sigmoid


@dataclass(frozen=True)
class PoolMFConfig:
    """``dim`` h of the projection; ``steps`` of full-batch Adam at learning rate ``lr``;
    ``weight_decay`` (L2 on W and U); ``battle_weight`` of the pairwise term; a
    ``validation_percent`` of prompts held out to choose the step (0: the last step);
    ``seed`` of the initialisation."""

    dim: int = 32
    steps: int = 300
    lr: float = 3e-3
    weight_decay: float = 1e-3
    battle_weight: float = 1.0
    validation_percent: int = 10
    eval_every: int = 10
    seed: int = 0


def _bce(p: np.ndarray, y: np.ndarray) -> float:
    p = np.clip(p, 1e-7, 1 - 1e-7)
    return float(-(y * np.log(p) + (1 - y) * np.log(1 - p)).mean()) if p.size else 0.0


class _Objective:
    """Loss and gradients of the MF on one set of prompts."""

    def __init__(self, x: np.ndarray, data: PoolData, battle_weight: float) -> None:
        self.x = x
        self.mask = np.isfinite(data.scores)
        self.y = np.nan_to_num(data.scores)
        self.cells = max(int(self.mask.sum()), 1)
        self.bp, self.ba, self.bb = data.battle_prompt, data.battle_a, data.battle_b
        self.bo = data.battle_outcome
        self.bw = battle_weight if data.n_battles else 0.0

    def loss(self, p: dict[str, np.ndarray]) -> float:
        logits = (self.x @ p["W"].T + p["b"]) @ p["U"].T + p["beta"]
        point = _bce(sigmoid(logits[self.mask]), self.y[self.mask])
        if not self.bw:
            return point
        diff = logits[self.bp, self.ba] - logits[self.bp, self.bb]
        return point + self.bw * _bce(sigmoid(diff), self.bo)

    def grad(self, p: dict[str, np.ndarray], decay: float) -> dict[str, np.ndarray]:
        z = self.x @ p["W"].T + p["b"]
        logits = z @ p["U"].T + p["beta"]
        g = np.where(self.mask, sigmoid(logits) - self.y, 0.0) / self.cells
        if self.bw:
            diff = logits[self.bp, self.ba] - logits[self.bp, self.bb]
            d = self.bw * (sigmoid(diff) - self.bo) / len(self.bo)
            np.add.at(g, (self.bp, self.ba), d)
            np.add.at(g, (self.bp, self.bb), -d)
        gz = g @ p["U"]
        return {
            "W": gz.T @ self.x + 2 * decay * p["W"],
            "b": gz.sum(axis=0),
            "U": g.T @ z + 2 * decay * p["U"],
            "beta": g.sum(axis=0),
        }


def _held_out(prompts: list[str], percent: int, seed: int) -> np.ndarray:
    return np.array(
        [
            int(hashlib.sha1(f"{seed}:{t}".encode()).hexdigest(), 16) % 100 < percent
            for t in prompts
        ],
        dtype=bool,
    )


def _init_bias(data: PoolData) -> np.ndarray:
    """Each model's starting bias: the logit of its mean score (battle-only models: of their
    mean battle outcome), or 0 with neither."""
    s = battle_scores(data)
    scored = np.isfinite(s)
    count = scored.sum(axis=0)
    mean = np.where(count > 0, np.where(scored, s, 0.0).sum(axis=0) / np.maximum(count, 1), 0.5)
    mean = np.clip(mean, 0.02, 0.98)
    return np.log(mean / (1 - mean))


def train_pool_mf(
    embeddings: np.ndarray, data: PoolData, config: PoolMFConfig = PoolMFConfig()
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Fit the MF on unit ``embeddings`` (n, d) of ``data.prompts``; returns the tensors of
    :class:`~routellm_base.pool.mf.PoolMFRouter` (float32) and a report (losses, kept step).

    Raises :class:`PoolError` when the data has neither scores nor battles."""
    x = np.asarray(embeddings, dtype=np.float64)
    if x.shape[0] != len(data.prompts):
        raise PoolError(f"{x.shape[0]} embeddings for {len(data.prompts)} prompts")
    if not np.isfinite(data.scores).any() and not data.n_battles:
        raise PoolError("no score and no battle to train on")
    rng = np.random.default_rng(config.seed)
    held = (
        _held_out(data.prompts, config.validation_percent, config.seed)
        if config.validation_percent
        else np.zeros(len(data.prompts), dtype=bool)
    )
    if held.all():
        held[:] = False
    train = _Objective(x[~held], data.subset(~held), config.battle_weight)
    valid = _Objective(x[held], data.subset(held), config.battle_weight) if held.any() else None
    d, h, m = x.shape[1], config.dim, len(data.models)
    p = {
        "W": rng.normal(0, 1 / np.sqrt(d), (h, d)),
        "b": np.zeros(h),
        "U": rng.normal(0, 1 / np.sqrt(h), (m, h)),
        "beta": _init_bias(data),
    }
    first, second = (
        {k: np.zeros_like(v) for k, v in p.items()},
        {k: np.zeros_like(v) for k, v in p.items()},
    )
    best = (np.inf, 0, {k: v.copy() for k, v in p.items()})
    history = []
    for step in range(1, config.steps + 1):
        g = train.grad(p, config.weight_decay)
        for k in p:
            first[k] = 0.9 * first[k] + 0.1 * g[k]
            second[k] = 0.999 * second[k] + 0.001 * g[k] ** 2
            mhat = first[k] / (1 - 0.9**step)
            vhat = second[k] / (1 - 0.999**step)
            p[k] = p[k] - config.lr * mhat / (np.sqrt(vhat) + 1e-8)
        if step % config.eval_every == 0 or step == config.steps:
            loss = (valid or train).loss(p)
            history.append((step, round(loss, 5)))
            if loss < best[0]:
                best = (loss, step, {k: v.copy() for k, v in p.items()})
    loss, step, p = best
    tensors = {
        "proj_weight": p["W"].astype(np.float32),
        "proj_bias": p["b"].astype(np.float32),
        "model_vectors": p["U"].astype(np.float32),
        "model_bias": p["beta"].astype(np.float32),
    }
    report = {
        "config": asdict(config),
        "kept_step": step,
        "validation_loss": loss if valid else None,
        "train_loss": train.loss(p),
        "prompts_train": int((~held).sum()),
        "prompts_validation": int(held.sum()),
        "loss_history": history,
    }
    return tensors, report


def battle_scores(data: PoolData) -> np.ndarray:
    """Pointwise scores (n, m) from ``data.scores`` where given, else each model's mean outcome
    over its battles on the prompt (1 win, 0.5 tie, 0 loss; NaN without battles): what a kNN
    router stores for battle-only sources."""
    won = np.zeros_like(data.scores)
    count = np.zeros_like(data.scores)
    np.add.at(won, (data.battle_prompt, data.battle_a), data.battle_outcome)
    np.add.at(won, (data.battle_prompt, data.battle_b), 1 - data.battle_outcome)
    np.add.at(count, (data.battle_prompt, data.battle_a), 1)
    np.add.at(count, (data.battle_prompt, data.battle_b), 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        from_battles = np.where(count > 0, won / count, np.nan)
    return np.where(np.isfinite(data.scores), data.scores, from_battles)


def fit_knn(
    embeddings: np.ndarray, data: PoolData, *, k: int = 20, weighted: bool = False, **kwargs: Any
) -> KnnPoolRouter:
    """A :class:`KnnPoolRouter` storing ``embeddings`` (n, d) and :func:`battle_scores` of
    ``data``; prompts with no score at all are left out."""
    scores = battle_scores(data)
    keep = np.isfinite(scores).any(axis=1)
    return KnnPoolRouter(
        kwargs.pop("name", "pool_knn"),
        np.asarray(embeddings)[keep],
        scores[keep],
        data.models,
        k=k,
        weighted=weighted,
        **kwargs,
    )
