"""Judge labels of the routed pair from AlpacaEval: does a chat expert trained on its GPT-4-turbo
verdicts of GPT-4-1106 vs a concise-prompted Mixtral route MT Bench and RMB? (docs/results.md,
"Judge labels of the routed pair from AlpacaEval").

    python scripts/chat_judge_transfer.py --data-dir ../shared/data --work runs/chat-judge-transfer --seeds 0 1

For each seed, ``routellm train bert`` (as the ``chat_gated`` chat expert is trained: 3 epochs at
most with early stopping, 128 tokens, head cut) learns from AlpacaEval's 805 prompts, one
pairwise verdict each of ``gpt4_1106_preview`` against ``Mixtral-8x7B-Instruct-v0.1_concise``
(preference above 1.5: Mixtral's answer preferred), both mapped to RouteLLM's names. The 1,237
RMB prompts with a top-vs-mid battle and every MT Bench turn are excluded from training (exact
and near-duplicate, as ``--exclude`` does). The expert then scores MT Bench (72 questions, GPT-4
single-answer grades of GPT-4-1106 and the plain Mixtral) and those RMB prompts (none trained on,
so no cross-fitting is needed), and its win rates' Spearman correlation with prompt length
(characters) and, on MT Bench, with the strong-minus-weak grade gap. About 4 minutes a seed on 2
CPU cores. AlpacaEval's judgments are CC BY-NC 4.0.
"""

import argparse
import csv
import json
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

from routellm_base.checkpoints import load_router
from routellm_base.cli import main as cli_main
from routellm_base.data import GPT4, MIXTRAL, load_mt_bench, load_rmb_pairs, rmb_tier_scores
from routellm_base.data.rmb import TOP_TIER
from routellm_base.evals import load_benchmark, quality_curve, random_baseline

ALPACA_STRONG, ALPACA_WEAK = "gpt4_1106_preview", "Mixtral-8x7B-Instruct-v0.1_concise"


def build_parser() -> argparse.ArgumentParser:
    """The script's command line (built without running it)."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--data-dir", default="../shared/data", help="benchmark data folder (default: %(default)s)"
    )
    parser.add_argument(
        "--work", required=True, help="keeps the training files and each seed's expert"
    )
    parser.add_argument(
        "--seeds",
        type=int,
        nargs="+",
        default=[0, 1],
        help="one chat expert trained per seed (default: %(default)s)",
    )
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    data, work = Path(args.data_dir), Path(args.work)
    work.mkdir(parents=True, exist_ok=True)

    judgments = work / "alpaca_gpt4_1106_vs_mixtral.csv"
    with open(data / "alpaca_eval" / "judgments.csv", encoding="utf-8", newline="") as source:
        rows = [
            r
            for r in csv.DictReader(source)
            if (r["model_1"], r["model_2"]) == (ALPACA_STRONG, ALPACA_WEAK)
        ]
    with open(judgments, "w", encoding="utf-8", newline="") as out:
        writer = csv.DictWriter(out, fieldnames=["prompt_id", "model_1", "model_2", "preference"])
        writer.writeheader()
        writer.writerows(rows)
    strong_preferred = np.mean([float(r["preference"]) < 1.5 for r in rows])

    rmb = rmb_tier_scores(load_rmb_pairs(args.data_dir))
    mt = load_benchmark("mt-bench", args.data_dir)
    exclude = work / "evaluation_prompts.jsonl"
    held_out = [r.prompt for r in rmb] + [
        t for r in load_mt_bench(args.data_dir) for t in r.extra["turns"]
    ]
    exclude.write_text(
        "".join(json.dumps({"prompt": t}) + "\n" for t in held_out), encoding="utf-8"
    )

    share = np.array([r.scores[TOP_TIER] for r in rmb])
    mt_band, rmb_band = random_baseline(mt.strong, mt.weak)[1], random_baseline(share, 1 - share)[1]
    print(f"AlpacaEval verdicts: {len(rows)}, GPT-4-1106 preferred in {strong_preferred:.0%}")
    print(
        f"| chat expert trained on AlpacaEval's verdicts | MT Bench ({len(mt.prompts)}; ±{mt_band:.3f}) | "
        f"RMB, {len(rmb):,} prompts (±{rmb_band:.3f}) | Spearman with length, MT Bench / RMB | "
        "Spearman with MT Bench's grade gap |"
    )
    print("| --- | --- | --- | --- | --- |")
    for seed in args.seeds:
        out = work / f"expert-s{seed}"
        if not (out / "config.json").exists():
            argv = [
                "train", "bert", "--data", f"alpaca:{judgments},{data / 'alpaca_eval' / 'prompts.jsonl'}",
                "--model-map", f"{ALPACA_STRONG}={GPT4}", "--model-map", f"{ALPACA_WEAK}={MIXTRAL}",
                "--strong", GPT4, "--weak", MIXTRAL, "--exclude", str(exclude),
                "--calibration-prompts", str(data / "arena_hard" / "questions.jsonl"),
                "--data-licence", "CC BY-NC 4.0 (AlpacaEval judgments)", "--epochs", "3", "--max-length", "128",
                "--seed", str(seed), "--no-progress", "--out", str(out),
            ]  # fmt: skip
            if cli_main(argv) != 0:
                raise SystemExit(f"training seed {seed} failed")
        router = load_router(out)
        mt_rates, rmb_rates = (
            router.strong_win_rate(mt.prompts),
            router.strong_win_rate([r.prompt for r in rmb]),
        )
        on_mt = quality_curve(mt_rates, mt.strong, mt.weak).apgr()
        on_rmb = quality_curve(rmb_rates, share, 1 - share).apgr()
        length_mt = spearmanr(mt_rates, [len(p) for p in mt.prompts]).statistic
        length_rmb = spearmanr(rmb_rates, [len(r.prompt) for r in rmb]).statistic
        gap = spearmanr(mt_rates, np.asarray(mt.strong) - np.asarray(mt.weak)).statistic
        print(
            f"| seed {seed} | {on_mt:.3f} | {on_rmb:.3f} | {length_mt:+.2f} / {length_rmb:+.2f} | {gap:+.2f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
