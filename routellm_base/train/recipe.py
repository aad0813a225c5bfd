"""What the bundled checkpoints' recipes share: the data split, decontamination and cross-fitting.

MMLU and GSM8K (GPT-4-1106-preview vs Mixtral-8x7B correctness) are split in 5 folds by sha1 of
the prompt. A recipe trains with one fold held out; the shipped checkpoint holds out fold 0,
and cross-fitting trains one model per fold so that every item is scored by a model that never
saw it. MT Bench, the held-out fold, LLMRouter's test split and the Arena-Hard calibration prompts
are evaluation/calibration only: training prompts that duplicate any of them (exact text, or
cosine >= 0.95 on the router's embedder) are removed.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..calibration import Calibration
from ..checkpoints import save_checkpoint
from ..data import (
    GPT4,
    MID_TIER,
    MIXTRAL,
    TOP_TIER,
    ScoredPrompt,
    crossfit_fold,
    load_gsm8k,
    load_llmrouter,
    load_mmlu,
    load_mt_bench,
    load_rmb,
)
from ..data.location import DATA_DIR_ENV, DEV_DATA_DIR, data_dir_from_env, default_data_dir
from ..decontaminate import contaminated_mask
from ..embedders.base import Embedder
from ..errors import RouteLLMError
from ..metrics import roc_auc
from ..routers.base import Router

FOLDS = 5
"""MMLU and GSM8K are split in 5 folds by sha1 of the prompt; the shipped checkpoint holds out
fold 0 (20%), and cross-fitting trains one model per held-out fold."""
ARENA_REFERENCE = "Arena-Hard-Auto v0.1 questions (498 real Chatbot Arena prompts)"


def recipe_parser(description: str | None) -> argparse.ArgumentParser:
    """A recipe's command line with what every recipe takes: ``--data-dir`` (default:
    ``$ROUTELLM_DATA_DIR``, else ``../shared/data``), the module docstring as its description."""
    parser = argparse.ArgumentParser(
        description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--data-dir",
        # Without either folder the recipe still names ../shared/data in its error.
        default=default_data_dir() or DEV_DATA_DIR,
        help="data folder (default: $ROUTELLM_DATA_DIR, else ../shared/data)",
    )
    return parser


def _data_dir_source(argv: Sequence[str]) -> tuple[str, str]:
    """The data folder a recipe run with ``argv`` read and where it came from: ``"given"``
    (``--data-dir``), ``"env"`` (``$ROUTELLM_DATA_DIR``) or ``"default"`` (:data:`DEV_DATA_DIR`),
    as :func:`recipe_parser` resolves it."""
    probe = argparse.ArgumentParser(add_help=False)
    probe.add_argument("--data-dir")
    try:
        given = probe.parse_known_args(list(argv))[0].data_dir
    except SystemExit:  # ``--data-dir`` without a value: the recipe's parser said so already
        given = None
    if given is not None:
        return given, "given"
    from_env = data_dir_from_env()
    return (from_env, "env") if from_env else (DEV_DATA_DIR, "default")


def data_dir_hint(message: str, argv: Sequence[str]) -> str:
    """What to add to the error ``message`` of a recipe run with ``argv`` when it names the data
    folder (a file or folder missing under it): which folder was read, where that came from,
    and how to give another, as ``routellm eval`` says it. Empty for other errors."""
    folder, source = _data_dir_source(argv)
    # The folder as a path of its own in the message ("under DIR", "'DIR/llmrouter/...'").
    if not re.search(rf"(?:^|[\s'\"]){re.escape(str(folder))}(?=[/:'\"\s]|$)", message):
        return ""
    if source == "given":
        return f" (--data-dir {folder}: give the folder holding the data; README: Data)"
    if source == "env":
        return (
            f"; the data folder {folder} came from {DATA_DIR_ENV} (set it to the folder holding "
            "the data, or pass --data-dir)"
        )
    return (
        f"; neither --data-dir nor {DATA_DIR_ENV} was given, so the recipe read {folder} (this "
        f"repository's development set-up): pass --data-dir DIR or set {DATA_DIR_ENV} to the "
        "folder holding the data (README: Data)"
    )


def run_recipe(
    main: Callable[[list[str] | None], int | None], argv: list[str] | None = None
) -> int:
    """Run a recipe's ``main(argv)`` as its ``python -m`` entry point does; returns the exit
    status. A missing data file or folder, or another input error (``FileNotFoundError``,
    ``ValueError``, :class:`~routellm_base.errors.RouteLLMError`), ends in one line on stderr
    and status 2, as the ``routellm`` command's errors do, not a traceback; when the error names
    the data folder, the line says where that folder came from (:func:`data_dir_hint`)."""
    args = sys.argv[1:] if argv is None else argv
    try:
        return int(main(argv) or 0)
    except (RouteLLMError, FileNotFoundError, ValueError) as exc:
        prog = Path(sys.argv[0]).name or "recipe"
        print(f"{prog}: error: {exc}{data_dir_hint(str(exc), args)}", file=sys.stderr)
        return 2


def recipe_command(module: str, argv: list[str] | None) -> str:
    """The command line that ran recipe ``module`` (its arguments: ``argv``, else
    ``sys.argv[1:]``), for the model card's Reproduce section and ``training["command"]``."""
    import shlex

    args = sys.argv[1:] if argv is None else argv
    return f"python -m routellm_base.train.{module} {shlex.join(args)}".rstrip()


