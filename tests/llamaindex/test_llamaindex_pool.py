"""RouterLLM over a pool of several priced models (models=, prices=): the policy's choice, per-call
keyword arguments, the decision on responses and chunks, fallback along the policy's order,
metadata, per-model costs, bad input, and the pool inside a query engine and a FunctionAgent."""

from __future__ import annotations

from typing import Any

import pytest
from llama_index.core import Document, MockEmbedding, VectorStoreIndex
from llama_index.core.agent.workflow import FunctionAgent
from llama_index.core.base.llms.types import ChatMessage
from llama_index.core.tools import FunctionTool

from llamaindex_routellm import (
    ROUTELLM_KEY,
    RouterLLM,
    SideNotFunctionCallingError,
    record_decisions,
)
from routellm_base.costs import PoolCostReport
from routellm_base.errors import (
    InvalidPolicyError,
    PoolError,
    RoutingInputError,
    UnknownRouterError,
)
from routellm_base.pool_fields import SingleModelRouter

PRICES = {"big": (10.0, 30.0), "mid": (1.0, 2.0), "small": (0.1, 0.2)}
QUALITY = {"big": 0.9, "mid": 0.8, "small": 0.5}
PROMPT = "What is 2+2?"  # 3 expected input tokens; see tests/langchain/test_pool.py


def user(text: str = PROMPT) -> list[ChatMessage]:
    return [ChatMessage(role="user", content=text)]


@pytest.fixture
def pool(make_scripted) -> dict[str, Any]:
    return {name: make_scripted(name, context=4096 * (i + 1)) for i, name in enumerate(PRICES)}


@pytest.fixture
def make_llm(pool, make_pool_router):
    def make(**kw: Any) -> RouterLLM:
        params: dict[str, Any] = {
            "models": pool,
            "prices": PRICES,
            "router": make_pool_router(QUALITY),
            "cost_weight": 0.0,
        }
        params.update(kw)
        return RouterLLM(**params)

    return make


def side(response: Any) -> str:
    return response.additional_kwargs[ROUTELLM_KEY]["side"]


@pytest.mark.parametrize(
    ("policy", "expected"),
    [
        ({"cost_weight": 0.0}, "big"),
        ({"cost_weight": 0.02}, "mid"),
        ({"cost_weight": 1.0}, "small"),
        ({"cost_weight": None, "quality_tolerance": 0.15}, "mid"),
        ({"cost_weight": 0.0, "max_cost": 0.001}, "mid"),
        ({"cost_weight": None, "budget": 1.0}, "mid"),
    ],
)
def test_the_policy_chooses_and_the_response_carries_the_decision(make_llm, pool, policy, expected):
    llm = make_llm(**policy)
    response = llm.chat(user())
    assert response.message.content == f"{expected}: chat"
    decision = response.additional_kwargs[ROUTELLM_KEY]
    assert (decision["side"], decision["model"]) == (expected, expected)
    assert decision["pool"]["quality"] == QUALITY
    assert decision["pool"]["expected_cost"] == pytest.approx(
        {"big": 0.00771, "mid": 0.000515, "small": 0.0000515}
    )
    assert decision["pool"]["order"][0] == expected
    # the answering model's expected USD per call at the top, as routellm serve's answers have it
    assert decision["expected_cost"] == decision["pool"]["expected_cost"][expected]
    if "max_cost" in policy:
        assert decision["pool"]["excluded"] == {"big": "over max_cost"}
    assert [c[0] for c in pool[expected].calls] == ["chat"]
    assert sum(len(m.calls) for m in pool.values()) == 1


@pytest.mark.asyncio
async def test_every_method_routes_and_every_chunk_carries_the_decision(make_llm, pool) -> None:
    llm = make_llm(cost_weight=0.02)
    assert side(llm.complete(PROMPT)) == "mid"
    chunks = list(llm.stream_chat(user()))
    assert chunks and {side(c) for c in chunks} == {"mid"}
    assert side(await llm.achat(user())) == "mid"
    chunks = [c async for c in await llm.astream_complete(PROMPT, allowed_models=["small"])]
    assert chunks[-1].text == f"small: {PROMPT}" and {side(c) for c in chunks} == {"small"}
    assert [c[0] for c in pool["mid"].calls] == ["complete", "stream_chat", "achat"]


