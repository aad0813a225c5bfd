"""The recipe of the bundled default MF router, runnable end to end.

    python -m routellm_base.train.default_mf --data-dir ../shared/data --out runs/mf

Training data (all licences allow commercial use):
- RouteLLM MMLU and GSM8K correctness of GPT-4-1106-preview and Mixtral-8x7B (Apache-2.0), the
  held-out 20% (by sha1 of the prompt) excluded and kept for evaluation;
- LLMRouter train split, scores of 9 open models (MIT), all pairs as golden-label battles.
MT Bench, the held-out MMLU/GSM8K items, LLMRouter's test split and the Arena-Hard calibration
prompts are evaluation/calibration only; training prompts that duplicate any of them (exact text,
or cosine >= 0.95 on the router's embedder) are removed.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from ..arg_types import float_above, float_at_least, int_at_least
from ..calibration import Calibration
from ..data import GPT4, MIXTRAL
from ..embedders import load_embedder
from ..embedders.base import Embedder
from ..routers.mf import MFRouter
from .battles import battles_from_scores
from .mf import MFTrainConfig, train_mf
from .recipe import (
    cached_embed,
    crossfit,
    fold_record,
    load_embeddings_cache,
    recipe_command,
    recipe_parser,
    run_recipe,
    save_recipe_checkpoint,
    split_fold,
)

SOURCE_WEIGHTS = {"mmlu": 1.0, "gsm8k": 1.0, "llmrouter": 0.5}
"""Each source's total weight in the loss (battles within a source share it equally): the
target pair's sources dominate, LLMRouter's 9-model battles shape the prompt projection."""


def train_fold(
    data_dir: str | Path,
    embedder: Embedder,
    config: MFTrainConfig,
    fold: int = 0,
    embeddings_cache: dict[str, np.ndarray] | None = None,
) -> tuple[MFRouter, dict[str, Any], dict[str, np.ndarray]]:
    """Train the recipe with MMLU/GSM8K fold ``fold`` held out; returns router, record, tensors."""
    started = time.time()
    embed = cached_embed(embedder, embeddings_cache)
    split = split_fold(data_dir, fold, embed, with_llmrouter=True)
    train_rows = split.train

    models = [GPT4, MIXTRAL, *sorted({m for r in train_rows["llmrouter"] for m in r.scores})]
    all_rows = [r for rows in train_rows.values() for r in rows]
    battles = battles_from_scores(all_rows, models=models)
    # Per-battle weights so each source carries SOURCE_WEIGHTS of the loss.
    source_of_prompt = {r.prompt: r.source for r in all_rows}
    battle_source = np.array([source_of_prompt[battles.prompts[i]] for i in battles.prompt_index])
    weights = np.zeros(len(battles), dtype=np.float32)
    for source, weight in SOURCE_WEIGHTS.items():
        sel = battle_source == source
        weights[sel] = weight / max(sel.sum(), 1) * len(battles)
    tensors, report = train_mf(embed(battles.prompts), battles, config, battle_weights=weights)

    router = MFRouter("mf", tensors, models, GPT4, MIXTRAL, embedder=embedder)
    training = fold_record(
        router,
        split,
        started,
        battles=len(battles),
        battle_outcomes=battles.counts,
        source_weights=SOURCE_WEIGHTS,
        report=report,
    )
    return router, training, tensors


def build(
    data_dir: str | Path,
    out: str | Path,
    embedder: Embedder,
    config: MFTrainConfig,
    embeddings_cache: dict[str, np.ndarray] | None = None,
    command: str | None = None,
) -> dict[str, Any]:
    """Train with fold 0 held out and write the checkpoint folder; ``command`` (the command line
    that ran it) goes to ``training["command"]`` and the card's Reproduce section."""
    router, training, tensors = train_fold(data_dir, embedder, config, 0, embeddings_cache)
    training["command"] = command or recipe_command("default_mf", [])
    assert router.calibration is not None
    card = model_card(embedder, training, router.calibration)
    save_recipe_checkpoint(
        out,
        router,
        router.models,
        tensors,
        {k: v for k, v in training.items() if k != "report"},
        card,
        {},
    )
    return training