def load_arena_prompts(data_dir: str | Path) -> list[str]:
    with open(Path(data_dir) / "arena_hard" / "questions.jsonl", encoding="utf-8") as handle:
        return [json.loads(line)["prompt"] for line in handle if line.strip()]


PAIRS = {"rmb": (TOP_TIER, MID_TIER)}
"""Each benchmark's (strong, weak) pair where it is not GPT-4 vs Mixtral."""


def pair_auc(
    rates: np.ndarray, rows: Sequence[ScoredPrompt], strong: str = GPT4, weak: str = MIXTRAL
) -> dict[str, float]:
    """AUC of win rate against 'strong scored higher than weak', over rows where they differ."""
    diff = np.array([r.scores[strong] - r.scores[weak] for r in rows])
    keep = diff != 0
    return {
        "auc": roc_auc(rates[keep], diff[keep] > 0),
        "n_decisive": int(keep.sum()),
        "n": len(rows),
    }


@dataclass
class FoldSplit:
    """Training rows by source (decontaminated) and the evaluation sets of one held-out fold."""

    fold: int
    train: dict[str, list[ScoredPrompt]]
    held_out: dict[str, list[ScoredPrompt]]
    mt_bench: list[ScoredPrompt]
    arena: list[str]
    removed_as_contaminated: dict[str, int]
    evaluation_prompts: list[str]
    """Every prompt the training rows were decontaminated against (held-out folds, MT Bench's
    turns, Arena-Hard, LLMRouter's test split when used)."""

    def metrics(self, router: Router) -> dict[str, dict[str, float]]:
        """AUC on the held-out fold of each benchmark and on MT Bench (never trained on)."""
        sets = {**{f"{k}_holdout": v for k, v in self.held_out.items()}, "mt_bench": self.mt_bench}
        return {
            name: pair_auc(
                router.strong_win_rate([r.prompt for r in rows]),
                rows,
                *PAIRS.get(name.removesuffix("_holdout"), (GPT4, MIXTRAL)),
            )
            for name, rows in sets.items()
        }


