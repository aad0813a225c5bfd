"""In a real VectorStoreIndex query engine the router scores the user's question, not the QA
prompt filled with retrieved context (issue 14, "Where a prompt goes in retrieval-augmented
generation"). Real all-MiniLM-L6-v2 embeddings retrieve; scripted LLMs answer."""

from __future__ import annotations

from typing import Any

import pytest
from llama_index.core import Document, VectorStoreIndex
from llama_index.core.prompts import PromptTemplate

from llamaindex_routellm import ROUTELLM_KEY, RouterLLM, query_field, record_decisions

pytestmark = pytest.mark.slow

DOCUMENTS = [
    Document(text="The Eiffel Tower is in Paris. It was finished in 1889 and is 330 metres tall."),
    Document(text="Photosynthesis lets plants turn sunlight, water and carbon dioxide into sugar."),
    Document(text="Mount Everest, at 8849 metres, is the highest mountain above sea level."),
]
QUESTION = "When was the Eiffel Tower finished?"


@pytest.fixture(scope="module")
def index(minilm: Any) -> VectorStoreIndex:
    return VectorStoreIndex.from_documents(DOCUMENTS, embed_model=minilm)


@pytest.fixture
def make_llm(make_scripted: Any) -> Any:
    """A RouterLLM over two scripted LLMs; a threshold of 0.5 unless a policy is given."""

    def make(router: Any = None, **settings: Any) -> RouterLLM:
        if "strong_share" not in settings:
            settings.setdefault("threshold", 0.5)
        if router is not None:
            settings["router"] = router
        return RouterLLM(
            strong=make_scripted("strong-llm"), weak=make_scripted("weak-llm"), **settings
        )

    return make


@pytest.mark.parametrize("response_mode", ["compact", "refine", "tree_summarize"])
def test_query_engine_routes_on_the_query(index, make_llm, make_router, response_mode) -> None:
    router = make_router(0.5)
    llm = make_llm(router)
    engine = index.as_query_engine(llm=llm, similarity_top_k=2, response_mode=response_mode)
    with record_decisions() as recorder:
        response = engine.query(QUESTION)
    assert "Eiffel" in response.source_nodes[0].node.get_content()
    assert router.texts and set(router.texts) == {QUESTION}
    assert {d["routing_text_source"] for d in recorder.decisions} == {"routing_text_fn"}


def test_without_route_on_query_the_filled_prompt_is_scored(index, make_llm, make_router) -> None:
    router = make_router(0.5)
    llm = make_llm(router, route_on_query=False)
    index.as_query_engine(llm=llm, similarity_top_k=2).query(QUESTION)
    [scored] = router.texts
    assert scored.startswith("Context information is below.") and "1889" in scored
    assert scored.rstrip().endswith(f"Query: {QUESTION}\nAnswer:")


def test_custom_qa_template_with_query_field(index, make_llm, make_router) -> None:
    template = PromptTemplate(
        "Facts:\n{context_str}\nUsing only the facts, reply to: {query_str}\nReply:"
    )
    stock = make_router(0.5)
    llm = make_llm(stock)
    index.as_query_engine(llm=llm, text_qa_template=template).query(QUESTION)
    assert stock.texts[0].startswith("Facts:")  # not a stock template: the default rule applies

    hooked = make_router(0.5)
    llm = make_llm(hooked, routing_text_fn=query_field(template))
    index.as_query_engine(llm=llm, text_qa_template=template).query(QUESTION)
    assert hooked.texts == [QUESTION]


def test_bundled_router_scores_the_question(index, make_llm) -> None:
    llm = make_llm(strong_share=0.5)
    with record_decisions() as recorder:
        index.as_query_engine(llm=llm, similarity_top_k=2).query(QUESTION)
    [decision] = recorder.decisions
    assert decision["win_rate"] == pytest.approx(llm.route(QUESTION).win_rate)
    chat = llm.chat(
        index.as_query_engine(llm=llm)
        .get_prompts()["response_synthesizer:text_qa_template"]
        .format_messages(llm=llm, context_str="lots of context " * 200, query_str=QUESTION)
    )
    assert chat.additional_kwargs[ROUTELLM_KEY]["win_rate"] == decision["win_rate"]
