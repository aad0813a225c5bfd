"""Unit tests of RouterLLM with scripted MockLLM-style sides (no real model, runs in seconds)."""

from __future__ import annotations

import asyncio
import copy
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from llama_index.core.base.llms.types import (
    ChatMessage,
    ChatResponse,
    ImageBlock,
    MessageRole,
    TextBlock,
)
from llama_index.core.bridge.pydantic import ValidationError
from llama_index.core.callbacks import CallbackManager, CBEventType
from llama_index.core.callbacks.base_handler import BaseCallbackHandler
from llama_index.core.instrumentation import get_dispatcher
from llama_index.core.instrumentation.event_handlers import BaseEventHandler
from llama_index.core.instrumentation.events import BaseEvent
from llama_index.core.instrumentation.events.llm import (
    LLMChatEndEvent,
    LLMChatStartEvent,
    LLMCompletionEndEvent,
)
from llama_index.core.instrumentation.span_handlers import SimpleSpanHandler
from llama_index.core.llms.function_calling import FunctionCallingLLM
from llama_index.core.llms.mock import MockLLM
from llama_index.core.tools import FunctionTool

import routellm_base
from llamaindex_routellm import (
    FORCE_KWARG,
    ROUTELLM_KEY,
    RouterLLM,
    SideNotFunctionCallingError,
    record_decisions,
    to_chat_turns,
)
from routellm_base.errors import InvalidPolicyError, RoutingInputError

DECISION_FIELDS = {"side", "model", "win_rate", "threshold", "router", "forced", "skipped_parts"}


def conversation() -> list[ChatMessage]:
    return [
        ChatMessage(role=MessageRole.SYSTEM, content="Be terse."),
        ChatMessage(role=MessageRole.USER, content="first question"),
        ChatMessage(role=MessageRole.ASSISTANT, content="first answer"),
        ChatMessage(role=MessageRole.USER, content="Prove that sqrt(2) is irrational."),
    ]


def multiply(a: int, b: int) -> int:
    """Multiply two integers."""
    return a * b


# -- construction, fields, metadata ---------------------------------------------------------


def test_defaults_and_lazy_engine(strong, weak) -> None:
    llm = RouterLLM(strong=strong, weak=weak)
    assert llm.router == "task_experts"  # the bundled default, not loaded until the first call
    assert llm.threshold is None and llm.strong_share is None
    assert llm.routing_text_mode == "last_user" and llm.routing_text_max_tokens is None
    assert not llm._services.engines
    assert isinstance(llm, FunctionCallingLLM)
    assert RouterLLM.class_name() == "RouterLLM"
    for name in ("strong", "weak", "router", "threshold", "strong_share", "routing_text_mode"):
        assert RouterLLM.model_fields[name].description, name


def test_bad_settings_fail_at_construction(strong, weak) -> None:
    with pytest.raises(InvalidPolicyError, match="either threshold or strong_share"):
        RouterLLM(strong=strong, weak=weak, threshold=0.5, strong_share=0.3)
    with pytest.raises(InvalidPolicyError):
        RouterLLM(strong=strong, weak=weak, threshold=1.5)
    with pytest.raises(RoutingInputError, match="max_tokens"):
        RouterLLM(strong=strong, weak=weak, routing_text_max_tokens=0)
    with pytest.raises(ValidationError):
        RouterLLM(strong=strong, weak=weak, routing_text_mode="everything")  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        RouterLLM(strong="gpt-4o", weak=weak)  # type: ignore[arg-type]


def test_prices_naming_neither_model_are_refused(strong, weak) -> None:
    with pytest.raises(RoutingInputError, match="\\['weak-lm'\\].*did you mean 'weak-llm'"):
        RouterLLM(strong=strong, weak=weak, threshold=0.5, prices={"weak-lm": (1, 2)})
    with pytest.raises(RoutingInputError, match="'strong' is a side: key its price by 'gpt-4o'"):
        RouterLLM(
            strong=strong,
            weak=weak,
            threshold=0.5,
            strong_model_name="gpt-4o",
            prices={"strong": (1, 2)},
        )
    priced = RouterLLM(strong=strong, weak=weak, threshold=0.5, prices={"weak-llm": (1, 2)})
    assert priced.cost_report().weak.calls == 0


