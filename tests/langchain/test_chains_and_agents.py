"""RouterChatModel inside real LangChain machinery: LCEL chains over the real SmolLM2 model, and the
real agent runtimes (``langchain.agents.create_agent`` and LangGraph's prebuilt ReAct agent) over
scripted tool-calling models (SmolLM2 cannot call tools)."""

from __future__ import annotations

import warnings
from typing import Any

import pytest
from langchain.agents import create_agent
from langchain_core.messages import AIMessage, AIMessageChunk, HumanMessage, ToolMessage
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.tools import tool
from lc_helpers import ReactiveToolModel, RunRecorder

import routellm_base
from langchain_routellm import RouteLLMCostCallbackHandler, RouterChatModel

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # create_react_agent is deprecated in favour of create_agent
    from langgraph.prebuilt import create_react_agent


@tool
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


QUESTION = "What is 2 + 3?"
FINAL = "The answer is 5."
PRICES = {"big-model": (10, 20), "small-model": (1, 2)}


def _router(threshold: float, seed: int = 1) -> RouterChatModel:
    return RouterChatModel(
        strong=ReactiveToolModel(model_name="big-model"),
        weak=ReactiveToolModel(model_name="small-model"),
        router=routellm_base.RandomRouter(seed=seed),
        threshold=threshold,
    )


def _agent(kind: str, llm: RouterChatModel) -> Any:
    if kind == "create_agent":
        return create_agent(llm, tools=[add])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return create_react_agent(llm, tools=[add])


AGENTS = ["create_agent", "create_react_agent"]


def _check_run(llm: RouterChatModel, messages: list, threshold: float) -> None:
    """The agent asked for ``add``, ran it once, and answered with its result; each step's
    chosen side got the tool schema, and each step was counted once."""
    assert [m.type for m in messages] == ["human", "ai", "tool", "ai"]
    ask, result, final = messages[1], messages[2], messages[3]
    assert [c["name"] for c in ask.tool_calls] == ["add"]
    assert isinstance(result, ToolMessage) and result.content == "5"
    assert result.tool_call_id == ask.tool_calls[0]["id"]
    assert final.content == FINAL
    decisions = [m.response_metadata["routellm"] for m in (ask, final)]
    if threshold == 0.0:
        assert {d["side"] for d in decisions} == {"strong"}
    if threshold == 1.0:
        assert {d["side"] for d in decisions} == {"weak"}
    calls = llm.strong.calls + llm.weak.calls
    assert len(calls) == 2
    assert all(c["tools"][0]["function"]["name"] == "add" for c in calls)
    assert len(llm.strong.calls) == sum(d["side"] == "strong" for d in decisions)


@pytest.mark.parametrize("kind", AGENTS)
@pytest.mark.parametrize("threshold", [0.0, 0.5, 1.0])
def test_agent_runs_the_tool_and_counts_each_step_once(kind: str, threshold: float) -> None:
    llm = _router(threshold)
    handler = RouteLLMCostCallbackHandler(PRICES)
    state = _agent(kind, llm).invoke(
        {"messages": [HumanMessage(QUESTION)]}, config={"callbacks": [handler]}
    )
    _check_run(llm, state["messages"], threshold)
    # step 1 is 25 in / 9 out, step 2 is 30 in / 6 out, on whichever side took it
    for report in (handler.report(), llm.cost_report()):
        assert report.calls == 2
        assert report.strong.input_tokens + report.weak.input_tokens == 55
        assert report.strong.output_tokens + report.weak.output_tokens == 15


@pytest.mark.parametrize("kind", AGENTS)
def test_agent_messages_stream_delivers_each_token_once(kind: str) -> None:
    llm = _router(0.5)
    pieces = list(
        _agent(kind, llm).stream({"messages": [HumanMessage(QUESTION)]}, stream_mode="messages")
    )
    model_chunks = [m for m, _meta in pieces if isinstance(m, AIMessageChunk)]
    assert "".join(str(m.content) for m in model_chunks) == FINAL
    asked = [tc["name"] for m in model_chunks for tc in m.tool_call_chunks]
    assert asked == ["add"]  # the tool call arrives once
    tool_results = [m for m, _meta in pieces if isinstance(m, ToolMessage)]
    assert [m.content for m in tool_results] == ["5"]
    # each model step's first chunk carries its decision
    assert sum("routellm" in m.response_metadata for m in model_chunks) == 2
    assert len(llm.strong.calls) + len(llm.weak.calls) == 2


