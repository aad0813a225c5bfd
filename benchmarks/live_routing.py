"""What the live-operation features cost: a share window per decision, a router swap, a report.

    python benchmarks/live_routing.py [--data-dir ../shared/data] [--n 2000] [--window 1000]

* Decision latency of ``RoutingEngine.decide`` (bundled ``task_experts``, one thread, real
  Arena-Hard prompts made distinct) without and with ``share_window``, side by side, with the
  ratio: the window adds one sorted-list insert and removal per call.
* ``RouterChatModel.swap_router("mf")``: seconds to load the checkpoint and publish it (calls
  keep running meanwhile; this is the time until new calls use it).
* ``routellm report`` on a SQLite log of ``--n`` calls: seconds to build the report.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import tempfile
import time
from pathlib import Path

for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(var, "1")

import numpy as np  # noqa: E402

from routellm_base import RoutingEngine, load_router  # noqa: E402


def prompts(data_dir: Path, n: int) -> list[str]:
    lines = (data_dir / "arena_hard" / "questions.jsonl").read_text(encoding="utf-8").splitlines()
    base = [json.loads(line)["prompt"] for line in lines if line.strip()]
    return [f"{p} [{i}]" for i in range(-(-n // len(base))) for p in base][:n]


def decision_ms(engines: list[RoutingEngine], texts: list[str]) -> list[np.ndarray]:
    """Per-decision milliseconds of each engine. Every prompt goes to each engine, the first
    engine alternating from prompt to prompt: whichever runs second on a prompt finds parts of
    its work cached (e.g. tokenisation), and machine load drifts."""
    times: list[list[float]] = [[] for _ in engines]
    for engine in engines:
        engine.decide("warm-up")
    for i, text in enumerate(texts):
        order = list(zip(engines, times))
        for engine, out in order if i % 2 == 0 else order[::-1]:
            start = time.perf_counter()
            engine.decide(text)
            out.append(time.perf_counter() - start)
    return [np.array(t) * 1000 for t in times]


def window_take_us(size: int, n: int = 20000) -> float:
    """Microseconds of one ShareWindow.take (threshold, then one win rate in) on a full window."""
    from routellm_base.share_window import ShareWindow

    window = ShareWindow(size, 0.3, warmup=1)
    rates = np.random.default_rng(0).random(n)
    window.take(rates[:size], 0.5)
    start = time.perf_counter()
    for rate in rates:
        window.take((rate,), 0.5)
    return (time.perf_counter() - start) / n * 1e6


def build_parser() -> argparse.ArgumentParser:
    """The command line (every option with help text; a test checks it)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data-dir",
        default="../shared/data",
        help="the benchmark data folder (default %(default)s)",
    )
    parser.add_argument(
        "--n", type=int, default=2000, help="prompts routed, one at a time (default %(default)s)"
    )
    parser.add_argument(
        "--window",
        type=int,
        default=1000,
        help="share_window size, in calls (default %(default)s)",
    )
    return parser


def main() -> None:
    args = build_parser().parse_args()
    texts = prompts(Path(args.data_dir), args.n)
    router = load_router("task_experts")
    router.embedder.cache_size = 0  # every decision embeds its text, as distinct traffic does
    static, held = decision_ms(
        [
            RoutingEngine(router, strong_share=0.3),
            RoutingEngine(router, strong_share=0.3, share_window=args.window),
        ],
        texts,
    )
    print(f"decide, {args.n} prompts, one at a time (ms)   static   share_window={args.window}")
    for label, q in (("p50", 50), ("p99", 99)):
        a, b = np.percentile(static, q), np.percentile(held, q)
        print(f"  {label:<40} {a:8.3f} {b:10.3f}   ratio {b / a:.3f}")
    print(
        f"  {'mean':<40} {static.mean():8.3f} {held.mean():10.3f}   ratio {held.mean() / static.mean():.3f}"
    )
    print(
        f"ShareWindow.take on a full window of {args.window}: {window_take_us(args.window):.1f} us"
    )

    from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
    from langchain_core.messages import AIMessage

    from langchain_routellm import RouterChatModel

    def canned(text: str) -> GenericFakeChatModel:
        return GenericFakeChatModel(messages=itertools.cycle([AIMessage(text)]))

    llm = RouterChatModel(strong=canned("s"), weak=canned("w"), router=router, strong_share=0.3)
    llm.invoke("warm-up")
    start = time.perf_counter()
    llm.swap_router("mf")
    print(f"swap_router('mf'): {time.perf_counter() - start:.3f} s until new calls use it")

    from routellm_base.log import RoutingLog
    from routellm_base.log.report import build_report

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "log.db"
        log = RoutingLog(path)
        engine = RoutingEngine(router, strong_share=0.3)
        for text in texts:
            log.record(engine.decide(text, strong_model="gpt-4o", weak_model="gpt-4o-mini"),
                       conversation=text, strong_model="gpt-4o", weak_model="gpt-4o-mini",
                       checkpoint_id=engine.checkpoint_id, input_tokens=500, output_tokens=300)  # fmt: skip
        log.close(timeout=120)
        start = time.perf_counter()
        report = build_report(path)
        print(f"build_report on {report.calls} calls: {time.perf_counter() - start:.3f} s")


if __name__ == "__main__":
    main()