def test_a_strong_share_without_calibration_fails_at_construction(strong, weak, tmp_path) -> None:
    """Not at the first call, where a query engine's refine step would catch the ValueError and
    answer "Empty Response"."""
    from live_routers import uncalibrated_checkpoint

    folder = uncalibrated_checkpoint(tmp_path / "R")
    with pytest.raises(InvalidPolicyError, match="no stored calibration") as error:
        RouterLLM(strong=strong, weak=weak, router=str(folder))
    assert "Give a threshold" in str(error.value) and "--calibration-prompts" in str(error.value)
    with pytest.raises(InvalidPolicyError, match="no stored calibration"):
        RouterLLM(strong=strong, weak=weak, router=folder, strong_share=0.3)
    llm = RouterLLM(strong=strong, weak=weak, router=str(folder), threshold=0.5)
    assert not llm._services.engines  # the check read the config only: nothing loaded yet
    RouterLLM(strong=strong, weak=weak, router=str(folder), strong_share=1.0)  # no threshold needed


def test_metadata_takes_the_tighter_limits(
    strong, weak, make_scripted, make_router, fc_strong, fc_weak
) -> None:
    meta = RouterLLM(strong=strong, weak=weak, threshold=0.5).metadata
    assert meta.context_window == 4096 and meta.num_output == 256
    assert meta.model_name == "routellm(strong-llm|weak-llm)"
    assert meta.is_chat_model is True
    assert meta.is_function_calling_model is False  # neither side calls functions

    # -1 means "unknown" in LlamaIndex: it must not become the router's output budget.
    unknown = make_scripted("unknown", context=2048)
    meta = RouterLLM(strong=strong, weak=unknown, threshold=0.5).metadata
    assert meta.num_output == 512 and meta.context_window == 2048

    assert RouterLLM(
        strong=fc_strong, weak=fc_weak, threshold=0.5
    ).metadata.is_function_calling_model

    named = RouterLLM(
        strong=MockLLM(), weak=weak, router=make_router(), threshold=0.5, strong_model_name="gpt-4o"
    )
    assert named.metadata.model_name == "routellm(gpt-4o|weak-llm)"
    assert named.route("hi", force="weak").model == "weak-llm"
    assert named.route("hi", force="strong").model == "gpt-4o"
    # LlamaIndex's default model name "unknown" is replaced by the class name.
    assert (
        RouterLLM(strong=MockLLM(), weak=weak).metadata.model_name == "routellm(MockLLM|weak-llm)"
    )
    assert not RouterLLM(
        strong=fc_strong, weak=weak, threshold=0.5
    ).metadata.is_function_calling_model


def test_engine_is_built_once_thread_safely_and_follows_field_changes(
    strong, weak, make_router
) -> None:
    router = make_router(0.9)
    llm = RouterLLM(strong=strong, weak=weak, router=router, threshold=0.5)
    built: list[int] = []
    original = routellm_base.RoutingEngine.__init__

    def counting_init(self: Any, *args: Any, **kwargs: Any) -> None:
        built.append(threading.get_ident())
        original(self, *args, **kwargs)

    barrier = threading.Barrier(8)

    def get_engine(_: int) -> int:
        barrier.wait()
        return id(llm.engine)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(routellm_base.RoutingEngine, "__init__", counting_init)
        with ThreadPoolExecutor(8) as pool:
            ids = set(pool.map(get_engine, range(8)))
        assert len(ids) == 1 and len(built) == 1
        assert llm.engine.router is router and llm.engine.threshold == 0.5

        llm.threshold = 0.95  # reassigning a field rebuilds the engine on next use
        assert llm.engine.threshold == 0.95 and len(built) == 2
        assert llm.route("hello").side == "weak"


# -- routing and delegation -----------------------------------------------------------------


@pytest.mark.parametrize(("threshold", "side"), [(0.0, "strong"), (1.0, "weak")])
def test_chat_goes_to_the_chosen_sides_own_chat(strong, weak, make_router, threshold, side) -> None:
    router = make_router(0.5)
    llm = RouterLLM(strong=strong, weak=weak, router=router, threshold=threshold)
    messages = conversation()
    response = llm.chat(messages, temperature=0.1)

    chosen, other = (strong, weak) if side == "strong" else (weak, strong)
    assert response.message.content == f"{chosen.name}: chat"
    assert [c[0] for c in chosen.calls] == ["chat"] and other.calls == []
    method, sent, kwargs = chosen.calls[0]
    assert sent is messages  # the conversation itself: roles and blocks are not flattened
    assert kwargs == {"temperature": 0.1}
    decision = response.additional_kwargs[ROUTELLM_KEY]
    assert decision.keys() >= DECISION_FIELDS
    assert decision["side"] == side and decision["model"] == chosen.name
    assert decision["win_rate"] == 0.5 and decision["threshold"] == threshold
    assert decision["router"] == "recording" and decision["forced"] is False
    assert router.texts == ["Prove that sqrt(2) is irrational."]  # last user turn only