def split_fold(
    data_dir: str | Path,
    fold: int,
    embed: Callable[[list[str]], np.ndarray],
    with_llmrouter: bool,
    with_rmb: bool = False,
) -> FoldSplit:
    """MMLU/GSM8K with ``fold`` held out (and LLMRouter train, RMB's other folds if asked), decontaminated.

    With ``with_rmb`` RMB's fold ``fold`` is held out too (its fold 0 is the ``rmb`` benchmark),
    and every training prompt is also decontaminated against it.
    """
    mmlu, gsm8k = load_mmlu(data_dir), load_gsm8k(data_dir)
    mt_bench = load_mt_bench(data_dir)
    arena = load_arena_prompts(data_dir)
    held_out = {
        "mmlu": [r for r in mmlu if crossfit_fold(r.prompt, FOLDS) == fold],
        "gsm8k": [r for r in gsm8k if crossfit_fold(r.prompt, FOLDS) == fold],
    }
    train = {
        "mmlu": [r for r in mmlu if crossfit_fold(r.prompt, FOLDS) != fold],
        "gsm8k": [r for r in gsm8k if crossfit_fold(r.prompt, FOLDS) != fold],
    }
    if with_rmb:
        rmb = load_rmb(data_dir, "all")
        held_out["rmb"] = [r for r in rmb if crossfit_fold(r.prompt, FOLDS) == fold]
        train["rmb"] = [r for r in rmb if crossfit_fold(r.prompt, FOLDS) != fold]
    eval_prompts = (
        [r.prompt for rows in held_out.values() for r in rows]
        + [t for r in mt_bench for t in r.extra["turns"]]
        + arena
    )
    if with_llmrouter:
        train["llmrouter"] = load_llmrouter(data_dir, "train")
        eval_prompts += [r.prompt for r in load_llmrouter(data_dir, "test")]
    eval_emb = embed(eval_prompts)
    removed: dict[str, int] = {}
    for source, rows in train.items():
        prompts = [r.prompt for r in rows]
        mask = contaminated_mask(prompts, eval_prompts, embed(prompts), eval_emb)
        removed[source] = int(mask.sum())
        train[source] = [r for r, bad in zip(rows, mask, strict=True) if not bad]
    return FoldSplit(fold, train, held_out, mt_bench, arena, removed, eval_prompts)


def cached_embed(
    embedder: Embedder, cache: dict[str, np.ndarray] | None
) -> Callable[[list[str]], np.ndarray]:
    """``embedder.embed`` that remembers what it embedded (seeded from ``cache``, if given).

    A recipe passes over the same prompts several times (decontamination, training, metrics):
    each text is embedded once.
    """
    memo = dict(cache or {})

    def embed(texts: list[str]) -> np.ndarray:
        missing = [t for t in dict.fromkeys(texts) if t not in memo]
        if missing:
            memo.update(zip(missing, embedder.embed(missing), strict=True))
        return (
            np.stack([memo[t] for t in texts]) if texts else np.zeros((0, embedder.dim), np.float32)
        )

    return embed


def crossfit(
    data_dir: str | Path,
    train_fold: Callable[[int], Router],
    label: str,
    names: Sequence[str] = ("mmlu", "gsm8k"),
) -> list[dict[str, Any]]:
    """Cross-fitted APGR/CPT of a recipe on all of MMLU and GSM8K (and ``rmb``'s every fold, if named).

    ``train_fold(k)`` returns the recipe's router trained with fold k held out; each item is
    scored by the fold model that never saw it (nor, after decontamination, any near-duplicate).
    Each result carries the 200-seed random band on the same items and ``apgr_by_fold``, each
    fold's APGR under its own router (the pooled figure also ranks items across fold routers).
    """
    from ..evals import Benchmark, load_benchmark, quality_curve, random_baseline

    def whole(name: str) -> Benchmark:
        if name == "rmb":  # every fold, not just the held-out one that the named benchmark is
            return Benchmark("rmb (all folds)", load_rmb(data_dir, "all"), TOP_TIER, MID_TIER)
        return load_benchmark(name, data_dir)

    benchmarks = {name: whole(name) for name in names}
    rates = {name: np.full(len(b.rows), np.nan) for name, b in benchmarks.items()}
    by_fold: dict[str, list[float]] = {name: [] for name in names}
    for fold in range(FOLDS):
        router = train_fold(fold)
        for name, bench in benchmarks.items():
            idx = [i for i, r in enumerate(bench.rows) if crossfit_fold(r.prompt, FOLDS) == fold]
            rates[name][idx] = router.strong_win_rate([bench.rows[i].prompt for i in idx])
            curve = quality_curve(rates[name][idx], bench.strong[idx], bench.weak[idx])
            by_fold[name].append(curve.apgr())
    results = []
    for name, bench in benchmarks.items():
        assert not np.isnan(rates[name]).any()
        curve = quality_curve(rates[name], bench.strong, bench.weak)
        random_mean, random_std, _ = random_baseline(bench.strong, bench.weak)
        results.append(
            {
                "router": f"{label} recipe, {FOLDS}-fold cross-fitted",
                "benchmark": name,
                "n": len(bench.rows),
                "apgr": curve.apgr(),
                "cpt20": curve.cpt(0.2),
                "cpt50": curve.cpt(0.5),
                "cpt80": curve.cpt(0.8),
                "random_apgr": random_mean,
                "random_apgr_std": random_std,
                "apgr_by_fold": by_fold[name],
            }
        )
    return results


