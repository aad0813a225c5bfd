"""Which gate tells the task kinds apart: held-out kind accuracy of five gates (docs/results.md,
"One router for every kind, at the chat targets' edge").

    python scripts/chat_gate_comparison.py --data-dir ../shared/data

Each gate is trained on the prompts of folds 1-4 of MMLU, GSM8K and RMB chat (the ``chat_gated``
recipe's split, decontaminated; the last row adds the RMB prompts without a top-vs-mid battle, as
the recipe's gate does) and scored on fold 0: the share of each source's held-out
prompts whose most probable kind is their own. No benchmark's APGR enters. About 10 minutes on
2 CPU cores (the MiniLM rows embed every prompt with all-MiniLM-L6-v2).
"""

import argparse

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier

from routellm_base.embedders import load_embedder
from routellm_base.train.chat_gated import KINDS, SOURCES, fit_recipe_gate
from routellm_base.train.chat_task_experts import DEFAULT_CONFIG
from routellm_base.train.default_task_experts import train_fold
from routellm_base.train.gated import fit_text_gate
from routellm_base.train.recipe import cached_embed, split_fold

parser = argparse.ArgumentParser(
    description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
)
parser.add_argument("--data-dir", default="../shared/data")
args = parser.parse_args()

static = load_embedder("minilm-l6-static-256")
cache: dict[str, np.ndarray] = {}
split = split_fold(
    args.data_dir, 0, cached_embed(static, cache), with_llmrouter=False, with_rmb=True
)
train = [[r.prompt for r in split.train[SOURCES[k]]] for k in KINDS]
held_out = [[r.prompt for r in split.held_out[SOURCES[k]]] for k in KINDS]
texts = [p for t in train for p in t]
kind = np.concatenate([np.full(len(t), k) for k, t in enumerate(train)])


def report(name: str, predict) -> None:
    accuracy = [float((predict(p) == k).mean()) for k, p in enumerate(held_out)]
    print(f"| {name} | " + " | ".join(f"{a:.3f}" for a in accuracy) + " |", flush=True)


print("| gate | " + " | ".join(KINDS) + " |\n| --- | --- | --- | --- |")
router, _, _ = train_fold(args.data_dir, static, DEFAULT_CONFIG, 0, cache, chat=True, split=split)
report(
    "softmax on the static embedding (chat_task_experts)",
    lambda p: router.kind_probabilities(p).argmax(1),
)
minilm = load_embedder("sentence_transformer")
x = np.asarray(minilm.embed(texts))
logistic = LogisticRegression(C=10, max_iter=3000, class_weight="balanced").fit(x, kind)
report(
    "logistic on all-MiniLM-L6-v2 (C = 10)", lambda p: logistic.predict(np.asarray(minilm.embed(p)))
)
knn = KNeighborsClassifier(5, metric="cosine").fit(x, kind)
report("kNN on all-MiniLM-L6-v2 (k = 5)", lambda p: knn.predict(np.asarray(minilm.embed(p))))
gate, record = fit_text_gate(texts, kind, len(KINDS))
report(
    f"character n-gram TF-IDF logistic, the chat expert's {len(train[2])} chat prompts (C = {record['C']:g})",
    lambda p: gate.probabilities(p).argmax(1),
)
gate, record = fit_recipe_gate(args.data_dir, split, cached_embed(static, cache))
report(
    f"the same on every RMB prompt of folds 1-4, {record['texts_per_kind'][2]} (C = {record['C']:g}, the recipe's gate)",
    lambda p: gate.probabilities(p).argmax(1),
)