SYNC_CALLS = ["chat", "stream_chat", "complete", "stream_complete"]
ASYNC_CALLS = ["achat", "astream_chat", "acomplete", "astream_complete"]


@pytest.mark.parametrize("method", SYNC_CALLS)
def test_every_sync_method_routes_and_tags(strong, weak, make_router, method) -> None:
    llm = RouterLLM(strong=strong, weak=weak, router=make_router(0.7), threshold=0.6)
    arg: Any = "Summarise the plot of Hamlet" if "complete" in method else conversation()
    result = getattr(llm, method)(arg)
    responses = list(result) if method.startswith("stream") else [result]
    assert len(responses) == (3 if method.startswith("stream") else 1)
    for response in responses:  # every chunk of a stream carries the decision
        assert response.additional_kwargs[ROUTELLM_KEY]["side"] == "strong"
    assert weak.calls == []
    assert strong.calls[0][0] == method and strong.calls[0][1] is arg
    if "complete" in method:
        assert responses[-1].text == f"strong-llm: {arg}"
        assert strong.calls[0][2]["formatted"] is False


@pytest.mark.asyncio
@pytest.mark.parametrize("method", ASYNC_CALLS)
async def test_every_async_method_routes_off_the_loop(strong, weak, make_router, method) -> None:
    router = make_router(0.2)
    llm = RouterLLM(strong=strong, weak=weak, router=router, threshold=0.6)
    arg: Any = "What is 2+2?" if "complete" in method else conversation()
    result = await getattr(llm, method)(arg)
    responses = [r async for r in result] if "stream" in method else [result]
    assert responses and all(r.additional_kwargs[ROUTELLM_KEY]["side"] == "weak" for r in responses)
    assert strong.calls == [] and weak.calls[0][0] == method and weak.calls[0][1] is arg
    # adecide ran the router in a worker thread, never on the event loop's thread.
    assert router.threads and threading.main_thread().name not in router.threads


@pytest.mark.asyncio
async def test_async_uses_engine_adecide(strong, weak, make_router) -> None:
    llm = RouterLLM(strong=strong, weak=weak, router=make_router(0.9), threshold=0.5)
    calls: list[str] = []
    engine = llm.engine
    original = engine.adecide

    async def spy(*args: Any, **kwargs: Any) -> Any:
        calls.append("adecide")
        return await original(*args, **kwargs)

    engine.adecide = spy  # type: ignore[method-assign]
    await llm.achat(conversation())
    await llm.acomplete("hi")
    assert calls == ["adecide", "adecide"]


def test_force_overrides_the_router_and_is_not_passed_on(strong, weak, make_router) -> None:
    router = make_router(0.99)
    llm = RouterLLM(strong=strong, weak=weak, router=router, threshold=0.5)
    response = llm.chat(conversation(), **{FORCE_KWARG: "weak"})
    decision = response.additional_kwargs[ROUTELLM_KEY]
    assert (
        decision["side"] == "weak" and decision["forced"] is True and decision["win_rate"] is None
    )
    assert router.texts == []  # the router did not run
    assert FORCE_KWARG not in weak.calls[0][2]
    completion = llm.complete("x", routellm_force="strong")
    assert completion.additional_kwargs[ROUTELLM_KEY]["side"] == "strong"
    with pytest.raises(RoutingInputError, match="routellm_force"):
        llm.chat(conversation(), routellm_force="medium")


def test_a_per_call_threshold_or_strong_share_routes_that_call(strong, weak, make_router) -> None:
    llm = RouterLLM(strong=strong, weak=weak, router=make_router(0.4), threshold=0.5)
    completion = llm.complete("x", threshold=0.0)
    decision = completion.additional_kwargs[ROUTELLM_KEY]
    assert decision["side"] == "strong" and decision["threshold"] == 0.0
    assert decision["extra"]["call_policy"] == {"threshold": 0.0}
    assert llm.chat(conversation(), strong_share=1.0).additional_kwargs[ROUTELLM_KEY]["side"] == (
        "strong"
    )
    assert llm.complete("x").additional_kwargs[ROUTELLM_KEY]["side"] == "weak"  # its own policy
    streamed = list(llm.stream_chat(conversation(), threshold=0.0))
    assert streamed[-1].additional_kwargs[ROUTELLM_KEY]["side"] == "strong"
    achat = asyncio.run(llm.achat(conversation(), threshold=0.0))
    assert achat.additional_kwargs[ROUTELLM_KEY]["side"] == "strong"
    assert llm.route("x", threshold=0.0).side == "strong"
    assert len(strong.calls) == 4
    assert all("threshold" not in kw and "strong_share" not in kw for _, _, kw in strong.calls)


