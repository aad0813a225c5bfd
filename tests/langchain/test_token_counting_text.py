"""Text that breaks token counting never fails a call the model has answered (LangChain side of
the engine's token counting: special-token look-alikes and oversized prompts)."""

from __future__ import annotations

import asyncio

import pytest
from lc_helpers import fake

from langchain_routellm import RouteLLMCostCallbackHandler, RouterChatModel

TEXTS = [
    pytest.param("What does <|endoftext|> mean?", id="special-token-lookalike"),
    pytest.param("word " * 250_000, id="1.25M-characters"),
]


@pytest.mark.parametrize("text", TEXTS)
def test_answered_calls_never_fail_on_token_counting(text: str) -> None:
    # GenericFakeChatModel reports no usage, so the router counts tokens itself.
    llm = RouterChatModel(
        strong=fake("s", "It marks <|endoftext|> the end."),
        weak=fake("w", "ok"),
        router="random",
        threshold=0.0,
        routing_text_mode="conversation",
        routing_text_max_tokens=128,
    )
    handler = RouteLLMCostCallbackHandler()
    config: dict = {"callbacks": [handler]}
    assert llm.invoke(text, config=config).content == "It marks <|endoftext|> the end."
    assert "".join(str(c.content) for c in llm.stream(text, config=config)).startswith("It marks")

    async def ainvoke() -> str:
        return str((await llm.ainvoke(text, config=config)).content)

    assert asyncio.run(ainvoke()).startswith("It marks")
    for report in (llm.cost_report(), handler.report()):
        assert report.calls == 3
        assert report.strong.estimated_calls == 3
        assert report.strong.input_tokens > 0 and report.strong.output_tokens > 0


def test_token_counting_hooks_count_cl100k_offline() -> None:
    from langchain_core.messages import AIMessage, HumanMessage, trim_messages

    from routellm_base.tokens import token_ids

    llm = RouterChatModel(strong=fake("s"), weak=fake("w"), router="random", threshold=0.5)
    text = "What does <|endoftext|> mean?"
    assert llm.get_token_ids(text) == token_ids(text) and llm.get_num_tokens(text) > 5
    history = [HumanMessage("question " * 20), AIMessage("answer " * 20)] * 5 + [
        HumanMessage("the last question")
    ]
    assert llm.get_num_tokens_from_messages(history) > 200
    trimmed = trim_messages(history, max_tokens=50, token_counter=llm, strategy="last")
    assert 0 < len(trimmed) < len(history) and trimmed[-1].content == "the last question"
    custom = RouterChatModel(
        strong=fake("s"), weak=fake("w"), threshold=0.5, custom_get_token_ids=lambda t: [1, 2]
    )
    assert custom.get_num_tokens(text) == 2
