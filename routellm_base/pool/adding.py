"""Adding a model to a trained pool router from a few of its scored prompts, the rest frozen."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..errors import PoolError
from .knn import KnnPoolRouter
from .mf import PoolMFRouter, sigmoid
from .routers import PoolRouter

MIN_PROBE_PROMPTS = 100
"""Scored prompts a new model needs at the least (docs/results.md measures 100, 200 and 500)."""
MF_PRIOR_PENALTY = 1.0
"""L2 pull of the new MF vector towards the known models' mean vector, in units of one
prompt's loss: with 100 probes the prior weighs as one prompt in a hundred."""


def add_model(
    router: PoolRouter,
    name: str,
    prompts: Sequence[str],
    scores: Sequence[float] | np.ndarray,
    *,
    embeddings: np.ndarray | None = None,
) -> PoolRouter:
    """A copy of ``router`` that also predicts ``name``, fitted on ``prompts`` and that model's
    ``scores`` there (in [0, 1]; NaN entries are dropped), every other parameter frozen.

    * :class:`PoolMFRouter`: only u_new (h,) and beta_new are fitted, by Newton's method on the
      cross-entropy of sigmoid(u . z(x) + beta) against the scores, z the frozen projection,
      u pulled towards the known models' mean vector (:data:`MF_PRIOR_PENALTY`).
    * :class:`KnnPoolRouter`: the new model's score on each stored prompt is predicted from
      the known models' predicted qualities there, by a ridge regression fitted on the probe
      prompts (:func:`knn_column`).

    ``embeddings`` (len(prompts), d) skips embedding the prompts. Raises :class:`PoolError`
    with fewer than :data:`MIN_PROBE_PROMPTS` scored prompts (naming the count), for a name
    the router already knows, or for another router family.
    """
    y = np.asarray(scores, dtype=np.float64).reshape(-1)
    if len(y) != len(prompts):
        raise PoolError(f"{len(y)} scores for {len(prompts)} prompts")
    if router.models is not None and name in router.models:
        raise PoolError(f"router {router.name!r} already knows {name!r}")
    keep = np.isfinite(y)
    if int(keep.sum()) < MIN_PROBE_PROMPTS:
        raise PoolError(
            f"adding {name!r} needs at least {MIN_PROBE_PROMPTS} scored prompts, got "
            f"{int(keep.sum())}: score more of its answers (or route with the zero-shot router)"
        )
    if ((y[keep] < 0) | (y[keep] > 1)).any():
        raise PoolError(f"scores of {name!r} must lie in [0, 1]")
    if embeddings is None:
        if router.embedder is None:
            raise PoolError(f"router {router.name!r} has no embedder to embed the probe prompts")
        embeddings = router.embedder.embed([p for p, k in zip(prompts, keep) if k])
    else:
        embeddings = np.asarray(embeddings)[keep]
    y = y[keep]
    if isinstance(router, PoolMFRouter):
        u, beta = fit_mf_model(router, embeddings, y)
        return router.with_model(name, u, beta)
    if isinstance(router, KnnPoolRouter):
        return router.with_model(name, knn_column(router, embeddings, y))
    raise PoolError(f"add_model fits kNN and MF pool routers; {router.name!r} is {router.family}")


KNN_RIDGE_PENALTY = 1.0
"""Ridge penalty of :func:`knn_column` on standardised features, in units of one probe."""


def knn_column(router: KnnPoolRouter, embeddings: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The new model's column on the router's stored prompts, shape (N,).

    Features of a prompt: the router's predicted quality of each known model there (its kNN
    means). A ridge regression (intercept free, :data:`KNN_RIDGE_PENALTY`) of the probe
    scores ``y`` (n,) on the probes' features maps the stored prompts' features to the new
    model's expected score, clipped to [0, 1]. A model that is good where the others are (or
    where a particular one is) is recognised from 100 probes, where a kNN over the probes
    alone would average a handful of neighbours.
    """
    probe = router.quality_from_embeddings(embeddings)
    stored = router.quality_from_embeddings(router.embeddings)
    mean, scale = probe.mean(axis=0), probe.std(axis=0) + 1e-6
    a = (probe - mean) / scale
    w = np.linalg.solve(a.T @ a + KNN_RIDGE_PENALTY * np.eye(a.shape[1]), a.T @ (y - y.mean()))
    return np.clip(((stored - mean) / scale) @ w + y.mean(), 0.0, 1.0)


def fit_mf_model(
    router: PoolMFRouter, embeddings: np.ndarray, y: np.ndarray, iterations: int = 50
) -> tuple[np.ndarray, float]:
    """(u (h,), beta) of a new model on frozen projections of ``embeddings`` (n, d), targets
    ``y`` (n,) in [0, 1]: penalised logistic regression by Newton's method."""
    z = router.project(embeddings)
    n, h = z.shape
    a = np.column_stack([z, np.ones(n)])
    prior = np.append(router.weights["model_vectors"].mean(axis=0), 0.0)
    mean = float(np.clip(y.mean(), 0.02, 0.98))
    prior[-1] = np.log(mean / (1 - mean))
    penalty = np.full(h + 1, MF_PRIOR_PENALTY)
    penalty[-1] = 1e-6  # the bias is free

    def loss(w: np.ndarray) -> float:
        logits = a @ w
        # cross-entropy with soft targets, written stably: log(1 + e^l) - y * l
        nll = np.logaddexp(0.0, logits) - y * logits
        return float(nll.sum() + 0.5 * (penalty * (w - prior) ** 2).sum())

    w = prior.copy()
    current = loss(w)
    for _ in range(iterations):
        p = sigmoid(a @ w)
        grad = a.T @ (p - y) + penalty * (w - prior)
        hess = (a * (p * (1 - p))[:, None]).T @ a + np.diag(penalty)
        step = np.linalg.solve(hess, grad)
        scale = 1.0
        while scale > 1e-4:  # backtracking: a full Newton step can overshoot on logistic loss
            trial = w - scale * step
            value = loss(trial)
            if value <= current:
                break
            scale *= 0.5
        else:
            break
        w, improvement, current = trial, current - value, value
        if improvement < 1e-10 * max(abs(current), 1.0):
            break
    return w[:h], float(w[h])