def test_bad_per_call_settings_are_refused_before_any_llm(strong, weak, make_router) -> None:
    llm = RouterLLM(strong=strong, weak=weak, router=make_router(0.4), threshold=0.5)
    with pytest.raises(InvalidPolicyError, match="threshold must be in \\[0, 1\\]"):
        llm.complete("x", threshold=-1)
    with pytest.raises(InvalidPolicyError, match="no stored calibration"):
        llm.chat(conversation(), strong_share=0.3)
    with pytest.raises(RoutingInputError, match="\\['max_cost'\\] route a pool .* takes \\["):
        llm.complete("x", max_cost=0.01)
    with pytest.raises(RoutingInputError, match="unknown call argument 'routellm_forse'"):
        llm.complete("x", routellm_forse="strong")
    with pytest.raises(RoutingInputError, match="takes \\['routellm_force', 'strong_share'"):
        llm.chat(conversation(), routellm_forse="strong")
    assert strong.calls == weak.calls == []


def test_routing_text_from_blocks_and_modes(strong, weak, make_router) -> None:
    image = ImageBlock(image=b"\x89PNG fake", image_mimetype="image/png")
    messages = [
        ChatMessage(role="user", content="earlier question"),
        ChatMessage(role="assistant", content="earlier answer"),
        ChatMessage(role="user", blocks=[TextBlock(text="What is in this picture?"), image]),
    ]
    turns = to_chat_turns(messages)
    assert turns[2].role == "user"
    assert turns[2].content == [
        {"type": "text", "text": "What is in this picture?"},
        {"type": "image"},
    ]

    router = make_router(0.1)
    llm = RouterLLM(strong=strong, weak=weak, router=router, threshold=0.5)
    decision = llm.chat(messages).additional_kwargs[ROUTELLM_KEY]
    assert decision["skipped_parts"] == ["image"]
    assert router.texts[-1] == "What is in this picture?"
    assert weak.calls[0][1] is messages  # the image still reaches the model

    conv = RouterLLM(
        strong=strong,
        weak=weak,
        router=router,
        threshold=0.5,
        routing_text_mode="conversation",
        routing_text_max_tokens=200,
    )
    conv.chat(messages)
    assert "assistant: earlier answer" in router.texts[-1]
    assert router.texts[-1].endswith("user: What is in this picture?")


def test_unroutable_conversation_is_a_clear_error(strong, weak, make_router) -> None:
    llm = RouterLLM(strong=strong, weak=weak, router=make_router(), threshold=0.5)
    with pytest.raises(RoutingInputError, match="no user turn and no system text"):
        llm.chat([ChatMessage(role="assistant", content="only an assistant turn")])
    assert strong.calls == [] and weak.calls == []


def test_predict_uses_the_sides_chat(strong, weak, make_router) -> None:
    from llama_index.core.prompts import PromptTemplate

    llm = RouterLLM(strong=strong, weak=weak, router=make_router(0.8), threshold=0.5)
    out = llm.predict(PromptTemplate("Tell me about {topic}"), topic="owls")
    assert out == "strong-llm: chat"
    sent = strong.calls[0][1]
    assert sent[-1].role == MessageRole.USER and sent[-1].content == "Tell me about owls"


def test_random_router_and_strong_share(strong, weak) -> None:
    llm = RouterLLM(
        strong=strong, weak=weak, router=routellm_base.RandomRouter(seed=0), strong_share=0.3
    )
    sides = [llm.complete(f"q{i}").additional_kwargs[ROUTELLM_KEY]["side"] for i in range(200)]
    assert 0.15 < sides.count("strong") / len(sides) < 0.45
    assert len(strong.calls) + len(weak.calls) == 200


