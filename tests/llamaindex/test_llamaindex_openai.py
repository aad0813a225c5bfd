"""RouterLLM over real ``llama_index.llms.openai.OpenAI`` LLMs talking to a local fake endpoint:
the OpenAI integration's own request formatting, tool schemas and tool-call parsing are used."""

from __future__ import annotations

import json

import pytest
from llama_index.core.agent.workflow import FunctionAgent
from llama_index.core.base.llms.types import ChatMessage
from llama_index.core.tools import FunctionTool

from llamaindex_routellm import ROUTELLM_KEY, RouterLLM

openai_llms = pytest.importorskip("llama_index.llms.openai")


def sides(url: str) -> tuple[object, object]:
    return (
        openai_llms.OpenAI(model="gpt-4o", api_key="sk-test", api_base=url, max_retries=0),
        openai_llms.OpenAI(model="gpt-4o-mini", api_key="sk-test", api_base=url, max_retries=0),
    )


def test_openai_sides_metadata_and_chat(fake_openai, make_router) -> None:
    strong, weak = sides(fake_openai.url)
    llm = RouterLLM(strong=strong, weak=weak, router=make_router(0.2), threshold=0.5)
    meta = llm.metadata
    assert meta.model_name == "routellm(gpt-4o|gpt-4o-mini)"
    assert meta.is_function_calling_model and meta.is_chat_model
    assert meta.context_window == min(strong.metadata.context_window, weak.metadata.context_window)

    messages = [
        ChatMessage(role="system", content="Be terse."),
        ChatMessage(role="user", content="hi"),
        ChatMessage(role="assistant", content="hello"),
        ChatMessage(role="user", content="What is 2+2?"),
    ]
    response = llm.chat(messages)
    assert response.message.content == "gpt-4o-mini: What is 2+2?"
    assert response.additional_kwargs[ROUTELLM_KEY]["model"] == "gpt-4o-mini"
    sent = fake_openai.requests[-1]
    assert sent["model"] == "gpt-4o-mini"
    assert [m["role"] for m in sent["messages"]] == ["system", "user", "assistant", "user"]

    chunks = list(llm.stream_complete("Name a colour", routellm_force="strong"))
    assert "".join(c.delta for c in chunks) == "gpt-4o: Name a colour"
    assert all(c.additional_kwargs[ROUTELLM_KEY]["side"] == "strong" for c in chunks)


@pytest.mark.asyncio
@pytest.mark.parametrize("streaming", [True, False])
async def test_function_agent_over_openai_sides(fake_openai, make_router, streaming) -> None:
    strong, weak = sides(fake_openai.url)
    llm = RouterLLM(strong=strong, weak=weak, router=make_router(0.9), threshold=0.5)
    ran: list[tuple[int, int]] = []

    def multiply(a: int, b: int) -> int:
        """Multiply two integers."""
        ran.append((a, b))
        return a * b

    agent = FunctionAgent(
        tools=[FunctionTool.from_defaults(fn=multiply)], llm=llm, streaming=streaming
    )
    result = await agent.run(user_msg="What is 6 times 7?")
    assert ran == [(6, 7)]
    assert str(result) == "gpt-4o: 42"  # the strong side answered after the tool result
    first, second = fake_openai.requests
    assert first["model"] == second["model"] == "gpt-4o"
    # The OpenAI integration formatted the tool itself (JSON schema of the function).
    assert first["tools"][0]["function"]["name"] == "multiply"
    assert set(first["tools"][0]["function"]["parameters"]["properties"]) == {"a", "b"}
    assert [m["role"] for m in second["messages"]][-2:] == ["assistant", "tool"]
    assert json.loads(second["messages"][-2]["tool_calls"][0]["function"]["arguments"]) == {
        "a": 6,
        "b": 7,
    }