def model_card(embedder: Embedder, training: dict[str, Any], calibration: Calibration) -> str:
    metrics = training["metrics"]
    rows = "\n".join(
        f"| {name} | {m['n']} | {m['n_decisive']} | {m['auc']:.3f} |" for name, m in metrics.items()
    )
    shares = " · ".join(
        f"{int(s * 100)}% → {calibration.threshold_for_share(s):.4f}"
        for s in (0.1, 0.2, 0.3, 0.5, 0.7)
    )
    return f"""# Router checkpoint: `mf` (bundled)

Matrix-factorisation router (RouteLLM, Ong et al., ICLR 2025, section 4.2) that estimates the
probability that **gpt-4-1106-preview** (strong) answers better than
**Mixtral-8x7B-Instruct-v0.1** (weak). Embedder: `{embedder.kind}:{embedder.name}` ({embedder.dim}-d),
a model2vec static distillation of sentence-transformers/all-MiniLM-L6-v2 (Apache-2.0) that runs
with numpy alone.

## Training data and licences
| source | licence | prompts used |
| --- | --- | --- |
| RouteLLM MMLU correctness, GPT-4 vs Mixtral (80% by sha1 of the prompt) | Apache-2.0 | {training["sources"]["mmlu"]} |
| RouteLLM GSM8K correctness, GPT-4 vs Mixtral (80% by sha1 of the prompt) | Apache-2.0 | {training["sources"]["gsm8k"]} |
| LLMRouter (ulab-uiuc) train split, 9 open models, all pairs | MIT | {training["sources"]["llmrouter"]} |

All allow commercial use; this checkpoint is released under Apache-2.0. The paper's contamination
filter was applied, and training prompts duplicating any evaluation or calibration prompt (exact
text, or cosine >= 0.95 on this embedder) were removed: {training["removed_as_contaminated"]}.
Battles: {training["battles"]} golden-label battles (higher score wins, equal scores are ties kept
as half a win each): {training["battle_outcomes"]}. Source weights in the loss: {training["source_weights"]}.

## Metrics (items never trained on)
AUC of the win rate against "GPT-4 scored higher than Mixtral" on items where they differ.

| set | items | decisive | AUC |
| --- | --- | --- | --- |
{rows}

MT Bench is entirely out of training. These figures describe ranking quality only;
`routellm eval --router OUT` gives the routing quality (APGR, CPT).

## Calibration
Reference prompts: {calibration.reference}, {calibration.n_prompts} prompts (Apache-2.0).
strong share → threshold: {shares}.

## Reproduce
    pip install torch==2.13.0 && pip install -e '.[train]'
    {training["command"]}
"""


def build_parser() -> argparse.ArgumentParser:
    """This recipe's command line (built without running it)."""
    parser = recipe_parser(__doc__)
    parser.add_argument("--out", help="write the checkpoint (fold 0 held out) here")
    parser.add_argument(
        "--crossfit",
        action="store_true",
        help="print cross-fitted MMLU/GSM8K metrics of the recipe",
    )
    parser.add_argument(
        "--embedder",
        default="minilm-l6-static-256",
        help="embedder the matrix factorization reads prompts with (default: %(default)s)",
    )
    parser.add_argument(
        "--embeddings-cache", help="(prompts.json, embeddings.npy) pair, comma separated"
    )
    parser.add_argument(
        "--dim",
        type=int_at_least(1),
        default=128,
        help="latent dimension of the factors (default: %(default)s)",
    )
    parser.add_argument(
        "--epochs",
        type=int_at_least(1),
        default=40,
        help="most training epochs (default: %(default)s)",
    )
    parser.add_argument(
        "--lr", type=float_above(0), default=3e-3, help="Adam learning rate (default: %(default)s)"
    )
    parser.add_argument(
        "--weight-decay",
        type=float_at_least(0),
        default=1e-4,
        help="Adam weight decay (default: %(default)s)",
    )
    parser.add_argument(
        "--seed",
        type=int_at_least(0),
        default=0,
        help="seed of initialization and order (default: %(default)s)",
    )
    return parser


def main(argv: list[str] | None = None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    cache = load_embeddings_cache(args.embeddings_cache)
    config = MFTrainConfig(
        dim=args.dim, epochs=args.epochs, lr=args.lr, weight_decay=args.weight_decay, seed=args.seed
    )
    embedder = load_embedder(args.embedder)
    if args.out:
        command = recipe_command("default_mf", argv)
        training = build(args.data_dir, args.out, embedder, config, cache, command)
        print(
            json.dumps(
                {
                    k: training[k]
                    for k in ("sources", "removed_as_contaminated", "battles", "metrics", "seconds")
                },
                indent=1,
            )
        )
    if args.crossfit:
        results = crossfit(
            args.data_dir,
            lambda fold: train_fold(args.data_dir, embedder, config, fold, cache)[0],
            "mf",
        )
        print(json.dumps(results, indent=1))
    if not args.out and not args.crossfit:
        parser.error("give --out, --crossfit or both")


if __name__ == "__main__":
    sys.exit(run_recipe(main))
