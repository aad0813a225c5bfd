"""Routing decision latency and throughput per router x embedder, on one thread.

    python benchmarks/decision_latency.py [--data-dir ../shared/data] [--n 500] [--minilm-checkpoint DIR]

Prompts are real Chatbot Arena prompts (Arena-Hard questions). Each prompt is routed once with
a cold embedding cache (the cache would otherwise make repeated prompts free): single-prompt
p50/p99 latency of RoutingEngine.decide, then batched decisions per second via
Router.strong_win_rate over batches of 256.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(var, "1")  # one thread, as the targets are stated

import numpy as np  # noqa: E402

from routellm_base import RoutingEngine, load_router  # noqa: E402


def arena_prompts(data_dir: Path, n: int) -> list[str]:
    with open(data_dir / "arena_hard" / "questions.jsonl", encoding="utf-8") as handle:
        prompts = [json.loads(line)["prompt"] for line in handle]
    reps = -(-n // len(prompts))
    # Suffix repeats so that every routed text is distinct and misses the cache.
    return [f"{p} [{i}]" for i in range(reps) for p in prompts][:n]


def measure(label: str, router, prompts: list[str]) -> dict[str, float]:
    # One at a time: the embedding cache stays on, as in use. Every prompt is distinct, so each
    # decision embeds its text once (the no-known-tokens check stores it, the router reads it back).
    router.embedder._cache.clear()
    engine = RoutingEngine(router, threshold=0.5)
    engine.decide("warm-up")
    latencies = []
    for prompt in prompts:
        start = time.perf_counter()
        engine.decide(prompt)
        latencies.append(time.perf_counter() - start)
    cache_size, router.embedder.cache_size = router.embedder.cache_size, 0
    start = time.perf_counter()  # batched: these texts were embedded above; embed them anew
    for i in range(0, len(prompts), 256):
        router.strong_win_rate(prompts[i : i + 256])
    batched = len(prompts) / (time.perf_counter() - start)
    router.embedder.cache_size = cache_size  # routers loaded by name share one embedder
    ms = np.array(latencies) * 1000
    return {
        "router": label,
        "p50_ms": float(np.percentile(ms, 50)),
        "p99_ms": float(np.percentile(ms, 99)),
        "single_per_s": float(1000 / ms.mean()),
        "batched_per_s": batched,
    }


def sw_ranking_router(data_dir: Path, max_prompts: int):
    """An SW ranking router over golden-label battles of MMLU, GSM8K and LLMRouter (train)."""
    from routellm_base.data import GPT4, MIXTRAL, load_gsm8k, load_llmrouter, load_mmlu
    from routellm_base.embedders import load_embedder
    from routellm_base.routers import SWRankingRouter
    from routellm_base.train.battles import battles_from_scores
    from routellm_base.train.sw_ranking import sw_ranking_tensors

    rows = (load_mmlu(data_dir) + load_gsm8k(data_dir) + load_llmrouter(data_dir))[:max_prompts]
    models = sorted({m for r in rows for m in r.scores})
    battles = battles_from_scores(rows, models=models)
    embedder = load_embedder("minilm-l6-static-256")
    tensors = sw_ranking_tensors(battles, embedder.embed(battles.prompts))
    label = f"sw_ranking / static ({len(battles.prompts)} prompts, {len(battles)} battles)"
    return label, SWRankingRouter(label, tensors, models, GPT4, MIXTRAL, embedder=embedder)


def build_parser() -> argparse.ArgumentParser:
    """The command line (every option with help text; a test checks it)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data-dir",
        default="../shared/data",
        help="the benchmark data folder (default %(default)s)",
    )
    parser.add_argument(
        "--n",
        type=int,
        default=500,
        help="Chatbot Arena prompts timed, one decision each (default %(default)s)",
    )
    parser.add_argument(
        "--minilm-checkpoint",
        default=None,
        help="an MF checkpoint trained on sentence_transformer embeddings (default: none, its row skipped)",
    )
    parser.add_argument(
        "--sw-prompts",
        type=int,
        default=20000,
        help="battle prompts in the SW ranking index (0: skip; default %(default)s)",
    )
    return parser


def main() -> None:
    args = build_parser().parse_args()
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:
        pass
    prompts = arena_prompts(Path(args.data_dir), args.n)
    rows = [
        measure("mf / static minilm-l6-256", load_router("mf"), prompts),
        measure(
            "task_experts / static minilm-l6-256 (default)", load_router("task_experts"), prompts
        ),
    ]
    if args.sw_prompts:
        label, sw = sw_ranking_router(Path(args.data_dir), args.sw_prompts)
        rows.append(measure(label, sw, prompts))
    if args.minilm_checkpoint:
        rows.append(
            measure(
                "mf / MiniLM-L6 encoder (torch)",
                load_router(args.minilm_checkpoint),
                prompts[: max(100, args.n // 5)],
            )
        )
    print(
        f"{'router / embedder':<58} {'p50 ms':>8} {'p99 ms':>8} {'1-by-1 /s':>10} {'batched /s':>11}"
    )
    for r in rows:
        print(
            f"{r['router']:<58} {r['p50_ms']:>8.3f} {r['p99_ms']:>8.3f} {r['single_per_s']:>10.0f} {r['batched_per_s']:>11.0f}"
        )


if __name__ == "__main__":
    main()
