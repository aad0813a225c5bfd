"""More out of RMB's labels? Cheap chat ideas on the static embedding, cross-fitted over 5 folds
(docs/results.md, "Cheap label ideas, cross-fitted").

    python scripts/chat_label_ideas.py --data-dir ../shared/data

Every row fits a linear scorer on RMB's folds other than k (training prompts within cosine 0.95
of fold k's removed) and scores fold k's prompts; RMB's APGR is pooled over all 1,237 prompts
(each fold's scores standardised by its scorer's spread over all RMB prompts), and MT Bench (72
questions, never trained on) is scored by each fold's scorer and averaged. Static embedder
(minilm-l6-static-256). The ideas:

- the tier share: ridge (penalty 30) on each prompt's share of top-tier wins, weighted by its
  number of top-vs-mid battles (the ridge chat expert's target);
- pair-residual: the same, each battle's outcome minus its model pair's win rate on the training
  folds, so a prompt is not credited for which pairs RMB's authors happened to battle on it;
- per-model Bradley-Terry: logistic regression over battles, P(a beats b) = sigmoid((u_a - u_b)
  . x + c_a - c_b) with u_m = model vector + tier vector (L2, C = 0.1), read as mean top-tier
  minus mean mid-tier score; over all 10,665 pairs or over top-vs-mid pairs alone;
- the cut: the tier-share ridge on the first 126 MiniLM tokens of each prompt, or on the first
  63 and last 63 (as ``routellm train bert --truncation head_tail``).

Under a minute on 2 CPU cores.
"""

import argparse
from collections import defaultdict

import numpy as np
from sklearn.linear_model import LogisticRegression
from transformers import AutoTokenizer

from routellm_base.data import crossfit_fold, load_rmb_pairs, rmb_tier_scores
from routellm_base.data.rmb import RMB_FOLDS, RMB_MID_TIER, RMB_TOP_TIER, TOP_TIER, tier_outcome
from routellm_base.decontaminate import contaminated_mask
from routellm_base.embedders import load_embedder
from routellm_base.embedders.base import l2_normalise
from routellm_base.evals import load_benchmark, quality_curve
from routellm_base.routers.bert import resolve_base_path
from routellm_base.train.task_experts import fit_ridge

parser = argparse.ArgumentParser(
    description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
)
parser.add_argument("--data-dir", default="../shared/data")
args = parser.parse_args()

pairs = load_rmb_pairs(args.data_dir)
static = load_embedder("minilm-l6-static-256")
prompts = sorted({p.prompt for p in pairs})
index = {p: i for i, p in enumerate(prompts)}
fold = np.array([crossfit_fold(p, RMB_FOLDS) for p in prompts])
emb = np.asarray(static.embed(prompts), np.float64)
mt = load_benchmark("mt-bench", args.data_dir)
mt_emb = np.asarray(static.embed(mt.prompts), np.float64)

top_vs_mid = [(p, o) for p in pairs if (o := tier_outcome(p)) is not None]
tier_rows = rmb_tier_scores(pairs)  # per prompt: the top tier's share of its top-vs-mid battles
scored = np.array([index[r.prompt] for r in tier_rows])
share = np.array([r.scores[TOP_TIER] for r in tier_rows])
battles = np.array([r.extra["battles"] for r in tier_rows], float)


def tier_pair(p):
    top = p.winner if p.winner in RMB_TOP_TIER else p.loser
    return top, p.loser if top == p.winner else p.winner


def ridge(x, y, w, penalty=30.0):
    # fit_ridge rescales the row weights to mean 1; dividing the penalty by their mean keeps it
    # the penalty on battle-count weights.
    weight, _ = fit_ridge(x, y, penalty / w.mean(), w)
    return lambda q: q @ weight


def tier_share(train, x=emb):
    mine = train[scored]
    return ridge(x[scored[mine]], share[mine], battles[mine])


def pair_residual(train, x=emb):
    rate: dict[tuple[str, str], list[float]] = defaultdict(list)
    for p, o in top_vs_mid:
        if train[index[p.prompt]]:
            rate[tier_pair(p)].append(o)
    resid: dict[int, list[float]] = defaultdict(list)
    for p, o in top_vs_mid:
        if train[index[p.prompt]]:
            resid[index[p.prompt]].append(o - np.mean(rate[tier_pair(p)]))
    rows = list(resid)
    y = np.array([np.mean(resid[i]) for i in rows])
    w = np.array([len(resid[i]) for i in rows], float)
    return ridge(x[rows], y, w)


