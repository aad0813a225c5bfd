"""Overhead of RouterChatModel.invoke and RouterLLM.chat over calling the chosen model directly.

    python benchmarks/integration_overhead.py [--calls 300] [--latency-ms 10]

Both sides are in-process models that sleep a fixed time and return a fixed answer, so all that
differs between "direct" and "routed" is our code. Calls are interleaved (direct, routed, direct,
...) so machine noise hits both alike. Reported: median per-call time of each, the overhead, the
part of it spent in the routing decision (RoutingEngine.decide alone), and the rest, the
integration's own cost, as a share of the model call. The LangChain models report token usage as
provider APIs do; the "(no usage)" row shows the extra cost of counting tokens ourselves
(cl100k) for models that report none.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")

from langchain_core.language_models import BaseChatModel  # noqa: E402
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage  # noqa: E402
from langchain_core.outputs import ChatGeneration, ChatResult  # noqa: E402

from routellm_base import RoutingEngine  # noqa: E402

PROMPTS = [f"Explain topic number {i} in two sentences." for i in range(50)]


class SleepyChatModel(BaseChatModel):
    """A LangChain chat model with a fixed latency."""

    latency_s: float = 0.01
    model_name: str = "sleepy"
    report_usage: bool = True
    """Report token usage like provider APIs do; without it our cost tracker counts tokens itself."""

    @property
    def _llm_type(self) -> str:
        return "sleepy"

    def _generate(
        self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None, **kwargs: Any
    ) -> ChatResult:
        time.sleep(self.latency_s)
        usage = (
            {"input_tokens": 12, "output_tokens": 1, "total_tokens": 13}
            if self.report_usage
            else None
        )
        return ChatResult(
            generations=[ChatGeneration(message=AIMessage(content="ok", usage_metadata=usage))]
        )


def sleepy_llamaindex_llm(latency_s: float) -> Any:
    from llama_index.core.base.llms.types import CompletionResponse, LLMMetadata
    from llama_index.core.llms import CustomLLM
    from llama_index.core.llms.callbacks import llm_completion_callback

    class SleepyLLM(CustomLLM):
        @property
        def metadata(self) -> LLMMetadata:
            return LLMMetadata(model_name="sleepy", is_chat_model=False)

        @llm_completion_callback()
        def complete(
            self, prompt: str, formatted: bool = False, **kwargs: Any
        ) -> CompletionResponse:
            time.sleep(latency_s)
            return CompletionResponse(text="ok")

        @llm_completion_callback()
        def stream_complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> Any:
            raise NotImplementedError

    return SleepyLLM()


def timed(fn: Any, prompt: str) -> float:
    start = time.perf_counter()
    fn(prompt)
    return time.perf_counter() - start


def compare(
    label: str, direct: Any, routed: Any, decide: Any, calls: int, latency_ms: float
) -> None:
    for i in range(5):  # warm-up: engine load, caches
        direct(PROMPTS[i]), routed(PROMPTS[i]), decide(PROMPTS[i])
    d, r, e = [], [], []
    for i in range(calls):
        prompt = PROMPTS[i % len(PROMPTS)]
        d.append(timed(direct, prompt))
        r.append(timed(routed, prompt))
        e.append(timed(decide, prompt))
    md, mr, me = (statistics.median(x) * 1000 for x in (d, r, e))
    beyond = mr - md - me
    print(
        f"{label:<34} {md:>9.3f} {mr:>9.3f} {mr / md:>7.3f} {me:>10.3f} {beyond:>12.3f} {beyond / latency_ms * 100:>9.2f}%"
    )


def build_parser() -> argparse.ArgumentParser:
    """The command line (every option with help text; a test checks it)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--calls", type=int, default=300, help="interleaved calls per arm (default %(default)s)"
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
    engine = RoutingEngine("mf", threshold=0.5)

    def decide(prompt: str) -> Any:
        return engine.decide(prompt)

    print(f"model latency {args.latency_ms} ms, {args.calls} interleaved calls each, medians in ms")
    print(
        f"{'integration':<34} {'direct':>9} {'routed':>9} {'ratio':>7} {'decision':>10} {'integration':>12} {'of call':>10}"
    )

    from langchain_routellm import RouterChatModel

    for usage in (True, False):
        lc_side = SleepyChatModel(latency_s=latency, report_usage=usage)
        lc_router = RouterChatModel(
            strong=SleepyChatModel(latency_s=latency, report_usage=usage),
            weak=SleepyChatModel(latency_s=latency, report_usage=usage),
            router=engine.router,
            threshold=0.5,
        )
        compare(
            "RouterChatModel.invoke" + ("" if usage else " (no usage)"),
            lambda p, m=lc_side: m.invoke([HumanMessage(p)]),
            lambda p, m=lc_router: m.invoke([HumanMessage(p)]),
            decide,
            args.calls,
            args.latency_ms,
        )
    try:
        from llama_index.core.llms import ChatMessage

        from llamaindex_routellm import RouterLLM
    except ImportError:
        print("RouterLLM.chat: skipped (pip install 'langchain-routellm[llamaindex]')")
        return
    li_side = sleepy_llamaindex_llm(latency)
    li_router = RouterLLM(
        strong=sleepy_llamaindex_llm(latency),
        weak=sleepy_llamaindex_llm(latency),
        router=engine.router,
        threshold=0.5,
    )
    compare(
        "RouterLLM.chat",
        lambda p: li_side.chat([ChatMessage(role="user", content=p)]),
        lambda p: li_router.chat([ChatMessage(role="user", content=p)]),
        decide,
        args.calls,
        args.latency_ms,
    )


if __name__ == "__main__":
    main()