def test_copies_and_serialisation(strong, weak, make_router) -> None:
    router = make_router(0.9)
    llm = RouterLLM(strong=strong, weak=weak, router=router, threshold=0.5)
    llm.complete("warm the engine")
    clone = copy.deepcopy(llm)
    assert clone.router is router  # routers are shared, not copied
    assert not clone._services.engines  # rebuilt lazily from the copy's own fields
    assert clone.complete("x").additional_kwargs[ROUTELLM_KEY]["side"] == "strong"
    data = llm.to_dict()
    assert data["class_name"] == "RouterLLM" and data["router"] == "recording"
    payload = llm.to_payload()
    assert payload["model_name"] == "routellm(strong-llm|weak-llm)"
    assert payload["strong"]["model_name"] == "strong-llm" and payload["threshold"] == 0.5


# -- tools ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("win_rate", "side"), [(0.9, "strong"), (0.1, "weak")])
def test_chat_with_tools_routes_once_and_delegates(
    fc_strong, fc_weak, make_router, win_rate, side
) -> None:
    router = make_router(win_rate)
    llm = RouterLLM(strong=fc_strong, weak=fc_weak, router=router, threshold=0.5)
    tool = FunctionTool.from_defaults(fn=multiply)
    response = llm.chat_with_tools([tool], user_msg="What is 6 times 7?")
    chosen, other = (fc_strong, fc_weak) if side == "strong" else (fc_weak, fc_strong)
    assert response.additional_kwargs[ROUTELLM_KEY]["side"] == side
    assert chosen.events == ["prepare", "validate"] and other.events == []
    assert chosen.seen_tools == [["multiply"]]  # the side formatted and received the tools
    assert len(router.texts) == 1

    calls = llm.get_tool_calls_from_response(response, error_on_no_tool_call=True)
    assert chosen.events[-1] == "get_tool_calls" and other.events == []
    assert [(c.tool_name, c.tool_kwargs) for c in calls] == [("multiply", {"a": 6, "b": 7})]


def test_predict_and_call_runs_the_tool(fc_strong, fc_weak, make_router) -> None:
    llm = RouterLLM(strong=fc_strong, weak=fc_weak, router=make_router(0.3), threshold=0.5)
    ran: list[tuple[int, int]] = []

    def tracked_multiply(a: int, b: int) -> int:
        """Multiply two integers."""
        ran.append((a, b))
        return a * b

    result = llm.predict_and_call(
        [FunctionTool.from_defaults(fn=tracked_multiply, name="multiply")], user_msg="6 times 7?"
    )
    assert ran == [(6, 7)] and result.response == "42"
    assert "get_tool_calls" in fc_weak.events and fc_strong.events == []


def test_stream_chat_with_tools_tags_every_chunk(fc_strong, fc_weak, make_router) -> None:
    llm = RouterLLM(strong=fc_strong, weak=fc_weak, router=make_router(0.9), threshold=0.5)
    tool = FunctionTool.from_defaults(fn=multiply)
    chunks = list(llm.stream_chat_with_tools([tool], user_msg="6*7?"))
    assert chunks and all(c.additional_kwargs[ROUTELLM_KEY]["side"] == "strong" for c in chunks)
    assert llm.get_tool_calls_from_response(chunks[-1])[0].tool_name == "multiply"


@pytest.mark.asyncio
async def test_async_tools(fc_strong, fc_weak, make_router) -> None:
    router = make_router(0.1)
    llm = RouterLLM(strong=fc_strong, weak=fc_weak, router=router, threshold=0.5)
    tool = FunctionTool.from_defaults(fn=multiply)
    response = await llm.achat_with_tools([tool], user_msg="6*7?")
    assert response.additional_kwargs[ROUTELLM_KEY]["side"] == "weak"
    stream = await llm.astream_chat_with_tools(
        [tool], chat_history=[ChatMessage(role="user", content="6*7?")]
    )
    chunks = [c async for c in stream]
    assert chunks and all(c.additional_kwargs[ROUTELLM_KEY]["side"] == "weak" for c in chunks)
    assert fc_strong.events == [] and threading.main_thread().name not in router.threads