def test_per_call_keyword_arguments_and_none_reach_the_model(make_llm, pool) -> None:
    llm = make_llm()
    assert side(llm.chat(user())) == "big"
    assert side(llm.chat(user(), cost_weight=1.0)) == "small"
    assert side(llm.chat(user(), quality_tolerance=0.15)) == "mid"
    assert side(llm.chat(user(), max_cost=0.001)) == "mid"
    assert side(llm.complete(PROMPT, allowed_models=["small", "mid"])) == "mid"
    budgeted = llm.chat(user(), budget=1.0)  # a policy, not an argument of the chosen model
    assert side(budgeted) == "mid"
    assert budgeted.additional_kwargs[ROUTELLM_KEY]["pool"]["policy"] == "budget"
    assert side(llm.complete(PROMPT, budget=0.1)) == "small"
    forced = llm.chat(user(), routellm_force="small", temperature=0.1)
    assert side(forced) == "small" and forced.additional_kwargs[ROUTELLM_KEY]["forced"]
    for model in pool.values():
        for _method, _arg, kwargs in model.calls:
            assert not {
                "cost_weight",
                "quality_tolerance",
                "budget",
                "max_cost",
                "allowed_models",
            } & set(kwargs)
            assert "routellm_force" not in kwargs
    assert pool["small"].calls[-1][2] == {"temperature": 0.1}  # the call's own arguments pass
    assert llm.route(PROMPT, allowed_models=["small"]).side == "small"  # a dry run
    assert llm.route(PROMPT, force="mid").forced


def test_fallback_walks_the_policy_order(make_llm, pool, make_scripted) -> None:
    class Down(type(pool["mid"])):
        def chat(self, messages: Any, **kwargs: Any) -> Any:
            raise RuntimeError(f"{self.name} is down")

    pool["mid"] = Down("mid")
    llm = make_llm(models=pool, cost_weight=0.1, fallback=True)  # order: mid, small, big
    decision = llm.chat(user()).additional_kwargs[ROUTELLM_KEY]
    assert (decision["side"], decision["fallback_from"]) == ("small", "mid")
    assert decision["fallback_reason"] == "mid: RuntimeError: mid is down"
    with pytest.raises(RuntimeError, match="mid is down"):
        make_llm(models=pool, cost_weight=0.1).chat(user())


def test_metadata_takes_the_tightest_limits_of_the_pool(make_llm) -> None:
    metadata = make_llm().metadata
    assert metadata.context_window == 4096 and metadata.model_name == "routellm(big|mid|small)"
    assert not metadata.is_function_calling_model
    payload = make_llm().to_payload()
    assert list(payload["models"]) == ["big", "mid", "small"]
    assert payload["prices"]["big"] == (10.0, 30.0)


def test_cost_report_per_model(make_llm) -> None:
    llm = make_llm()
    llm.chat(user())
    llm.chat(user(), routellm_force="small")
    llm.complete(PROMPT, routellm_force="small")
    report = llm.cost_report()
    assert isinstance(report, PoolCostReport) and report.baseline_model == "big"
    assert {n: t.calls for n, t in report.models.items()} == {"big": 1, "mid": 0, "small": 2}
    assert report.models["small"].estimated_calls == 2  # ScriptedLLM reports no tokens
    assert report.savings is not None and report.savings > 0
    assert "always-big" in report.format()


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"prices": {"big": (1, 1), "mid": (1, 1)}}, PoolError, "model 'small' has no price"),
        ({"prices": {**PRICES, "huge": (1, 1)}}, PoolError, "prices name \\['huge'\\]"),
        ({"router": "mf"}, UnknownRouterError, "'mf' is a bundled two-model router"),
        ({"quality_tolerance": 1.5, "cost_weight": None}, InvalidPolicyError, "in \\[0, 1\\]"),
        ({"strong_share": 0.3}, PoolError, "\\['strong_share'\\] route between two models"),
    ],
)
def test_bad_pool_settings_fail_at_construction(make_llm, kwargs, error, message) -> None:
    with pytest.raises(error, match=message):
        make_llm(**kwargs)


