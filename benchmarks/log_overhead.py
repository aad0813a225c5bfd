"""Write overhead of the routing log on a 10 ms call: RouterChatModel with and without ``log=``.

    python benchmarks/log_overhead.py [--calls 400] [--latency-ms 10]

Both sides are in-process chat models that sleep a fixed time and report usage, so all that
differs between the arms is the log: queueing each call (on the call's path) and the writer
thread's inserts (off it, but sharing the interpreter). Calls are interleaved (no log, SQLite
log, SQLite log with prompts, no log, ...) so machine noise hits every arm alike. Reported: the
median per-call time of each arm and its overhead as a share of the no-log call (target: under
2%), and the log's own counters (every call written, none dropped or failed).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")

from langchain_core.language_models import BaseChatModel  # noqa: E402
from langchain_core.messages import AIMessage, BaseMessage  # noqa: E402
from langchain_core.outputs import ChatGeneration, ChatResult  # noqa: E402

from langchain_routellm import RouterChatModel  # noqa: E402
from routellm_base import RandomRouter  # noqa: E402
from routellm_base.log import RoutingLog  # noqa: E402

PROMPTS = [f"Explain topic number {i} in two sentences." for i in range(50)]


class SleepyChatModel(BaseChatModel):
    """A chat model with a fixed latency that reports usage as provider APIs do."""

    latency_s: float = 0.01
    model_name: str = "sleepy"

    @property
    def _llm_type(self) -> str:
        return "sleepy"

    def _generate(
        self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None, **kwargs: Any
    ) -> ChatResult:
        time.sleep(self.latency_s)
        usage = {"input_tokens": 12, "output_tokens": 1, "total_tokens": 13}
        message = AIMessage(content="ok", usage_metadata=usage)  # type: ignore[arg-type]
        return ChatResult(generations=[ChatGeneration(message=message)])


def build_parser() -> argparse.ArgumentParser:
    """The command line (every option with help text; a test checks it)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--calls", type=int, default=400, help="interleaved calls per arm (default %(default)s)"
    )
    parser.add_argument(
        "--latency-ms",
        type=float,
        default=10.0,
        help="the fake models' latency per call, in milliseconds (default %(default)s)",
    )
    return parser


def main() -> None:
    args = build_parser().parse_args()
    latency = args.latency_ms / 1000

    def model(log: Any) -> RouterChatModel:
        return RouterChatModel(
            strong=SleepyChatModel(latency_s=latency, model_name="gpt-4o"),
            weak=SleepyChatModel(latency_s=latency, model_name="gpt-4o-mini"),
            router=RandomRouter(seed=0),
            log=log,
        )

    with tempfile.TemporaryDirectory() as folder:
        logs = {
            "SQLite log": RoutingLog(Path(folder) / "hashed.db"),
            "SQLite log, store_prompts": RoutingLog(
                Path(folder) / "prompts.db", store_prompts=True
            ),
        }
        arms = {"no log": model(None), **{name: model(log) for name, log in logs.items()}}
        times: dict[str, list[float]] = {name: [] for name in arms}
        for llm in arms.values():  # warm-up: engine, tokenizer, schema creation
            llm.invoke("warm up")
        for log in logs.values():
            log.flush()
        for i in range(args.calls):
            for name, llm in arms.items():
                start = time.perf_counter()
                llm.invoke(PROMPTS[i % len(PROMPTS)])
                times[name].append(time.perf_counter() - start)
        for log in logs.values():
            log.close()

    base = statistics.median(times["no log"])
    print(f"{args.calls} calls per arm, model latency {args.latency_ms:g} ms, interleaved")
    print(f"{'arm':<28}{'median ms':>10}{'overhead':>11}  log counters")
    for name, values in times.items():
        median = statistics.median(values)
        line = f"{name:<28}{median * 1000:>10.3f}{(median - base) / base:>+11.2%}"
        if name in logs:
            s = logs[name].stats()
            line += f"  written {s.written}, dropped {s.dropped}, failed {s.failed}"
        print(line)
    print("target: overhead under 2% of the no-log call")


if __name__ == "__main__":
    main()