def crossfit_table(results: Sequence[dict[str, Any]] | None) -> str:
    """A model card's cross-fitted table (the rows of :func:`crossfit`), or how to get it.

    One row per benchmark: items, pooled APGR, the 200-seed random band on the same items,
    CPT(50%) and each fold's APGR under its own router, so a card shows the spread between folds
    beside the pooled figure.
    """
    if not results:
        return "Cross-fitted over all folds: run the recipe with `--crossfit`."
    rows = "\n".join(
        f"| {r['benchmark']} | {r['n']} | {r['apgr']:.3f} | {r['random_apgr']:.3f} ± {r['random_apgr_std']:.3f} | "
        f"{r['cpt50']:.1%} | {' · '.join(f'{v:.3f}' for v in r['apgr_by_fold'])} |"
        for r in results
    )
    return f"""The recipe, {FOLDS}-fold cross-fitted (each item scored by the fold's model that never saw it;
the fold models were discarded), with the 200-seed random band on the same items:

| benchmark | items | APGR | random | CPT(50%) | APGR of folds 0-{FOLDS - 1}, each under its own model |
| --- | --- | --- | --- | --- | --- |
{rows}"""


def load_embeddings_cache(spec: str | None) -> dict[str, np.ndarray] | None:
    """``PROMPTS.json,EMBEDDINGS.npy`` (a list of prompts and their rows) or None."""
    if not spec:
        return None
    prompts_path, _, emb_path = spec.partition(",")
    prompts = json.loads(Path(prompts_path).read_text())
    return dict(zip(prompts, np.load(emb_path), strict=True))


def fold_record(
    router: Router, split: FoldSplit, started: float, **family_record: Any
) -> dict[str, Any]:
    """Score a fold's router on never-trained items, calibrate it on Arena-Hard, and say what it was fit on."""
    metrics = split.metrics(router)
    router.calibration = Calibration.from_win_rates(
        router.strong_win_rate(split.arena), ARENA_REFERENCE
    )
    return {
        "held_out_fold": split.fold,
        "sources": {k: len(v) for k, v in split.train.items()},
        "removed_as_contaminated": split.removed_as_contaminated,
        **family_record,
        "metrics": metrics,
        "seconds": round(time.time() - started, 1),
    }


def save_recipe_checkpoint(
    out: str | Path,
    router: Router,
    models: list[str],
    tensors: dict[str, np.ndarray],
    training: dict[str, Any],
    model_card: str,
    params: dict[str, Any],
    benchmarks: Sequence[str] = ("mmlu", "gsm8k"),
) -> None:
    """Write a recipe's fold-0 checkpoint; it declares the benchmark folds it trained on."""
    assert router.calibration is not None and router.embedder is not None
    # The evaluation harness reads this to score these benchmarks on the held-out fold only.
    training["trained_on_benchmarks"] = {
        name: {"held_out_percent": 100 // FOLDS} for name in benchmarks
    }
    save_checkpoint(
        out,
        router_family=router.family,
        tensors=tensors,
        models=models,
        strong_model=GPT4,
        weak_model=MIXTRAL,
        embedder=router.embedder,
        calibration=router.calibration,
        model_card=model_card,
        params=params,
        training=training,
    )
