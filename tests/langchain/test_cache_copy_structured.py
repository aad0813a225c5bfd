"""RouterChatModel under LangChain's LLM cache, copying and pickling, and structured output."""

from __future__ import annotations

import asyncio
import copy
import json
import pickle
from collections.abc import Iterator
from typing import Any

import pytest
from langchain_core.caches import InMemoryCache
from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.globals import set_llm_cache
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.output_parsers import PydanticOutputParser
from langchain_core.output_parsers.openai_tools import PydanticToolsParser
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.runnables import Runnable
from langchain_core.tools import tool
from lc_helpers import ReactiveToolModel, ScriptedChatModel, scripted, usage
from pydantic import BaseModel

import routellm_base
from langchain_routellm import RouteLLMCostCallbackHandler, RouterChatModel
from routellm_base.errors import RoutingInputError


@tool
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


class Weather(BaseModel):
    """Weather in a city."""

    city: str
    celsius: int


def _tool_reply(args: dict) -> AIMessage:
    return AIMessage(
        content="",
        tool_calls=[{"name": "Weather", "args": args, "id": "call_1"}],
        usage_metadata=usage(20, 8),  # type: ignore[arg-type]
    )


def structured_router(**kw: object) -> RouterChatModel:
    return RouterChatModel(
        strong=scripted("big-model", _tool_reply({"city": "Oslo", "celsius": 3})),
        weak=scripted("small-model", _tool_reply({"city": "Rome", "celsius": 20})),
        router=routellm_base.RandomRouter(seed=0),
        threshold=0.0,  # unforced calls go strong
        **kw,
    )


# -- cache --------------------------------------------------------------------------------------


@pytest.fixture
def global_cache() -> Iterator[InMemoryCache]:
    cache = InMemoryCache()
    set_llm_cache(cache)
    try:
        yield cache
    finally:
        set_llm_cache(None)


def tool_router() -> RouterChatModel:
    return RouterChatModel(
        strong=ReactiveToolModel(model_name="big-model"),
        weak=scripted("small-model", "weak answer"),
        router=routellm_base.RandomRouter(seed=0),
        threshold=0.0,
    )


def test_cache_is_reused_only_for_the_same_call(global_cache: InMemoryCache) -> None:
    llm = RouterChatModel(
        strong=scripted("big-model", "strong 1", "strong 2", "strong 3", "strong 4"),
        weak=scripted("small-model", "weak 1", "weak 2"),
        router=routellm_base.RandomRouter(seed=0),
        threshold=0.0,
    )
    first = llm.invoke("q")
    assert first.content == "strong 1"
    assert llm.invoke("q").content == "strong 1"  # the same call: cached
    assert len(llm.strong.calls) == 1
    # A forced side, from the call argument or from the config's metadata, is another call.
    assert llm.invoke("q", routellm_force="weak").content == "weak 1"
    forced = llm.invoke("q", config={"metadata": {"routellm_force": "weak"}})
    assert forced.response_metadata["routellm"]["side"] == "weak"
    assert (
        llm.invoke("q", config={"metadata": {"routellm_force": "weak"}}).content == forced.content
    )
    # Other call options are other calls.
    assert llm.invoke("q", stop=["###"]).content == "strong 2"
    assert llm.invoke("q", temperature=0.1).content == "strong 3"
    # A router configured otherwise (here: another threshold) does not share the entries.
    other = llm.model_copy(update={"threshold": 1.0})
    assert other.invoke("q").response_metadata["routellm"]["side"] == "weak"
    assert llm.invoke("q").content == "strong 1"


def test_model_copy_with_other_settings_routes_by_them() -> None:
    llm = RouterChatModel(
        strong=scripted("big-model", "s"),
        weak=scripted("small-model", "w"),
        router=routellm_base.RandomRouter(seed=0),
        threshold=0.0,
    )
    assert llm.invoke("q").response_metadata["routellm"]["side"] == "strong"
    weak_only = llm.model_copy(update={"threshold": 1.0})
    assert weak_only.invoke("q").response_metadata["routellm"]["side"] == "weak"
    assert llm.invoke("q").response_metadata["routellm"]["side"] == "strong"
    assert weak_only.engine.threshold == 1.0 and llm.engine.threshold == 0.0


