"""RouterChatModel under LangChain's LLM cache, copying and pickling, and structured output."""

from __future__ import annotations

import asyncio
import copy
import pickle
from collections.abc import Iterator

import pytest
from langchain_core.caches import InMemoryCache
from langchain_core.globals import set_llm_cache
from langchain_core.messages import AIMessage
from langchain_core.tools import tool
from lc_helpers import ReactiveToolModel, scripted, usage
from pydantic import BaseModel

import routellm_base
from langchain_routellm import RouteLLMCostCallbackHandler, RouterChatModel


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
