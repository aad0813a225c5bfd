"""RouterLLM: fallback to the other side, concurrent calls on one instance, bad input."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Generator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from llama_index.core.base.llms.types import (
    ChatMessage,
    ChatResponse,
    ChatResponseAsyncGen,
    ChatResponseGen,
    CompletionResponse,
    CompletionResponseAsyncGen,
    CompletionResponseGen,
    ImageBlock,
    LLMMetadata,
    MessageRole,
)
from llama_index.core.bridge.pydantic import Field
from llama_index.core.callbacks import CallbackManager, CBEventType
from llama_index.core.callbacks.base_handler import BaseCallbackHandler
from llama_index.core.instrumentation import get_dispatcher
from llama_index.core.instrumentation.span_handlers import SimpleSpanHandler
from llama_index.core.llms.callbacks import llm_chat_callback, llm_completion_callback
from llama_index.core.llms.mock import MockFunctionCallingLLM, MockLLM
from llama_index.core.tools import FunctionTool
from routing_prompts import PROMPTS

from llamaindex_routellm import ROUTELLM_KEY, RouterLLM, SideNotFunctionCallingError
from routellm_base.errors import InvalidPolicyError, RoutingInputError, UnknownRouterError

# -- fakes ----------------------------------------------------------------------------------------


class FailingLLM(MockLLM):
    """Every method raises ``RuntimeError(message)``. Streams raise at the call when
    ``fail_at_call``, else after yielding ``chunks_before_error`` chunks."""

    name: str = Field(default="failing")
    message: str = Field(default="boom")
    chunks_before_error: int = Field(default=0)
    fail_at_call: bool = Field(default=False)
    calls: list[str] = Field(default_factory=list, exclude=True)

    def __init__(
        self,
        name: str = "failing",
        message: str = "boom",
        chunks_before_error: int = 0,
        fail_at_call: bool = False,
    ) -> None:
        super().__init__()
        self.name = name
        self.message = message
        self.chunks_before_error = chunks_before_error
        self.fail_at_call = fail_at_call

    @property
    def metadata(self) -> LLMMetadata:
        return LLMMetadata(model_name=self.name)

    def _fail(self, method: str) -> RuntimeError:
        self.calls.append(method)
        return RuntimeError(self.message)

    def _gen(self, method: str, make: Any) -> Generator[Any, None, None]:
        error = self._fail(method)
        if self.fail_at_call:
            raise error

        def gen() -> Generator[Any, None, None]:
            for i in range(self.chunks_before_error):
                yield make(f"partial{i}")
            raise error

        return gen()

    def _agen(self, method: str, make: Any) -> AsyncGenerator[Any, None]:
        error = self._fail(method)
        if self.fail_at_call:
            raise error

        async def gen() -> AsyncGenerator[Any, None]:
            for i in range(self.chunks_before_error):
                yield make(f"partial{i}")
            raise error

        return gen()

    @staticmethod
    def _chat_chunk(text: str) -> ChatResponse:
        return ChatResponse(message=ChatMessage(role="assistant", content=text), delta=text)

    @staticmethod
    def _completion_chunk(text: str) -> CompletionResponse:
        return CompletionResponse(text=text, delta=text)

    @llm_chat_callback()
    def chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        raise self._fail("chat")

    @llm_chat_callback()
    async def achat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        raise self._fail("achat")

    @llm_chat_callback()
    def stream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponseGen:
        return self._gen("stream_chat", self._chat_chunk)

    @llm_chat_callback()
    async def astream_chat(
        self, messages: Sequence[ChatMessage], **kwargs: Any
    ) -> ChatResponseAsyncGen:
        return self._agen("astream_chat", self._chat_chunk)

    @llm_completion_callback()
    def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        raise self._fail("complete")

    @llm_completion_callback()
    async def acomplete(
        self, prompt: str, formatted: bool = False, **kwargs: Any
    ) -> CompletionResponse:
        raise self._fail("acomplete")

    @llm_completion_callback()
    def stream_complete(
        self, prompt: str, formatted: bool = False, **kwargs: Any
    ) -> CompletionResponseGen:
        return self._gen("stream_complete", self._completion_chunk)

    @llm_completion_callback()
    async def astream_complete(
        self, prompt: str, formatted: bool = False, **kwargs: Any
    ) -> CompletionResponseAsyncGen:
        return self._agen("astream_complete", self._completion_chunk)


class FailingFunctionLLM(MockFunctionCallingLLM):
    """A function-calling LLM whose chat methods (and so its *_with_tools) raise."""

    calls: list[str] = Field(default_factory=list, exclude=True)

    @property
    def metadata(self) -> LLMMetadata:
        return LLMMetadata(
            is_function_calling_model=True, is_chat_model=True, model_name="failing-fc"
        )

    def chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        self.calls.append("chat")
        raise RuntimeError("boom")

    async def achat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        self.calls.append("achat")
        raise RuntimeError("boom")

    def stream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponseGen:
        self.calls.append("stream_chat")
        raise RuntimeError("boom")

    async def astream_chat(
        self, messages: Sequence[ChatMessage], **kwargs: Any
    ) -> ChatResponseAsyncGen:
        self.calls.append("astream_chat")
        raise RuntimeError("boom")


def failing(**kwargs: Any) -> FailingLLM:
    return FailingLLM(**{"name": "strong-llm", **kwargs})


def user(content: str) -> list[ChatMessage]:
    return [ChatMessage(role=MessageRole.USER, content=content)]


def text(response: ChatResponse | CompletionResponse) -> str:
    if isinstance(response, ChatResponse):
        return str(response.message.content)
    return response.text


def assert_fell_back(record: dict[str, Any], *, to: str = "weak", forced: bool = False) -> None:
    other = "strong" if to == "weak" else "weak"
    assert record["side"] == to
    assert record["model"] == f"{to}-llm"
    assert record["fallback_from"] == other
    assert record["fallback_reason"] == "RuntimeError: boom"
    assert record["forced"] is forced


def multiply(a: int, b: int) -> int:
    """Multiply two integers."""
    return a * b


# -- fallback: chat / complete --------------------------------------------------------------------


def test_fallback_is_off_by_default_and_the_error_propagates(weak, make_router) -> None:
    llm = RouterLLM(strong=failing(), weak=weak, router=make_router(0.9), threshold=0.5)
    assert llm.fallback is False
    assert "fallback" in RouterLLM.model_fields
    assert RouterLLM.model_fields["fallback"].description
    with pytest.raises(RuntimeError, match="boom"):
        llm.chat(user("hi"))
    with pytest.raises(RuntimeError, match="boom"):
        list(llm.stream_complete("hi"))
    assert weak.calls == []


async def _call(llm: RouterLLM, method: str, **kwargs: Any) -> Any:
    if "chat" in method:
        result = getattr(llm, method)(user("hi"), **kwargs)
    else:
        result = getattr(llm, method)("hi", **kwargs)
    return await result if method.startswith("a") else result


@pytest.mark.parametrize("method", ["chat", "achat", "complete", "acomplete"])
async def test_fallback_answers_from_the_other_side(weak, make_router, method: str) -> None:
    strong = failing()
    llm = RouterLLM(strong=strong, weak=weak, router=make_router(0.9), threshold=0.5, fallback=True)
    response = await _call(llm, method)
    assert_fell_back(response.additional_kwargs[ROUTELLM_KEY])
    assert text(response).startswith("weak-llm: ")
    assert strong.calls == [method]
    assert [c[0] for c in weak.calls] == [method]


async def test_fallback_from_weak_to_strong(strong, make_router) -> None:
    llm = RouterLLM(
        strong=strong,
        weak=failing(name="weak-llm"),
        router=make_router(0.1),
        threshold=0.5,
        fallback=True,
    )
    record = (await llm.achat(user("hi"))).additional_kwargs[ROUTELLM_KEY]
    assert_fell_back(record, to="strong")
    assert record["win_rate"] == pytest.approx(0.1)


def test_a_forced_side_falls_back_too(weak, make_router) -> None:
    llm = RouterLLM(
        strong=failing(), weak=weak, router=make_router(0.1), threshold=0.5, fallback=True
    )
    response = llm.complete("hi", routellm_force="strong")
    assert_fell_back(response.additional_kwargs[ROUTELLM_KEY], forced=True)


@pytest.mark.parametrize(
    "method",
    ["chat", "achat", "complete", "acomplete", "stream_chat", "astream_chat", "stream_complete"],
)
async def test_both_sides_failing_raise_the_second_error_from_the_first(
    make_router, method: str
) -> None:
    llm = RouterLLM(
        strong=failing(message="boom"),
        weak=failing(name="weak-llm", message="bang"),
        router=make_router(0.9),
        threshold=0.5,
        fallback=True,
    )
    with pytest.raises(RuntimeError, match="bang") as info:
        result = await _call(llm, method)
        if method.startswith("astream"):
            [c async for c in result]
        elif method.startswith("stream"):
            list(result)
    cause = info.value.__cause__
    assert isinstance(cause, RuntimeError) and str(cause) == "boom"


async def test_cancellation_never_falls_back(weak, make_router) -> None:
    class Hanging(FailingLLM):
        @llm_chat_callback()
        async def achat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
            self.calls.append("achat")
            await asyncio.Event().wait()
            raise AssertionError("unreachable")

    strong = Hanging(name="strong-llm")
    llm = RouterLLM(strong=strong, weak=weak, router=make_router(0.9), threshold=0.5, fallback=True)
    task = asyncio.create_task(llm.achat(user("hi")))
    while not strong.calls:
        await asyncio.sleep(0.001)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert weak.calls == []


def test_a_prepared_tool_call_falls_back_and_the_other_side_prepares_its_own(
    fc_weak, make_router
) -> None:
    # FunctionCallingLLM's template: prepare, then chat(**prepared). The prepared request pins
    # no side, so the routed chat falls back and the weak side prepares its own request.
    strong = FailingFunctionLLM()
    llm = RouterLLM(
        strong=strong, weak=fc_weak, router=make_router(0.9), threshold=0.5, fallback=True
    )
    tool = FunctionTool.from_defaults(fn=multiply)
    prepared = llm._prepare_chat_with_tools([tool], user_msg="What is 6 times 7?")
    assert fc_weak.events == []  # nothing is prepared for a side before the call is routed
    response = llm.chat(**prepared)
    record = response.additional_kwargs[ROUTELLM_KEY]
    assert (record["side"], record["fallback_from"]) == ("weak", "strong")
    assert strong.calls == ["chat"]
    assert fc_weak.events == ["prepare", "validate"] and fc_weak.seen_tools == [["multiply"]]


# -- fallback: streams -----------------------------------------------------------------------------


@pytest.mark.parametrize("fail_at_call", [True, False], ids=["at-call", "at-first-chunk"])
@pytest.mark.parametrize(
    "method", ["stream_chat", "astream_chat", "stream_complete", "astream_complete"]
)
async def test_stream_falls_back_before_the_first_chunk(
    weak, make_router, method: str, fail_at_call: bool
) -> None:
    llm = RouterLLM(
        strong=failing(fail_at_call=fail_at_call),
        weak=weak,
        router=make_router(0.9),
        threshold=0.5,
        fallback=True,
    )
    stream = await _call(llm, method)
    chunks = [c async for c in stream] if method.startswith("a") else list(stream)
    assert chunks and text(chunks[-1]).startswith("weak-llm: ")
    for chunk in chunks:
        assert_fell_back(chunk.additional_kwargs[ROUTELLM_KEY])


@pytest.mark.parametrize(
    "method", ["stream_chat", "astream_chat", "stream_complete", "astream_complete"]
)
async def test_stream_reraises_after_the_first_chunk(weak, make_router, method: str) -> None:
    llm = RouterLLM(
        strong=failing(chunks_before_error=1),
        weak=weak,
        router=make_router(0.9),
        threshold=0.5,
        fallback=True,
    )
    received: list[Any] = []
    stream = await _call(llm, method)
    with pytest.raises(RuntimeError, match="boom") as info:
        if method.startswith("a"):
            async for chunk in stream:
                received.append(chunk)
        else:
            for chunk in stream:
                received.append(chunk)
    assert info.value.__cause__ is None
    assert [c.delta for c in received] == ["partial0"]
    assert received[0].additional_kwargs[ROUTELLM_KEY]["side"] == "strong"
    assert received[0].additional_kwargs[ROUTELLM_KEY]["fallback_from"] is None
    assert weak.calls == []


# -- fallback: tools -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "method",
    ["chat_with_tools", "achat_with_tools", "stream_chat_with_tools", "astream_chat_with_tools"],
)
async def test_tool_calls_fall_back_to_the_other_function_calling_side(
    fc_weak, make_router, method: str
) -> None:
    strong = FailingFunctionLLM()
    llm = RouterLLM(
        strong=strong, weak=fc_weak, router=make_router(0.9), threshold=0.5, fallback=True
    )
    tool = FunctionTool.from_defaults(fn=multiply)
    result = getattr(llm, method)([tool], user_msg="What is 6 times 7?")
    if method.startswith("a"):
        result = await result
    if method == "stream_chat_with_tools":
        result = list(result)[-1]
    elif method == "astream_chat_with_tools":
        result = [c async for c in result][-1]
    record = result.additional_kwargs[ROUTELLM_KEY]
    assert (record["side"], record["model"], record["fallback_from"]) == (
        "weak",
        "weak-fc",
        "strong",
    )
    assert record["fallback_reason"] == "RuntimeError: boom"
    assert strong.calls and fc_weak.seen_tools == [["multiply"]]
    # The response is parsed by the side that produced it.
    [call] = llm.get_tool_calls_from_response(result)
    assert (call.tool_name, call.tool_kwargs) == ("multiply", {"a": 6, "b": 7})


def test_tool_calls_do_not_fall_back_to_a_side_that_cannot_call_functions(
    weak, make_router
) -> None:
    llm = RouterLLM(
        strong=FailingFunctionLLM(),
        weak=weak,
        router=make_router(0.9),
        threshold=0.5,
        fallback=True,
    )
    tool = FunctionTool.from_defaults(fn=multiply)
    with pytest.raises(SideNotFunctionCallingError, match="weak side") as info:
        llm.chat_with_tools([tool], user_msg="6*7?", routellm_force="strong")
    assert str(info.value.__cause__) == "boom"
    assert weak.calls == []


# -- fallback: events and spans --------------------------------------------------------------------


class _Callbacks(BaseCallbackHandler):
    def __init__(self) -> None:
        super().__init__(event_starts_to_ignore=[], event_ends_to_ignore=[])
        self.starts: list[tuple[str, str, dict[str, Any]]] = []
        self.ends: list[tuple[str, dict[str, Any]]] = []

    def on_event_start(self, event_type, payload=None, event_id="", parent_id="", **kwargs):  # type: ignore[no-untyped-def]
        if event_type == CBEventType.LLM:
            self.starts.append((event_id, parent_id, payload or {}))
        return event_id

    def on_event_end(self, event_type, payload=None, event_id="", **kwargs):  # type: ignore[no-untyped-def]
        if event_type == CBEventType.LLM:
            self.ends.append((event_id, payload or {}))

    def start_trace(self, trace_id=None):  # type: ignore[no-untyped-def]
        pass

    def end_trace(self, trace_id=None, trace_map=None):  # type: ignore[no-untyped-def]
        pass


@pytest.mark.parametrize("method", ["chat", "stream_chat"])
def test_failed_attempt_and_fallback_nest_under_the_router(weak, make_router, method: str) -> None:
    handler = _Callbacks()
    side_handler = _Callbacks()  # the caller's own handler, given to both sides
    spans = SimpleSpanHandler()
    root = get_dispatcher()
    root.add_span_handler(spans)
    failing = FailingLLM(name="strong-llm")
    failing.callback_manager = CallbackManager([side_handler])
    weak.callback_manager = CallbackManager([side_handler])
    try:
        llm = RouterLLM(
            strong=failing,
            weak=weak,
            router=make_router(0.9),
            threshold=0.5,
            fallback=True,
            callback_manager=CallbackManager([handler]),
        )
        result = getattr(llm, method)(user("hi"))
        if method == "stream_chat":
            result = list(result)[-1]
    finally:
        root.span_handlers.remove(spans)
    assert_fell_back(result.additional_kwargs[ROUTELLM_KEY])
    # The router's handler sees the call once: the router's own LLM event, ended without error.
    [(router_id, _, _)] = handler.starts
    assert "exception" not in dict(handler.ends)[router_id]
    # The sides' own handler sees both attempts: the failed one ended with the exception.
    (failed_id, _, _), (ok_id, _, _) = side_handler.starts
    ends = dict(side_handler.ends)
    assert str(ends[failed_id]["exception"]) == "boom"
    assert "exception" not in ends[ok_id]
    # Instrumentation: both attempts' spans are children of the router's span. A failed call
    # drops its span with the error; a stream's span closes when the stream is returned, so one
    # failing on its first chunk shows the error in its callback event (above) instead.
    router_span = next(s for s in spans.completed_spans if s.id_.startswith(f"RouterLLM.{method}"))
    children = [
        s for s in spans.completed_spans + spans.dropped_spans if s.parent_id == router_span.id_
    ]
    assert sorted(s.id_.split("-")[0] for s in children) == [
        f"FailingLLM.{method}",
        f"ScriptedLLM.{method}",
    ]
    if method == "chat":
        [dropped] = [s for s in spans.dropped_spans if s.parent_id == router_span.id_]
        assert dropped.id_.startswith("FailingLLM.chat")


# -- concurrency -----------------------------------------------------------------------------------


def _mf_router(make_scripted: Any) -> RouterLLM:
    return RouterLLM(
        strong=make_scripted("strong-llm"), weak=make_scripted("weak-llm"), strong_share=0.5
    )


def _key(response: ChatResponse, method: str) -> tuple[str, float]:
    record = response.additional_kwargs[ROUTELLM_KEY]
    # Answered by the side the decision names (ScriptedLLM answers "<name>: <method>").
    assert response.message.content == f"{record['model']}: {method}"
    return record["side"], record["win_rate"]


def _prompts_seen(llm: RouterLLM) -> dict[str, list[str]]:
    return {
        side: sorted(str(call[1][-1].content) for call in getattr(llm, side).calls)
        for side in ("strong", "weak")
    }


def _sequential(make_scripted: Any) -> tuple[list[tuple[str, float]], dict[str, list[str]]]:
    llm = _mf_router(make_scripted)
    keys = [_key(llm.chat(user(p)), "chat") for p in PROMPTS]
    assert {side for side, _ in keys} == {"strong", "weak"}, "prompts should split between sides"
    return keys, _prompts_seen(llm)


def test_64_threads_on_one_instance_route_as_sequential_calls(make_scripted) -> None:
    expected, seen = _sequential(make_scripted)
    llm = _mf_router(make_scripted)
    with ThreadPoolExecutor(max_workers=64) as pool:
        responses = list(pool.map(lambda p: llm.chat(user(p)), PROMPTS))
    assert [_key(r, "chat") for r in responses] == expected
    # Each side got exactly the prompts routed to it (the sequential run's per-side totals).
    assert _prompts_seen(llm) == seen


async def test_64_async_tasks_on_one_instance_route_as_sequential_calls(make_scripted) -> None:
    expected, seen = await asyncio.to_thread(_sequential, make_scripted)
    llm = _mf_router(make_scripted)
    responses = await asyncio.gather(*(llm.achat(user(p)) for p in PROMPTS))
    assert [_key(r, "achat") for r in responses] == expected
    assert _prompts_seen(llm) == seen


# -- bad input -------------------------------------------------------------------------------------

_IMAGE_ONLY = ChatMessage(
    role=MessageRole.USER, blocks=[ImageBlock(url="https://example.com/cat.png")]
)
BAD_INPUTS = [
    pytest.param([], "empty conversation", id="empty"),
    pytest.param(
        [ChatMessage(role=MessageRole.ASSISTANT, content="Hello.")],
        "no user turn and no system text",
        id="assistant-only",
    ),
    pytest.param([_IMAGE_ONLY], r"no text to route on \(only non-text parts", id="image-only"),
]


@pytest.mark.parametrize("method", ["chat", "achat", "stream_chat", "astream_chat"])
@pytest.mark.parametrize(("messages", "match"), BAD_INPUTS)
async def test_bad_input_raises_routing_input_error(
    strong, weak, method: str, messages: list[ChatMessage], match: str
) -> None:
    # fallback=True: a routing error is the caller's, not a model's, and never falls back.
    llm = RouterLLM(strong=strong, weak=weak, router="mf", fallback=True)
    with pytest.raises(RoutingInputError, match=match):
        result = getattr(llm, method)(messages)
        if method.startswith("a"):
            await result
    assert strong.calls == [] and weak.calls == []


def test_unknown_router_and_bad_policy_fail_at_construction(strong, weak) -> None:
    with pytest.raises(UnknownRouterError, match="unknown router 'no-such-router'"):
        RouterLLM(strong=strong, weak=weak, router="no-such-router")
    with pytest.raises(InvalidPolicyError, match="threshold"):
        RouterLLM(strong=strong, weak=weak, threshold=1.5)
    with pytest.raises(InvalidPolicyError, match="strong_share"):
        RouterLLM(strong=strong, weak=weak, strong_share=-0.1)


async def test_a_prompt_far_beyond_the_embedders_limit_routes(strong, weak) -> None:
    llm = RouterLLM(strong=strong, weak=weak, strong_share=0.5)
    prompt = ("Explain the following log line by line. " * 5000)[:200_000]
    assert len(prompt) == 200_000
    record = llm.complete(prompt).additional_kwargs[ROUTELLM_KEY]
    assert record["side"] in ("strong", "weak")
    assert 0.0 <= record["win_rate"] <= 1.0
    response = await llm.achat(user(prompt))
    assert response.additional_kwargs[ROUTELLM_KEY]["win_rate"] == record["win_rate"]
