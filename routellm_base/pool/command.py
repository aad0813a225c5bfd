"""``routellm train pool`` and ``routellm eval --pool``: pool routers from many models' scores
and battles, and their cost-quality curves."""

from __future__ import annotations

import argparse
import json
import shlex
import time
from pathlib import Path
from typing import Any

import numpy as np

from ..arg_types import float_at_least, int_at_least
from ..decontaminate import contaminated_mask, near_duplicate_cosine
from ..embedders import DEFAULT_EMBEDDER, load_embedder
from ..errors import PoolError
from .checkpoints import load_pool_router, save_pool_router
from .data import COMMERCIAL_SOURCES, PoolData, load_pool_sources, parse_model_map
from .evaluation import evaluate_pool, format_report, plot_pool
from .models import Pool
from .training import PoolMFConfig, fit_knn, train_pool_mf

POOL_ROUTERS = ("knn", "mf")
DEFAULT_POOL_ROUTER = "knn"
KNN_K = 20
"""Neighbours a kNN pool router averages unless ``--k`` says otherwise."""


def add_pool_train_arguments(parser: argparse.ArgumentParser) -> None:
    """The options only ``routellm train pool`` reads (the shared ones: --data, --out,
    --model-map, --embedder, --cosine, --data-licence, --seed, --lr, --dim). Their defaults are
    None, resolved in :func:`train_pool`, so that ``routellm train`` can refuse them for another
    family (``routellm_base.train.command.FAMILY_OPTIONS``)."""
    group = parser.add_argument_group("pool (routellm train pool)")
    group.add_argument(
        "--pool-router",
        choices=POOL_ROUTERS,
        help="pool: knn (cosine kNN over the stored prompts, default) or mf (many-model matrix "
        "factorisation, numpy-trained)",
    )
    group.add_argument(
        "--k",
        type=int_at_least(1),
        help=f"pool knn: neighbours averaged per prediction (prompts; default {KNN_K})",
    )
    group.add_argument(
        "--weighted",
        action="store_true",
        default=None,
        help="pool knn: weight each neighbour's score by its cosine similarity",
    )
    group.add_argument(
        "--exclude-data",
        action="append",
        help="pool: evaluation data in a --data form (e.g. routerbench:DIR,test); training "
        "prompts that duplicate one of its prompts (exact, or cosine >= --cosine) are dropped; "
        "repeatable",
    )
    group.add_argument(
        "--steps",
        type=int_at_least(1),
        help=f"pool mf: full-batch Adam steps (default {PoolMFConfig.steps})",
    )
    group.add_argument(
        "--weight-decay",
        type=float_at_least(0),
        help="pool mf: L2 penalty on the projection and model vectors (default 1e-3)",
    )
    group.add_argument(
        "--battle-weight",
        type=float_at_least(0),
        help="pool mf: weight of the Bradley-Terry battle loss beside the pointwise loss "
        f"(default {PoolMFConfig.battle_weight:g})",
    )


def _decontaminate(
    data: PoolData, embeddings: np.ndarray, exclude: list[str], embedder: Any, cosine: float
) -> tuple[PoolData, np.ndarray, int]:
    """``data`` without the prompts that duplicate a prompt of the ``exclude`` sources (a
    RouterBench or LLMRouter source must name its split: its default, train, is what one trains
    on, not what one evaluates on)."""
    for spec in exclude:
        kind, _, rest = spec.partition(":")
        if kind in ("routerbench", "llmrouter") and "," not in rest:
            raise PoolError(
                f"--exclude-data {spec!r}: name the split to exclude, e.g. {spec},test (without "
                "one it would be the train split)"
            )
    texts = [
        p for spec in exclude for p in load_pool_sources([spec], None, "--exclude-data").prompts
    ]
    if not texts:
        return data, embeddings, 0
    bad = contaminated_mask(data.prompts, texts, embeddings, embedder.embed(texts), cosine)
    return data.subset(~bad), embeddings[~bad], int(bad.sum())


