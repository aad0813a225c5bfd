"""Issue 25 follow-up ideas for the pool routers, each scored on a validation split of the train
files (20% of the prompts by sha1, as the recipe chooses kNN's k) *and* on the test files, so
that what validation would pick can be compared with what test says
(docs/results.md, "Routing among several models", "Calibration, stacking, IRT, text features").

    python scripts/pool_calibration_experiments.py --data-dir ../shared/data --set llmrouter \
        --embedder sentence_transformer [--embedder minilm-l6-static-256] \
        [--embeddings-cache sentence_transformer=PROMPTS.json,EMBEDDINGS.npy ...]

Two ``--embedder`` flags concatenate both unit embeddings (divided by sqrt 2). Ideas: kNN over
the recipe's grid (k and weighting chosen on validation), the many-model MF at h 32 / 4 / 1
(h 1 is an IRT model: one latent ability direction, per-model discrimination and offset), the
kNN/MF blend at weights 0.25 / 0.5 / 0.75, multi-scale kNN (the mean over the grid's k), kNN
shrunk toward each model's mean, per-model isotonic calibration of kNN (fit on out-of-fold kNN
predictions of the training part), a stacker (one logistic regression per model on the logits of
every model's out-of-fold kNN prediction, at k and 4k, or with the embedding), kernel kNN
(exp(cos / tau) over the 400 nearest), TF-IDF word 1-2 / char 3-5 grams with one logistic
regression per model (and its blend with kNN), and for LLMRouter a soft predicted-cluster prior
(a logistic regression predicts the training ``cluster_id`` from the embedding; q = sum over
clusters of P(cluster | x) x the cluster's mean scores; the label is only a training target).
Protocol as routellm_base.train.pool_research: training prompts duplicating a test prompt
removed, decisions on each item's cost.
"""

from __future__ import annotations

import argparse
import json
import os
import warnings
from pathlib import Path

import numpy as np

from routellm_base.embedders import load_embedder
from routellm_base.pool.data import load_llmrouter, load_routerbench
from routellm_base.pool.knn import KnnPoolRouter
from routellm_base.pool.mf import PoolMFRouter
from routellm_base.pool.training import PoolMFConfig, train_pool_mf
from routellm_base.train.pool_recipe import bucket, curve_row, decontaminated
from routellm_base.train.pool_research import KNN_GRID, ROUTERBENCH_TARGET_COST
from routellm_base.train.recipe import cached_embed, load_embeddings_cache


def logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 0.01, 0.99)
    return np.log(p / (1 - p))


def per_model_logistic(x, scores: np.ndarray, c: float):
    """One L2 logistic regression per model (soft scores as weighted 0/1 rows)."""
    from sklearn.linear_model import LogisticRegression

    fits = []
    for j in range(scores.shape[1]):
        ok = np.flatnonzero(np.isfinite(scores[:, j]))
        y = scores[ok, j]
        rows = np.r_[ok, ok]
        fits.append(
            LogisticRegression(C=c, max_iter=1000).fit(
                x[rows], np.r_[np.ones(ok.size), np.zeros(ok.size)], sample_weight=np.r_[y, 1 - y]
            )
        )
    return lambda z: np.column_stack([f.predict_proba(z)[:, 1] for f in fits])


def knn_pred(x, data, k, weighted, q):
    return KnnPoolRouter(
        "k", x, data.scores, data.models, k=k, weighted=weighted
    ).quality_from_embeddings(q)


def out_of_fold_knn(x, data, k, weighted, folds=5):
    fold = bucket(data.prompts, "oof") % folds
    out = np.zeros(data.scores.shape)
    for f in range(folds):
        m = fold == f
        out[m] = knn_pred(x[~m], data.subset(~m), k, weighted, x[m])
    return out


def isotonic(pred, scores):
    from sklearn.isotonic import IsotonicRegression

    fits = []
    for j in range(scores.shape[1]):
        ok = np.isfinite(scores[:, j])
        fits.append(
            IsotonicRegression(out_of_bounds="clip", y_min=0, y_max=1).fit(
                pred[ok, j], scores[ok, j]
            )
        )
    return lambda q: np.column_stack([f.predict(q[:, j]) for j, f in enumerate(fits)])