models = sorted({m for p in pairs for m in (p.winner, p.loser)})
slot = {m: i for i, m in enumerate(models)}


def tier(m):
    return 2 if m in RMB_TOP_TIER else 1 if m in RMB_MID_TIER else 0


def bradley_terry(train, only_top_vs_mid, x=emb):
    d = x.shape[1] + 1
    feats, labels = [], []
    rng = np.random.default_rng(0)
    for p in pairs:
        if not train[index[p.prompt]] or (only_top_vs_mid and tier_outcome(p) is None):
            continue
        xa = np.append(x[index[p.prompt]], 1.0)
        f = np.zeros((len(models) + 3) * d)
        for m, sign in ((p.winner, 1.0), (p.loser, -1.0)):
            for s in (slot[m], len(models) + tier(m)):
                f[s * d : (s + 1) * d] += sign * xa
        flip = 1.0 if rng.random() < 0.5 else -1.0  # both classes for the solver
        feats.append(flip * f)
        labels.append(int(flip > 0))
    fit = LogisticRegression(C=0.1, fit_intercept=False, max_iter=2000).fit(feats, labels)
    w = fit.coef_[0].reshape(len(models) + 3, d)
    top = np.mean([w[slot[m]] for m in RMB_TOP_TIER], axis=0) + w[len(models) + 2]
    mid = np.mean([w[slot[m]] for m in RMB_MID_TIER], axis=0) + w[len(models) + 1]
    gap = top - mid
    return lambda q: q @ gap[:-1]


tokenizer = AutoTokenizer.from_pretrained(
    str(resolve_base_path("all-MiniLM-L6-v2")), local_files_only=True
)


def cut(text, head_tail, budget=126):
    ids = tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"]
    if len(ids) <= budget:
        return text
    if head_tail:
        return tokenizer.decode(ids[: budget // 2]) + " " + tokenizer.decode(ids[-(budget // 2) :])
    return tokenizer.decode(ids[:budget])


def crossfit(make, x=emb, x_mt=mt_emb):
    scores, strong, per_fold, mt_apgr = [], [], [], []
    for k in range(RMB_FOLDS):
        held = fold == k
        train = ~held
        train[train] = ~contaminated_mask(
            [prompts[i] for i in np.flatnonzero(train)],
            [prompts[i] for i in np.flatnonzero(held)],
            l2_normalise(x[train]),
            l2_normalise(x[held]),
        )
        scorer = make(train, x)
        on_fold = held[scored]
        s = scorer(x[scored[on_fold]])
        per_fold.append(quality_curve(s, share[on_fold], 1 - share[on_fold]).apgr())
        spread = scorer(x)
        scores.append((s - spread.mean()) / spread.std())
        strong.append(share[on_fold])
        mt_apgr.append(quality_curve(scorer(x_mt), mt.strong, mt.weak).apgr())
    s, y = np.concatenate(scores), np.concatenate(strong)
    pooled = quality_curve(s, y, 1 - y).apgr()
    folds = " · ".join(f"{v:.3f}" for v in per_fold)
    return f"{pooled:.3f} ({folds}) | {np.mean(mt_apgr):.3f}"


print(
    "| idea (static embedding, ridge unless named) | RMB, 1,237 prompts (folds 0-4) | MT Bench, mean of 5 |"
)
print("| --- | --- | --- |")
print(f"| tier share (the ridge chat expert's target) | {crossfit(tier_share)} |")
print(f"| pair-residual tier share | {crossfit(pair_residual)} |")
print(
    f"| per-model Bradley-Terry, top-vs-mid pairs | {crossfit(lambda t, x: bradley_terry(t, True, x))} |"
)
print(
    f"| per-model Bradley-Terry, all 10,665 pairs | {crossfit(lambda t, x: bradley_terry(t, False, x))} |"
)
for name, head_tail in (("first 126 tokens", False), ("first 63 and last 63 tokens", True)):
    x_cut = np.asarray(static.embed([cut(p, head_tail) for p in prompts]), np.float64)
    mt_cut = np.asarray(static.embed([cut(p, head_tail) for p in mt.prompts]), np.float64)
    print(f"| tier share on the {name} | {crossfit(tier_share, x_cut, mt_cut)} |")
