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
    * :class:`KnnPoolRouter`: the new model's score on each stored prompt is a kNN (the
      router's ``k`` and weighting) over the probe prompts.

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
        probe = KnnPoolRouter(
            "probe", embeddings, y.reshape(-1, 1), [name], k=router.k, weighted=router.weighted
        )
        return router.with_model(name, probe.quality_from_embeddings(router.embeddings)[:, 0])
    raise PoolError(f"add_model fits kNN and MF pool routers; {router.name!r} is {router.family}")


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
    w = prior.copy()
    for _ in range(iterations):
        p = sigmoid(a @ w)
        grad = a.T @ (p - y) + penalty * (w - prior)
        hess = (a * (p * (1 - p))[:, None]).T @ a + np.diag(penalty)
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    return w[:h], float(w[h])