def test_cache_keeps_tool_calls_apart(global_cache: InMemoryCache) -> None:
    llm = tool_router()
    plain = llm.invoke("What is 2 + 3?")
    with_tools = llm.bind_tools([add]).invoke("What is 2 + 3?")
    assert [c["name"] for c in with_tools.tool_calls] == ["add"]
    assert llm.strong.calls[-1]["tools"][0]["function"]["name"] == "add"
    assert len(llm.strong.calls) == 2 and "tools" not in llm.strong.calls[0]
    assert plain.tool_calls[0]["name"] == "add"  # the reactive model always asks for the tool
    other_tool = llm.bind_tools([Weather]).invoke("What is 2 + 3?")
    assert len(llm.strong.calls) == 3
    assert llm.strong.calls[-1]["tools"][0]["function"]["name"] == "Weather"
    assert other_tool.response_metadata["routellm"]["side"] == "strong"


def test_cache_async(global_cache: InMemoryCache) -> None:
    llm = RouterChatModel(
        strong=scripted("big-model", "strong 1", "strong 2"),
        weak=scripted("small-model", "weak 1", "weak 2"),
        router=routellm_base.RandomRouter(seed=0),
        threshold=0.0,
    )

    async def run() -> list[str]:
        return [
            str((await llm.ainvoke("q")).content),
            str((await llm.ainvoke("q")).content),
            str((await llm.ainvoke("q", config={"metadata": {"routellm_force": "weak"}})).content),
        ]

    assert asyncio.run(run()) == ["strong 1", "strong 1", "weak 1"]


# -- copy and pickle ---------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["deepcopy", "pickle"])
def test_copy_and_pickle_before_and_after_the_first_call(how: str) -> None:
    def clone(model: RouterChatModel) -> RouterChatModel:
        if how == "deepcopy":
            return copy.deepcopy(model)
        return pickle.loads(pickle.dumps(model))

    llm = RouterChatModel(
        strong=scripted("big-model", "strong answer"),
        weak=scripted("small-model", "weak answer"),
        router=routellm_base.RandomRouter(seed=0),
        threshold=0.5,
        prices={"big-model": (10, 20)},
    )
    before = clone(llm)
    assert before.invoke("hi", routellm_force="strong").content == "strong answer"
    llm.invoke("hi", routellm_force="weak")
    after = clone(llm)
    assert after.invoke("hi", routellm_force="weak").content == "weak answer"
    assert after.decide("hi").win_rate is not None
    # A copy keeps its own engine and totals: calls through it are not counted on the original.
    assert llm.cost_report().calls == 1
    assert after.cost_report().calls == 1
    assert llm.engine is not after.engine
    bound = clone(llm.bind_tools([add]))  # type: ignore[arg-type]
    assert bound.invoke("hi", routellm_force="weak").content == "weak answer"


def test_bundled_router_by_name_pickles_after_loading() -> None:
    llm = RouterChatModel(
        strong=scripted("big-model", "s"), weak=scripted("small-model", "w"), strong_share=0.5
    )
    decision = llm.invoke("Prove the Cauchy-Schwarz inequality.").response_metadata["routellm"]
    again = pickle.loads(pickle.dumps(llm))
    redo = again.invoke("Prove the Cauchy-Schwarz inequality.").response_metadata["routellm"]
    assert redo["win_rate"] == pytest.approx(decision["win_rate"])


# -- structured output -------------------------------------------------------------------------


@pytest.mark.parametrize("side", ["strong", "weak"])
def test_with_structured_output_takes_the_force_argument(side: str) -> None:
    llm = structured_router()
    structured = llm.with_structured_output(Weather)
    expected = (
        Weather(city="Oslo", celsius=3) if side == "strong" else Weather(city="Rome", celsius=20)
    )
    assert structured.invoke("weather?", routellm_force=side) == expected
    assert asyncio.run(structured.ainvoke("weather?", routellm_force=side)) == expected
    assert structured.invoke("weather?", {"metadata": {"routellm_force": side}}) == expected


def test_with_structured_output_include_raw_carries_the_decision() -> None:
    llm = structured_router()
    out = llm.with_structured_output(Weather, include_raw=True).invoke(
        "weather?", config={"metadata": {"routellm_force": "weak"}}
    )
    assert out["parsed"] == Weather(city="Rome", celsius=20)
    assert out["parsing_error"] is None
    assert out["raw"].response_metadata["routellm"]["side"] == "weak"
    assert out["raw"].usage_metadata == usage(20, 8)


