"""The gated hybrid of docs/results.md: chat_task_experts' static gate and MMLU/GSM8K experts, with a
fine-tuned chat-only `bert` checkpoint as the chat expert.

    python scripts/chat_hybrid_experiment.py --data-dir ../shared/data runs/bert-rmb-s0 runs/bert-rmb-s1

The bert checkpoints are the chat-only ones of docs/results.md ("End-to-end fine-tuning"). The chat
expert's gap 2 * win_rate - 1 is standardised to the ridge chat expert's mean and spread on the
498 Arena-Hard prompts (unlabelled, never evaluated), then gate-weighted with the other experts.
Prints APGR on MT Bench, RMB fold 0, MMLU fold 0 and GSM8K fold 0 (items no part trained on).
"""

import argparse

import numpy as np

from routellm_base.checkpoints import load_router
from routellm_base.data import crossfit_fold
from routellm_base.embedders import load_embedder
from routellm_base.evals import load_benchmark, quality_curve
from routellm_base.routers.task_experts import length_features
from routellm_base.train.chat_task_experts import DEFAULT_CONFIG
from routellm_base.train.default_task_experts import train_fold
from routellm_base.train.recipe import load_arena_prompts

parser = argparse.ArgumentParser(
    description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
)
parser.add_argument("--data-dir", default="../shared/data")
parser.add_argument("checkpoints", nargs="+", help="chat-only bert checkpoints")
args = parser.parse_args()
embedder = load_embedder("minilm-l6-static-256")
router, _, tensors = train_fold(
    args.data_dir, embedder, DEFAULT_CONFIG, 0, None, chat=True, name="chat_task_experts"
)
sets = {}
for name in ("mt-bench", "rmb", "mmlu", "gsm8k"):
    bench = load_benchmark(name, args.data_dir)
    keep = np.array(
        [name not in ("mmlu", "gsm8k") or crossfit_fold(r.prompt) == 0 for r in bench.rows]
    )
    sets[name] = (
        [r.prompt for r, k in zip(bench.rows, keep) if k],
        bench.strong[keep],
        bench.weak[keep],
    )
arena = load_arena_prompts(args.data_dir)
CHAT = router.kinds.index("chat")


def parts(texts):
    e = np.asarray(embedder.embed(texts), np.float64)
    gaps = (
        np.hstack([e, length_features(texts)]) @ tensors["expert_weight"].T + tensors["expert_bias"]
    )
    return router._gate(e), gaps


for path in args.checkpoints:
    chat = load_router(path)
    _, arena_gaps = parts(arena)
    arena_bert = 2 * np.asarray(chat.strong_win_rate(arena)) - 1
    row = []
    for name, (texts, strong, weak) in sets.items():
        gate, gaps = parts(texts)
        bert = 2 * np.asarray(chat.strong_win_rate(texts)) - 1
        gaps[:, CHAT] = (bert - arena_bert.mean()) / arena_bert.std() * arena_gaps[
            :, CHAT
        ].std() + arena_gaps[:, CHAT].mean()
        row.append(f"{name} {quality_curve((gate * gaps).sum(1), strong, weak).apgr():.3f}")
    print(path, "  ".join(row))
