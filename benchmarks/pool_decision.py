"""Pool decision latency and throughput: one decision among 11 priced candidates, one thread,
base install (no torch).

    python benchmarks/pool_decision.py [--data-dir ../shared/data] [--n 500] [--router pool_knn]

The router is the bundled ``pool_knn`` (a kNN over 5,923 stored prompts, k=160, on the bundled
static embedder) routing a pool of 11 of its models: LLMRouter's 9 at ``llmrouter/prices.json``
and gpt-4-0613 / gpt-3.5-turbo-0125 at OpenAI's list prices (USD per million tokens). Prompts
are real Chatbot Arena prompts (Arena-Hard questions), each made distinct so that every
decision embeds its text (a cold cache). Prints the p50/p99 of ``PoolEngine.decide`` and the
decisions per second of ``PoolEngine.decide_many`` over batches of 256 (embedding included).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(var, "1")  # one thread, as the targets are stated

import numpy as np  # noqa: E402

from routellm_base.pool import Pool, PoolEngine, load_pool_router  # noqa: E402

OPENAI_PRICES = {"gpt-4-0613": (30.0, 60.0), "gpt-3.5-turbo-0125": (0.5, 1.5)}
"""USD per million input/output tokens (OpenAI's list prices for these models)."""


def arena_prompts(data_dir: Path, n: int) -> list[str]:
    with open(data_dir / "arena_hard" / "questions.jsonl", encoding="utf-8") as handle:
        prompts = [json.loads(line)["prompt"] for line in handle]
    reps = -(-n // len(prompts))
    return [f"{p} [{i}]" for i in range(reps) for p in prompts][:n]


def build_parser() -> argparse.ArgumentParser:
    """The command line (every option with help text; a test checks it)."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--data-dir",
        default=os.environ.get("ROUTELLM_DATA_DIR", "../shared/data"),
        help="data folder (default: $ROUTELLM_DATA_DIR, else ../shared/data)",
    )
    parser.add_argument("--n", type=int, default=500, help="distinct prompts routed (default 500)")
    parser.add_argument(
        "--router", default="pool_knn", help="pool router name or folder (default pool_knn)"
    )
    return parser


def main() -> int:
    args = build_parser().parse_args()
    data_dir = Path(args.data_dir)
    raw = json.loads((data_dir / "llmrouter" / "prices.json").read_text())
    prices = {k: (v["input"], v["output"]) for k, v in raw.items() if not k.startswith("_")}
    prices.update(OPENAI_PRICES)
    router = load_pool_router(args.router)
    engine = PoolEngine(router, Pool(prices))
    prompts = arena_prompts(data_dir, args.n)
    engine.decide("warm-up")
    router.embedder._cache.clear()
    latencies = []
    for prompt in prompts:
        start = time.perf_counter()
        engine.decide(prompt)
        latencies.append(time.perf_counter() - start)
    # Batched: other distinct prompts, so each is embedded once here too (the no-known-tokens
    # check embeds and caches a batch; the router reads it back, as in use).
    fresh = [f"{p} (batched)" for p in prompts]
    start = time.perf_counter()
    for i in range(0, len(fresh), 256):
        engine.decide_many(fresh[i : i + 256], observe=False)
    batched = len(fresh) / (time.perf_counter() - start)
    ms = np.array(latencies) * 1000
    print(
        f"pool of {len(engine.pool)} candidates, router {router.name} ({router.family}, "
        f"{len(router.embeddings) if hasattr(router, 'embeddings') else '-'} stored prompts), "
        f"{len(prompts)} prompts, torch loaded: {'torch' in sys.modules}"
    )
    print(
        f"single decision: p50 {np.percentile(ms, 50):.3f} ms, p99 {np.percentile(ms, 99):.3f} ms"
    )
    print(f"batched (256 per call): {batched:,.0f} decisions/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