class MethodModel(ScriptedChatModel):
    """A stand-in side with ``with_structured_output`` in ChatOpenAI's three methods, each
    built as ``binding | parser``: it answers its city, as a tool call when tools are bound,
    else as JSON text, and records each call's kwargs."""

    city: str = ""

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        self.calls.append({"stop": stop, **kwargs})
        args = {"city": self.city, "celsius": 3}
        reply = (
            AIMessage(content="", tool_calls=[{"name": "Weather", "args": args, "id": "call_1"}])
            if "tools" in kwargs
            else AIMessage(content=json.dumps(args))
        )
        return ChatResult(generations=[ChatGeneration(message=reply)])

    def with_structured_output(  # type: ignore[override]
        self, schema: type[BaseModel], *, method: str = "function_calling", **kwargs: Any
    ) -> Runnable:
        assert not kwargs, kwargs  # the router asks each side for the plain form
        if method == "function_calling":
            tools = self.bind_tools([schema], tool_choice=schema.__name__)
            return tools | PydanticToolsParser(tools=[schema], first_tool_only=True)
        formats = {
            "json_schema": {"type": "json_schema", "json_schema": schema.model_json_schema()},
            "json_mode": {"type": "json_object"},
        }
        return self.bind(response_format=formats[method]) | PydanticOutputParser(
            pydantic_object=schema
        )


def method_router() -> RouterChatModel:
    return RouterChatModel(
        strong=MethodModel(model_name="big-model", city="Oslo", disable_streaming=True),
        weak=MethodModel(model_name="small-model", city="Rome", disable_streaming=True),
        router=routellm_base.RandomRouter(seed=0),
        threshold=1.0,  # unforced calls go weak
    )


ROUTING_ARGUMENTS = [{"routellm_force": "strong"}, {"threshold": 0.0}, {"strong_share": 1.0}]
"""Call arguments that each send a call strong, under a router whose own policy sends it weak."""


@pytest.mark.parametrize("include_raw", [False, True])
@pytest.mark.parametrize("method", ["function_calling", "json_schema", "json_mode"])
def test_with_structured_output_passes_call_arguments_to_the_routed_model(
    method: str, include_raw: bool
) -> None:
    # A sequence passes call arguments to its first step only: include_raw's RunnableMap(raw=...)
    # dropped them, so the call went weak and a misspelt routellm_* argument was accepted.
    llm = method_router()
    structured = llm.with_structured_output(Weather, method=method, include_raw=include_raw)
    oslo = Weather(city="Oslo", celsius=3)

    def parsed(out: Any) -> Any:
        if include_raw:
            assert out["parsing_error"] is None
            return out["parsed"]
        return out

    def merged(chunks: list[Any]) -> Any:
        return {k: v for c in chunks for k, v in c.items()} if include_raw else chunks[-1]

    assert parsed(structured.invoke("weather?")).city == "Rome"  # the router's own policy
    for arguments in ROUTING_ARGUMENTS:
        out = structured.invoke("weather?", **arguments)
        assert parsed(out) == oslo, arguments
        if include_raw:
            record = out["raw"].response_metadata["routellm"]
            assert record["side"] == "strong"
            assert record["forced"] == ("routellm_force" in arguments)
            if "routellm_force" not in arguments:
                assert record["extra"]["call_policy"] == arguments
        assert parsed(asyncio.run(structured.ainvoke("weather?", **arguments))) == oslo
        assert parsed(merged(list(structured.stream("weather?", **arguments)))) == oslo
        (batched,) = structured.batch(["weather?"], **arguments)
        assert parsed(batched) == oslo
        assert parsed(structured.bind(**arguments).invoke("weather?")) == oslo
    # The side got its own binding and none of the routing arguments.
    key = "tools" if method == "function_calling" else "response_format"
    assert len(llm.strong.calls) == 5 * len(ROUTING_ARGUMENTS)
    for call in llm.strong.calls:
        assert key in call and not {"routellm_force", "threshold", "strong_share"} & call.keys()
    # A misspelt routing argument is refused before any model is called, not dropped.
    calls = len(llm.strong.calls) + len(llm.weak.calls)
    with pytest.raises(RoutingInputError, match="unknown call argument 'routellm_forse'"):
        structured.invoke("weather?", routellm_forse="strong")
    with pytest.raises(RoutingInputError, match="unknown call argument 'routellm_forse'"):
        list(structured.stream("weather?", routellm_forse="strong"))
    assert len(llm.strong.calls) + len(llm.weak.calls) == calls