def test_unseen_models_duplicates_and_mixing_with_two_models_are_refused(
    make_llm, make_pool_router, make_scripted, strong, weak
) -> None:
    with pytest.raises(PoolError, match="never seen \\['small'\\] of the pool .*zero_shot"):
        make_llm(router=make_pool_router(QUALITY, trained_on=["big", "mid"]))
    with pytest.raises(PoolError, match="models name 'a' twice"):
        RouterLLM(models=[make_scripted("a"), make_scripted("a")], prices={"a": (1, 1)})
    with pytest.raises(PoolError, match="not both: got models= and strong= and weak="):
        make_llm(strong=strong, weak=weak)
    with pytest.raises(RoutingInputError, match="\\['max_cost'\\] route a pool"):
        RouterLLM(strong=strong, weak=weak, max_cost=0.01)
    with pytest.raises(RoutingInputError, match="no strong and no weak model"):
        RouterLLM()
    two = RouterLLM(strong=strong, weak=weak, threshold=0.5)
    with pytest.raises(RoutingInputError, match="\\['cost_weight'\\] route a pool"):
        two.chat(user(), cost_weight=0.1)


def test_unknown_names_at_the_call_fail_before_any_model_is_called(make_llm, pool) -> None:
    llm = make_llm()
    with pytest.raises(PoolError, match="forced model 'huge' is not in the pool \\[big, mid, small\\]"):
        llm.chat(user(), routellm_force="huge")
    with pytest.raises(PoolError, match="allowed model 'huge' is not in the pool"):
        llm.complete(PROMPT, allowed_models=["huge"])
    with pytest.raises(InvalidPolicyError, match="cost_weight must be >= 0"):
        llm.chat(user(), cost_weight=-1)
    assert sum(len(m.calls) for m in pool.values()) == 0


def test_a_pool_of_one_runs_no_router(make_scripted, make_pool_router) -> None:
    spy = make_pool_router({"only": 0.1})
    llm = RouterLLM(models={"only": make_scripted("only")}, prices={"only": (1, 2)}, router=spy)
    assert isinstance(llm.engine.router, SingleModelRouter)
    response = llm.chat(user())
    assert response.message.content == "only: chat" and spy.texts == []
    decision = response.additional_kwargs[ROUTELLM_KEY]
    assert decision["router"] == "single_model" and decision["pool"]["quality"] == {}
    # a router that never saw the model is refused, as in a larger pool (names and loaded alike)
    for router in ("pool_knn", make_pool_router({"only": 0.1}, trained_on=["other"])):
        with pytest.raises(PoolError, match="never seen \\['only'\\]"):
            RouterLLM(
                models={"only": make_scripted("only")}, prices={"only": (1, 2)}, router=router
            )


# -- inside LlamaIndex's own machinery ----------------------------------------------------------------


def test_query_engine_with_a_pool(make_llm, pool) -> None:
    index = VectorStoreIndex.from_documents(
        [Document(text="The Eiffel Tower is in Paris."), Document(text="Python is a language.")],
        embed_model=MockEmbedding(embed_dim=8),
    )
    router = make_llm().router
    llm = make_llm(cost_weight=0.02, router=router)
    engine = index.as_query_engine(llm=llm, similarity_top_k=1)
    with record_decisions() as recorder:
        response = engine.query("Where is the Eiffel Tower?")
    assert str(response) == "mid: chat"
    (decision,) = recorder.decisions
    assert decision["model"] == "mid" and decision["pool"]["quality"] == QUALITY
    # routed on the query, not the filled-in QA template (route_on_query)
    assert router.texts == ["Where is the Eiffel Tower?"]
    assert llm.cost_report().models["mid"].calls == 1


def make_tool(calls: list[tuple[int, int]]) -> FunctionTool:
    def multiply(a: int, b: int) -> int:
        """Multiply two integers and return the product."""
        calls.append((a, b))
        return a * b

    return FunctionTool.from_defaults(fn=multiply)