@pytest.mark.asyncio
@pytest.mark.parametrize("kind", AGENTS)
async def test_agent_astream_events_deliver_each_token_once(kind: str) -> None:
    llm = _router(0.5, seed=2)
    rec = RunRecorder()
    events = [
        e
        async for e in _agent(kind, llm).astream_events(
            {"messages": [HumanMessage(QUESTION)]}, {"callbacks": [rec]}, version="v2"
        )
    ]
    text = "".join(
        str(e["data"]["chunk"].content) for e in events if e["event"] == "on_chat_model_stream"
    )
    assert text == FINAL
    starts = [e["name"] for e in events if e["event"] == "on_chat_model_start"]
    assert starts == ["RouterChatModel", "RouterChatModel"]  # one model run per step
    assert [e["name"] for e in events if e["event"] == "on_tool_end"] == ["add"]
    ends = [e["data"]["output"] for e in events if e["event"] == "on_chat_model_end"]
    assert [isinstance(m, AIMessage) and "routellm" in m.response_metadata for m in ends] == [
        True,
        True,
    ]
    assert len(rec.starts) == 2


@pytest.mark.asyncio
async def test_agent_ainvoke() -> None:
    llm = _router(0.5, seed=2)
    state = await create_agent(llm, tools=[add]).ainvoke({"messages": [HumanMessage(QUESTION)]})
    _check_run(llm, state["messages"], 0.5)


# -- real model ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def smol_router(smollm2_loader) -> RouterChatModel:
    # Both sides are SmolLM2-135M-Instruct: "strong" may write more tokens than "weak". They
    # stand in for two real models; the routing, nesting and accounting are what is tested.
    return RouterChatModel(
        strong=smollm2_loader(model_name="smollm2-as-strong", max_new_tokens=16),
        weak=smollm2_loader(model_name="smollm2-as-weak", max_new_tokens=8),
        router=routellm_base.RandomRouter(seed=0),
        threshold=0.5,
        prices={"smollm2-as-strong": (2.5, 10.0), "smollm2-as-weak": (0.15, 0.6)},
    )


@pytest.mark.slow
def test_lcel_chain_prompt_router_parser_real_model(smol_router: RouterChatModel) -> None:
    prompt = ChatPromptTemplate.from_messages(
        [("system", "You are a helpful assistant. Answer briefly."), ("human", "{question}")]
    )
    chain = prompt | smol_router | StrOutputParser()
    rec = RunRecorder()
    handler = RouteLLMCostCallbackHandler(
        {"smollm2-as-strong": (2.5, 10.0), "smollm2-as-weak": (0.15, 0.6)}
    )
    answer = chain.invoke(
        {"question": "What is the capital of France?"}, config={"callbacks": [rec, handler]}
    )
    assert isinstance(answer, str) and answer.strip()
    (router_run,) = rec.starts  # one model run: the router's, under the chain
    answer_msg = rec.ends[router_run["run_id"]].generations[0][0].message
    side = answer_msg.response_metadata["routellm"]["side"]
    assert answer_msg.response_metadata["model_name"] == f"smollm2-as-{side}"
    # the model's own token counts, counted once and priced by side
    report = handler.report()
    assert report.calls == 1
    totals = getattr(report, side)
    assert (totals.input_tokens, totals.output_tokens) == (
        answer_msg.usage_metadata["input_tokens"],
        answer_msg.usage_metadata["output_tokens"],
    )
    assert totals.estimated_calls == 0
    price = (2.5, 10.0) if side == "strong" else (0.15, 0.6)
    assert totals.cost == pytest.approx(
        (totals.input_tokens * price[0] + totals.output_tokens * price[1]) / 1e6
    )
    # streaming through the chain yields text pieces
    pieces = list(chain.stream({"question": "Say hello."}))
    assert len(pieces) >= 2 and "".join(pieces).strip()


@pytest.mark.slow
def test_real_model_metadata_stop_and_batch(smol_router: RouterChatModel) -> None:
    msgs = smol_router.batch(["Count: 1, 2, 3, 4, 5, 6, 7", "Name a color."])
    for msg in msgs:
        d = msg.response_metadata["routellm"]
        assert msg.response_metadata["model_name"] == f"smollm2-as-{d['side']}"
        assert msg.usage_metadata["output_tokens"] <= (16 if d["side"] == "strong" else 8)
    stopped = smol_router.invoke(
        "Count from 1 to 9, separated by commas.", stop=["4"], routellm_force="strong"
    )
    assert "4" not in stopped.content
    assert "4" not in "".join(
        c.content for c in smol_router.stream("Count from 1 to 9, separated by commas.", stop=["4"])
    )


@pytest.mark.slow
def test_default_router_with_real_model(smollm2_loader) -> None:
    llm = RouterChatModel(
        strong=smollm2_loader(model_name="smollm2-as-strong"),
        weak=smollm2_loader(model_name="smollm2-as-weak", max_new_tokens=8),
        strong_share=0.5,
    )
    msg = llm.invoke("Prove that the square root of 2 is irrational.")
    d = msg.response_metadata["routellm"]
    assert d["router"] == routellm_base.DEFAULT_ROUTER == "task_experts" and 0.0 <= d["win_rate"] <= 1.0
    assert msg.response_metadata["model_name"] == f"smollm2-as-{d['side']}"
