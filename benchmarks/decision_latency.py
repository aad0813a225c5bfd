"""Routing decision latency and throughput per router x embedder, on one thread.

    python benchmarks/decision_latency.py [--data-dir ../shared/data] [--n 500] [--with-minilm]

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
    router.embedder.cache_size = 0
    engine = RoutingEngine(router, threshold=0.5)
    engine.decide("warm-up")
    latencies = []
    for prompt in prompts:
        start = time.perf_counter()
        engine.decide(prompt)
        latencies.append(time.perf_counter() - start)
    start = time.perf_counter()
    for i in range(0, len(prompts), 256):
        router.strong_win_rate(prompts[i : i + 256])
    batched = len(prompts) / (time.perf_counter() - start)
    ms = np.array(latencies) * 1000
    return {"router": label, "p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99)),
            "single_per_s": float(1000 / ms.mean()), "batched_per_s": batched}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data-dir", default="../shared/data")
    parser.add_argument("--n", type=int, default=500)
    parser.add_argument("--with-minilm", action="store_true", help="also MF on the torch MiniLM encoder (needs [train])")
    parser.add_argument("--minilm-checkpoint", default=None, help="an MF checkpoint trained on sentence_transformer embeddings")
    args = parser.parse_args()
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:
        pass
    prompts = arena_prompts(Path(args.data_dir), args.n)
    rows = [measure("mf / static minilm-l6-256 (default)", load_router("mf"), prompts)]
    if args.minilm_checkpoint:
        rows.append(measure("mf / MiniLM-L6 encoder (torch)", load_router(args.minilm_checkpoint), prompts[: max(100, args.n // 5)]))
    print(f"{'router / embedder':<40} {'p50 ms':>8} {'p99 ms':>8} {'1-by-1 /s':>10} {'batched /s':>11}")
    for r in rows:
        print(f"{r['router']:<40} {r['p50_ms']:>8.3f} {r['p99_ms']:>8.3f} {r['single_per_s']:>10.0f} {r['batched_per_s']:>11.0f}")


if __name__ == "__main__":
    main()