def test_prepare_chat_with_tools_leaves_the_request_to_the_chosen_side(
    fc_strong, fc_weak, make_router
) -> None:
    # FunctionCallingLLM's template: prepare, chat(**prepared), validate. The router's prepared
    # request is the conversation and the tools; the side routed to prepares its own.
    router = make_router(0.9)
    llm = RouterLLM(strong=fc_strong, weak=fc_weak, router=router, threshold=0.5)
    tool = FunctionTool.from_defaults(fn=multiply)
    prepared = llm._prepare_chat_with_tools([tool], user_msg="6*7?")
    assert prepared["tools"] == [tool] and [m.content for m in prepared["messages"]] == ["6*7?"]
    assert router.texts == [] and fc_strong.events == []  # nothing routed or prepared yet
    response = llm.chat(**prepared)
    assert len(router.texts) == 1
    assert response.additional_kwargs[ROUTELLM_KEY]["side"] == "strong"
    assert llm._validate_chat_with_tools_response(response, [tool]) is response
    assert fc_strong.events == ["prepare", "validate"] and fc_weak.events == []


def test_a_side_that_cannot_call_functions_is_named(fc_strong, weak, make_router) -> None:
    router = make_router(0.99)  # would go strong, but the weak side is checked up front
    llm = RouterLLM(strong=fc_strong, weak=weak, router=router, threshold=0.5)
    tool = FunctionTool.from_defaults(fn=multiply)
    with pytest.raises(SideNotFunctionCallingError, match="the weak side .*weak-llm"):
        llm.chat_with_tools([tool], user_msg="6*7?")
    assert router.texts == [] and fc_strong.events == []
    # Pinning tool calls to the side that can call functions works.
    response = llm.chat_with_tools([tool], user_msg="6*7?", routellm_force="strong")
    assert response.additional_kwargs[ROUTELLM_KEY]["side"] == "strong"
    with pytest.raises(SideNotFunctionCallingError, match="weak side"):
        llm.chat_with_tools([tool], user_msg="6*7?", routellm_force="weak")


def test_tool_calls_of_a_response_without_a_decision(fc_strong, fc_weak) -> None:
    llm = RouterLLM(strong=fc_strong, weak=fc_weak, threshold=0.5)
    empty = ChatResponse(message=ChatMessage())  # what FunctionAgent uses for an empty stream
    assert llm.get_tool_calls_from_response(empty, error_on_no_tool_call=False) == []
    with pytest.raises(ValueError, match="strong-fc: no tool call"):
        llm.get_tool_calls_from_response(empty, error_on_no_tool_call=True)
    assert not llm._services.engines  # parsing never loads the router


# -- instrumentation and callbacks ----------------------------------------------------------


class _Events(BaseEventHandler):
    events: list[BaseEvent] = []

    @classmethod
    def class_name(cls) -> str:
        return "_Events"

    def handle(self, event: BaseEvent, **kwargs: Any) -> None:
        self.events.append(event)


class _Callbacks(BaseCallbackHandler):
    def __init__(self) -> None:
        super().__init__(event_starts_to_ignore=[], event_ends_to_ignore=[])
        self.starts: list[tuple[CBEventType, str, str, dict[str, Any]]] = []
        self.ends: list[tuple[CBEventType, str, dict[str, Any]]] = []
        self.timeline: list[tuple[str, str]] = []

    def on_event_start(self, event_type, payload=None, event_id="", parent_id="", **kwargs):  # type: ignore[no-untyped-def]
        self.starts.append((event_type, event_id, parent_id, payload or {}))
        self.timeline.append(("start", event_id))
        return event_id

    def on_event_end(self, event_type, payload=None, event_id="", **kwargs):  # type: ignore[no-untyped-def]
        self.ends.append((event_type, event_id, payload or {}))
        self.timeline.append(("end", event_id))

    def start_trace(self, trace_id=None):  # type: ignore[no-untyped-def]
        pass

    def end_trace(self, trace_id=None, trace_map=None):  # type: ignore[no-untyped-def]
        pass


@pytest.fixture
def instrumented() -> Any:
    root = get_dispatcher()
    events = _Events(events=[])
    spans = SimpleSpanHandler()
    root.add_event_handler(events)
    root.add_span_handler(spans)
    yield events, spans
    root.event_handlers.remove(events)
    root.span_handlers.remove(spans)


