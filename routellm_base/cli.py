"""The ``routellm`` command line."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from typing import Any

from .arg_types import (
    cosine,
    input_file,
    int_at_least,
    plain_input_file,
    plot_file,
    share,
    win_rate,
)
from .checkpoints import DEFAULT_ROUTER
from .data.scored import read_prompt_file, read_some_prompts
from .decontaminate import NEAR_DUPLICATE_COSINE
from .errors import RouteLLMError
from .policy import DEFAULT_STRONG_SHARE


def _add_policy(parser: argparse.ArgumentParser) -> None:
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        "--strong-share",
        type=share,
        help=f"target share of calls sent to the strong model (default {DEFAULT_STRONG_SHARE}, "
        "through the router's calibration)",
    )
    group.add_argument(
        "--threshold",
        type=win_rate,
        help="route strong when win rate >= this (default: from --strong-share)",
    )


def cmd_route(args: argparse.Namespace) -> int:
    from .engine import RoutingEngine
    from .errors import InvalidPolicyError
    from .routing_text import RoutingTextOptions

    try:
        engine = RoutingEngine(
            args.router,
            threshold=args.threshold,
            strong_share=args.strong_share,
            routing_text_options=RoutingTextOptions(max_tokens=args.max_tokens),
        )
        decision = engine.decide(
            args.prompt, strong_model=args.strong or "strong", weak_model=args.weak or "weak"
        )
    except InvalidPolicyError as exc:
        given = args.threshold is not None or args.strong_share is not None
        if given or "no stored calibration" not in str(exc):
            raise
        # The user asked for no share: say the default was used and what to give instead.
        raise InvalidPolicyError(
            f"neither --threshold nor --strong-share was given, so the default strong share "
            f"{DEFAULT_STRONG_SHARE} applied, but router {args.router!r} has no stored "
            "calibration to turn a share into a threshold (trained without "
            "--calibration-prompts). Give --threshold T (`routellm calibrate --router "
            f"{args.router} --prompts FILE --strong-share {DEFAULT_STRONG_SHARE}` prints one for "
            "your prompts), or retrain with --calibration-prompts FILE"
        ) from exc
    if args.json:
        print(json.dumps(decision.to_dict()))
    else:
        # A strong share of 0 sets the threshold just above 1, which 4 places would print as 1.0000.
        threshold = (
            "above 1 (no call goes strong)"
            if decision.threshold > 1.0
            else f"{decision.threshold:.4f}"
        )
        reason = (
            "no known token in the routing text"
            if decision.win_rate is None
            else f"win rate {decision.win_rate:.4f} "
            f"{'>=' if decision.side == 'strong' else '<'} threshold {threshold}"
        )
        # The model name is only worth printing when the caller named the chosen side's model.
        named = f" ({decision.model})" if (args.strong, args.weak)[decision.side == "weak"] else ""
        print(
            f"{decision.side}{named}: {reason} "
            f"[router {decision.router}, {decision.seconds * 1000:.2f} ms]"
        )
    return 0


def _own_pair_note(router: Any, strong: str, weak: str, benchmark: str | None = None) -> str | None:
    """A note when checkpoint ``router`` scores its own (trained) pair, not ``strong`` vs
    ``weak``: MF and SW ranking know models by name (``--retarget`` compares the given pair);
    the others (task_experts, bert, causal_llm) learned one pair's win rate and cannot be
    retargeted. None when the checkpoint records named ``benchmark`` as trained on
    (``training.trained_on_benchmarks``) and ``strong`` vs ``weak`` is that benchmark's own pair:
    its training covered the pair scored (``chat_task_experts`` learned RMB's top tier vs mid
    tier as its chat kind)."""
    from .evals.benchmarks import NAMED_PAIRS

    own = (getattr(router, "strong_model", None), getattr(router, "weak_model", None))
    if router.family == "random" or None in own or own == (strong, weak):
        return None
    training = (getattr(router, "metadata", None) or {}).get("training") or {}
    trained_on = training.get("trained_on_benchmarks") or {}
    if benchmark in trained_on and NAMED_PAIRS.get(benchmark) == (strong, weak):
        return None
    if getattr(router, "for_pair", None) is None:
        return (
            f"{router.name} predicts its training pair's win rate, {own[0]} vs {own[1]}, not "
            f"{strong} vs {weak}: a {router.family} router cannot be retargeted (retrain it on "
            f"battles of the pair: routellm train {router.family} --strong {strong} --weak {weak})"
        )
    unknown = [m for m in (strong, weak) if m not in getattr(router, "models", ())]
    return f"{router.name} scores its own pair, {own[0]} vs {own[1]}, not {strong} vs {weak}: " + (
        "--retarget makes it compare the given pair"
        if not unknown
        else f"it does not know {', '.join(unknown)}, so --retarget cannot retarget it"
    )


def _eval_key(value: str) -> str:
    """What an eval ``--router`` or ``--benchmark`` names, so that two spellings of one compare
    equal: a path that exists resolved, a bundled router's name as its folder, ``llmrouter:DIR``
    with its default split ``test``."""
    from .checkpoints import BUNDLED_DIR, BUNDLED_POOL_ROUTERS, BUNDLED_ROUTERS

    bundled = BUNDLED_ROUTERS.get(value) or BUNDLED_POOL_ROUTERS.get(value)
    if bundled is not None:
        return os.path.realpath(BUNDLED_DIR / bundled[0])
    kind, sep, rest = value.partition(":")
    if sep and kind in ("routerbench", "llmrouter"):
        folder, _, split = rest.partition(",")
        return f"{kind}:{os.path.realpath(folder)},{split or 'test'}"
    return os.path.realpath(value) if os.path.exists(value) else value


def refuse_repeats(option: str, values: list[str]) -> None:
    """Raise :class:`RouteLLMError` naming the ``values`` of a repeatable ``option`` that name
    one thing twice (the same text, or paths of one file or folder): each would be scored and
    printed twice."""
    groups: dict[str, list[str]] = {}
    for value in values:
        groups.setdefault(_eval_key(value), []).append(value)
    repeated = [spellings for spellings in groups.values() if len(spellings) > 1]
    if repeated:
        named = "; ".join(
            f"{option} {spellings[0]} is given {len(spellings)} times"
            if len(set(spellings)) == 1
            else f"{option} {' and '.join(dict.fromkeys(spellings))} name the same one"
            for spellings in repeated
        )
        raise RouteLLMError(f"{named}: each is scored once, so drop the repeats")


def cmd_eval(args: argparse.Namespace) -> int:
    refuse_repeats("--router", args.router)
    refuse_repeats("--benchmark", args.benchmark)
    if args.pool:
        from .pool.command import eval_pool

        return eval_pool(args)
    pool_only = [
        option
        for option, value in (("--at-cost", args.at_cost), ("--model-map", args.model_map))
        if value is not None
    ]
    if pool_only:  # not silently ignored
        raise RouteLLMError(
            f"{' and '.join(pool_only)} needs --pool (pool routers over priced models); "
            "without it eval scores strong/weak routers"
        )
    from .checkpoints import load_router
    from .data.location import data_dir_from_env, default_data_dir
    from .evals import (
        common_items,
        evaluate,
        load_benchmark,
        plot_curves,
        random_baseline,
        reference_rows,
    )
    from .evals.benchmarks import NAMED_BENCHMARKS

    if args.data_dir is not None and not any(b in NAMED_BENCHMARKS for b in args.benchmark):
        # It locates the named benchmarks only: with files alone it would be read by nothing.
        raise RouteLLMError(
            f"--data-dir locates the named benchmarks ({', '.join(sorted(NAMED_BENCHMARKS))}); "
            "every --benchmark here is a file: drop --data-dir"
        )
    if args.retarget and not (args.strong and args.weak):
        # load_router would keep the router's own model for the one not given, which need not
        # be the benchmark's: refused rather than scored on a pair nobody asked for.
        raise RouteLLMError("--retarget needs both --strong and --weak: the pair to compare")
    pair = {"strong_model": args.strong, "weak_model": args.weak} if args.retarget else {}
    seed = 0 if args.seed is None else args.seed
    routers = [load_router(r, seed=seed, **pair) for r in args.router]
    # Every router of a benchmark is scored on the same items: those none of them trained on.
    # None when $ROUTELLM_DATA_DIR is set: load_benchmark reads it and names it in its errors.
    data_dir = args.data_dir
    if data_dir is None and data_dir_from_env() is None:
        data_dir = default_data_dir()
    benchmarks = [
        common_items(routers, load_benchmark(b, data_dir, args.strong, args.weak)).with_gap_note()
        for b in args.benchmark
    ]
    results = [evaluate(r, b, progress=not args.no_progress) for b in benchmarks for r in routers]
    if not args.retarget:
        for result, (bench, router) in zip(results, [(b, r) for b in benchmarks for r in routers]):
            named = bench.name if bench.path is None else None
            note = _own_pair_note(router, bench.strong_model, bench.weak_model, named)
            if note:
                result.notes.append(note)
    # The random band goes beside every figure: on 72 MT Bench questions random routing alone
    # moves APGR by about +-0.07, on MMLU by +-0.01.
    # evaluate() re-derives each benchmark's items, so the band is computed on the scored items.
    bands: dict[tuple[str, int], tuple[float, float]] = {}
    rows = []
    for r in results:
        key = (r.benchmark.name, len(r.benchmark.rows))
        if key not in bands:
            bands[key] = random_baseline(r.benchmark.strong, r.benchmark.weak)[:2]
        rows.append({**r.to_dict(), "random_apgr": bands[key][0], "random_apgr_std": bands[key][1]})
    if args.references:
        rows += [row for b in benchmarks for row in reference_rows(b)]
    if args.plot:
        plot_curves(results, args.plot)
    if args.json:
        print(json.dumps(rows, indent=1))
    else:

        def pct(value: float | None) -> str:
            return "never" if value is None else f"{value * 100:.1f}%"

        def band(row: dict) -> str:
            if "random_apgr" not in row:
                return ""
            return f"{row['random_apgr']:.3f}±{row['random_apgr_std']:.3f}"

        # Checkpoint paths and benchmark file names are printed whole.
        width = max(28, *(len(row["router"]) for row in rows))
        bench_width = max(12, *(len(row["benchmark"]) for row in rows))
        print(
            f"{'router':<{width}} {'benchmark':<{bench_width}} {'n':>6} {'APGR':>7} {'random (200)':>13} "
            f"{'CPT20':>7} {'CPT50':>7} {'CPT80':>7}"
        )
        for row in rows:
            print(
                f"{row['router']:<{width}} {row['benchmark']:<{bench_width}} {row['n']:>6} {row['apgr']:>7.3f} "
                f"{band(row):>13} {pct(row['cpt20']):>7} {pct(row['cpt50']):>7} {pct(row['cpt80']):>7}"
            )
        for bench in benchmarks:
            for note in bench.notes:
                print(f"note: {bench.name}: {note}")
            if bench.skipped:
                print(f"note: {bench.name}: {bench.skipped} rows skipped (no strong or weak score)")
        for result in results:
            for note in result.notes:
                if note not in result.benchmark.notes:
                    print(f"note: {result.router} on {result.benchmark.name}: {note}")
    return 0


def cmd_decontaminate(args: argparse.Namespace) -> int:
    from .checkpoints import load_router
    from .decontaminate import contaminated_mask

    train, evals = read_prompt_file(args.train), read_prompt_file(args.eval)
    router = load_router(args.router)
    embedder = router.embedder
    if embedder is None:
        # Exact text alone would give a shorter, clean-looking list with --cosine unused.
        raise RouteLLMError(
            f"--router {args.router} ({router.family}) has no embedder, and decontaminate "
            "measures near-duplicates (cosine >= --cosine) with the router's: give a router "
            f"that embeds prompts (the default {DEFAULT_ROUTER}, mf, or an mf, sw_ranking or "
            "task_experts checkpoint; a bert or causal_llm checkpoint's model card names the "
            "decontamination embedder it was trained with)"
        )
    train_texts, eval_texts = [t for _, t in train], [t for _, t in evals]
    mask = contaminated_mask(
        train_texts,
        eval_texts,
        embedder.embed(train_texts),
        embedder.embed(eval_texts),
        threshold=args.cosine,
    )
    flagged = [train[i][0] for i in mask.nonzero()[0]]
    if args.json:
        print(json.dumps({"train": len(train), "eval": len(evals), "flagged": flagged}))
    else:
        print(
            f"{len(flagged)} of {len(train)} training prompts duplicate one of {len(evals)} evaluation prompts"
        )
        for item in flagged:
            print(item)
    return 0


def cmd_calibrate(args: argparse.Namespace) -> int:
    from .checkpoints import load_router
    from .policy import RANDOM_NEEDS_NO_CALIBRATION, calibrate_threshold

    router = load_router(args.router)
    if router.family == "random":  # before the prompts are read: they would change nothing
        raise RouteLLMError(
            f"--router {args.router}: {RANDOM_NEEDS_NO_CALIBRATION}. Give it the share as it "
            "is (routellm route --router random --strong-share S; strong_share=S in Python), "
            "or calibrate a learned router (task_experts, mf, or a checkpoint folder) on your "
            "prompts"
        )
    prompts, source = read_some_prompts(
        args.prompts, "--prompts", "calibrate needs at least one to set a threshold on"
    )
    threshold = calibrate_threshold(router, prompts, args.strong_share)
    achieved = float((router.strong_win_rate(prompts) >= threshold).mean())
    if args.json:
        print(
            json.dumps(
                {
                    "router": router.name,
                    "prompts": len(prompts),
                    "strong_share": args.strong_share,
                    "threshold": threshold,
                    "achieved_share": achieved,
                }
            )
        )
    else:
        # A share of 0 sets the threshold just above 1, which 6 places would print as 1.000000.
        shown = "above 1 (no call goes strong)" if threshold > 1.0 else f"{threshold:.6f}"
        print(
            f"threshold {shown} sends {achieved:.1%} of {source} strong "
            f"(target {args.strong_share:.1%}, router {router.name})"
        )
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="routellm", description="Learned routing between a strong and a weak LLM."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    route = sub.add_parser(
        "route",
        help="print the routing decision for one prompt",
        description="Print which model, strong or weak, the router picks for one prompt, and why "
        "(its strong win rate against the threshold).",
    )
    route.add_argument("prompt", help="the prompt to route (quote it)")
    route.add_argument(
        "--router",
        default=DEFAULT_ROUTER,
        help=f"bundled router name (default {DEFAULT_ROUTER}; mf, random) or checkpoint folder",
    )
    _add_policy(route)
    # Labels only: the router scores the pair it was trained for (load_router's strong_model=
    # and weak_model= pick another pair of a many-model mf checkpoint).
    route.add_argument("--strong", help="name to print for the strong model (a label only)")
    route.add_argument("--weak", help="name to print for the weak model (a label only)")
    route.add_argument(
        "--max-tokens",
        type=int_at_least(1),
        default=None,
        help="routing-text budget in cl100k tokens: the router reads at most this much of the "
        "prompt (default: the whole prompt; the router's embedder still applies its own limit)",
    )
    route.add_argument("--json", action="store_true", help="print one JSON object")
    route.set_defaults(func=cmd_route)

    ev = sub.add_parser(
        "eval",
        help="score routers on benchmarks (PGR, APGR, CPT)",
        description="Score routers on benchmarks: a strong/weak router's quality against the "
        "strong model's share (PGR, APGR, CPT), or with --pool a pool router's cost-quality "
        "curve on routerbench:DIR[,SPLIT] / llmrouter:DIR[,SPLIT] (SPLIT test unless given). "
        "A note says when the strong model does not score clearly above the weak one (below it, "
        "or by less than 2 standard errors of the per-item gap): PGR and APGR are then not "
        "meaningful.",
    )
    ev.add_argument(
        "--benchmark",
        action="append",
        required=True,
        help="mt-bench, mmlu, gsm8k, rmb (held-out open-chat split) or a scored JSONL file; with "
        "--pool, routerbench:DIR[,SPLIT] or llmrouter:DIR[,SPLIT] (SPLIT test unless given); "
        "repeatable (a repeat is refused)",
    )
    ev.add_argument(
        "--data-dir",
        default=None,
        help="data folder holding routellm/ (or a RouteLLM checkout) for mt-bench, mmlu and "
        "gsm8k, and rmb/ for rmb (default: $ROUTELLM_DATA_DIR, else ../shared/data when that "
        "folder exists, as for the training recipes)",
    )
    ev.add_argument(
        "--router",
        action="append",
        required=True,
        help="router name or checkpoint folder; repeatable (a repeat is refused)",
    )
    ev.add_argument(
        "--strong",
        default=None,
        help="strong model (a key of 'scores'); default gpt-4-1106-preview for named benchmarks",
    )
    ev.add_argument(
        "--weak", default=None, help="weak model; default Mixtral-8x7B for named benchmarks"
    )
    # None when not given, so that --pool can refuse it; the two-model path reads it as 0.
    ev.add_argument(
        "--seed", type=int_at_least(0), default=None, help="seed of the random router (default 0)"
    )
    ev.add_argument(
        "--retarget",
        action="store_true",
        help="make MF/SW routers compare --strong vs --weak (both needed; models they were "
        "trained on) instead of their reference pair (without it they score their own pair, "
        "and a note says so; other checkpoints, such as task_experts, cannot be retargeted and "
        "a note says when their trained pair is not the given one)",
    )
    ev.add_argument(
        "--references",
        action="store_true",
        help="add random-baseline (200 seeds) and oracle rows (--plot always draws both); "
        "two-model only, refused with --pool",
    )
    ev.add_argument(
        "--json", action="store_true", help="print a JSON list, one object per router and benchmark"
    )
    ev.add_argument(
        "--plot",
        type=plot_file,
        default=None,
        help="write a plot (.png, .svg or .pdf) of performance against strong-call share (with "
        "--pool: of quality against USD per 1,000 calls)",
    )
    ev.add_argument(
        "--no-progress",
        action="store_true",
        help="no progress bar on stderr while scoring (--pool draws none: accepted there)",
    )
    from .pool.command import add_pool_eval_arguments

    add_pool_eval_arguments(ev)
    ev.set_defaults(func=cmd_eval)

    cal = sub.add_parser(
        "calibrate",
        help="the threshold that sends a share of your own prompts strong",
        description="Find the win-rate threshold that sends a given share of your own prompts to "
        "the strong model.",
    )
    cal.add_argument(
        "--prompts",
        required=True,
        type=input_file,
        help="your prompts: a .jsonl file of objects with 'prompt', one a line; any other file "
        "is read as text, one prompt a line; or log:PATH (the routed calls of a routing log "
        "written with store_prompts=True)",
    )
    cal.add_argument(
        "--strong-share",
        type=share,
        required=True,
        help="share of your prompts to send to the strong model, in [0, 1] (e.g. 0.3)",
    )
    cal.add_argument(
        "--router",
        default=DEFAULT_ROUTER,
        help=f"bundled router name (default {DEFAULT_ROUTER}) or checkpoint folder (not "
        "random: its win rates are fresh draws, and --strong-share S routes it as is)",
    )
    cal.add_argument(
        "--json",
        action="store_true",
        help="print one JSON object (router, prompts, strong_share, threshold, achieved_share)",
    )
    cal.set_defaults(func=cmd_calibrate)

    from .serve.command import add_serve_parser
    from .train.command import add_train_parser
    from .train.judge import add_judge_parser

    add_train_parser(sub)
    add_judge_parser(sub)
    add_serve_parser(sub)
    from .report_command import add_report_parser

    add_report_parser(sub)

    dc = sub.add_parser(
        "decontaminate",
        help="flag training prompts that duplicate evaluation prompts",
        description="Flag the training prompts that duplicate an evaluation prompt, exactly or "
        "by embedding cosine similarity.",
    )
    dc.add_argument(
        "--train",
        required=True,
        type=plain_input_file,
        help="training prompts: JSONL with 'prompt' (and 'id'), or one per line",
    )
    dc.add_argument(
        "--eval", required=True, type=plain_input_file, help="evaluation prompts, same formats"
    )
    dc.add_argument(
        "--router",
        default=DEFAULT_ROUTER,
        help=f"router whose embedder measures similarity (default {DEFAULT_ROUTER}); one "
        "without an embedder (random, a bert or causal_llm checkpoint) is refused",
    )
    dc.add_argument(
        "--cosine",
        type=cosine,
        default=NEAR_DUPLICATE_COSINE,
        help="a training prompt whose embedding has at least this cosine similarity, in (0, 1], "
        f"to an evaluation prompt is flagged (default {NEAR_DUPLICATE_COSINE})",
    )
    dc.add_argument(
        "--json", action="store_true", help="print one JSON object (train, eval, flagged ids)"
    )
    dc.set_defaults(func=cmd_decontaminate)
    return parser


EXIT_BROKEN_PIPE = 141
"""Exit status when the reader of stdout went away (``routellm report | head``): 128 + SIGPIPE,
what a shell reports for a command that the pipe's closing ended."""


def main(argv: list[str] | None = None) -> int:
    """Run ``routellm ARGS`` (``argv``, default ``sys.argv[1:]``); returns the exit status: 0 done,
    2 a usage or input error (printed as ``routellm: error: ...``), 141 stdout closed early."""
    parser = build_parser()
    args = parser.parse_args(argv)
    # What was parsed, not sys.argv: recipes call main() in-process, and a checkpoint records the
    # command line that rebuilds it.
    args.command_line = list(sys.argv[1:] if argv is None else argv)
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        status = func(args)
        sys.stdout.flush()  # here, so that a closed pipe is caught below and not at exit
        return status
    except BrokenPipeError:
        # The reader left (e.g. `| head`): stop quietly. Later writes, including the
        # interpreter's last flush, go to /dev/null instead of raising again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        return EXIT_BROKEN_PIPE
    except IsADirectoryError as exc:  # a folder given where a file is read
        print(f"routellm: error: {exc.filename} is a folder, not a file", file=sys.stderr)
        return 2
    except (RouteLLMError, FileNotFoundError, ValueError) as exc:
        print(f"routellm: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
