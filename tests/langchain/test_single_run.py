"""One model run per routed call: each token reaches a streaming consumer once (astream_events,
LangGraph ``stream_mode="messages"``), usage is reported once, and the decision rides on that run."""

from __future__ import annotations

from typing import Annotated, Any

import pytest
from langchain_core.callbacks import UsageMetadataCallbackHandler
from langchain_core.messages import AIMessage, AnyMessage, HumanMessage
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages
from lc_helpers import RunRecorder, scripted, usage
from typing_extensions import TypedDict

import routellm_base
from langchain_routellm import RouteLLMCostCallbackHandler, RouterChatModel

ANSWER = "alpha beta gamma"


def router(threshold: float = 0.0, **kw: Any) -> RouterChatModel:
    return RouterChatModel(
        strong=scripted("big-model", ANSWER, in_tokens=11, out_tokens=7),
        weak=scripted("small-model", "delta epsilon", in_tokens=5, out_tokens=3),
        router=routellm_base.RandomRouter(seed=0),
        threshold=threshold,
        **kw,
    )


def _stream_text(events: list[dict[str, Any]]) -> str:
    return "".join(
        str(e["data"]["chunk"].content) for e in events if e["event"] == "on_chat_model_stream"
    )


@pytest.mark.asyncio
async def test_astream_events_deliver_each_token_once() -> None:
    llm = router()
    events = [e async for e in llm.astream_events("Tell me something", version="v2")]
    assert _stream_text(events) == ANSWER
    starts = [e for e in events if e["event"] == "on_chat_model_start"]
    assert [e["name"] for e in starts] == ["RouterChatModel"]  # one model run
    (end,) = [e for e in events if e["event"] == "on_chat_model_end"]
    output = end["data"]["output"]
    assert output.response_metadata["routellm"]["side"] == "strong"
    assert output.response_metadata["model_name"] == "big-model"
    assert output.usage_metadata == usage(11, 7)


@pytest.mark.asyncio
async def test_astream_events_of_an_invoke_inside_a_chain_deliver_once() -> None:
    from langchain_core.runnables import RunnableLambda

    llm = router()
    chain = RunnableLambda(lambda q, config: llm.invoke(q, config))
    events = [e async for e in chain.astream_events("Tell me something", version="v2")]
    assert _stream_text(events) == ANSWER


class State(TypedDict):
    messages: Annotated[list[AnyMessage], add_messages]


def _graph(llm: RouterChatModel):  # type: ignore[no-untyped-def]
    def call_model(state: State) -> dict[str, list[AIMessage]]:
        return {"messages": [llm.invoke(state["messages"])]}

    builder = StateGraph(State)
    builder.add_node("model", call_model)
    builder.add_edge(START, "model")
    builder.add_edge("model", END)
    return builder.compile()


def test_langgraph_messages_stream_delivers_each_token_once() -> None:
    llm = router()
    graph = _graph(llm)
    pieces = [
        chunk
        for chunk, _meta in graph.stream(
            {"messages": [HumanMessage("Tell me something")]}, stream_mode="messages"
        )
    ]
    assert "".join(str(p.content) for p in pieces) == ANSWER
    # The decision arrives with the first piece, so a UI can show the route before the tokens.
    assert pieces[0].response_metadata["routellm"]["side"] == "strong"
    state = graph.invoke({"messages": [HumanMessage("Tell me something")]})
    assert state["messages"][-1].content == ANSWER
    assert state["messages"][-1].usage_metadata == usage(11, 7)


@pytest.mark.asyncio
async def test_langgraph_messages_astream_delivers_each_token_once() -> None:
    graph = _graph(router(threshold=1.0))
    pieces = [
        chunk
        async for chunk, _meta in graph.astream(
            {"messages": [HumanMessage("hi")]}, stream_mode="messages"
        )
    ]
    assert "".join(str(p.content) for p in pieces) == "delta epsilon"


@pytest.mark.parametrize("mode", ["invoke", "stream", "batch", "ainvoke", "astream"])
def test_one_model_run_carries_decision_and_usage(mode: str) -> None:
    import asyncio

    llm = router()
    rec = RunRecorder()
    usage_handler = UsageMetadataCallbackHandler()
    config: Any = {"callbacks": [rec, usage_handler]}
    if mode == "invoke":
        message = llm.invoke("hello", config=config)
    elif mode == "batch":
        (message,) = llm.batch(["hello"], config=config)
    elif mode == "ainvoke":
        message = asyncio.run(llm.ainvoke("hello", config=config))
    else:
        if mode == "stream":
            chunks = list(llm.stream("hello", config=config))
        else:

            async def collect() -> list[Any]:
                return [c async for c in llm.astream("hello", config=config)]

            chunks = asyncio.run(collect())
        message = chunks[0]
        for c in chunks[1:]:
            message = message + c
    assert message.usage_metadata == usage(11, 7)
    assert message.response_metadata["routellm"]["side"] == "strong"
    assert len(rec.starts) == 1  # the router's run only: no second run reports the same call
    (end,) = rec.ends.values()
    ended = end.generations[0][0].message
    assert ended.usage_metadata == usage(11, 7)
    assert ended.response_metadata["routellm"]["model"] == "big-model"
    assert "routellm_usage" not in ended.response_metadata
    assert usage_handler.usage_metadata == {"big-model": usage(11, 7)}


def test_cost_handler_given_to_the_constructor_counts() -> None:
    handler = RouteLLMCostCallbackHandler({"big-model": (10, 20), "small-model": (1, 2)})
    llm = router(callbacks=[handler])
    llm.invoke("hello")
    list(llm.stream("hello"))
    llm.invoke("hello", routellm_force="weak")
    report = handler.report()
    assert (report.strong.calls, report.weak.calls) == (2, 1)
    assert (report.strong.input_tokens, report.strong.output_tokens) == (22, 14)
    assert (report.weak.input_tokens, report.weak.output_tokens) == (5, 3)
