"""A FunctionAgent (llama_index.core.agent.workflow) driven by RouterLLM over scripted
function-calling LLMs: the tool really runs and the answer comes back from the routed side."""

from __future__ import annotations

from typing import Any

import pytest
from llama_index.core.agent.workflow import AgentStream, FunctionAgent, ToolCallResult
from llama_index.core.tools import FunctionTool

import routellm_base
from llamaindex_routellm import ROUTELLM_KEY, RouterLLM, SideNotFunctionCallingError


def make_tool(calls: list[tuple[int, int]]) -> FunctionTool:
    def multiply(a: int, b: int) -> int:
        """Multiply two integers and return the product."""
        calls.append((a, b))
        return a * b

    return FunctionTool.from_defaults(fn=multiply)


async def run_agent(llm: RouterLLM, tool: FunctionTool, streaming: bool) -> tuple[str, list[Any]]:
    agent = FunctionAgent(
        tools=[tool],
        llm=llm,
        streaming=streaming,
        system_prompt="Use the multiply tool for arithmetic.",
    )
    handler = agent.run(user_msg="What is 6 times 7?")
    events = [event async for event in handler.stream_events()]
    result = await handler
    return str(result), events


@pytest.mark.asyncio
@pytest.mark.parametrize("streaming", [True, False])
@pytest.mark.parametrize(("threshold", "side"), [(0.0, "strong"), (1.0, "weak")])
async def test_function_agent_calls_the_tool_through_the_router(
    fc_strong, fc_weak, threshold, side, streaming
) -> None:
    calls: list[tuple[int, int]] = []
    tool = make_tool(calls)
    llm = RouterLLM(
        strong=fc_strong,
        weak=fc_weak,
        router=routellm_base.RandomRouter(seed=0),
        threshold=threshold,
    )
    assert llm.metadata.is_function_calling_model

    answer, events = await run_agent(llm, tool, streaming)

    assert calls == [(6, 7)]  # the tool really ran, with the arguments the side chose
    chosen, other = (fc_strong, fc_weak) if side == "strong" else (fc_weak, fc_strong)
    assert answer == f"{chosen.name}: The answer is 42"
    assert other.seen_tools == [] and other.events == []
    # Two LLM turns (tool call, then answer), each routed and parsed by the chosen side.
    assert chosen.seen_tools == [["multiply"], ["multiply"]]
    assert "get_tool_calls" in chosen.events
    results = [e for e in events if isinstance(e, ToolCallResult)]
    assert [(r.tool_name, r.tool_output.content) for r in results] == [("multiply", "42")]
    if streaming:
        chunks = [e for e in events if isinstance(e, AgentStream)]
        assert chunks and all(e.raw is not None or e.delta is not None for e in chunks)


@pytest.mark.asyncio
async def test_each_agent_turn_is_routed_on_its_own(fc_strong, fc_weak, make_router) -> None:
    """The second turn (after the tool result) is routed again on the last user message."""
    router = make_router(0.7)
    llm = RouterLLM(strong=fc_strong, weak=fc_weak, router=router, threshold=0.5)
    calls: list[tuple[int, int]] = []
    answer, _ = await run_agent(llm, make_tool(calls), streaming=True)
    assert answer == "strong-fc: The answer is 42" and calls == [(6, 7)]
    assert router.texts == ["What is 6 times 7?", "What is 6 times 7?"]


@pytest.mark.asyncio
async def test_agent_can_mix_sides_per_turn(make_fc, make_router) -> None:
    """Tool call from one side, final answer from the other: tool ids and results still match."""
    strong, weak = make_fc("strong-fc", tool_kwargs={"a": 3, "b": 5}), make_fc("weak-fc")
    router = make_router(0.9)
    llm = RouterLLM(strong=strong, weak=weak, router=router, threshold=0.5)
    calls: list[tuple[int, int]] = []
    tool = make_tool(calls)
    agent = FunctionAgent(tools=[tool], llm=llm)
    original = llm.engine.router

    class Flip(routellm_base.Router):
        family = "flip"

        def __init__(self) -> None:
            super().__init__("flip")
            self.n = 0

        def _win_rate(self, texts: list[str]) -> Any:
            self.n += 1
            return original.strong_win_rate(texts) if self.n == 1 else [0.0] * len(texts)

    llm.router = Flip()
    handler = agent.run(user_msg="3 times 5?")
    result = await handler
    assert calls == [(3, 5)]
    assert str(result) == "weak-fc: The answer is 15"
    assert "get_tool_calls" in strong.events and "get_tool_calls" in weak.events


@pytest.mark.asyncio
async def test_agent_with_a_non_function_calling_side_fails_clearly(fc_strong, weak) -> None:
    llm = RouterLLM(
        strong=fc_strong, weak=weak, router=routellm_base.RandomRouter(seed=0), threshold=0.5
    )
    assert not llm.metadata.is_function_calling_model
    with pytest.raises(SideNotFunctionCallingError, match="weak side"):
        await llm.achat_with_tools([make_tool([])], user_msg="6*7?")
    agent = FunctionAgent(tools=[make_tool([])], llm=llm)
    with pytest.raises(Exception, match="FunctionCallingLLM"):
        await agent.run(user_msg="What is 6 times 7?")


@pytest.mark.asyncio
async def test_agent_turns_carry_the_decision_in_instrumentation(fc_strong, fc_weak) -> None:
    from llama_index.core.instrumentation import get_dispatcher
    from llama_index.core.instrumentation.event_handlers import BaseEventHandler
    from llama_index.core.instrumentation.events.llm import LLMChatEndEvent, LLMChatStartEvent

    class Ends(BaseEventHandler):
        seen: list[Any] = []
        span_class: dict[str, str] = {}

        def handle(self, event: Any, **kwargs: Any) -> None:
            if isinstance(event, LLMChatStartEvent):
                self.span_class[event.span_id] = event.model_dict["class_name"]
            if isinstance(event, LLMChatEndEvent) and self.span_class[event.span_id] == "RouterLLM":
                self.seen.append(event.response.additional_kwargs.get(ROUTELLM_KEY))

    ends = Ends(seen=[], span_class={})
    root = get_dispatcher()
    root.add_event_handler(ends)
    try:
        llm = RouterLLM(
            strong=fc_strong, weak=fc_weak, router=routellm_base.RandomRouter(seed=1), threshold=0.5
        )
        calls: list[tuple[int, int]] = []
        answer, _ = await run_agent(llm, make_tool(calls), streaming=True)
    finally:
        root.event_handlers.remove(ends)
    decisions = ends.seen
    assert len(decisions) == 2  # one routed LLM call per agent turn, each with its decision
    assert all(d["router"] == "random" and d["threshold"] == 0.5 for d in decisions)
    assert answer.startswith(("strong-fc:", "weak-fc:")) and calls == [(6, 7)]
