"""The recipe of the bundled ``task_experts`` router, runnable end to end.

    python -m routellm_base.train.default_task_experts --data-dir ../shared/data --out runs/task_experts [--crossfit]

Two task kinds, both RouteLLM correctness of GPT-4-1106-preview and Mixtral-8x7B (Apache-2.0): MMLU
(knowledge questions) and GSM8K (maths word problems), each with the held-out fold removed and
decontaminated as in :mod:`routellm_base.train.recipe`. Closed-form fit: seconds on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from ..arg_types import float_above, int_at_least, share
from ..calibration import Calibration
from ..data import GPT4, MID_TIER, MIXTRAL, TOP_TIER
from ..embedders import load_embedder
from ..embedders.base import Embedder
from ..output_files import refuse_overwrites
from ..routers.task_experts import LENGTH_FEATURES, TaskExpertsRouter
from .recipe import (
    FoldSplit,
    cached_embed,
    crossfit,
    crossfit_table,
    fold_record,
    load_embeddings_cache,
    recipe_command,
    recipe_parser,
    run_recipe,
    save_recipe_checkpoint,
    split_fold,
)
from .task_experts import TaskExpertsTrainConfig, scored_task_rows, train_task_experts

KINDS = ("mmlu", "gsm8k")


def train_fold(
    data_dir: str | Path,
    embedder: Embedder,
    config: TaskExpertsTrainConfig,
    fold: int = 0,
    embeddings_cache: dict[str, np.ndarray] | None = None,
    *,
    chat: bool = False,
    name: str = "task_experts",
    split: FoldSplit | None = None,
) -> tuple[TaskExpertsRouter, dict[str, Any], dict[str, np.ndarray]]:
    """Fit the recipe with MMLU/GSM8K fold ``fold`` held out; returns router, record, tensors.

    ``chat`` adds RMB's other folds as a third, centred kind (the research-only
    :mod:`routellm_base.train.chat_task_experts` recipe); RMB's fold ``fold`` is then held out too.
    ``split`` is that fold's :func:`split_fold`, when the caller already made it.
    """
    started = time.time()
    embed = cached_embed(embedder, embeddings_cache)
    if split is None:
        split = split_fold(data_dir, fold, embed, with_llmrouter=False, with_rmb=chat)
    texts, kind, gap = scored_task_rows({k: split.train[k] for k in KINDS}, GPT4, MIXTRAL)
    kinds, centred = KINDS, ()
    if chat:
        chat_texts, _, chat_gap = scored_task_rows({"chat": split.train["rmb"]}, TOP_TIER, MID_TIER)
        texts = texts + chat_texts
        kind = np.concatenate([kind, np.full(len(chat_texts), len(KINDS))])
        gap = np.concatenate([gap, chat_gap])
        kinds, centred = (*KINDS, "chat"), ("chat",)
    tensors, report = train_task_experts(
        texts, embed(texts), kind, gap, kinds, config, progress=False, centred=centred
    )
    router = TaskExpertsRouter(
        name,
        tensors,
        [GPT4, MIXTRAL],
        GPT4,
        MIXTRAL,
        embedder=embedder,
        kinds=list(kinds),
        features=list(LENGTH_FEATURES),
    )
    training = fold_record(
        router,
        split,
        started,
        task_kinds=report["kinds"],
        gate_validation_accuracy=report["gate_validation_accuracy"],
        config=report["config"],
    )
    return router, training, tensors


def build(
    data_dir: str | Path,
    out: str | Path,
    embedder: Embedder,
    config: TaskExpertsTrainConfig,
    embeddings_cache: dict[str, np.ndarray] | None = None,
    crossfit_results: list[dict[str, Any]] | None = None,
    *,
    chat: bool = False,
    name: str = "task_experts",
    card: Callable[[Embedder, dict[str, Any], Calibration, list[dict[str, Any]] | None], str]
    | None = None,
    command: str | None = None,
) -> dict[str, Any]:
    """Fit with fold 0 held out and write the checkpoint folder (``card`` writes its model card;
    ``command``, the command line that ran it, goes to ``training["command"]`` and the card)."""
    router, training, tensors = train_fold(
        data_dir, embedder, config, 0, embeddings_cache, chat=chat, name=name
    )
    module = "chat_task_experts" if chat else "default_task_experts"
    training["command"] = command or recipe_command(module, [])
    assert router.calibration is not None
    if chat:
        training["licence"] = "research-only: trained on RMB pairs, whose source carries no licence"
    text = (card or model_card)(embedder, training, router.calibration, crossfit_results)
    benchmarks = ("mmlu", "gsm8k", "rmb") if chat else ("mmlu", "gsm8k")
    params = {"kinds": list(router.kinds), "features": list(LENGTH_FEATURES)}
    save_recipe_checkpoint(
        out, router, [GPT4, MIXTRAL], tensors, training, text, params, benchmarks=benchmarks
    )
    return training


def model_card(
    embedder: Embedder,
    training: dict[str, Any],
    calibration: Calibration,
    crossfit_results: list[dict[str, Any]] | None,
) -> str:
    metrics = "\n".join(
        f"| {name} | {m['n']} | {m['n_decisive']} | {m['auc']:.3f} |"
        for name, m in training["metrics"].items()
    )
    kinds = "\n".join(
        f"| {name} | {k['prompts']} | {k['mean_gap']:+.3f} | {k['ridge_penalty']:g} |"
        for name, k in training["task_kinds"].items()
    )
    shares = " · ".join(
        f"{int(s * 100)}% → {calibration.threshold_for_share(s):.4f}"
        for s in (0.1, 0.2, 0.3, 0.5, 0.7)
    )
    return f"""# Router checkpoint: `task_experts` (bundled default)

