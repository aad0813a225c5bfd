"""RouterLLM on inputs that used to fail or route silently wrong, and its token counting
(issue 11: "Text that breaks token counting", "Routing inputs", "Counting every routed call
exactly once")."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from llama_index.core.base.llms.types import ChatMessage, MessageRole, ToolCallBlock
from llama_index.core.callbacks import CallbackManager, TokenCountingHandler
from llama_index.core.llms.mock import MockLLM
from llama_index.core.prompts import ChatPromptTemplate

from llamaindex_routellm import ROUTELLM_KEY, RouterLLM
from routellm_base import Calibration, Router

SPECIAL = "What does <|endoftext|> mean?"
HUGE = "word " * 250_000


def user(text: str) -> ChatMessage:
    return ChatMessage(role=MessageRole.USER, content=text)


def decision_of(response: Any) -> dict[str, Any]:
    return response.additional_kwargs[ROUTELLM_KEY]


# -- text that breaks token counting ----------------------------------------------------------


@pytest.mark.parametrize(
    "settings",
    [
        {"routing_text_mode": "conversation"},
        {"routing_text_max_tokens": 128},
        {"routing_text_mode": "conversation", "routing_text_max_tokens": 128},
    ],
)
@pytest.mark.parametrize("text", [SPECIAL, HUGE], ids=["special-token", "oversized"])
def test_counted_routing_text_never_fails_a_call(strong, weak, make_router, settings, text) -> None:
    router = make_router(0.9)
    llm = RouterLLM(strong=strong, weak=weak, router=router, threshold=0.5, **settings)
    response = llm.chat([ChatMessage(role="system", content="<|im_start|>"), user(text)])
    assert response.message.content == "strong-llm: chat"
    decision = decision_of(response)
    assert 0 < decision["routing_text_tokens"] <= settings.get("routing_text_max_tokens", 1024)
    assert len(router.texts[-1]) < len(text) or "<|endoftext|>" in router.texts[-1]


# -- text the embedder cannot read ------------------------------------------------------------


@pytest.mark.parametrize("text", ["สวัสดี สบายดีไหม", "😀🎉🔥"])
def test_unreadable_prompt_goes_by_the_documented_rule(strong, weak, text) -> None:
    llm = RouterLLM(strong=strong, weak=weak, strong_share=0.5)  # the bundled default
    decision = decision_of(llm.complete(text))
    assert decision["no_known_tokens"] is True and decision["win_rate"] is None
    assert decision["side"] == "strong"  # the default no_known_tokens_side
    cheap = RouterLLM(strong=strong, weak=weak, strong_share=0.5, no_known_tokens_side="weak")
    assert decision_of(cheap.complete(text))["side"] == "weak"
    readable = decision_of(llm.complete("Explain photosynthesis"))
    assert readable["no_known_tokens"] is False and readable["win_rate"] is not None


# -- a prompt template of one system message --------------------------------------------------


def test_system_only_template_routes_on_the_system_text(strong, weak, make_router) -> None:
    router = make_router(0.9)
    llm = RouterLLM(strong=strong, weak=weak, router=router, threshold=0.5)
    template = ChatPromptTemplate.from_messages([("system", "Summarise: {text}")])
    answer = llm.predict(template, text="The cat sat on the mat.")
    assert answer == "strong-llm: chat"
    assert router.texts == ["Summarise: The cat sat on the mat."]
    response = llm.chat(template.format_messages(text="x"))
    assert decision_of(response)["routing_text_source"] == "system"


# -- strong_share = 1.0 ------------------------------------------------------------------------


class CalibratedRouter(Router):
    family = "calibrated"

    def __init__(self, rate: float) -> None:
        super().__init__(
            "calibrated", calibration=Calibration.from_win_rates([0.3, 0.5, 0.7], "three")
        )
        self.rate = rate

    def _win_rate(self, texts: list[str]) -> np.ndarray:
        return np.full(len(texts), self.rate)


def test_share_one_sends_a_low_scoring_prompt_strong(strong, weak) -> None:
    llm = RouterLLM(strong=strong, weak=weak, router=CalibratedRouter(0.1), strong_share=1.0)
    assert decision_of(llm.complete("hi"))["side"] == "strong"
    none = RouterLLM(strong=strong, weak=weak, router=CalibratedRouter(0.99), strong_share=0.0)
    assert decision_of(none.complete("hi"))["side"] == "weak"


# -- conversation mode in an agent loop ----------------------------------------------------------


def test_conversation_mode_keeps_the_request_after_a_large_tool_result(
    strong, weak, make_router
) -> None:
    router = make_router(0.5)
    llm = RouterLLM(
        strong=strong,
        weak=weak,
        router=router,
        threshold=0.5,
        routing_text_mode="conversation",
        routing_text_max_tokens=200,
    )
    rows = ", ".join(f'{{"city": "c{i}", "temp": {i % 30}}}' for i in range(2000))
    messages = [
        user("Which city in the table is warmest? Use the weather tool."),
        ChatMessage(
            role=MessageRole.ASSISTANT,
            blocks=[ToolCallBlock(tool_call_id="1", tool_name="weather", tool_kwargs={})],
        ),
        ChatMessage(role=MessageRole.TOOL, content=f"[{rows}]"),
    ]
    llm.chat(messages)
    assert router.texts[-1].startswith("user: Which city in the table is warmest?")
    assert "tool: [" in router.texts[-1]


# -- counting each routed call once ---------------------------------------------------------------


def _counter() -> TokenCountingHandler:
    return TokenCountingHandler(tokenizer=lambda text: text.split())


@pytest.mark.parametrize("method", ["chat", "stream_chat", "complete", "stream_complete"])
def test_token_counting_handler_on_the_router_counts_each_call_once(
    make_scripted, make_router, method
) -> None:
    direct = _counter()
    side = make_scripted("side")
    side.callback_manager = CallbackManager([direct])
    arg = [user("count these four words")] if "chat" in method else "count these four words"

    def call(llm: Any) -> None:
        result = getattr(llm, method)(arg)
        if method.startswith("stream"):
            list(result)

    call(side)  # the side alone: the reference count
    routed = _counter()
    llm = RouterLLM(
        strong=make_scripted("side"),
        weak=make_scripted("side"),
        router=make_router(0.1),
        threshold=0.5,
        callback_manager=CallbackManager([routed]),
    )
    call(llm)
    assert len(direct.llm_token_counts) == 1
    assert len(routed.llm_token_counts) == 1
    assert routed.total_llm_token_count == direct.total_llm_token_count > 0


def test_a_shared_side_is_never_rewired(make_router) -> None:
    shared = MockLLM(max_tokens=2)
    own_manager = shared.callback_manager
    first, second = _counter(), _counter()
    a, b = (
        RouterLLM(
            strong=shared,
            weak=shared,
            router=make_router(),
            threshold=0.5,
            callback_manager=CallbackManager([counter]),
        )
        for counter in (first, second)
    )
    a.complete("one")
    b.complete("two")
    b.complete("three")
    shared.complete("called directly")
    assert shared.callback_manager is own_manager
    assert len(first.llm_token_counts) == 1 and len(second.llm_token_counts) == 2
