"""Pool-router ideas beyond the recipe's kNN / MF / blend rows (docs/results.md, "Routing among
several models"): one logistic regression per model on the prompt embedding (scikit-learn,
C chosen on 20% of the training prompts), its blend with the recipe's kNN, and for LLMRouter the
mean scores of the training cluster that the nearest training prompts vote for.

    python scripts/pool_experiments.py --data-dir ../shared/data [--embedder sentence_transformer]

Same protocol as routellm_base.train.pool_research: train files in, test files out, training
prompts duplicating a test prompt removed, decisions on each item's cost.
"""

from __future__ import annotations

import argparse
import os
import warnings
from pathlib import Path

import numpy as np

from routellm_base.embedders import load_embedder
from routellm_base.pool.data import PoolData, load_llmrouter, load_routerbench
from routellm_base.pool.knn import KnnPoolRouter
from routellm_base.train.pool_recipe import bucket, curve_row, decontaminated
from routellm_base.train.recipe import cached_embed, load_embeddings_cache


def per_model_logistic(x: np.ndarray, data: PoolData, c: float):
    """One L2 logistic regression per model (soft scores as weighted 0/1 rows)."""
    from sklearn.linear_model import LogisticRegression

    fits = []
    for j in range(len(data.models)):
        ok = np.isfinite(data.scores[:, j])
        y = data.scores[ok, j]
        xs = np.vstack([x[ok], x[ok]])
        labels = np.r_[np.ones(ok.sum()), np.zeros(ok.sum())]
        fits.append(
            LogisticRegression(C=c, max_iter=500).fit(xs, labels, sample_weight=np.r_[y, 1 - y])
        )
    return lambda z: np.column_stack([f.predict_proba(z)[:, 1] for f in fits])


def show(name: str, row: dict) -> None:
    match = row["cost_to_match_best_single"]
    print(
        f"  {name:<48} AIQ {row['aiq']:.3f}  quality at ${row['at_cost']:.3f}: "
        f"{row['quality_at_cost']:.3f}  cost to match best single: "
        f"{'never' if match is None else f'${match:.3f}'}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--data-dir",
        default=os.environ.get("ROUTELLM_DATA_DIR", "../shared/data"),
        help="data folder",
    )
    parser.add_argument(
        "--embedder",
        default="minilm-l6-static-256",
        help="prompt embedder (default the bundled static one)",
    )
    parser.add_argument(
        "--embeddings-cache",
        action="append",
        help="PROMPTS.json,EMBEDDINGS.npy of prompts already embedded with --embedder; repeatable",
    )
    args = parser.parse_args()
    warnings.filterwarnings("ignore", category=RuntimeWarning)
    data_dir = Path(args.data_dir)
    cache: dict[str, np.ndarray] = {}
    for spec in args.embeddings_cache or []:
        cache.update(load_embeddings_cache(spec) or {})
    embed = cached_embed(load_embedder(args.embedder), cache)
    sets = {
        "routerbench": (
            load_routerbench(data_dir, "train"),
            load_routerbench(data_dir, "test"),
            2.5,
            100,
            False,
        ),
        "llmrouter": (
            load_llmrouter(data_dir, "train"),
            load_llmrouter(data_dir, "test"),
            None,
            160,
            True,
        ),
    }
    for name, (train, test, at_cost, k, weighted) in sets.items():
        test = test.select_models(train.models)
        test = test.subset(test.complete())
        test_emb = embed(test.prompts)
        train, train_emb, _ = decontaminated(train, embed(train.prompts), test.prompts, test_emb)
        print(f"{name} ({args.embedder}):")
        knn = KnnPoolRouter("knn", train_emb, train.scores, train.models, k=k, weighted=weighted)
        pk = knn.quality_from_embeddings(test_emb)
        show(f"kNN k={k}{' weighted' if weighted else ''}", curve_row("k", pk, test, at_cost))
        held = bucket(train.prompts) < 20
        fit, val = train.subset(~held), train.subset(held)
        ok = val.complete()
        best_c = max(
            (0.1, 0.3, 1.0, 3.0),
            key=lambda c: curve_row(
                "v",
                per_model_logistic(train_emb[~held], fit, c)(train_emb[held][ok]),
                val.subset(ok),
                at_cost,
            )["aiq"],
        )
        pl = per_model_logistic(train_emb, train, best_c)(test_emb)
        show(
            f"logistic regression per model (C={best_c} on validation)",
            curve_row("l", pl, test, at_cost),
        )
        show("blend 0.5 kNN + logistic", curve_row("b", 0.5 * pk + 0.5 * pl, test, at_cost))
        if train.groups is not None and set(train.groups) != {""}:
            groups = np.array(train.groups)
            means = {g: np.nanmean(train.scores[groups == g], axis=0) for g in set(train.groups)}
            nearest = np.argsort(-(test_emb @ train_emb.T), axis=1)[:, :20]
            votes = [max(set(groups[i]), key=list(groups[i]).count) for i in nearest]
            pc = np.stack([means[v] for v in votes])
            show(
                f"group (task/cluster) vote of 20 neighbours ({len(means)} groups)",
                curve_row("c", pc, test, at_cost),
            )


if __name__ == "__main__":
    main()
