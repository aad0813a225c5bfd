"""RouterChatModel on inputs that used to fail or route silently wrong (issue 11: "Text that
breaks token counting", "Routing inputs") and the routing-text hook in a RAG chain (issue 14)."""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import pytest
from langchain_core.documents import Document
from langchain_core.embeddings import DeterministicFakeEmbedding
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import RunnablePassthrough
from langchain_core.vectorstores import InMemoryVectorStore

from langchain_routellm import RouterChatModel
from routellm_base import Calibration, Router, TemplateField

SPECIAL = "What does <|endoftext|> mean?"
HUGE = "word " * 250_000


class RecordingRouter(Router):
    """A fixed win rate (or one per text), recording what it scored."""

    family = "recording"

    def __init__(self, rate: float = 0.5, rates: dict[str, float] | None = None) -> None:
        super().__init__(
            "recording", calibration=Calibration.from_win_rates([0.3, 0.5, 0.7], "three")
        )
        self.rate = rate
        self.rates = rates or {}
        self.texts: list[str] = []

    def _win_rate(self, texts: list[str]) -> np.ndarray:
        self.texts.extend(texts)
        return np.asarray([self.rates.get(t, self.rate) for t in texts])


def fake(name: str) -> GenericFakeChatModel:
    """A side that reports no usage, so the router counts tokens itself."""
    return GenericFakeChatModel(
        messages=itertools.cycle([AIMessage(content=f"{name} answer")]), name=name
    )


def make_llm(router: Router | None = None, **settings: Any) -> RouterChatModel:
    """A router over two fake sides; a threshold of 0.5 unless ``settings`` set a policy."""
    if "strong_share" not in settings:
        settings.setdefault("threshold", 0.5)
    if router is not None:
        settings["router"] = router
    return RouterChatModel(strong=fake("strong"), weak=fake("weak"), **settings)


def decision(message: Any) -> dict[str, Any]:
    return message.response_metadata["routellm"]


# -- text that breaks token counting -------------------------------------------------------------


@pytest.mark.parametrize(
    "settings",
    [
        {},
        {"routing_text_mode": "conversation"},
        {"routing_text_max_tokens": 128},
    ],
)
@pytest.mark.parametrize("text", [SPECIAL, HUGE], ids=["special-token", "oversized"])
def test_a_call_the_model_answered_never_fails_on_counting(settings, text) -> None:
    llm = make_llm(RecordingRouter(0.9), **settings)
    message = llm.invoke(text)
    assert message.content == "strong answer"
    report = llm.cost_report()
    assert report.calls == 1 and report.strong.estimated_calls == 1
    if text is HUGE:
        assert report.strong.extrapolated_calls == 1
        assert report.strong.input_tokens == pytest.approx(250_000, rel=0.01)
        assert "extrapolated" in report.format()
    else:
        assert report.strong.extrapolated_calls == 0


# -- routing inputs -----------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["สวัสดี สบายดีไหม", "😀🎉🔥"])
def test_unreadable_prompt_goes_by_the_documented_rule(text) -> None:
    llm = make_llm(strong_share=0.5)
    routed = decision(llm.invoke(text))
    assert routed["no_known_tokens"] is True and routed["win_rate"] is None
    assert routed["side"] == "strong"
    cheap = make_llm(strong_share=0.5, no_known_tokens_side="weak")
    assert decision(cheap.invoke(text))["side"] == "weak"


def test_a_copy_with_other_routing_input_settings_routes_by_them() -> None:
    # The cached engine is keyed by every setting it is built from (no_known_tokens_side and
    # routing_text_fn were missing from the key, so a copy kept the original's rule).
    llm = make_llm(strong_share=0.5)
    assert decision(llm.invoke("สวัสดี"))["side"] == "strong"
    cheap = llm.model_copy(update={"no_known_tokens_side": "weak"})
    assert decision(cheap.invoke("สวัสดี"))["side"] == "weak"
    router = RecordingRouter(0.9)
    hooked = make_llm(router).model_copy(update={"routing_text_fn": lambda turns: "just this"})
    hooked.invoke("the whole prompt")
    assert router.texts == ["just this"]