def test_bind_tools_passes_call_arguments_to_the_routed_model() -> None:
    llm = method_router()
    bound = llm.bind_tools([Weather])
    assert bound.invoke("weather?").tool_calls[0]["args"]["city"] == "Rome"
    for arguments in ROUTING_ARGUMENTS:
        replies = [
            bound.invoke("weather?", **arguments),
            asyncio.run(bound.ainvoke("weather?", **arguments)),
            list(bound.stream("weather?", **arguments))[0],
            bound.batch(["weather?"], **arguments)[0],
        ]
        assert [r.response_metadata["routellm"]["side"] for r in replies] == ["strong"] * 4
    assert len(llm.strong.calls) == 4 * len(ROUTING_ARGUMENTS)
    for call in llm.strong.calls:
        assert "tools" in call and not {"routellm_force", "threshold", "strong_share"} & call.keys()
    with pytest.raises(RoutingInputError, match="unknown call argument 'routellm_forse'"):
        bound.invoke("weather?", routellm_forse="strong")


def test_with_structured_output_calls_are_counted_once() -> None:
    handler = RouteLLMCostCallbackHandler()
    llm = structured_router()
    structured = llm.with_structured_output(Weather)
    structured.invoke("weather?", config={"callbacks": [handler]})
    structured.invoke("weather?", routellm_force="weak", config={"callbacks": [handler]})
    asyncio.run(structured.ainvoke("weather?"))
    list(structured.stream("weather?"))
    report = llm.cost_report()
    assert (report.strong.calls, report.weak.calls) == (3, 1)
    assert (report.strong.input_tokens, report.weak.input_tokens) == (60, 20)
    assert report.strong.estimated_calls == 0
    by_handler = handler.report()
    assert (by_handler.strong.calls, by_handler.weak.calls) == (1, 1)


def test_with_structured_output_traces_its_format_on_the_router_run() -> None:
    from lc_helpers import RunRecorder

    class Options(RunRecorder):
        def on_chat_model_start(self, *args: object, **kwargs: object) -> None:
            super().on_chat_model_start(*args, **kwargs)  # type: ignore[arg-type]
            self.starts[-1]["options"] = kwargs.get("options") or {}

    rec = Options()
    structured_router().with_structured_output(Weather).invoke("weather?", {"callbacks": [rec]})
    (run,) = rec.starts
    traced = run["options"]["ls_structured_output_format"]
    assert traced["kwargs"] == {"method": "function_calling"}
    assert "Weather" in str(traced["schema"])
    # ...while the sides never receive the tracing-only argument
    llm = structured_router()
    llm.with_structured_output(Weather).invoke("weather?")
    assert "ls_structured_output_format" not in llm.strong.calls[-1]


def test_cost_handler_ignores_cache_hits(global_cache: InMemoryCache) -> None:
    handler = RouteLLMCostCallbackHandler()
    llm = RouterChatModel(
        strong=scripted("big-model", "s"),
        weak=scripted("small-model", "w"),
        router=routellm_base.RandomRouter(seed=0),
        threshold=0.0,
    )
    llm.invoke("q", config={"callbacks": [handler]})
    llm.invoke("q", config={"callbacks": [handler]})  # answered from the cache
    assert handler.report().calls == 1
    assert llm.cost_report().calls == 1


def test_a_stop_bound_to_a_side_reaches_it_unless_the_call_gives_one() -> None:
    # bind_tools(..., stop=...) binds stop to each side; the router's default (None) must not
    # overwrite it, while a call's own stop still wins, as for RunnableBinding.
    strong = scripted("strong", "ok")
    llm = RouterChatModel(
        strong=strong,
        weak=scripted("weak", "ok"),
        router=routellm_base.RandomRouter(seed=0),
        threshold=0.0,  # always strong
    )
    bound = llm.bind_tools([add], stop=["END"])
    bound.invoke("hi")
    bound.invoke("hi", stop=["CALL"])
    assert [c["stop"] for c in strong.calls] == [["END"], ["CALL"]]
