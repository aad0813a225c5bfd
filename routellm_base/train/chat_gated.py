"""A research-only recipe: one ``gated`` router for chat, knowledge and maths traffic.

    python -m routellm_base.train.chat_gated --data-dir ../shared/data --out runs/chat-gated [--seeds 0 1] [--crossfit]

Three task kinds, each with fold 0 of 5 (by sha1 of the prompt) held out and every training
prompt decontaminated against the evaluation prompts (as :mod:`routellm_base.train.recipe`):

- ``mmlu`` and ``gsm8k``: the ridge experts of :mod:`routellm_base.train.chat_task_experts`
  (RouteLLM's GPT-4-1106 vs Mixtral correctness, Apache-2.0), written as one-kind
  ``task_experts`` checkpoints;
- ``chat``: all-MiniLM-L6-v2 fine-tuned end to end (the ``bert`` family) on RMB's top-tier vs
  mid-tier battles of folds 1-4 alone, named GPT-4-1106 vs Mixtral, one checkpoint per seed in
  ``--seeds``; their gaps are averaged (a seed ensemble: one seed alone moves MT Bench by
  ±0.01-0.04). Settings fixed before any figure was seen: 3 epochs at most with early stopping,
  128 tokens (the first; ``--truncation head_tail`` keeps the first and last 63 instead, which
  measured +0.006 on RMB and -0.017 on MT Bench cross-fitted, docs/results.md).
  ``--chat-expert ridge`` uses the ridge chat expert instead (about 2-4 minutes; it trains and
  routes with ``[gated]`` alone, no torch).
  The chat gap is put on the ridge chat expert's scale: same mean and spread over the 498
  Arena-Hard prompts (unlabelled; calibration only).
- the gate: character n-gram TF-IDF softmax regression over the three kinds' training prompts,
  for chat every RMB prompt of folds 1-4 (:func:`gate_prompts`; :mod:`routellm_base.train.gated`).
  Both choices, this gate over the static-embedding gate of ``chat_task_experts`` and all RMB
  prompts over the chat expert's 971, were made on kind accuracy on the held-out folds, not on
  any benchmark's APGR.

About 20 minutes on 2 CPU cores with two seeds (each bert about 6-7 minutes); minutes on a GPU.
``--crossfit`` also trains the recipe with each other fold held out and scores every item of
MMLU, GSM8K and RMB with the fold router that never saw it (RMB: 1,237 prompts, random band
±0.012, against fold 0's 266 and ±0.028): about 75 minutes with two seeds, 10 with
``--chat-expert ridge``, on 2 idle CPU cores (twice that on a shared machine).

**Licence.** RMB's source repository carries no licence: the checkpoint this writes is for
research only. It is never bundled with the package; its model card says so.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..arg_types import int_at_least
from ..calibration import Calibration
from ..checkpoints import load_router, save_checkpoint
from ..data import GPT4, MIXTRAL, load_rmb_pairs, rmb_split
from ..decontaminate import contaminated_mask
from ..embedders import Embedder, load_embedder
from ..routers.base import Router
from ..routers.bert import TRUNCATIONS
from ..routers.gated import GATE_SETTINGS, GatedRouter, TextGate
from ..routers.task_experts import LENGTH_FEATURES, TaskExpertsRouter
from . import chat_bert
from .chat_task_experts import DEFAULT_CONFIG
from .default_task_experts import train_fold
from .gated import fit_text_gate
from .recipe import (
    ARENA_REFERENCE,
    FOLDS,
    FoldSplit,
    cached_embed,
    crossfit,
    crossfit_table,
    recipe_parser,
    run_recipe,
    split_fold,
)

NAME = "chat_gated"
KINDS = ("mmlu", "gsm8k", "chat")
SOURCES = {"mmlu": "mmlu", "gsm8k": "gsm8k", "chat": "rmb"}
"""Each kind's source in the recipe's fold split (and its ``routellm eval`` benchmark)."""
CHAT_LICENCE = "none given: research-only (RMB)"


def chat_bert_argv(
    files: dict[str, Path],
    out: Path,
    seed: int,
    epochs: int,
    fold: int = 0,
    truncation: str = "head",
) -> list[str]:
    """The ``routellm train bert`` command line of one chat expert: RMB tier battles only.

    Only a fold-0 expert declares ``--trained-on-benchmark rmb`` (``routellm eval`` then scores
    RMB's fold 0 alone); the other folds' experts are cross-fitting temporaries that
    :func:`routellm_base.train.recipe.crossfit` scores on their own fold.
    """
    declared = ["--trained-on-benchmark", "rmb"] if fold == 0 else []
    return [
        "train", "bert", "--data", str(files["chat"]), "--strong", GPT4, "--weak", MIXTRAL,
        "--exclude", str(files["exclude"]), "--calibration-prompts", str(files["calibration"]),
        "--data-licence", CHAT_LICENCE, "--epochs", str(epochs), "--max-length", "128",
        "--truncation", truncation, "--seed", str(seed), "--no-progress", "--out", str(out), "--force", *declared,
    ]  # fmt: skip


def _one_kind_expert(
    out: Path, tensors: dict[str, np.ndarray], k: int, embedder: Any, kind: str
) -> TaskExpertsRouter:
    """Write kind ``k``'s ridge expert as a one-kind ``task_experts`` checkpoint (its gate is 1)."""
    one = {
        "gate_weight": np.zeros((1, tensors["gate_weight"].shape[1])),
        "gate_bias": np.zeros(1),
        "expert_weight": tensors["expert_weight"][k : k + 1],
        "expert_bias": tensors["expert_bias"][k : k + 1],
    }
    card = (
        f"# `{kind}` expert of a `{NAME}` router (RESEARCH ONLY as part of it)\n\n"
        f"The ridge expert for {kind} traffic, fold 0 held out; see the parent folder's MODEL_CARD.md.\n"
    )
    params = {"kinds": [kind], "features": list(LENGTH_FEATURES)}
    save_checkpoint(
        out, router_family="task_experts", tensors=one, models=[GPT4, MIXTRAL], strong_model=GPT4, weak_model=MIXTRAL,
        embedder=embedder, calibration=None, model_card=card, params=params,
        training={"trained_on_benchmarks": {SOURCES[kind]: {"held_out_percent": 100 // FOLDS}}, "part_of": NAME},
    )  # fmt: skip
    return TaskExpertsRouter(
        out.name,
        one,
        [GPT4, MIXTRAL],
        GPT4,
        MIXTRAL,
        embedder=embedder,
        kinds=[kind],
        features=list(LENGTH_FEATURES),
    )


def gate_prompts(
    data_dir: str | Path, split: FoldSplit, embed: Callable[[list[str]], np.ndarray]
) -> list[list[str]]:
    """Each kind's gate training prompts, in :data:`KINDS` order.

    MMLU and GSM8K: the experts' training prompts. Chat: every RMB prompt outside the held-out
    fold, also those with no top-tier vs mid-tier battle. The gate learns the kind and needs no
    outcome, so it has about 30% more chat prompts than the chat expert. The extra prompts are
    decontaminated like the experts' (exact text, or cosine >= 0.95 to an evaluation or
    calibration prompt).
    """
    chat = [r.prompt for r in split.train["rmb"]]
    rmb = {p.prompt for p in rmb_split(load_rmb_pairs(data_dir), "train", split.fold)}
    extra = sorted(rmb - set(chat))
    if extra:
        evaluation = split.evaluation_prompts
        bad = contaminated_mask(extra, evaluation, embed(extra), embed(evaluation))
        chat += [p for p, b in zip(extra, bad, strict=True) if not b]
    return [[r.prompt for r in split.train["mmlu"]], [r.prompt for r in split.train["gsm8k"]], chat]


def fit_recipe_gate(
    data_dir: str | Path, split: FoldSplit, embed: Callable[[list[str]], np.ndarray]
) -> tuple[TextGate, dict[str, Any]]:
    """The recipe's gate over :data:`KINDS`, with its accuracy on each source's held-out fold."""
    prompts = gate_prompts(data_dir, split, embed)
    kind = np.concatenate([np.full(len(p), k) for k, p in enumerate(prompts)])
    gate, record = fit_text_gate([p for group in prompts for p in group], kind, len(KINDS))
    record["held_out_accuracy"] = {
        kind: round(
            float(
                (
                    gate.probabilities([r.prompt for r in split.held_out[SOURCES[kind]]]).argmax(1)
                    == k
                ).mean()
            ),
            4,
        )
        for k, kind in enumerate(KINDS)
    }
    return gate, record


@dataclass
class FoldParts:
    """The recipe's router with one fold held out, and what :func:`build` records of it."""

    router: GatedRouter
    split: FoldSplit
    paths: dict[str, list[str]]
    """Each kind's expert folders, relative to the folder the parts were written to."""
    scale: list[float]
    shift: list[float]
    gate_record: dict[str, Any]


def train_parts(
    data_dir: str | Path,
    work: Path,
    data_work: Path,
    fold: int,
    *,
    seeds: list[int],
    epochs: int,
    chat_expert: str,
    truncation: str = "head",
    embedder: Embedder,
    cache: dict[str, np.ndarray],
    started: float,
) -> FoldParts:
    """Train every part with ``fold`` held out (and decontaminated against); experts go under
    ``work/experts``, the chat expert's training files (RMB prompts) under ``data_work``."""
    from ..cli import main as cli_main

    experts_dir = work / "experts"
    split = split_fold(
        data_dir, fold, cached_embed(embedder, cache), with_llmrouter=False, with_rmb=True
    )
    static, _, tensors = train_fold(
        data_dir, embedder, DEFAULT_CONFIG, fold, cache, chat=True, name=NAME, split=split
    )
    assert list(static.kinds) == list(KINDS)
    _say(
        started,
        f"ridge experts fitted (mmlu, gsm8k, chat), fold {fold} held out and decontaminated",
    )
    experts: dict[str, list[Router]] = {}
    paths: dict[str, list[str]] = {}
    for k, kind in enumerate(KINDS[:2]):
        experts[kind] = [_one_kind_expert(experts_dir / kind, tensors, k, embedder, kind)]
        paths[kind] = [f"experts/{kind}"]
    ridge_chat = _one_kind_expert(experts_dir / "chat-ridge", tensors, 2, embedder, "chat")
    scale, shift = [1.0, 1.0, 1.0], [0.0, 0.0, 0.0]
    if chat_expert == "ridge":
        experts["chat"], paths["chat"] = [ridge_chat], ["experts/chat-ridge"]
    else:
        files = chat_bert.write_training_files(data_dir, data_work, 0, 0, fold=fold)
        experts["chat"], paths["chat"] = [], []
        for seed in seeds:
            folder = experts_dir / f"chat-bert-s{seed}"
            _say(
                started, f"fine-tuning the chat expert, seed {seed}, fold {fold} held out (minutes)"
            )
            code = cli_main(chat_bert_argv(files, folder, seed, epochs, fold, truncation))
            if code:
                raise SystemExit(
                    f"training the chat expert (seed {seed}, fold {fold}) failed with exit code {code}"
                )
            experts["chat"].append(load_router(folder))
            paths["chat"].append(f"experts/chat-bert-s{seed}")
        # The fine-tuned gap onto the ridge chat expert's scale: same mean and spread on Arena-Hard.
        bert_gap = np.mean(
            [2 * r.strong_win_rate(split.arena) - 1 for r in experts["chat"]], axis=0
        )
        ridge_gap = 2 * ridge_chat.strong_win_rate(split.arena) - 1
        scale[2] = float(ridge_gap.std() / bert_gap.std())
        shift[2] = float(ridge_gap.mean() - scale[2] * bert_gap.mean())
        shutil.rmtree(experts_dir / "chat-ridge")
    _say(started, "fitting the gate (4-fold cross-validation of its penalty)")
    gate, gate_record = fit_recipe_gate(data_dir, split, cached_embed(embedder, cache))
    router = GatedRouter(
        NAME, gate.tensors(), [GPT4, MIXTRAL], GPT4, MIXTRAL, kinds=list(KINDS), expert_scale=scale,
        expert_shift=shift, gate=dict(GATE_SETTINGS), expert_routers=experts,
    )  # fmt: skip
    return FoldParts(router, split, paths, scale, shift, gate_record)


def build(
    data_dir: str | Path,
    out: str | Path,
    *,
    seeds: list[int],
    epochs: int = 3,
    chat_expert: str = "bert",
    truncation: str = "head",
    crossfit: bool = False,
    embedder_name: str = "minilm-l6-static-256",
) -> dict[str, Any]:
    """Train every part with fold 0 held out and write the ``gated`` checkpoint folder ``out``.

    With ``crossfit`` the recipe is also trained 4 more times, each with another fold held out,
    and every item of MMLU, GSM8K and RMB (1,237 prompts against fold 0's 266) is scored by the
    model that never saw it: :func:`routellm_base.train.recipe.crossfit`. Those fold models live
    in a temporary folder; only their figures are kept (``training["crossfit"]``, the model card).
    """
    started = time.time()
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"{out} already exists and is not empty; give a new folder")
    embedder = load_embedder(embedder_name)
    cache: dict[str, np.ndarray] = {}
    options = {"seeds": seeds, "epochs": epochs, "chat_expert": chat_expert, "truncation": truncation,
               "embedder": embedder, "cache": cache, "started": started}  # fmt: skip
    parts = train_parts(data_dir, out, out.parent / f"{out.name}-data", 0, **options)
    split, router = parts.split, parts.router
    _say(started, "calibrating on Arena-Hard and scoring the held-out folds")
    calibration = Calibration.from_win_rates(router.strong_win_rate(split.arena), ARENA_REFERENCE)
    params = {
        "kinds": list(KINDS),
        "experts": parts.paths,
        "expert_scale": parts.scale,
        "expert_shift": parts.shift,
        "gate": dict(GATE_SETTINGS),
    }
    training: dict[str, Any] = {
        "held_out_fold": 0,
        "sources": {k: len(v) for k, v in split.train.items()},
        "removed_as_contaminated": split.removed_as_contaminated,
        "chat_expert": chat_expert
        if chat_expert == "ridge"
        else f"bert, seeds {seeds}, {epochs} epochs at most, trained on 128 tokens ({truncation} cut)",
        "gate": parts.gate_record,
        "metrics": split.metrics(router),
        "licence": "research-only: trained on RMB pairs, whose source carries no licence",
        "trained_on_benchmarks": {
            name: {"held_out_percent": 100 // FOLDS} for name in SOURCES.values()
        },
        "command": reproduce_command(
            data_dir, out, seeds, epochs, chat_expert, crossfit, truncation
        ),
    }
    if crossfit:
        training["crossfit"] = crossfit_figures(data_dir, router, options)
    training["seconds"] = round(time.time() - started, 1)
    pinned = [f"{p}/config.json" for kind in KINDS for p in parts.paths[kind]]
    save_checkpoint(
        out, router_family="gated", tensors=router.gate.tensors(), models=[GPT4, MIXTRAL], strong_model=GPT4,
        weak_model=MIXTRAL, embedder=None, calibration=calibration,
        model_card=model_card(training, calibration, parts.scale, parts.shift), params=params, training=training,
        pinned_files=pinned,
    )  # fmt: skip
    return training


def crossfit_figures(
    data_dir: str | Path, fold0: GatedRouter, options: dict[str, Any]
) -> dict[str, Any]:
    """Cross-fitted APGR of the recipe on MMLU, GSM8K and every RMB fold, and MT Bench's APGR
    under each fold's router (no fold trains on MT Bench: its spread is the training data's)."""
    from ..evals import load_benchmark, quality_curve

    mt_bench = load_benchmark("mt-bench", data_dir)
    mt_apgr: list[float] = []

    def fold_router(fold: int, work: Path) -> Router:
        if fold == 0:
            router: Router = fold0
        else:
            router = train_parts(
                data_dir, work / f"fold-{fold}", work / f"data-{fold}", fold, **options
            ).router
        rates = router.strong_win_rate(mt_bench.prompts)
        mt_apgr.append(quality_curve(rates, mt_bench.strong, mt_bench.weak).apgr())
        return router

    with tempfile.TemporaryDirectory(prefix="chat-gated-crossfit-") as tmp:
        results = crossfit(
            data_dir,
            lambda fold: fold_router(fold, Path(tmp)),
            NAME,
            names=("mmlu", "gsm8k", "rmb"),
        )
    return {
        "pooled": results,
        "mt_bench_apgr_by_fold": mt_apgr,
        "mt_bench_apgr_mean": float(np.mean(mt_apgr)),
    }


def _say(started: float, what: str) -> None:
    print(f"[{time.time() - started:6.0f} s] {what}", file=sys.stderr, flush=True)


def reproduce_command(
    data_dir: str | Path,
    out: Path,
    seeds: list[int],
    epochs: int,
    chat_expert: str,
    crossfit: bool = False,
    truncation: str = "head",
) -> str:
    """The command line that rebuilds this checkpoint."""
    options = (
        "--chat-expert ridge"
        if chat_expert == "ridge"
        else f"--seeds {' '.join(map(str, seeds))} --epochs {epochs} --truncation {truncation}"
    )
    options += " --crossfit" if crossfit else ""
    return f"python -m routellm_base.train.{NAME} --data-dir {data_dir} --out {out} {options}"


def crossfit_section(figures: dict[str, Any] | None) -> str:
    """The model card's cross-fitted table, with MT Bench under each fold's router, or how to get it."""
    if not figures:
        return crossfit_table(None)
    mt = figures["mt_bench_apgr_by_fold"]
    return f"""{crossfit_table(figures["pooled"])}

MT Bench (72 questions, never trained on) under each fold's router: {" · ".join(f"{v:.3f}" for v in mt)}
(mean {np.mean(mt):.3f})."""


def model_card(
    training: dict[str, Any], calibration: Calibration, scale: list[float], shift: list[float]
) -> str:
    gate = training["gate"]
    needs = (
        "Routing needs numpy and scikit-learn (the gate): `pip install 'langchain-routellm[gated]'`."
        if training["chat_expert"] == "ridge"
        else "Routing needs torch and transformers (the chat expert) and scikit-learn (the gate):\n"
        "`pip install 'langchain-routellm[train,gated]'`."
    )
    accuracy = " · ".join(f"{kind} {acc:.3f}" for kind, acc in gate["held_out_accuracy"].items())
    metrics = "\n".join(
        f"| {name} | {m['n']} | {m['n_decisive']} | {m['auc']:.3f} |"
        for name, m in training["metrics"].items()
    )
    shares = " · ".join(
        f"{int(s * 100)}% → {calibration.threshold_for_share(s):.4f}"
        for s in (0.1, 0.2, 0.3, 0.5, 0.7)
    )
    return f"""# Router checkpoint: `{NAME}` (RESEARCH ONLY, not for commercial use, never bundled)

Estimates the probability that **gpt-4-1106-preview** (strong) answers better than
**Mixtral-8x7B-Instruct-v0.1** (weak) on chat, knowledge and maths traffic. A text gate
(character n-gram TF-IDF softmax regression) says which of three task kinds a prompt is; each
kind has its own expert router under `experts/`; win rate = (1 + gate-weighted gap) / 2.

| kind | expert | training data | licence | gap scale, shift |
| --- | --- | --- | --- | --- |
| mmlu | ridge on a static MiniLM embedding | RouteLLM MMLU correctness, GPT-4 vs Mixtral, folds 1-{FOLDS - 1} ({training["sources"]["mmlu"]} prompts) | Apache-2.0 | {scale[0]:g}, {shift[0]:g} |
| gsm8k | ridge on a static MiniLM embedding | RouteLLM GSM8K correctness, GPT-4 vs Mixtral, folds 1-{FOLDS - 1} ({training["sources"]["gsm8k"]} prompts) | Apache-2.0 | {scale[1]:g}, {shift[1]:g} |
| chat | {training["chat_expert"]} | RMB helpfulness pairs (Zhou et al.), top tier vs mid tier, folds 1-{FOLDS - 1} ({training["sources"]["rmb"]} prompts) | **none given: research-only** | {scale[2]:.4f}, {shift[2]:+.4f} |

RMB's source repository carries no licence, so this checkpoint may be built and measured for
research but not redistributed or used commercially. The package never ships it: build it
yourself with the command below. Training prompts duplicating any evaluation or calibration
prompt (exact text, or cosine >= 0.95 on the static embedder) were removed:
{training["removed_as_contaminated"]}. {needs}

## Gate
Character n-grams 2-5 (`char_wb`), 2**18 hashed buckets, sublinear TF-IDF; L2 penalty C =
{gate["C"]:g} by 4-fold cross-validated log loss ({gate["cv_log_loss"]}). Accuracy on the held-out
fold 0 of each kind's source: {accuracy}. Prompts per kind: {gate["texts_per_kind"]} (the gate
learns from every RMB prompt of folds 1-4, also those without a top-vs-mid battle).

## Metrics (items never trained on)
AUC of the win rate against "strong scored higher than weak" on items where they differ (GPT-4 vs
Mixtral; top tier vs mid tier on RMB):

| set | items | decisive | AUC |
| --- | --- | --- | --- |
{metrics}

APGR: `routellm eval --benchmark mt-bench --benchmark rmb --benchmark mmlu --benchmark gsm8k
--data-dir ../shared/data --router <this folder>` scores MMLU, GSM8K and RMB on fold 0 only.

{crossfit_section(training.get("crossfit"))}

## Calibration
Reference prompts: {calibration.reference}, {calibration.n_prompts} prompts (Apache-2.0).
strong share → threshold: {shares}.

## Reproduce
    pip install -e '.[train,gated]'
    {training["command"]}
"""


def build_parser() -> argparse.ArgumentParser:
    """This recipe's command line (built without running it)."""
    parser = recipe_parser(__doc__)
    parser.add_argument(
        "--out", required=True, help="checkpoint folder to write (a new or empty folder)"
    )
    parser.add_argument(
        "--seeds",
        type=int_at_least(0),
        nargs="+",
        default=[0, 1],
        help="one fine-tuned chat expert per seed",
    )
    parser.add_argument(
        "--epochs",
        type=int_at_least(1),
        default=3,
        help="most fine-tuning epochs of the bert chat expert (default: %(default)s)",
    )
    parser.add_argument(
        "--chat-expert",
        choices=("bert", "ridge"),
        default="bert",
        help="the chat expert: a fine-tuned encoder, or ridge regression on embeddings "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--truncation",
        choices=TRUNCATIONS,
        help="how the bert chat expert cuts prompts over 128 tokens: the first tokens (head, the "
        "default), or the first and last 63 (routellm train bert --truncation)",
    )
    parser.add_argument(
        "--crossfit",
        action="store_true",
        help="also train with each other fold held out and report 5-fold cross-fitted APGR "
        "(about 4x the time)",
    )
    return parser


def main(argv: list[str] | None = None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.truncation and args.chat_expert == "ridge":
        parser.error(
            "--truncation cuts the bert chat expert's prompts; the ridge expert takes none"
        )
    try:
        training = build(
            args.data_dir,
            args.out,
            seeds=args.seeds,
            epochs=args.epochs,
            chat_expert=args.chat_expert,
            truncation=args.truncation or "head",
            crossfit=args.crossfit,
        )
    except (SystemExit, FileExistsError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)
    print(
        json.dumps(
            {
                k: training[k]
                for k in (
                    "sources",
                    "removed_as_contaminated",
                    "gate",
                    "metrics",
                    "crossfit",
                    "seconds",
                )
                if k in training
            },
            indent=1,
        )
    )
    print(
        f"wrote {args.out}; score it with: routellm eval --benchmark mt-bench --benchmark rmb --benchmark mmlu "
        f"--benchmark gsm8k --data-dir {args.data_dir} --router {args.out}"
        + (
            " (that scores fold 0, the checkpoint's held-out fold; the cross-fitted figures above "
            "are in its MODEL_CARD.md)"
            if args.crossfit
            else ""
        )
    )


if __name__ == "__main__":
    sys.exit(run_recipe(main))