def test_instrumentation_nests_the_chosen_models_events(
    strong, weak, make_router, instrumented
) -> None:
    events, spans = instrumented
    llm = RouterLLM(strong=strong, weak=weak, router=make_router(0.9), threshold=0.5)
    llm.chat(conversation())

    starts = [e for e in events.events if isinstance(e, LLMChatStartEvent)]
    ends = [e for e in events.events if isinstance(e, LLMChatEndEvent)]
    assert [e.model_dict["class_name"] for e in starts] == ["RouterLLM", "MockLLM"]
    assert starts[0].model_dict["strong"]["model_name"] == "strong-llm"
    assert starts[1].model_dict["model_name"] == "strong-llm"
    # The side's events fire inside the router's: side end first, then the router's end,
    # which carries the decision.
    assert ends[-1].response.additional_kwargs[ROUTELLM_KEY]["side"] == "strong"
    assert starts[0].span_id != starts[1].span_id

    by_id = {s.id_: s for s in spans.completed_spans}
    router_span = by_id[starts[0].span_id]
    side_span = by_id[starts[1].span_id]
    assert router_span.id_.startswith("RouterLLM.chat-")
    assert side_span.parent_id == router_span.id_


@pytest.mark.asyncio
async def test_instrumentation_for_async_tools_and_completion(
    fc_strong, fc_weak, make_router, instrumented
) -> None:
    events, spans = instrumented
    llm = RouterLLM(strong=fc_strong, weak=fc_weak, router=make_router(0.9), threshold=0.5)
    tool = FunctionTool.from_defaults(fn=multiply)
    stream = await llm.astream_chat_with_tools([tool], user_msg="6*7?")
    [c async for c in stream]
    await llm.acomplete("hello")

    chat_starts = [e for e in events.events if isinstance(e, LLMChatStartEvent)]
    assert [e.model_dict["class_name"] for e in chat_starts] == [
        "RouterLLM",
        "MockFunctionCallingLLM",
    ]
    completion_ends = [e for e in events.events if isinstance(e, LLMCompletionEndEvent)]
    assert completion_ends[-1].response.additional_kwargs[ROUTELLM_KEY]["side"] == "strong"
    names = {s.id_.split("-")[0] for s in spans.completed_spans}
    # FunctionCallingLLM's *_with_tools template opens no span of its own (for any LLM); the
    # routed call is the router's astream_chat span, which the template calls.
    assert {"RouterLLM.astream_chat", "RouterLLM.acomplete"} <= names
    tools_span = next(
        s for s in spans.completed_spans if s.id_.startswith("RouterLLM.astream_chat-")
    )
    inner = [s for s in spans.completed_spans if s.parent_id == tools_span.id_]
    assert inner, "the side's spans nest under the router's"


def test_callbacks_report_each_call_once_and_leave_the_sides_alone(make_router) -> None:
    handler = _Callbacks()
    manager = CallbackManager([handler])
    strong, weak = MockLLM(max_tokens=5), MockLLM(max_tokens=3)
    strong_manager, weak_manager = strong.callback_manager, weak.callback_manager
    llm = RouterLLM(
        strong=strong, weak=weak, router=make_router(0.1), threshold=0.5, callback_manager=manager
    )
    response = llm.complete("hello world")
    assert response.text == "text text text"  # weak: max_tokens=3
    # The caller's side objects are untouched: no callback manager is installed into them.
    assert weak.callback_manager is weak_manager and strong.callback_manager is strong_manager
    llm_starts = [s for s in handler.starts if s[0] == CBEventType.LLM]
    [(_, router_id, _, router_payload)] = llm_starts
    assert router_payload["serialized"]["class_name"] == "RouterLLM"
    assert handler.timeline == [("start", router_id), ("end", router_id)]
    router_end = next(e for e in handler.ends if e[1] == router_id)
    assert router_end[2]["completion"].additional_kwargs[ROUTELLM_KEY]["side"] == "weak"


def test_sides_with_their_own_handlers_keep_them(make_router) -> None:
    own = CallbackManager([_Callbacks()])
    strong = MockLLM(callback_manager=own)
    llm = RouterLLM(
        strong=strong,
        weak=MockLLM(),
        router=make_router(0.9),
        threshold=0.5,
        callback_manager=CallbackManager([_Callbacks()]),
    )
    llm.complete("x")
    assert strong.callback_manager is own


def test_concurrent_calls_from_threads(strong, weak) -> None:
    llm = RouterLLM(
        strong=strong, weak=weak, router=routellm_base.RandomRouter(seed=3), threshold=0.5
    )

    def call(i: int) -> str:
        return llm.complete(f"question {i}").additional_kwargs[ROUTELLM_KEY]["side"]

    with ThreadPoolExecutor(8) as pool:
        sides = list(pool.map(call, range(64)))
    assert set(sides) == {"strong", "weak"}
    assert len(strong.calls) == sides.count("strong") and len(weak.calls) == sides.count("weak")