def train_pool(args: argparse.Namespace) -> dict[str, Any]:
    """Fit and save a pool router from ``args`` (``routellm train pool``); returns the training
    record. Raises :class:`PoolError` for bad sources, names or settings."""
    started = time.time()
    given = [f"--{n}" for n in ("strong", "weak") if getattr(args, n, None)]
    if given:
        raise PoolError(f"a pool router has no strong/weak pair; drop {', '.join(given)}")
    model_map = parse_model_map(args.model_map or [])
    data = load_pool_sources(args.data, model_map)
    embedder = load_embedder(args.embedder or DEFAULT_EMBEDDER)
    embeddings = embedder.embed(data.prompts)
    data, embeddings, removed = _decontaminate(
        data,
        embeddings,
        args.exclude_data or [],
        embedder,
        near_duplicate_cosine(args.cosine),
    )
    if not len(data.prompts):
        raise PoolError("no prompt is left after decontamination")
    scored = np.isfinite(data.scores)
    if not scored.any() and not (data.battle_outcome != 0.5).any():
        # Only ties: every model would be predicted alike, and the cheapest would always win.
        raise PoolError(
            f"the pool data has no scored prompt and no decisive battle ({data.n_battles} "
            "battles, all ties), so a router could only predict every model alike: judge with a "
            "judge whose verdicts hold when the two answers swap order (ties come from verdicts "
            "that flip), or add scored data"
        )
    report: dict[str, Any] = {}
    if (args.pool_router or DEFAULT_POOL_ROUTER) == "knn":
        router: Any = fit_knn(
            embeddings,
            data,
            k=KNN_K if args.k is None else args.k,
            weighted=bool(args.weighted),
            name="pool_knn",
            embedder=embedder,
        )
    else:
        from .mf import PoolMFRouter

        def given(name: str) -> Any:
            value = getattr(args, name)
            return getattr(PoolMFConfig, name) if value is None else value

        config = PoolMFConfig(
            dim=given("dim"),
            steps=given("steps"),
            lr=given("lr"),
            weight_decay=given("weight_decay"),
            battle_weight=given("battle_weight"),
            seed=given("seed"),
        )
        tensors, report = train_pool_mf(embeddings, data, config)
        router = PoolMFRouter("pool_mf", tensors, data.models, embedder=embedder)
    kinds = sorted({s["kind"] for s in data.sources})
    training = {
        "family": router.family,
        "data": data.sources,
        "licences": data.licences,
        "commercial_use": all(k in COMMERCIAL_SOURCES for k in kinds),
        **data.summary(),
        "removed_as_contaminated_prompts": removed,
        "decontaminated_against": list(args.exclude_data or []),
        "mf": report or None,
        "seconds": round(time.time() - started, 1),
        "command": "routellm " + shlex.join(args.command_line),
    }
    card = pool_model_card(router, training, args.data_licence)
    save_pool_router(router, args.out, model_card=card, training=training)
    return training


def pool_model_card(router: Any, training: dict[str, Any], declared: str | None = None) -> str:
    """A pool checkpoint's MODEL_CARD.md: what it predicts, its data with sha256 and licences,
    whether it may ship, how to rebuild it."""
    rows = "\n".join(
        f"| `{s['path']}` | {s['kind']} | `{s['sha256'][:16]}…` |" for s in training["data"]
    )
    licences = "\n".join(f"- {k}: {v}" for k, v in sorted(training["licences"].items()))
    use = (
        "Every source allows commercial use: this checkpoint may ship."
        if training["commercial_use"]
        else "**Research-only**: at least one source is non-commercial or unlicensed; do not "
        "ship this checkpoint."
    )
    if router.family == "pool_knn":
        how = (
            f"kNN: q_m(x) = the {'similarity-weighted ' if router.weighted else ''}mean score for m of "
            f"the {router.k} stored prompts nearest to x (cosine), skipping prompts with no score "
            "for m; battle-only prompts store each model's mean battle outcome."
        )
    else:
        mf = training.get("mf") or {}
        how = (
            "Many-model MF: q_m(x) = sigmoid(u_m . (W e(x) + b) + beta_m), trained on pointwise "
            "scores (cross-entropy) and battles (Bradley-Terry); "
            f"kept step {mf.get('kept_step')} of {mf.get('config', {}).get('steps')} by validation loss "
            f"{mf.get('validation_loss')}."
        )
    return f"""# Pool router checkpoint ({router.family})

Predicts the quality in [0, 1] of each of these models' answers to a prompt:
{", ".join(training["models"])}.
{how}
Embedder: `{router.embedder.kind}:{router.embedder.name}` ({router.embedder.dim}-d).

## Training data
| file | source | sha256 |
| --- | --- | --- |
{rows}

Prompts: {training["prompts"]}; scored cells: {training["scored_cells"]}; battles: {training["battles"]}.
Decontamination: {training["removed_as_contaminated_prompts"]} prompts removed that duplicate a prompt of {training["decontaminated_against"] or "no evaluation data (none given)"}.

## Licences
{licences}
{f"- declared by the trainer: {declared}" if declared else ""}

{use}

## Reproduce
    {training["command"]}
"""