Estimates the probability that **gpt-4-1106-preview** (strong) answers better than
**Mixtral-8x7B-Instruct-v0.1** (weak). A softmax gate on the embedding recognises the task kind
(MMLU-like knowledge question or GSM8K-like maths word problem); each kind's ridge expert
predicts the correctness gap (GPT-4 minus Mixtral) from the embedding, log(1 + characters) and
log(1 + words); win rate = (1 + gate-weighted gap) / 2. Embedder: `{embedder.kind}:{embedder.name}`
({embedder.dim}-d), a model2vec static distillation of sentence-transformers/all-MiniLM-L6-v2
(Apache-2.0) that runs with numpy alone. It compares this one pair only (no retargeting).

## Training data and licences
| source | licence | prompts used |
| --- | --- | --- |
| RouteLLM MMLU correctness, GPT-4 vs Mixtral (80% by sha1 of the prompt) | Apache-2.0 | {training["sources"]["mmlu"]} |
| RouteLLM GSM8K correctness, GPT-4 vs Mixtral (80% by sha1 of the prompt) | Apache-2.0 | {training["sources"]["gsm8k"]} |

Both allow commercial use; this checkpoint is released under Apache-2.0. The paper's contamination
filter was applied, and training prompts duplicating any evaluation or calibration prompt (exact
text, or cosine >= 0.95 on this embedder) were removed: {training["removed_as_contaminated"]}.

| kind | prompts | mean gap | ridge penalty (5-fold CV) |
| --- | --- | --- | --- |
{kinds}

Gate accuracy on {training["config"]["validation_fraction"]:.0%} of prompts held out: {training["gate_validation_accuracy"]:.3f}.

## Metrics (items never trained on)
AUC of the win rate against "GPT-4 scored higher than Mixtral" on items where they differ:

| set | items | decisive | AUC |
| --- | --- | --- | --- |
{metrics}

{crossfit_table(crossfit_results)}

Known limits: it learned what separates GPT-4 from Mixtral on knowledge questions and maths word
problems only. On open-ended chat (MT Bench) and on other task kinds (RouterBench ARC, MBPP,
Winogrande) it is near chance; see `docs/results.md`.

## Calibration
Reference prompts: {calibration.reference}, {calibration.n_prompts} prompts (Apache-2.0).
strong share → threshold: {shares}.

## Reproduce
    pip install -e '.[train]'
    {training["command"]}