def kernel_knn(q, x, scores, tau, top=400):
    s = q @ x.T
    idx = np.argpartition(-s, top, axis=1)[:, :top]
    near = np.take_along_axis(s, idx, 1)
    w = np.exp((near - near.max(1, keepdims=True)) / tau)[:, :, None]
    y = scores[idx]
    ok = np.isfinite(y)
    return (np.where(ok, y, 0) * w).sum(1) / (ok * w).sum(1)


def ideas(part, x, q, name, groups, k, weighted):
    """{idea: predictions on q} for a router trained on ``part`` (embeddings x)."""
    out = {}
    grid = KNN_GRID[name]
    by_k = {kk: knn_pred(x, part, kk, weighted, q) for kk in grid}
    base = by_k[k]
    out[f"kNN k={k}{' weighted' if weighted else ''} (chosen on validation)"] = base
    mf = {}
    for h in (32, 4, 1):
        tensors, _ = train_pool_mf(x, part, PoolMFConfig(dim=h))
        mf[h] = PoolMFRouter("m", tensors, part.models).quality_from_embeddings(q)
        out[f"MF h={h}{' (IRT)' if h == 1 else ''}"] = mf[h]
    for w in (0.25, 0.5, 0.75):
        out[f"blend {w} kNN + MF h=32"] = w * base + (1 - w) * mf[32]
    out["multi-scale kNN (mean over the grid)"] = np.mean(list(by_k.values()), axis=0)
    prior = np.nanmean(part.scores, axis=0)
    for a in (0.25, 1.0):
        out[f"kNN shrunk to model means, weight {a}"] = (base + a * prior) / (1 + a)
    oof = out_of_fold_knn(x, part, k, weighted)
    out["kNN + isotonic per model"] = isotonic(oof, part.scores)(base)
    k4 = min(4 * k, 800)
    oof4, base4 = out_of_fold_knn(x, part, k4, weighted), knn_pred(x, part, k4, weighted, q)
    for c in (0.01, 0.1, 1.0):
        out[f"stack LR on kNN logits C={c}"] = per_model_logistic(logit(oof), part.scores, c)(
            logit(base)
        )
        out[f"stack LR on kNN k, 4k logits C={c}"] = per_model_logistic(
            np.hstack([logit(oof), logit(oof4)]), part.scores, c
        )(np.hstack([logit(base), logit(base4)]))
        out[f"stack LR on kNN logits + embedding C={c}"] = per_model_logistic(
            np.hstack([logit(oof), x]), part.scores, c
        )(np.hstack([logit(base), q]))
    for tau in (0.03, 0.1):
        out[f"kernel kNN tau={tau}"] = kernel_knn(q, x, part.scores, tau)
    return out


