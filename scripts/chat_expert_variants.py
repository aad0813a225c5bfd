"""The fine-tuned chat expert, cross-fitted: regularised variants and ensembles with static scorers
(docs/results.md, "The fine-tuned chat expert, cross-fitted").

    python scripts/chat_expert_variants.py --data-dir ../shared/data --work runs/chat-expert-variants

For each variant and each of RMB's 5 folds k, the chat expert of ``chat_gated`` (``routellm train
bert`` on RMB's top-vs-mid battles, seed 0, 3 epochs at most with early stopping, 128 tokens) is
trained with fold k held out and decontaminated against, exactly as ``chat_gated --crossfit``
trains it, and scores fold k's prompts and MT Bench (never trained on). Variants:

- ``head``: the recipe's expert as it is;
- ``freeze4``: the embeddings module and the first 4 of MiniLM's 6 layers frozen, so about 3.6M
  of 22.7M weights train (the usual remedy for a small, noisy training set);
- ``ep2``: no validation split and two full epochs, so the second epoch's weights are kept
  (the recipe's early stopping on validation loss kept the first epoch on every fold), trained
  on all the fold's training prompts (the recipe holds 10% out for validation);
- ``top_vs_rest``: more battles per prompt: the top tier's battles against the two low-tier 7B
  models (Llama-2-7b-chat, vicuna-7b; Mistral-7B is mid tier) are added to its battles against the mid tier, about 1,050 more
  per fold; evaluation stays top vs mid;
- ``half``, ``quarter``, ``other_quarter``: a learning curve: the recipe's expert trained on the
  battles of a fixed half or quarter of each fold's training prompts (chosen by a hash of the
  prompt: the two quarters are disjoint and make up the half), to see how the chat figure grows
  with labelled prompts. With all three in ``--variants``, a learning-curve table follows
  (docs/results.md, "A learning curve"; ``head`` is trained if not kept).

``freeze4`` and ``ep2`` are applied by wrapping ``routellm_base.train.bert``'s ``build_classifier`` and
``train_bert`` here: they are experiments, not options of the library. Each fold's win rates are kept under ``--work``, so a
second run only prints. RMB is pooled over all 1,237 prompts with each fold's scores standardised
by their spread over every RMB prompt (as ``scripts/chat_label_ideas.py`` does); MT Bench is the
mean of the five fold experts' APGR. The ensembles add, per fold, the expert's standardised score to a
static ridge (tier share, penalty 30) and kNN (k = 100, cosine) on ``minilm-l6-static-256``,
cross-fitted the same way. 30-40 minutes per variant on 2 idle CPU cores.

``--by-category`` then prints where the first variant's RMB figure comes from (docs/results.md,
"Where RMB's signal is"): its APGR inside each of RMB's 12 task categories with each one's random
band, routers told each held-out prompt's true category or subcategory (cross-fitted priors),
how well two battles of one prompt agree inside a category (with and without a model's answer
in common), and which RMB categories the Arena-Hard prompts fall nearest to.
"""

import argparse
import dataclasses
import functools
import hashlib
import json
from collections import Counter
from itertools import combinations
from pathlib import Path

import numpy as np

import routellm_base.train.bert as bert_training
from routellm_base.checkpoints import load_router
from routellm_base.cli import main as cli_main
from routellm_base.data import GPT4, MIXTRAL, crossfit_fold, load_rmb_pairs, rmb_tier_scores
from routellm_base.data.rmb import (
    RMB_FOLDS,
    RMB_MID_TIER,
    RMB_TOP_TIER,
    TOP_TIER,
    rmb_split,
    tier_outcome,
)
from routellm_base.decontaminate import contaminated_mask
from routellm_base.embedders import load_embedder
from routellm_base.embedders.base import l2_normalise
from routellm_base.evals import load_benchmark, quality_curve, random_baseline
from routellm_base.train import chat_bert
from routellm_base.train.chat_gated import chat_bert_argv
from routellm_base.train.task_experts import TaskExpertsTrainConfig, fit_gate, fit_ridge