def mean_cost_pool(models: list[str], costs: np.ndarray) -> Pool:
    """The pool a router sees in ``routellm eval --pool``: each model priced so that its
    expected cost per call is its mean cost per item in the data (USD; no input price, one
    output token at that mean times a million per million tokens), whatever the prompt's length.
    A price-based router (``zero_shot``) ranks the models by these costs; a trained router
    reads only the names. The curve itself always uses each item's own cost."""
    mean = np.asarray(costs, dtype=np.float64).mean(axis=0)
    return Pool({m: (0.0, float(c) * 1e6) for m, c in zip(models, mean)}, output_tokens=1.0)


BENCHMARK_NAMES = {"routerbench": "RouterBench", "llmrouter": "LLMRouter"}


def plot_title(spec: str, items: int, routers: list[Any]) -> str:
    """The ``--plot`` title: what was scored, ``"RouterBench test split, 1,234 items: router
    rb-knn"`` (a router folder by its last part)."""
    kind, _, rest = spec.partition(":")
    split = rest.partition(",")[2] or "test"
    names = ", ".join(str(r.name).rstrip("/").split("/")[-1] for r in routers)
    return (
        f"{BENCHMARK_NAMES.get(kind, kind)} {split} split, {items:,} items: "
        f"router{'s' if len(routers) > 1 else ''} {names}"
    )


def at_cost_notes(curves: list[Any], at_cost: float | None) -> list[str]:
    """Notes for the curves that ``at_cost`` (USD per 1,000 calls) lies outside: above the most
    the router spends, its quality there is its best point's (the hull is flat beyond it), and
    below the least it spends, its cheapest point's, which costs more than ``at_cost``."""
    notes = []
    for curve in [] if at_cost is None else curves:
        c, q = curve.hull()
        low, high = float(np.min(curve.cost)), float(np.max(curve.cost))
        if at_cost > high:
            notes.append(
                f"{curve.name}: --at-cost ${at_cost:g} is above the most it spends "
                f"(${high:.3f} per 1,000 calls); the quality reported there is its best, "
                f"{q[-1]:.3f} at ${c[-1]:.3f}"
            )
        elif at_cost < low:
            notes.append(
                f"{curve.name}: --at-cost ${at_cost:g} is below the least it spends "
                f"(${low:.3f} per 1,000 calls); the quality reported there is that of its "
                f"cheapest point, {q[0]:.3f} at ${c[0]:.3f}, which costs more"
            )
    return notes


def trained_on_notes(routers: list[Any], data: PoolData) -> list[str]:
    """A note for each router whose recorded training data (its config's ``training.data``:
    path and sha256) holds a data file scored here: its figures are not on unseen items."""
    notes = []
    for router in routers:
        recorded = (getattr(router, "metadata", {}).get("training") or {}).get("data") or []
        trained = {d.get("sha256") for d in recorded}
        shared = [
            str(s["path"])
            for s in data.sources
            if s.get("sha256") in trained and Path(str(s["path"])).name != "prices.json"
        ]
        if shared:
            notes.append(
                f"{router.name} was trained on {', '.join(shared)} (its recorded training data "
                "holds the same file): these figures are on items it was trained on, not held out"
            )
    return notes


