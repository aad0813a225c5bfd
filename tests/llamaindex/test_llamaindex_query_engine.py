"""RouterLLM as ``Settings.llm`` in a VectorStoreIndex query engine over local documents, with
real local models: SmolLM2-135M-Instruct (both sides) and all-MiniLM-L6-v2 embeddings."""

from __future__ import annotations

from typing import Any

import pytest
from llama_index.core import Document, Settings, VectorStoreIndex
from llama_index.core.instrumentation import get_dispatcher
from llama_index.core.instrumentation.event_handlers import BaseEventHandler
from llama_index.core.instrumentation.events.llm import LLMChatEndEvent, LLMChatStartEvent

import routellm_base
from llamaindex_routellm import ROUTELLM_KEY, RouterLLM

pytestmark = pytest.mark.slow

DOCUMENTS = [
    Document(
        text="The Eiffel Tower is in Paris. It was finished in 1889 and is 330 metres tall.",
        metadata={"topic": "eiffel"},
    ),
    Document(
        text="Photosynthesis lets plants turn sunlight, water and carbon dioxide into sugar "
        "and oxygen.",
        metadata={"topic": "plants"},
    ),
    Document(
        text="The Python programming language was created by Guido van Rossum and first "
        "released in 1991.",
        metadata={"topic": "python"},
    ),
    Document(
        text="Mount Everest, at 8849 metres, is the highest mountain above sea level.",
        metadata={"topic": "everest"},
    ),
]


class RoutedCalls(BaseEventHandler):
    """Collects (class name of the LLM, decision) of every chat call."""

    spans: dict[str, str] = {}
    calls: list[tuple[str, Any]] = []

    def handle(self, event: Any, **kwargs: Any) -> None:
        if isinstance(event, LLMChatStartEvent):
            self.spans[event.span_id] = event.model_dict["class_name"]
        elif isinstance(event, LLMChatEndEvent) and event.response is not None:
            self.calls.append(
                (
                    self.spans.get(event.span_id, "?"),
                    event.response.additional_kwargs.get(ROUTELLM_KEY),
                )
            )


@pytest.fixture
def routed_calls() -> Any:
    handler = RoutedCalls(spans={}, calls=[])
    root = get_dispatcher()
    root.add_event_handler(handler)
    yield handler
    root.event_handlers.remove(handler)


@pytest.fixture(scope="module")
def index(minilm) -> VectorStoreIndex:
    return VectorStoreIndex.from_documents(DOCUMENTS, embed_model=minilm)


def test_query_engine_with_router_llm(
    smollm2_sides, minilm, index, routed_calls, restore_settings
) -> None:
    strong, weak = smollm2_sides
    Settings.embed_model = minilm
    Settings.llm = RouterLLM(
        strong=strong, weak=weak, router=routellm_base.RandomRouter(seed=0), threshold=0.5
    )
    engine = index.as_query_engine(similarity_top_k=1)  # picks up Settings.llm

    for question, topic in [
        ("When was the Eiffel Tower finished?", "eiffel"),
        ("Who created Python?", "python"),
    ]:
        response = engine.query(question)
        assert response.source_nodes[0].node.metadata["topic"] == topic  # real embeddings retrieve
        assert str(response).strip(), "the routed local model answered"

    routed = [(cls, d) for cls, d in routed_calls.calls if cls == "RouterLLM"]
    sides = [(cls, d) for cls, d in routed_calls.calls if cls == "LocalChatLLM"]
    assert len(routed) == 2 and len(sides) == 2  # one routed call per query, one side call each
    for _, decision in routed:
        assert decision["router"] == "random" and decision["threshold"] == 0.5
        assert (
            decision["model"]
            == {"strong": "smollm2-strong", "weak": "smollm2-weak"}[decision["side"]]
        )
        assert 0.0 <= decision["win_rate"] <= 1.0


def test_streaming_query_and_forced_side(smollm2_sides, minilm, index, restore_settings) -> None:
    strong, weak = smollm2_sides
    llm = RouterLLM(
        strong=strong, weak=weak, router=routellm_base.RandomRouter(seed=1), threshold=0.5
    )
    engine = index.as_query_engine(llm=llm, streaming=True, similarity_top_k=1)
    streamed = engine.query("How tall is Mount Everest?")
    text = "".join(streamed.response_gen)
    assert text.strip()
    assert streamed.source_nodes[0].node.metadata["topic"] == "everest"

    chunks = list(llm.stream_complete("Name one planet.", routellm_force="weak"))
    assert chunks and all(
        c.additional_kwargs[ROUTELLM_KEY]["model"] == "smollm2-weak" for c in chunks
    )
    # The weak side's output budget is 16 tokens (decoding may merge or split a token).
    assert len(weak._tokenizer(chunks[-1].text)["input_ids"]) <= weak.max_new_tokens + 2


def test_default_router_when_bundled(smollm2_sides, minilm, index, restore_settings) -> None:
    """The bundled default router ("task_experts") drives the same query engine. It ships with the
    package: if it fails to load, this test fails (it must not skip the regression it guards)."""
    routellm_base.load_router("task_experts")
    strong, weak = smollm2_sides
    llm = RouterLLM(strong=strong, weak=weak, strong_share=0.5)  # router="task_experts" is the default
    decision = llm.route("Prove that there are infinitely many primes.")
    assert decision.router == "task_experts" and decision.win_rate is not None
    response = index.as_query_engine(llm=llm, similarity_top_k=1).query(
        "What do plants make from sunlight?"
    )
    assert response.source_nodes[0].node.metadata["topic"] == "plants"
    assert str(response).strip()