def text_ideas(part, texts, name, base, train_groups, x, q):
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    out = {}
    for label, kw in (
        ("word 1-2", dict(analyzer="word", ngram_range=(1, 2), min_df=2, max_features=30000)),
        ("char 3-5", dict(analyzer="char_wb", ngram_range=(3, 5), min_df=3, max_features=50000)),
    ):
        vec = TfidfVectorizer(sublinear_tf=True, **kw).fit(part.prompts)
        for c in (1.0, 10.0):
            p = per_model_logistic(vec.transform(part.prompts), part.scores, c)(
                vec.transform(texts)
            )
            out[f"TF-IDF {label} LR C={c}"] = p
            out[f"TF-IDF {label} LR C={c} + kNN (0.5 each)"] = 0.5 * p + 0.5 * base
    if train_groups is not None:
        g = np.asarray(train_groups)
        clusters = sorted(set(g))
        means = np.stack([np.nanmean(part.scores[g == c], axis=0) for c in clusters])
        for c in (0.1, 1.0, 10.0):
            p = LogisticRegression(C=c, max_iter=2000).fit(x, g).predict_proba(q) @ means
            out[f"soft predicted-cluster prior C={c}"] = p
            out[f"soft predicted-cluster prior C={c} + kNN (0.5 each)"] = 0.5 * p + 0.5 * base
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data-dir", default=os.environ.get("ROUTELLM_DATA_DIR", "../shared/data"))
    parser.add_argument("--set", choices=("routerbench", "llmrouter"), required=True)
    parser.add_argument(
        "--embedder", action="append", help="repeat to concatenate (default static)"
    )
    parser.add_argument(
        "--embeddings-cache", action="append", help="EMBEDDER=PROMPTS.json,EMBEDDINGS.npy"
    )
    parser.add_argument(
        "--skip-text", action="store_true", help="skip TF-IDF and the cluster prior"
    )
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    data_dir = Path(args.data_dir)
    embedders = args.embedder or ["minilm-l6-static-256"]
    caches: dict[str, dict] = {e: {} for e in embedders}
    for spec in args.embeddings_cache or []:
        tag, _, files = spec.partition("=")
        caches.setdefault(tag, {}).update(load_embeddings_cache(files) or {})
    embeds = [cached_embed(load_embedder(e), caches[e]) for e in embedders]

    def embed(texts):
        return np.hstack([f(texts) for f in embeds]) / np.sqrt(len(embeds))

    load = load_routerbench if args.set == "routerbench" else load_llmrouter
    at = ROUTERBENCH_TARGET_COST if args.set == "routerbench" else None
    train, test = load(data_dir, "train"), load(data_dir, "test")
    test = test.select_models(train.models)
    test = test.subset(test.complete())
    test_emb = embed(test.prompts)
    train, train_emb, removed = decontaminated(train, embed(train.prompts), test.prompts, test_emb)
    clusters = None
    if args.set == "llmrouter":
        raw = json.loads((data_dir / "llmrouter" / "train.json").read_text())
        by_text = {r["question"]: r["cluster_id"] for r in raw}
        clusters = [by_text[p] for p in train.prompts]
    held = bucket(train.prompts) < 20
    fit, val = train.subset(~held), train.subset(held)
    ok = val.complete()
    val, val_emb = val.subset(ok), train_emb[held][ok]
    fit_emb = train_emb[~held]
    best = max(
        ((kk, w) for kk in KNN_GRID[args.set] for w in (False, True)),
        key=lambda kw: curve_row("v", knn_pred(fit_emb, fit, *kw, val_emb), val, at)["aiq"],
    )
    print(
        f"{args.set}, {' + '.join(embedders)}: {removed} training prompts removed as contaminated; "
        f"kNN chosen on validation: k={best[0]} weighted={best[1]}"
    )
    pv = ideas(fit, fit_emb, val_emb, args.set, None, *best)
    pt = ideas(train, train_emb, test_emb, args.set, None, *best)
    base_name = next(iter(pv))
    if not args.skip_text:
        fit_groups = None if clusters is None else [c for c, h in zip(clusters, held) if not h]
        pv.update(
            text_ideas(fit, val.prompts, args.set, pv[base_name], fit_groups, fit_emb, val_emb)
        )
        pt.update(
            text_ideas(train, test.prompts, args.set, pt[base_name], clusters, train_emb, test_emb)
        )
    base_val = curve_row("v", pv[base_name], val, at)["aiq"]
    print(
        f"{'idea':<52} {'val AIQ':>8} {'val q@cost':>10} | {'test AIQ':>8} {'test q@cost':>11} {'test match':>10}"
    )
    for label in pv:
        rv, rt = curve_row("v", pv[label], val, at), curve_row("t", pt[label], test, at)
        m = rt["cost_to_match_best_single"]
        flag = " *" if rv["aiq"] > base_val + 1e-9 else ""
        print(
            f"{label:<52} {rv['aiq']:>8.4f} {rv['quality_at_cost']:>10.4f} | {rt['aiq']:>8.4f} "
            f"{rt['quality_at_cost']:>11.4f} {'never' if m is None else f'${m:.3f}':>10}{flag}",
            flush=True,
        )
    print("* beats the chosen kNN on validation AIQ")


if __name__ == "__main__":
    main()
