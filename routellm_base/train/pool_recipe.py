"""What the pool routers' recipes share: held-out evaluation, choosing kNN's k on a validation
split of the training prompts, pairwise accuracy on battles, and the add-model study.

Every figure is on prompts never trained on: the test split (RouterBench, LLMRouter) or
held-out folds by sha1 of the prompt (RMB, Arena-Hard), training prompts that duplicate an
evaluated prompt (exact text, or cosine >= 0.95 on the embedder) removed first.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ..decontaminate import contaminated_mask
from ..pool.adding import add_model
from ..pool.data import PoolData
from ..pool.evaluation import evaluate_pool, pairwise_accuracy
from ..pool.knn import KnnPoolRouter
from ..pool.mf import PoolMFRouter
from ..pool.training import PoolMFConfig, battle_scores, train_pool_mf

Embed = Callable[[list[str]], np.ndarray]
VALIDATION_PERCENT = 20
"""Share of the training prompts (by sha1 of the text) held out to choose hyperparameters."""


def bucket(prompts: Sequence[str], salt: str = "pool") -> np.ndarray:
    """A deterministic 0..99 bucket per prompt (sha1 of ``salt:text``)."""
    return np.array(
        [int(hashlib.sha1(f"{salt}:{p}".encode()).hexdigest(), 16) % 100 for p in prompts]
    )


def decontaminated(
    train: PoolData, train_emb: np.ndarray, evaluated: Sequence[str], eval_emb: np.ndarray
) -> tuple[PoolData, np.ndarray, int]:
    """``train`` without prompts duplicating an evaluated one (exact, or cosine >= 0.95)."""
    bad = contaminated_mask(train.prompts, list(evaluated), train_emb, eval_emb)
    return train.subset(~bad), train_emb[~bad], int(bad.sum())


def curve_row(
    name: str,
    pred: np.ndarray,
    test: PoolData,
    at_cost: float | None = None,
) -> dict[str, Any]:
    """AIQ, cost to match the best single model and quality at ``at_cost`` (default: the best
    single model's cost) of predictions on the complete items of ``test``."""
    report = evaluate_pool({name: pred}, test.scores, test.costs, test.models)
    return report.row(report.curves[0], at_cost)


def reference_rows(train: PoolData, test: PoolData, at_cost: float | None) -> dict[str, Any]:
    """Best single model, oracle, Zero router and the one-model-per-task baseline on ``test``."""
    from ..pool.evaluation import group_mean_predictions

    report = evaluate_pool({}, test.scores, test.costs, test.models)
    out = report.to_dict(at_cost)
    if (
        train.groups is not None
        and test.groups is not None
        and set(test.groups) <= set(train.groups)
    ):
        pred = group_mean_predictions(train.scores, train.groups, test.groups)
        out["one_model_per_task"] = curve_row(
            "one model per task (task known)", pred, test, at_cost
        )
    return out


def choose_knn(
    train: PoolData,
    train_emb: np.ndarray,
    grid: Sequence[int],
    at_cost: float | None,
) -> tuple[int, bool, list[dict[str, Any]]]:
    """(k, weighted) with the best validation AIQ (20% of the training prompts held out by
    sha1) over ``grid`` x {plain, similarity-weighted}, and each setting's validation row."""
    held = bucket(train.prompts) < VALIDATION_PERCENT
    fit, val = train.subset(~held), train.subset(held)
    val = val.subset(val.complete())
    val_emb = train_emb[held][np.asarray(train.subset(held).complete())]
    rows = []
    for k in grid:
        for weighted in (False, True):
            router = KnnPoolRouter(
                "v", train_emb[~held], battle_scores(fit), fit.models, k=k, weighted=weighted
            )
            row = curve_row(
                f"knn k={k}{' weighted' if weighted else ''}",
                router.quality_from_embeddings(val_emb),
                val,
                at_cost,
            )
            rows.append({**row, "k": k, "weighted": weighted})
    best = max(rows, key=lambda r: (round(r["aiq"], 6), -r["k"]))
    return int(best["k"]), bool(best["weighted"]), rows


def fit_mf(
    train: PoolData, train_emb: np.ndarray, config: PoolMFConfig
) -> tuple[PoolMFRouter, dict[str, Any]]:
    """The many-model MF on ``train`` (its step chosen on 10% of the prompts)."""
    tensors, report = train_pool_mf(train_emb, train, config)
    return PoolMFRouter("pool_mf", tensors, train.models), report


def chat_rows(
    data: PoolData,
    emb: np.ndarray,
    make: dict[str, Callable[[PoolData, np.ndarray], Any]],
    folds: int = 5,
) -> dict[str, dict[str, float]]:
    """Pairwise accuracy of each router's predicted ordering on held-out prompts, cross-fitted
    over ``folds`` folds by sha1 of the prompt (each battle scored by a router that never saw
    its prompt), plus the prompt-blind baseline (each model's mean training outcome)."""
    fold = bucket(data.prompts, "chat") * folds // 100
    names = ["prompt-blind (mean outcome per model)", *make]
    right = {n: [] for n in names}
    for f in range(folds):
        test_rows = fold == f
        train, test = data.subset(~test_rows), data.subset(test_rows)
        s = battle_scores(train)
        blind = np.nan_to_num(np.nanmean(s, axis=0), nan=0.5)
        preds = {names[0]: np.broadcast_to(blind, (len(test.prompts), len(data.models)))}
        for name, fit in make.items():
            router = fit(train, emb[~test_rows])
            preds[name] = router.quality_from_embeddings(emb[test_rows])
        for name, pred in preds.items():
            acc, n = pairwise_accuracy(
                pred, test.battle_prompt, test.battle_a, test.battle_b, test.battle_outcome
            )
            right[name].append((acc * n, n))
    return {
        n: {
            "accuracy": sum(a for a, _ in v) / max(sum(c for _, c in v), 1),
            "battles": sum(c for _, c in v),
        }
        for n, v in right.items()
    }


def add_model_study(
    train: PoolData,
    train_emb: np.ndarray,
    test: PoolData,
    test_emb: np.ndarray,
    held_model: str,
    sizes: Sequence[int],
    fit: Callable[[PoolData, np.ndarray], Any],
    at_cost: float | None,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """Hold ``held_model`` out: the router retrained on everything, against the router trained
    without it plus :func:`add_model` on ``sizes`` random probe prompts of the training split
    (seeded), each scored on ``test`` with the full pool."""
    rows = []
    full = fit(train, train_emb)
    order = full.models
    rows.append(
        {
            "setting": "retrained on all models",
            **curve_row("full", full.quality_from_embeddings(test_emb), test, at_cost),
        }
    )
    others = [m for m in train.models if m != held_model]
    base = fit(train.select_models(others), train_emb)
    col = train.column(held_model)
    scored = np.flatnonzero(np.isfinite(train.scores[:, col]))
    rng = np.random.default_rng(seed)
    perm = rng.permutation(scored)
    for size in sizes:
        probe = perm[:size]
        added = add_model(
            base,
            held_model,
            [train.prompts[i] for i in probe],
            train.scores[probe, col],
            embeddings=train_emb[probe],
        )
        columns = [added.models.index(m) for m in order]
        pred = added.quality_from_embeddings(test_emb, columns)
        rows.append(
            {
                "setting": f"added with {size} probe prompts",
                **curve_row("added", pred, test, at_cost),
            }
        )
    return rows