"""


def build_parser(
    default_config: TaskExpertsTrainConfig | None = None, description: str | None = None
) -> argparse.ArgumentParser:
    """The command line of this recipe (and, given its config and text, of the chat recipe),
    built without running it."""
    default_config = default_config or TaskExpertsTrainConfig()
    parser = recipe_parser(description or __doc__)
    parser.add_argument("--out", help="write the checkpoint (fold 0 held out) here")
    parser.add_argument(
        "--crossfit",
        action="store_true",
        help="print (and with --out, record) cross-fitted metrics",
    )
    parser.add_argument(
        "--crossfit-json",
        default=None,
        help="with --crossfit: where the full cross-fitted metrics go as JSON (default: "
        "crossfit_<recipe name>.json inside --out, or in the current folder when no --out is "
        "given)",
    )
    parser.add_argument(
        "--embedder",
        default="minilm-l6-static-256",
        help="embedder the gate and the experts read prompts with (default: %(default)s)",
    )
    parser.add_argument(
        "--embeddings-cache", help="(prompts.json, embeddings.npy) pair, comma separated"
    )
    parser.add_argument(
        "--gate-c",
        type=float_above(0),
        default=default_config.gate_c,
        help="inverse L2 strength of the gate's logistic regression (default: %(default)s)",
    )
    parser.add_argument(
        "--gate-class-balance",
        type=share,
        default=default_config.gate_class_balance,
        help="0 to 1: how far the gate's rows are reweighted towards equal kinds "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--seed",
        type=int_at_least(0),
        default=0,
        help="seed of the training (default: %(default)s)",
    )
    return parser


def crossfit_json_path(args: argparse.Namespace, name: str) -> Path:
    """Where ``--crossfit`` writes its JSON: ``--crossfit-json`` if given, else
    ``crossfit_<name>.json`` inside ``--out`` (not the current folder, often the repository
    root), or in the current folder when there is no ``--out``."""
    if args.crossfit_json:
        return Path(args.crossfit_json)
    return Path(args.out or ".") / f"crossfit_{name}.json"


def main(
    argv: list[str] | None = None,
    *,
    chat: bool = False,
    name: str = "task_experts",
    default_config: TaskExpertsTrainConfig | None = None,
    card: Callable[[Embedder, dict[str, Any], Calibration, list[dict[str, Any]] | None], str]
    | None = None,
    description: str | None = None,
) -> None:
    """The command line of this recipe, and (with ``chat=True``) of the chat recipe."""
    default_config = default_config or TaskExpertsTrainConfig()
    parser = build_parser(default_config, description)
    args = parser.parse_args(argv)
    if not args.out and not args.crossfit:
        parser.error("give --out, --crossfit or both")
    if args.crossfit_json and not args.crossfit:
        parser.error("--crossfit-json names the file --crossfit writes: it needs --crossfit")
    if args.crossfit:  # checked before the minutes of cross-fitting, not when it writes
        cache_files = (args.embeddings_cache or "").split(",")
        try:
            refuse_overwrites(
                [("--crossfit-json", crossfit_json_path(args, name))],
                [("--embeddings-cache", f) for f in cache_files if f],
            )
        except ValueError as exc:
            parser.error(str(exc))
    cache = load_embeddings_cache(args.embeddings_cache)
    config = replace(
        default_config,
        gate_c=args.gate_c,
        gate_class_balance=args.gate_class_balance,
        seed=args.seed,
    )
    embedder = load_embedder(args.embedder)
    results = None
    if args.crossfit:
        results = crossfit(
            args.data_dir,
            lambda fold: train_fold(
                args.data_dir, embedder, config, fold, cache, chat=chat, name=name
            )[0],
            name,
            names=("mmlu", "gsm8k", "rmb") if chat else ("mmlu", "gsm8k"),
        )
        # One line a benchmark; the full figures (per fold) go to a file, not the terminal.
        for r in results:
            print(
                f"{r['benchmark']}: {r['n']} items, APGR {r['apgr']:.3f} (random "
                f"{r['random_apgr']:.3f} ± {r['random_apgr_std']:.3f}), CPT(50%) {r['cpt50']:.1%}"
            )
        written = crossfit_json_path(args, name)
        written.parent.mkdir(parents=True, exist_ok=True)
        written.write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
        print(f"wrote the cross-fitted metrics to {written}")
    if args.out:
        training = build(
            args.data_dir,
            args.out,
            embedder,
            config,
            cache,
            results,
            chat=chat,
            name=name,
            card=card,
            command=recipe_command("chat_task_experts" if chat else "default_task_experts", argv),
        )
        print(
            json.dumps(
                {
                    k: training[k]
                    for k in (
                        "sources",
                        "removed_as_contaminated",
                        "task_kinds",
                        "metrics",
                        "seconds",
                    )
                },
                indent=1,
            )
        )


if __name__ == "__main__":
    sys.exit(run_recipe(main))