VARIANTS = ("head", "freeze4", "ep2", "top_vs_rest", "half", "quarter", "other_quarter")
# Which training prompts each learning-curve variant keeps: a range of a hash of the prompt.
SHARES = {"half": (0.0, 0.5), "quarter": (0.0, 0.25), "other_quarter": (0.25, 0.5)}
STATIC = ("ridge", "knn", "category")
LOW_TIER = ("Llama-2-7b-chat-hf", "vicuna-7b-v1.5")
parser = argparse.ArgumentParser(
    description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
)
parser.add_argument("--data-dir", default="../shared/data")
parser.add_argument("--work", required=True, help="keeps each fold's expert and its win rates")
parser.add_argument("--variants", nargs="+", choices=VARIANTS, default=list(VARIANTS))
parser.add_argument(
    "--by-category",
    action="store_true",
    help="also print where the expert's RMB figure comes from: its APGR inside each of RMB's "
    "12 categories, beside routers that are told each prompt's true category",
)
args = parser.parse_args()
work = Path(args.work)
work.mkdir(parents=True, exist_ok=True)

pairs = load_rmb_pairs(args.data_dir)
prompts = sorted({p.prompt for p in pairs})
index = {p: i for i, p in enumerate(prompts)}
fold = np.array([crossfit_fold(p, RMB_FOLDS) for p in prompts])
mt = load_benchmark("mt-bench", args.data_dir)
y = np.full(len(prompts), np.nan)  # the top tier's share of its top-vs-mid battles
w = np.zeros(len(prompts))
for row in rmb_tier_scores(pairs):
    y[index[row.prompt]] = row.scores[TOP_TIER]
    w[index[row.prompt]] = row.extra["battles"]
subcategory = np.array([""] * len(prompts), dtype=object)  # e.g. "Code/Debugging"
for pair in pairs:
    subcategory[index[pair.prompt]] = subcategory[index[pair.prompt]] or pair.category
category = np.array([c.split("/", 1)[0] for c in subcategory], dtype=object)
labelled = ~np.isnan(y)

frozen_layers = 0
build_classifier = bert_training.build_classifier


def build_with_frozen_layers(*a, **kw):
    tokenizer, model = build_classifier(*a, **kw)
    if frozen_layers:
        for module in (model.encoder.embeddings, *model.encoder.encoder.layer[:frozen_layers]):
            module.requires_grad_(False)
    return tokenizer, model


bert_training.build_classifier = build_with_frozen_layers
last_epoch = False
train_bert = bert_training.train_bert


def train_to_the_last_epoch(battles, strong, weak, config, progress=True):
    if last_epoch:  # no validation rows: the last epoch's weights are kept
        config = dataclasses.replace(config, validation_fraction=0.0, epochs=2)
    return train_bert(battles, strong, weak, config, progress)


bert_training.train_bert = train_to_the_last_epoch


def top_vs_rest_battles(k: int) -> list[dict[str, str]]:
    """Fold k's training battles of a top-tier model against a mid-tier or 7B one, the top tier
    named GPT-4-1106 and the other Mixtral, as ``rmb_tier_battles`` names them."""
    battles = []
    for pair in rmb_split(pairs, "train", k):
        rest = (*RMB_MID_TIER, *LOW_TIER)
        if pair.winner in RMB_TOP_TIER and pair.loser in rest:
            winner, loser = GPT4, MIXTRAL
        elif pair.winner in rest and pair.loser in RMB_TOP_TIER:
            winner, loser = MIXTRAL, GPT4
        else:
            continue
        battles.append({"prompt": pair.prompt, "model_a": winner, "model_b": loser, "winner": "model_a"})
    return battles


def in_share(prompt: str, share: tuple[float, float]) -> bool:
    """Whether a training prompt's hash, read as a number in [0, 1), lies in ``share``."""
    digest = hashlib.sha1(f"subsample:{prompt}".encode()).digest()
    return share[0] <= int.from_bytes(digest[:8], "big") / 2**64 < share[1]