@pytest.mark.asyncio
async def test_function_agent_over_a_pool(make_fc, make_pool_router, make_scripted) -> None:
    fcs = {name: make_fc(name, tool_kwargs={"a": 6, "b": 7}) for name in PRICES}
    llm = RouterLLM(models=fcs, prices=PRICES, router=make_pool_router(QUALITY), cost_weight=0.02)
    assert llm.metadata.is_function_calling_model
    calls: list[tuple[int, int]] = []
    agent = FunctionAgent(tools=[make_tool(calls)], llm=llm)
    result = await agent.run(user_msg="What is 6 times 7?")
    assert str(result) == "mid: The answer is 42" and calls == [(6, 7)]
    assert fcs["mid"].seen_tools == [["multiply"], ["multiply"]]
    assert fcs["big"].seen_tools == [] and fcs["small"].seen_tools == []

    # a model that cannot call functions: named, unless the call keeps tool calls off it
    mixed = RouterLLM(
        models={**fcs, "plain": make_scripted("plain")},
        prices={**PRICES, "plain": (0.01, 0.01)},
        router=make_pool_router(QUALITY),
    )
    with pytest.raises(SideNotFunctionCallingError, match="the pool model 'plain'"):
        await mixed.achat_with_tools([make_tool([])], user_msg="6*7?")
    response = await mixed.achat_with_tools(
        [make_tool([])], user_msg="6*7?", allowed_models=["mid", "small"]
    )
    assert side(response) in {"mid", "small"}
    with pytest.raises(PoolError, match="model 'huge' is not in the pool"):
        await mixed.achat_with_tools([make_tool([])], user_msg="6*7?", allowed_models=["huge"])


@pytest.mark.slow
def test_query_engine_with_a_real_local_model_in_the_pool(
    smollm2_sides, minilm, make_scripted, make_pool_router
) -> None:
    strong, _ = smollm2_sides
    pool = {"smollm2": strong, "big": make_scripted("big"), "mid": make_scripted("mid")}
    prices = {"smollm2": (0.05, 0.1), "big": (10.0, 30.0), "mid": (1.0, 2.0)}
    llm = RouterLLM(
        models=pool,
        prices=prices,
        router=make_pool_router({"smollm2": 0.8, "big": 0.9, "mid": 0.6}),
        cost_weight=0.05,  # smollm2: nearly as good for a fraction of the price
    )
    index = VectorStoreIndex.from_documents(
        [Document(text="Mount Everest, at 8849 metres, is the highest mountain above sea level.")],
        embed_model=minilm,
    )
    response = index.as_query_engine(llm=llm, similarity_top_k=1).query(
        "How tall is Mount Everest?"
    )
    assert str(response).strip()
    report = llm.cost_report()
    assert report.models["smollm2"].calls == 1 and report.calls == 1
    chunks = list(llm.stream_complete("Name one planet."))
    assert chunks and {side(c) for c in chunks} == {"smollm2"}


def test_a_prompt_with_no_known_token_goes_to_the_priciest_model_unless_the_rule_is_off(
    make_llm, make_pool_router
) -> None:
    from routellm_base import load_router

    router = make_pool_router(QUALITY)
    router.embedder = load_router("mf").embedder  # the bundled static embedder
    thai = "สวัสดี สบายดีไหม"  # no token the embedder knows; scored at cost_weight 1.0: small
    ruled_llm = make_llm(router=router, cost_weight=1.0)
    ruled = ruled_llm.chat(user(thai)).additional_kwargs[ROUTELLM_KEY]
    assert ruled["side"] == "big" and ruled["no_known_tokens"] and not ruled["pool"]["quality"]
    off = make_llm(router=router, cost_weight=1.0, no_known_tokens_side=None)
    scored = off.chat(user(thai)).additional_kwargs[ROUTELLM_KEY]
    assert scored["side"] == "small" and scored["no_known_tokens"]
    assert scored["pool"]["quality"] == QUALITY and router.texts == [thai]
    weak_refused = "no_known_tokens_side='weak' is for two models: .* no_known_tokens_side=None"
    with pytest.raises(PoolError, match=weak_refused):
        make_llm(no_known_tokens_side="weak")
