"""RouterChatModel: fallback to the other side, concurrent calls on one instance, bad input."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pytest
from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    HumanMessage,
)
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.tools import tool
from lc_helpers import RunRecorder, ScriptedChatModel, scripted, usage
from pydantic import ValidationError
from routing_prompts import PROMPTS

from langchain_routellm import RouteLLMCostCallbackHandler, RouterChatModel
from routellm_base import Router
from routellm_base.errors import InvalidPolicyError, RoutingInputError, UnknownRouterError

# -- helpers ------------------------------------------------------------------------------------


class FixedRouter(Router):
    """Always the same win rate: 0.9 routes strong, 0.1 weak (threshold 0.5)."""

    family = "fixed"

    def __init__(self, win_rate: float) -> None:
        super().__init__("fixed")
        self.win_rate = win_rate

    def _win_rate(self, texts: list[str]) -> np.ndarray:
        return np.full(len(texts), self.win_rate)


class FailingChatModel(ScriptedChatModel):
    """Raises ``RuntimeError(message)``; streams ``chunks_before_error`` chunks first."""

    message: str = "boom"
    chunks_before_error: int = 0

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        self.calls.append({"messages": messages, **kwargs})
        raise RuntimeError(self.message)

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        self.calls.append({"messages": messages, "streamed": True, **kwargs})
        for i in range(self.chunks_before_error):
            yield ChatGenerationChunk(message=AIMessageChunk(content=f"partial{i} "))
        raise RuntimeError(self.message)


def failing(name: str, message: str = "boom", chunks_before_error: int = 0) -> FailingChatModel:
    return FailingChatModel(
        model_name=name, message=message, chunks_before_error=chunks_before_error
    )


def router(
    strong: BaseChatModel, weak: BaseChatModel, *, goes: str = "strong", **kw: Any
) -> RouterChatModel:
    win_rate = 0.9 if goes == "strong" else 0.1
    return RouterChatModel(
        strong=strong, weak=weak, router=FixedRouter(win_rate), threshold=0.5, **kw
    )


class ErrorRecorder(RunRecorder):
    """RunRecorder that also records which runs errored."""

    def __init__(self) -> None:
        super().__init__()
        self.errors: dict[Any, BaseException] = {}

    def on_llm_error(self, error: BaseException, *, run_id: Any, **kwargs: Any) -> None:
        self.errors[run_id] = error


def assert_fell_back_to_weak(record: dict[str, Any], *, forced: bool = False) -> None:
    assert record["side"] == "weak"
    assert record["model"] == "weak-model"
    assert record["fallback_from"] == "strong"
    assert record["fallback_reason"] == "RuntimeError: boom"
    assert record["forced"] is forced


# -- fallback: invoke / batch -------------------------------------------------------------------


def test_fallback_is_off_by_default_and_the_error_propagates() -> None:
    strong, weak = failing("strong-model"), scripted("weak-model", "weak answer")
    llm = router(strong, weak)
    assert llm.fallback is False
    with pytest.raises(RuntimeError, match="boom"):
        llm.invoke("hello")
    with pytest.raises(RuntimeError, match="boom"):
        list(llm.stream("hello"))
    assert weak.calls == []
    assert llm.cost_report().calls == 0


def _run(llm: RouterChatModel, how: str, prompt: str) -> AIMessage:
    if how == "invoke":
        return llm.invoke(prompt)
    if how == "ainvoke":
        return asyncio.run(llm.ainvoke(prompt))
    if how == "batch":
        return llm.batch([prompt])[0]
    if how == "abatch":
        return asyncio.run(llm.abatch([prompt]))[0]
    raise AssertionError(how)


@pytest.mark.parametrize("how", ["invoke", "ainvoke", "batch", "abatch"])
def test_fallback_answers_from_the_other_side(how: str) -> None:
    strong = failing("strong-model")
    weak = scripted("weak-model", "weak answer", in_tokens=7, out_tokens=3)
    llm = router(strong, weak, fallback=True)
    message = _run(llm, how, "hello")
    assert message.content == "weak answer"
    assert_fell_back_to_weak(message.response_metadata["routellm"])
    assert message.response_metadata["model_name"] == "weak-model"
    assert message.usage_metadata == usage(7, 3)
    assert len(strong.calls) == 1 and len(weak.calls) == 1
    # Costs count the side that answered, once.
    report = llm.cost_report()
    assert (report.strong.calls, report.weak.calls) == (0, 1)
    assert (report.weak.input_tokens, report.weak.output_tokens) == (7, 3)
    assert report.weak.models == {"weak-model": 1}


def test_fallback_from_weak_to_strong() -> None:
    strong = scripted("strong-model", "strong answer")
    weak = failing("weak-model", message="rate limited")
    llm = router(strong, weak, goes="weak", fallback=True)
    record = llm.invoke("hi").response_metadata["routellm"]
    assert (record["side"], record["model"]) == ("strong", "strong-model")
    assert record["fallback_from"] == "weak"
    assert record["fallback_reason"] == "RuntimeError: rate limited"
    assert record["win_rate"] == pytest.approx(0.1)  # the router's estimate is kept


@pytest.mark.parametrize("how", ["invoke", "ainvoke", "stream", "astream"])
def test_both_sides_failing_raise_the_second_error_from_the_first(how: str) -> None:
    llm = router(failing("strong-model", "boom"), failing("weak-model", "bang"), fallback=True)
    with pytest.raises(RuntimeError, match="bang") as info:
        if how == "invoke":
            llm.invoke("hello")
        elif how == "ainvoke":
            asyncio.run(llm.ainvoke("hello"))
        elif how == "stream":
            list(llm.stream("hello"))
        else:

            async def consume() -> None:
                async for _ in llm.astream("hello"):
                    pass

            asyncio.run(consume())
    cause = info.value.__cause__
    assert isinstance(cause, RuntimeError) and str(cause) == "boom"


def test_a_forced_side_falls_back_too() -> None:
    strong, weak = failing("strong-model"), scripted("weak-model", "weak answer")
    llm = router(strong, weak, goes="weak", fallback=True)
    message = llm.invoke("hello", routellm_force="strong")
    assert message.content == "weak answer"
    assert_fell_back_to_weak(message.response_metadata["routellm"], forced=True)
    # ...and from a chain's config metadata.
    message = llm.invoke("hello", {"metadata": {"routellm_force": "strong"}})
    assert_fell_back_to_weak(message.response_metadata["routellm"], forced=True)


class HangingChatModel(ScriptedChatModel):
    """Its async call never returns (until cancelled)."""

    async def _agenerate(
        self, messages: list[BaseMessage], *args: Any, **kwargs: Any
    ) -> ChatResult:
        self.calls.append({"messages": messages})
        await asyncio.Event().wait()
        raise AssertionError("unreachable")


def test_cancellation_and_keyboard_interrupt_never_fall_back() -> None:
    strong, weak = HangingChatModel(model_name="strong-model"), scripted("weak-model", "weak")
    llm = router(strong, weak, fallback=True)

    async def cancel_while_calling() -> None:
        task = asyncio.create_task(llm.ainvoke("hello"))
        while not strong.calls:
            await asyncio.sleep(0.001)
        task.cancel()
        await task

    with pytest.raises(asyncio.CancelledError):
        asyncio.run(cancel_while_calling())

    class Interrupted(ScriptedChatModel):
        def _generate(self, *args: Any, **kwargs: Any) -> ChatResult:
            raise KeyboardInterrupt

    llm = router(Interrupted(model_name="strong-model"), weak, fallback=True)
    with pytest.raises(KeyboardInterrupt):
        llm.invoke("hello")
    assert weak.calls == []


def test_invoke_with_streaming_follows_the_stream_rule() -> None:
    # With streaming=True invoke streams (each chunk reaches streaming handlers as it comes), so a
    # failure before the first chunk falls back and one after it is raised.
    weak = scripted("weak-model", "weak full answer")
    llm = router(failing("strong-model"), weak, fallback=True, streaming=True)
    message = llm.invoke("hello")
    assert message.content == "weak full answer"
    assert_fell_back_to_weak(message.response_metadata["routellm"])
    late = router(
        failing("strong-model", chunks_before_error=2), weak, fallback=True, streaming=True
    )
    with pytest.raises(RuntimeError, match="boom"):
        late.invoke("hello")
    # Its chunks were streamed (and billed): the call is accounted as a broken stream.
    report = late.cost_report()
    assert report.calls == 1 and report.strong.calls == 1


def test_tools_bound_copies_fall_back_to_the_other_sides_bound_model() -> None:
    @tool
    def add(a: int, b: int) -> int:
        """Add two integers."""
        return a + b

    strong, weak = failing("strong-model"), scripted("weak-model", "weak answer")
    bound = router(strong, weak, fallback=True).bind_tools([add])
    message = bound.invoke("add 2 and 3")
    assert_fell_back_to_weak(message.response_metadata["routellm"])
    assert [t["function"]["name"] for t in weak.calls[0]["tools"]] == ["add"]
    assert [t["function"]["name"] for t in strong.calls[0]["tools"]] == ["add"]


# -- fallback: stream / astream ----------------------------------------------------------------


def test_stream_falls_back_when_the_chosen_side_fails_before_its_first_chunk() -> None:
    strong = failing("strong-model")
    weak = scripted("weak-model", "weak streamed answer", in_tokens=4, out_tokens=2)
    llm = router(strong, weak, fallback=True)
    chunks = list(llm.stream("hello"))
    assert "".join(str(c.content) for c in chunks) == "weak streamed answer"
    assert_fell_back_to_weak(chunks[0].response_metadata["routellm"])
    total = chunks[0]
    for c in chunks[1:]:
        total = total + c
    assert total.usage_metadata == usage(4, 2)
    report = llm.cost_report()
    assert (report.strong.calls, report.weak.calls) == (0, 1)
    assert report.weak.input_tokens == 4


def test_astream_falls_back_when_the_chosen_side_fails_before_its_first_chunk() -> None:
    llm = router(failing("strong-model"), scripted("weak-model", "weak answer"), fallback=True)

    async def collect() -> list[AIMessageChunk]:
        return [c async for c in llm.astream("hello")]

    chunks = asyncio.run(collect())
    assert "".join(str(c.content) for c in chunks) == "weak answer"
    assert_fell_back_to_weak(chunks[0].response_metadata["routellm"])


@pytest.mark.parametrize("is_async", [False, True])
def test_stream_reraises_when_the_chosen_side_fails_after_its_first_chunk(is_async: bool) -> None:
    strong = failing("strong-model", chunks_before_error=1)
    weak = scripted("weak-model", "weak answer")
    llm = router(strong, weak, fallback=True)
    received: list[AIMessageChunk] = []

    async def consume() -> None:
        async for chunk in llm.astream("hello"):
            received.append(chunk)

    with pytest.raises(RuntimeError, match="boom") as info:
        if is_async:
            asyncio.run(consume())
        else:
            for chunk in llm.stream("hello"):
                received.append(chunk)
    assert info.value.__cause__ is None
    assert [c.content for c in received] == ["partial0 "]
    assert received[0].response_metadata["routellm"]["side"] == "strong"
    assert received[0].response_metadata["routellm"]["fallback_from"] is None
    assert weak.calls == []
    # What the strong side streamed before it failed is accounted to it (a broken stream).
    report = llm.cost_report()
    assert report.calls == report.strong.calls == 1


# -- fallback: runs and cost handler ------------------------------------------------------------


@pytest.mark.parametrize("how", ["invoke", "stream", "ainvoke"])
def test_a_fallback_is_one_run_that_names_the_failed_side(how: str) -> None:
    recorder = ErrorRecorder()
    costs = RouteLLMCostCallbackHandler()
    llm = router(failing("strong-model"), scripted("weak-model", "weak answer"), fallback=True)
    config: Any = {"callbacks": [recorder, costs]}
    if how == "invoke":
        llm.invoke("hello", config)
    elif how == "ainvoke":
        asyncio.run(llm.ainvoke("hello", config))
    else:
        list(llm.stream("hello", config))
    (run,) = recorder.starts
    assert recorder.errors == {}
    answer = recorder.ends[run["run_id"]].generations[0][0].message
    assert_fell_back_to_weak(answer.response_metadata["routellm"])
    assert answer.usage_metadata == usage(10, 5)
    report = costs.report()
    assert (report.strong.calls, report.weak.calls) == (0, 1)
    assert report.weak.input_tokens == 10 and report.weak.output_tokens == 5


# -- concurrency ----------------------------------------------------------------------------------


class EchoChatModel(BaseChatModel):
    """Stateless and thread-safe: answers ``"<name>: <prompt>"``; usage depends on the prompt.

    With a ``barrier``, every call waits there, so a test can hold many calls in flight at once.
    """

    model_name: str
    barrier: Any = None

    @property
    def _llm_type(self) -> str:
        return "echo"

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        if self.barrier is not None:
            self.barrier.wait(timeout=30)
        prompt = messages[-1].text
        reply = AIMessage(
            content=f"{self.model_name}: {prompt}",
            usage_metadata=usage(len(prompt), len(prompt) % 7 + 1),  # type: ignore[arg-type]
        )
        return ChatResult(generations=[ChatGeneration(message=reply)])


def _mf_router(barrier: threading.Barrier | None = None) -> RouterChatModel:
    return RouterChatModel(
        strong=EchoChatModel(model_name="strong-echo", barrier=barrier),
        weak=EchoChatModel(model_name="weak-echo", barrier=barrier),
        router="mf",
        strong_share=0.5,
    )


def _key(message: AIMessage) -> tuple[str, float]:
    record = message.response_metadata["routellm"]
    assert str(message.content).startswith(f"{record['model']}: ")  # answered by the routed side
    return record["side"], record["win_rate"]


def _cost_totals(llm: RouterChatModel) -> dict[str, Any]:
    report = llm.cost_report()
    return {
        side: (t.calls, t.input_tokens, t.output_tokens, round(t.cost, 12), dict(t.models))
        for side, t in (("strong", report.strong), ("weak", report.weak))
    }


@pytest.fixture(scope="module")
def sequential() -> tuple[list[tuple[str, float]], dict[str, Any]]:
    llm = _mf_router()
    keys = [_key(llm.invoke(p)) for p in PROMPTS]
    sides = {side for side, _ in keys}
    assert sides == {"strong", "weak"}, "the prompts should split between the sides"
    return keys, _cost_totals(llm)


def test_64_threads_on_one_instance_route_as_sequential_calls(
    sequential: tuple[list[tuple[str, float]], dict[str, Any]],
) -> None:
    # All 64 calls wait for each other inside the models: 64 in flight on one instance.
    llm = _mf_router(threading.Barrier(len(PROMPTS)))
    with ThreadPoolExecutor(max_workers=64) as pool:
        messages = list(pool.map(llm.invoke, PROMPTS))
    keys, totals = sequential
    assert [_key(m) for m in messages] == keys
    assert [m.content.split(": ", 1)[1] for m in messages] == PROMPTS  # type: ignore[union-attr]
    assert _cost_totals(llm) == totals


def test_64_async_tasks_on_one_instance_route_as_sequential_calls(
    sequential: tuple[list[tuple[str, float]], dict[str, Any]],
) -> None:
    llm = _mf_router()

    async def run_all() -> list[AIMessage]:
        return await asyncio.gather(*(llm.ainvoke(p) for p in PROMPTS))

    messages = asyncio.run(run_all())
    keys, totals = sequential
    assert [_key(m) for m in messages] == keys
    assert [m.content.split(": ", 1)[1] for m in messages] == PROMPTS  # type: ignore[union-attr]
    assert _cost_totals(llm) == totals


# -- bad input --------------------------------------------------------------------------------------

_IMAGE_ONLY = HumanMessage(
    content=[{"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}]
)
BAD_INPUTS = [
    pytest.param([], "empty conversation", id="empty"),
    pytest.param(
        [AIMessage("Hello.")], "no user turn and no system text", id="assistant-only"
    ),
    pytest.param([_IMAGE_ONLY], r"no text to route on \(only non-text parts", id="image-only"),
]


@pytest.mark.parametrize("how", ["invoke", "ainvoke", "stream", "batch"])
@pytest.mark.parametrize(("messages", "match"), BAD_INPUTS)
def test_bad_input_raises_routing_input_error(
    how: str, messages: list[BaseMessage], match: str
) -> None:
    strong, weak = scripted("strong-model", "s"), scripted("weak-model", "w")
    # fallback=True: a routing error is the caller's, not a model's, and never falls back.
    llm = RouterChatModel(strong=strong, weak=weak, router="mf", fallback=True)
    with pytest.raises(RoutingInputError, match=match):
        if how == "invoke":
            llm.invoke(messages)
        elif how == "ainvoke":
            asyncio.run(llm.ainvoke(messages))
        elif how == "stream":
            list(llm.stream(messages))
        else:
            llm.batch([messages])
    assert strong.calls == [] and weak.calls == []


def test_unknown_router_and_bad_policy_fail_at_construction() -> None:
    strong, weak = scripted("strong-model", "s"), scripted("weak-model", "w")
    cases: list[tuple[dict[str, Any], type[Exception], str]] = [
        ({"router": "no-such-router"}, UnknownRouterError, "unknown router 'no-such-router'"),
        ({"threshold": 1.5}, InvalidPolicyError, "threshold"),
        ({"strong_share": -0.1}, InvalidPolicyError, "strong_share"),
        ({"threshold": 0.5, "strong_share": 0.5}, InvalidPolicyError, "either threshold"),
    ]
    for kwargs, error_type, match in cases:
        with pytest.raises(ValidationError, match=match) as info:
            RouterChatModel(strong=strong, weak=weak, **kwargs)
        # pydantic wraps validator errors; the engine's own error is inside.
        assert isinstance(info.value.errors()[0]["ctx"]["error"], error_type), kwargs


def test_a_prompt_far_beyond_the_embedders_limit_routes() -> None:
    llm = RouterChatModel(
        strong=EchoChatModel(model_name="strong-echo"),
        weak=EchoChatModel(model_name="weak-echo"),
        router="mf",
        strong_share=0.5,
    )
    prompt = ("Explain the following log line by line. " * 5000)[:200_000]
    assert len(prompt) == 200_000
    message = llm.invoke(prompt)
    record = message.response_metadata["routellm"]
    assert record["side"] in ("strong", "weak")
    assert 0.0 <= record["win_rate"] <= 1.0
    assert str(message.content).startswith(f"{record['model']}: Explain")
    chunks = list(llm.stream(prompt))
    assert chunks[0].response_metadata["routellm"]["win_rate"] == record["win_rate"]