@functools.cache
def expert_scores(variant: str, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Win rates of the fold-k expert on every RMB prompt and on MT Bench, trained if not kept."""
    global frozen_layers, last_epoch
    rmb_file, mt_file = work / f"{variant}-f{k}-rmb.npy", work / f"{variant}-f{k}-mt.npy"
    if not rmb_file.exists():
        out = work / f"{variant}-f{k}"
        if not (out / "config.json").exists():
            files = chat_bert.write_training_files(args.data_dir, work / f"data-f{k}", 0, 0, fold=k)
            if variant == "top_vs_rest":
                files["chat"] = work / f"data-f{k}" / "top_vs_rest_battles.jsonl"
                files["chat"].write_text(
                    "".join(json.dumps(b) + "\n" for b in top_vs_rest_battles(k)), encoding="utf-8"
                )
            if variant in SHARES:
                kept = [
                    line
                    for line in files["chat"].read_text(encoding="utf-8").splitlines()
                    if in_share(json.loads(line)["prompt"], SHARES[variant])
                ]
                files["chat"] = work / f"data-f{k}" / f"{variant}_battles.jsonl"
                files["chat"].write_text("".join(line + "\n" for line in kept), encoding="utf-8")
            argv = chat_bert_argv(files, out, 0, 3, k, "head")
            frozen_layers = 4 if variant == "freeze4" else 0
            last_epoch = variant == "ep2"
            if cli_main(argv) != 0:
                raise SystemExit(f"training {variant}, fold {k} failed")
            # Without validation rows the epoch with the lowest training loss is kept: the second.
            card = (out / "MODEL_CARD.md").read_text(encoding="utf-8")
            if variant == "ep2" and "kept epoch 2 of 2," not in card:
                raise SystemExit(f"{out}: the second epoch was not the one kept")
        router = load_router(out)
        np.save(rmb_file, router.strong_win_rate(prompts))
        np.save(mt_file, router.strong_win_rate(mt.prompts))
    return np.load(rmb_file), np.load(mt_file)


static = load_embedder("minilm-l6-static-256")
emb = np.asarray(static.embed(prompts), np.float64)
mt_emb = np.asarray(static.embed(mt.prompts), np.float64)


gate_accuracy: dict[int, float] = {}  # the category gate's accuracy on each held-out fold


@functools.cache
def training_rows(k: int) -> np.ndarray:
    """The prompts a fold-k static scorer may train on: the other folds, less near-duplicates of
    fold k's prompts."""
    held = fold == k
    train = ~held
    train[train] = ~contaminated_mask(
        [prompts[i] for i in np.flatnonzero(train)],
        [prompts[i] for i in np.flatnonzero(held)],
        l2_normalise(emb[train]),
        l2_normalise(emb[held]),
    )
    return train


@functools.cache  # each scorer and fold is fitted once, however many rows use it
def static_scores(name: str, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The fold-k static scorer on every RMB prompt and on MT Bench (near-duplicates removed)."""
    held, train = fold == k, training_rows(k)
    rows = train & labelled
    if name == "ridge":
        weight, _ = fit_ridge(emb[rows], y[rows], 30.0 / w[rows].mean(), w[rows])
        return emb @ weight, mt_emb @ weight
    if name == "category":  # softmax gate over RMB's categories, each scored by its prior
        names = sorted(set(category[labelled]))
        kind = np.array([names.index(c) for c in category[train]])
        gate_w, gate_b = fit_gate(l2_normalise(emb[train]), kind, len(names), TaskExpertsTrainConfig())
        prior = np.array([y[rows & (category == c)].mean() for c in names])

        def predicted(q):
            logits = l2_normalise(q) @ gate_w.T + gate_b
            odds = np.exp(logits - logits.max(axis=1, keepdims=True))
            return odds / odds.sum(axis=1, keepdims=True)

        gate_accuracy[k] = float(np.mean(predicted(emb[held]).argmax(axis=1) == [names.index(c) for c in category[held]]))
        return predicted(emb) @ prior, predicted(mt_emb) @ prior
    neighbours, targets, weights = l2_normalise(emb[rows]), y[rows], w[rows]

    def knn(q):
        nearest = np.argsort(-(l2_normalise(q) @ neighbours.T), axis=1)[:, :100]
        return np.array([np.average(targets[i], weights=weights[i]) for i in nearest])

    return knn(emb), knn(mt_emb)


def fold_scores(parts: list[str], k: int) -> tuple[np.ndarray, np.ndarray]:
    """The sum of the fold-k scorers ``parts`` on every RMB prompt and on MT Bench, each
    standardised by its spread over every RMB prompt."""
    total, total_mt = np.zeros(len(prompts)), np.zeros(len(mt.prompts))
    for part in parts:
        rmb, on_mt = static_scores(part, k) if part in STATIC else expert_scores(part, k)
        total += (rmb - rmb.mean()) / rmb.std()
        total_mt += (on_mt - rmb.mean()) / rmb.std()
    return total, total_mt


def pooled_scores(parts: list[str]) -> np.ndarray:
    """Each RMB prompt's score from the fold that held it out, standardised per fold."""
    pooled = np.zeros(len(prompts))
    for k in range(RMB_FOLDS):
        pooled[fold == k] = fold_scores(parts, k)[0][fold == k]
    return pooled


def category_prior(groups: np.ndarray) -> np.ndarray:
    """Cross-fitted: each held-out prompt scored by the mean top-tier share of the training
    folds' prompts in its true group (category or subcategory); NaN outside the labelled rows."""
    prior = np.full(len(prompts), np.nan)
    for k in range(RMB_FOLDS):
        train = labelled & (fold != k)
        for i in np.flatnonzero(labelled & (fold == k)):
            prior[i] = y[train & (groups == groups[i])].mean()
    return prior


def category_means(values: np.ndarray) -> np.ndarray:
    """Each labelled prompt's value replaced by the mean over its category's labelled prompts
    (zero elsewhere)."""
    means = np.zeros(len(prompts))
    for name in set(category[labelled]):
        group = labelled & (category == name)
        means[group] = values[group].mean()
    return means


def apgr_of(scores: np.ndarray, rows: np.ndarray) -> float:
    return quality_curve(scores[rows], y[rows], 1 - y[rows]).apgr()


def where_the_signal_is(variant: str) -> None:
    """The expert's APGR inside each category, and routers told each prompt's true category."""
    expert = pooled_scores([variant])
    names = sorted(set(category[labelled]))
    # The expert split in two: its mean over each category's prompts (which kind of task), and
    # what is left inside the category (which prompt of that kind).
    between = category_means(expert)
    within = expert - between
    print(
        f"\n| RMB category | prompts | top tier's mean share | `{variant}`: mean score (standardised) | "
        f"`{variant}`: APGR inside the category | random (200) |"
    )
    print("| --- | --- | --- | --- | --- | --- |")
    for name in names:
        rows = labelled & (category == name)
        mean, std, _ = random_baseline(y[rows], 1 - y[rows])
        print(
            f"| {name} | {rows.sum()} | {y[rows].mean():.3f} | {between[rows][0]:+.3f} | "
            f"{apgr_of(expert, rows):.3f} | {mean:.3f} ± {std:.3f} |"
        )
    prior = category_prior(category)
    z_prior = np.zeros(len(prompts))
    for k in range(RMB_FOLDS):  # standardised per fold, as the expert's scores are
        held = labelled & (fold == k)
        z_prior[held] = (prior[held] - prior[held].mean()) / prior[held].std()
    rows = {
        f"{LABELS[variant]}, for reference": expert,
        "its category means alone (each prompt scored by its category's mean expert score)": between,
        "what is left inside categories (the expert minus its category's mean)": within,
        "the true category's prior (12 categories)": prior,
        f"the true subcategory's prior ({len(set(subcategory[labelled]))} subcategories)": category_prior(
            subcategory
        ),
        f"{LABELS[variant]} + the true category's prior (standardised, equal weight)": expert + z_prior,
    }
    mean, std, _ = random_baseline(y[labelled], 1 - y[labelled])
    print(
        f"\n| scorer, cross-fitted (true categories are not known at routing) | RMB (folds 0-4; random {mean:.3f} ± {std:.3f}) |"
    )
    print("| --- | --- |")
    for label, scores in rows.items():
        per_fold = " · ".join(f"{apgr_of(scores, labelled & (fold == k)):.3f}" for k in range(RMB_FOLDS))
        print(f"| {label} | {apgr_of(scores, labelled):.3f} ({per_fold}) |")
    alone, both = report(["category"]), report([variant, "category"])
    print(
        f"\nA predicted category instead of the true one (softmax gate on the static embedding, "
        f"{np.mean(list(gate_accuracy.values())):.1%} of held-out prompts put in their true category), "
        f"RMB | MT Bench as in the first table:\n- its prior alone: {alone}\n- with {LABELS[variant]}: {both}"
    )
    print("\nTwo top-vs-mid battles of one prompt (pairwise set), inside categories:")
    for pair_means in (False, True):
        (r_own, n_own), (r_shared, n_shared) = battle_agreement(False, pair_means), battle_agreement(True, pair_means)
        removed = "each model pair's mean also removed" if pair_means else "category means removed"
        print(
            f"- {removed}: "
            f"no model in common r = {r_own:.3f} over {n_own} prompts (standard error about "
            f"{1 / np.sqrt(n_own):.3f}); sharing a model r = {r_shared:.3f} over {n_shared} prompts"
        )
    inside = y - category_means(y)
    r_expert = np.corrcoef(within[labelled], inside[labelled])[0, 1]
    print(f"- the expert against a prompt's top-tier share, both inside categories: r = {r_expert:.3f}")
    print(f"Arena-Hard prompts by the category of their 10 nearest RMB prompts: {arena_hard_mix()}")


def battle_agreement(shared: bool, pair_means: bool = False, repeats: int = 50) -> tuple[float, int]:
    """How much two top-vs-mid battles of one prompt agree, inside categories: the correlation
    of their outcomes over prompts, each category's mean removed, averaged over ``repeats``
    random draws of one pair of battles per prompt. ``shared``: the two battles have a model (so
    one answer) in common; otherwise they share none, and only the prompt links them. Pairwise
    set only (a best-of-n set judges one best answer against each loser by construction).
    ``pair_means``: first subtract each model pair's mean outcome over all these battles, so that
    lopsided pairs (gemini-1.5-pro vs Mistral-7B) and close ones do not count as disagreement.
    Also returns how many prompts had such a pair of battles."""
    battles: dict[str, list[tuple[float, frozenset[str]]]] = {}
    for pair in pairs:
        outcome = tier_outcome(pair)
        if pair.set == "pairwise" and outcome is not None:
            battles.setdefault(pair.prompt, []).append((outcome, frozenset((pair.winner, pair.loser))))
    if pair_means:
        by_pair: dict[frozenset[str], list[float]] = {}
        for b in battles.values():
            for outcome, models in b:
                by_pair.setdefault(models, []).append(outcome)
        means = {models: float(np.mean(o)) for models, o in by_pair.items()}
        battles = {p: [(o - means[m], m) for o, m in b] for p, b in battles.items()}
    candidates = {
        p: [(i, j) for i, j in combinations(range(len(b)), 2) if bool(b[i][1] & b[j][1]) == shared]
        for p, b in battles.items()
    }
    kept = [p for p, c in candidates.items() if c]
    groups = np.array([category[index[p]] for p in kept])
    rng = np.random.default_rng(0)
    rs = []
    for _ in range(repeats):
        drawn = np.zeros((len(kept), 2))
        for row, p in enumerate(kept):
            i, j = candidates[p][rng.integers(len(candidates[p]))]
            drawn[row] = battles[p][i][0], battles[p][j][0]
        for name in set(groups):
            drawn[groups == name] -= drawn[groups == name].mean(axis=0)
        rs.append(np.corrcoef(drawn[:, 0], drawn[:, 1])[0, 1])
    return float(np.mean(rs)), len(kept)


def arena_hard_mix() -> str:
    """How Arena-Hard's prompts spread over RMB's categories: each takes the most common
    category among its 10 nearest labelled RMB prompts (static MiniLM, cosine)."""
    questions = Path(args.data_dir) / "arena_hard" / "questions.jsonl"
    texts = [json.loads(line)["prompt"] for line in questions.read_text(encoding="utf-8").splitlines()]
    queries = l2_normalise(np.asarray(static.embed(texts), np.float64))
    near = np.argsort(-(queries @ l2_normalise(emb[labelled]).T), axis=1)[:, :10]
    votes = [Counter(category[labelled][row]).most_common(1)[0][0] for row in near]
    return ", ".join(f"{name} {n}" for name, n in Counter(votes).most_common())


def report_cells(parts: list[str]) -> tuple[str, str]:
    """The RMB cell (pooled APGR and each fold's) and the MT Bench cell (mean of the five fold
    scorers and each one's) of the sum of ``parts``."""
    pooled = pooled_scores(parts)
    per_fold = [apgr_of(pooled, labelled & (fold == k)) for k in range(RMB_FOLDS)]
    mt_apgr = [quality_curve(fold_scores(parts, k)[1], mt.strong, mt.weak).apgr() for k in range(RMB_FOLDS)]
    return (
        f"{apgr_of(pooled, labelled):.3f} ({' · '.join(f'{v:.3f}' for v in per_fold)})",
        f"{np.mean(mt_apgr):.3f} ({' · '.join(f'{v:.3f}' for v in mt_apgr)})",
    )


def report(parts: list[str]) -> str:
    return " | ".join(report_cells(parts))


def learning_curve() -> None:
    """The expert trained on a quarter, the other quarter, a half and all of each fold's training
    prompts: pooled RMB, split as in ``--by-category`` into its category means and what is left
    inside categories."""
    print(
        "\n| chat expert, cross-fitted | training prompts a fold (mean) | RMB (folds 0-4) | "
        "its category means alone | inside categories | MT Bench, mean of 5 (each fold's) |"
    )
    print("| --- | --- | --- | --- | --- | --- |")
    names = {"quarter": "`quarter`", "other_quarter": "`other_quarter`", "half": "`half` (the two quarters)",
             "head": "all (the expert, `head`)"}  # fmt: skip
    for variant, label in names.items():
        counts = []
        for k in range(RMB_FOLDS):
            name = "rmb_tier_battles" if variant == "head" else f"{variant}_battles"
            lines = (work / f"data-f{k}" / f"{name}.jsonl").read_text(encoding="utf-8").splitlines()
            counts.append(len({json.loads(line)["prompt"] for line in lines}))
        expert = pooled_scores([variant])
        between = category_means(expert)
        rmb, on_mt = report_cells([variant])
        print(
            f"| {label} | {np.mean(counts):.0f} | {rmb} | {apgr_of(between, labelled):.3f} | "
            f"{apgr_of(expert - between, labelled):.3f} | {on_mt} |"
        )


LABELS = {
    "head": "the expert (`head`)",
    "freeze4": "`freeze4`: embeddings and the first 4 of 6 layers frozen",
    "ep2": "`ep2`: the second epoch kept (no validation split)",
    "top_vs_rest": "`top_vs_rest`: + the top tier's battles against the low-tier 7B models",
    "half": "`half`: trained on half of each fold's training prompts",
    "quarter": "`quarter`: trained on a quarter of each fold's training prompts",
    "other_quarter": "`other_quarter`: trained on the other quarter of the half",
    "ridge": "static ridge (tier share)",
    "knn": "static kNN (k = 100)",
    "category": "a predicted category's prior",
}
print("| chat scorer, cross-fitted | RMB, 1,237 prompts (folds 0-4) | MT Bench, mean of 5 (each fold's) |")
print("| --- | --- | --- |")
for variant in args.variants:
    print(f"| {LABELS[variant]} | {report([variant])} |", flush=True)
    if variant == "head":
        for statics in (["ridge"], ["knn"], ["ridge", "knn"]):
            label = " + ".join(["the expert", *(LABELS[s] for s in statics)])
            print(f"| {label} | {report(['head', *statics])} |", flush=True)
if {"half", "quarter", "other_quarter"} <= set(args.variants):
    learning_curve()
if args.by_category:
    where_the_signal_is(args.variants[0])