def eval_pool(args: argparse.Namespace) -> int:
    """``routellm eval --pool``: each router's λ-curve on each data set."""
    if not args.router:
        raise PoolError("--pool needs at least one --router (a pool router name or folder)")
    if getattr(args, "references", False):
        raise PoolError(
            "--references adds the two-model random and oracle rows; --pool always prints its "
            "own baselines (best single model, oracle, Zero router): drop --references"
        )
    # Given unless None (not passed) or False (a flag not set); a --seed of 0 counts as given.
    values = {
        option: getattr(args, option[2:].replace("-", "_"), None)
        for option in ("--strong", "--weak", "--seed", "--retarget", "--data-dir")
    }
    two_model = [o for o, v in values.items() if v is not None and v is not False]
    if two_model:  # not silently ignored
        raise PoolError(
            f"--pool does not read {', '.join(two_model)}: a pool router scores every model of "
            "the data (no strong/weak pair, no random seed), and each --benchmark names its own "
            "folder (routerbench:DIR or llmrouter:DIR); drop them"
        )
    routers = [load_pool_router(r) for r in args.router]
    model_map = parse_model_map(args.model_map or [])
    out: list[dict[str, Any]] = []
    for spec in args.benchmark:
        kind, sep, rest = spec.partition(":")
        if not sep or not rest or kind not in ("routerbench", "llmrouter"):
            # Checked here: load_pool_source's message is train's (--data, more forms, train
            # split by default).
            raise PoolError(
                f"--benchmark {spec!r}: --pool reads routerbench:DIR[,SPLIT] (RouterBench CSVs) "
                "or llmrouter:DIR[,SPLIT] (LLMRouter JSON), SPLIT test unless given"
            )
        if "," not in rest:
            spec = f"{spec},test"
        data = load_pool_sources([spec], model_map, option="--benchmark")
        if data.costs is None:
            raise PoolError(
                f"--benchmark {spec!r} has no per-call costs: a cost-quality curve needs "
                "routerbench:DIR[,SPLIT] or llmrouter:DIR[,SPLIT]"
            )
        complete = data.complete()
        data = data.subset(complete)
        pool = mean_cost_pool(data.models, data.costs)
        preds = {}
        for router in routers:
            preds[router.name] = router.quality(data.prompts, pool)
        report = evaluate_pool(preds, data.scores, data.costs, data.models)
        notes = trained_on_notes(routers, data) + at_cost_notes(
            [report.zero, *report.curves], args.at_cost
        )
        if args.json:
            out.append(
                {
                    "benchmark": spec,
                    "left_out_incomplete": int((~complete).sum()),
                    **report.to_dict(args.at_cost),
                    "notes": notes,
                }
            )
        else:
            print(
                f"== {spec} ({int((~complete).sum())} items without every model's score or cost left out)"
            )
            print(format_report(report))
            if args.at_cost is not None:
                for curve in report.curves:
                    print(
                        f"{curve.name}: quality {curve.quality_at(args.at_cost):.3f} at ${args.at_cost:g} per 1,000 calls"
                    )
            for note in trained_on_notes(routers, data) + at_cost_notes(
                report.curves, args.at_cost
            ):
                print(f"note: {note}")
        if args.plot:
            path = Path(args.plot)
            if len(args.benchmark) > 1:
                path = path.with_name(
                    f"{path.stem}-{len(out) or args.benchmark.index(spec)}{path.suffix}"
                )
            plot_pool(
                report, path, title=plot_title(spec, report.items, routers), at_cost=args.at_cost
            )
    if args.json:
        print(json.dumps(out, indent=1))
    return 0


def add_pool_eval_arguments(parser: argparse.ArgumentParser) -> None:
    """``routellm eval --pool`` options."""
    parser.add_argument(
        "--pool",
        action="store_true",
        help="score pool routers (many priced models) instead: each --benchmark is a data "
        "source with costs, routerbench:DIR[,SPLIT] (RouterBench CSVs) or llmrouter:DIR[,SPLIT] "
        "(LLMRouter JSON), where SPLIT is test unless given; each --router a pool router name "
        "(zero_shot ranks the models by their mean cost per item in the data) or folder; prints, "
        "as the cost weight lambda sweeps, mean quality against USD per 1,000 calls, the best "
        "single model, the oracle, the Zero router, AIQ and the cost to match the best single "
        "model (--references does not apply: these baselines are always there; nor do the "
        "two-model --strong, --weak, --seed, --retarget and --data-dir: all are refused)",
    )
    parser.add_argument(
        "--at-cost",
        type=float_at_least(0),
        default=None,
        help="with --pool: also print each router's quality at this cost (USD per 1,000 calls, "
        "0 or more); "
        "outside the costs a router's curve spans, a note says so and which point's quality "
        "is reported",
    )
    parser.add_argument(
        "--model-map",
        action="append",
        help="with --pool: SOURCE=TARGET model-name mapping of the data; repeatable",
    )