def test_system_only_prompt_template_routes_on_the_system_text() -> None:
    router = RecordingRouter(0.9)
    llm = make_llm(router)
    chain = ChatPromptTemplate([("system", "Summarise: {text}")]) | llm
    message = chain.invoke({"text": "The cat sat on the mat."})
    assert message.content == "strong answer"
    assert router.texts == ["Summarise: The cat sat on the mat."]
    assert decision(message)["routing_text_source"] == "system"


def test_share_one_sends_every_call_strong() -> None:
    llm = make_llm(RecordingRouter(0.01), strong_share=1.0)
    assert decision(llm.invoke("hi"))["side"] == "strong"


def test_conversation_mode_keeps_the_request_after_a_large_tool_result() -> None:
    router = RecordingRouter()
    llm = make_llm(router, routing_text_mode="conversation", routing_text_max_tokens=200)
    rows = ", ".join(f'{{"city": "c{i}", "temp": {i % 30}}}' for i in range(2000))
    llm.invoke(
        [
            HumanMessage("Which city in the table is warmest?"),
            AIMessage("", tool_calls=[{"name": "weather", "args": {}, "id": "1"}]),
            ToolMessage(f"[{rows}]", tool_call_id="1"),
        ]
    )
    assert router.texts[-1].startswith("user: Which city in the table is warmest?")


# -- a RAG chain --------------------------------------------------------------------------------

RAG_TEMPLATE = (
    "Answer the question using only this context.\n"
    "Context:\n{context}\n\n"
    "Question: {question}\nAnswer:"
)
DOCS = [
    "The Eiffel Tower is in Paris. It was finished in 1889 and is 330 metres tall.",
    "Photosynthesis lets plants turn sunlight, water and carbon dioxide into sugar.",
    "Mount Everest, at 8849 metres, is the highest mountain above sea level.",
]


def rag_chain(llm: RouterChatModel, parse: bool = True) -> Any:
    store = InMemoryVectorStore(DeterministicFakeEmbedding(size=64))
    store.add_documents([Document(page_content=d) for d in DOCS])
    retriever = store.as_retriever(search_kwargs={"k": 2})

    def join(docs: list[Document]) -> str:
        return "\n\n".join(d.page_content for d in docs)

    prompt = ChatPromptTemplate.from_messages([("human", RAG_TEMPLATE)])
    chain = {"context": retriever | join, "question": RunnablePassthrough()} | prompt | llm
    return chain | StrOutputParser() if parse else chain


def test_rag_chain_routes_on_the_question_with_the_hook() -> None:
    question = "When was the Eiffel Tower finished?"
    hooked = RecordingRouter()
    llm = make_llm(hooked, routing_text_fn=TemplateField([RAG_TEMPLATE], "question"))
    assert rag_chain(llm).invoke(question) in {"strong answer", "weak answer"}
    assert hooked.texts == [question]

    plain = RecordingRouter()
    baseline = make_llm(plain)
    rag_chain(baseline).invoke(question)
    # Without the hook the router reads the whole filled-in prompt, retrieved context included.
    assert plain.texts[0].startswith("Answer the question using only this context.")
    assert question in plain.texts[0] and len(plain.texts[0]) > 3 * len(question)


def test_rag_chain_with_the_bundled_router_scores_the_question() -> None:
    question = "When was the Eiffel Tower finished?"
    llm = make_llm(strong_share=0.5, routing_text_fn=TemplateField([RAG_TEMPLATE], "question"))
    routed = decision(rag_chain(llm, parse=False).invoke(question))
    assert routed["routing_text_source"] == "routing_text_fn"
    assert routed["win_rate"] == pytest.approx(llm.decide(question).win_rate)