@pytest.mark.asyncio
async def test_concurrent_async_calls(strong, weak) -> None:
    llm = RouterLLM(
        strong=strong, weak=weak, router=routellm_base.RandomRouter(seed=4), threshold=0.5
    )
    results = await asyncio.gather(*(llm.acomplete(f"q{i}") for i in range(32)))
    sides = [r.additional_kwargs[ROUTELLM_KEY]["side"] for r in results]
    assert len(strong.calls) == sides.count("strong") and len(weak.calls) == sides.count("weak")


def test_record_decisions_counts_each_routed_call_once(strong, weak, make_router) -> None:
    llm = RouterLLM(strong=strong, weak=weak, router=make_router(0.7), threshold=0.5)
    with record_decisions() as recorder:
        llm.chat(conversation())
        llm.complete("hello", routellm_force="weak")
        list(llm.stream_chat(conversation()))
        strong.complete("a direct call to a side is not a routed call")
    assert [(d["side"], d["forced"]) for d in recorder.decisions] == [
        ("strong", False),
        ("weak", True),
        ("strong", False),
    ]
    llm.chat(conversation())  # after the block the recorder is detached
    assert len(recorder.decisions) == 3


def test_structured_predict_goes_through_a_routed_tool_call(make_fc, make_router) -> None:
    from llama_index.core.bridge.pydantic import BaseModel
    from llama_index.core.prompts import PromptTemplate

    class Answer(BaseModel):
        value: int

    strong = make_fc("strong-fc", tool_name="Answer", tool_kwargs={"value": 7})
    weak = make_fc("weak-fc", tool_name="Answer", tool_kwargs={"value": 3})
    llm = RouterLLM(strong=strong, weak=weak, router=make_router(0.2), threshold=0.5)
    answer = llm.structured_predict(Answer, PromptTemplate("Pick a number about {x}"), x="luck")
    assert answer == Answer(value=3)  # the weak side's tool call was parsed by the weak side
    assert weak.seen_tools == [["Answer"]] and strong.seen_tools == []


def test_tool_required_reaches_a_side_that_supports_it(make_fc, make_router) -> None:
    seen: list[Any] = []

    class RequiringLLM(make_fc):  # type: ignore[misc,valid-type]
        def _prepare_chat_with_tools(
            self, tools: Any, tool_required: bool = False, **kwargs: Any
        ) -> Any:
            seen.append(tool_required)
            return super()._prepare_chat_with_tools(tools, **kwargs)

    side = RequiringLLM("requiring", tool_kwargs={"a": 1, "b": 2})
    llm = RouterLLM(strong=side, weak=make_fc("weak-fc"), router=make_router(0.9), threshold=0.5)
    tool = FunctionTool.from_defaults(fn=multiply)
    llm.chat_with_tools([tool], user_msg="1*2?", tool_required=True)
    llm.chat(**llm._prepare_chat_with_tools([tool], user_msg="1*2?", tool_required=True))
    llm.chat_with_tools([tool], user_msg="1*2?")
    assert seen == [True, True, False]


@pytest.mark.parametrize("router_name", ["mf", "task_experts"])
def test_bundled_router_routes_end_to_end(strong, weak, router_name) -> None:
    llm = RouterLLM(
        strong=strong, weak=weak, strong_share=0.5, router=router_name
    )  # "task_experts" is the default
    prompts = [f"Question {i}: explain topic number {i} in detail" for i in range(20)]
    decisions = [llm.complete(p).additional_kwargs[ROUTELLM_KEY] for p in prompts]
    assert {d["router"] for d in decisions} == {router_name}
    threshold = llm.engine.threshold  # from the checkpoint's calibration for a 50% share
    assert 0.0 < threshold < 1.0
    for d in decisions:
        assert d["threshold"] == threshold
        assert d["side"] == ("strong" if d["win_rate"] >= threshold else "weak")
    assert len(strong.calls) == sum(d["side"] == "strong" for d in decisions)


@pytest.mark.asyncio
async def test_default_router_async_chat(strong, weak) -> None:
    llm = RouterLLM(strong=strong, weak=weak, threshold=0.5, routing_text_mode="conversation")
    response = await llm.achat(conversation())
    decision = response.additional_kwargs[ROUTELLM_KEY]
    assert decision["router"] == "task_experts" and decision["routing_text_tokens"] > 0
    assert (strong.calls or weak.calls)[0][0] == "achat"
