"""RouterChatModel over a pool of several priced models (models=, prices=): the policy's choice,
per-call settings (arguments and config["configurable"]), the decision on answers and chunks,
fallback along the policy's order, tools and structured output, per-model costs, bad input."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models.fake_chat_models import FakeListChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage
from langchain_core.outputs import ChatGenerationChunk
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import RunnableLambda
from langchain_core.tools import tool
from lc_helpers import RunRecorder, ScriptedChatModel, fake, scripted
from live_routers import FixedPoolRouter
from pydantic import BaseModel, ValidationError

import routellm_base
from langchain_routellm import RouteLLMCostCallbackHandler, RouterChatModel
from routellm_base.costs import CostReport, PoolCostReport
from routellm_base.errors import InvalidPolicyError, PoolError, RoutingInputError
from routellm_base.pool import PoolEngine, ZeroShotPoolRouter
from routellm_base.pool_fields import SingleModelRouter

PRICES = {"big": (10.0, 30.0), "mid": (1.0, 2.0), "small": (0.1, 0.2)}
QUALITY = {"big": 0.9, "mid": 0.8, "small": 0.5}
PROMPT = "What is 2+2?"  # 12 characters: 3 expected input tokens
# Expected USD per call with 256 answer tokens: big 0.00771, mid 0.000515, small 0.0000515.


def models() -> dict[str, ScriptedChatModel]:
    return {
        "big": scripted("big", "big answer", in_tokens=11, out_tokens=7),
        "mid": scripted("mid", "mid answer", in_tokens=11, out_tokens=5),
        "small": scripted("small", "small answer", in_tokens=11, out_tokens=3),
    }


def pool_model(**kw: Any) -> RouterChatModel:
    params: dict[str, Any] = {
        "models": models(),
        "prices": PRICES,
        "router": FixedPoolRouter(QUALITY),
        "cost_weight": 0.0,
    }
    params.update(kw)
    return RouterChatModel(**params)


def chosen(message: BaseMessage) -> str:
    return message.response_metadata["routellm"]["side"]


# -- the policy's choice, and the decision on the answer ------------------------------------------


@pytest.mark.parametrize(
    ("policy", "expected"),
    [
        ({"cost_weight": 0.0}, "big"),  # the best predicted quality, whatever it costs
        ({"cost_weight": 0.02}, "mid"),  # big's extra $7.2 per 1,000 calls outweighs 0.1
        ({"cost_weight": 1.0}, "small"),
        ({"cost_weight": None, "quality_tolerance": 0.15}, "mid"),  # cheapest within 0.15
        ({"cost_weight": None, "quality_tolerance": 0.5}, "small"),
        ({"cost_weight": 0.0, "max_cost": 0.001}, "mid"),  # big is over the ceiling
        ({"cost_weight": None, "budget": 1.0}, "mid"),  # $1 per 1,000 calls affords mid
    ],
)
def test_the_policy_chooses_and_the_answer_carries_the_pool_decision(policy, expected) -> None:
    llm = pool_model(**policy)
    message = llm.invoke(PROMPT)
    assert message.content == f"{expected} answer"
    decision = message.response_metadata["routellm"]
    assert (decision["side"], decision["model"]) == (expected, expected)
    assert message.response_metadata["model_name"] == expected
    assert message.additional_kwargs["routellm"] == decision
    assert decision["win_rate"] is None and decision["router"] == "fixed_pool"
    pool = decision["pool"]
    assert pool["quality"] == QUALITY
    assert pool["expected_cost"] == pytest.approx(
        {"big": 0.00771, "mid": 0.000515, "small": 0.0000515}
    )
    assert pool["order"][0] == expected
    # the answering model's expected USD per call at the top, as routellm serve's answers have it
    assert decision["expected_cost"] == pool["expected_cost"][expected]
    name = next(
        k for k in ("cost_weight", "quality_tolerance", "budget") if policy.get(k) is not None
    )
    assert pool["policy"] == name and pool["knob"] == policy[name]
    if "max_cost" in policy:
        assert pool["max_cost"] == 0.001 and "big" not in pool["order"]
    assert len(llm.models[expected].calls) == 1
    assert sum(len(m.calls) for m in llm.models.values()) == 1


def test_default_cost_weight_and_the_zero_shot_start_over_the_bundled_router() -> None:
    llm = RouterChatModel(models=models(), prices=PRICES)
    assert llm.router == "zero_shot"
    engine = llm.engine
    assert isinstance(engine, PoolEngine) and isinstance(engine.router, ZeroShotPoolRouter)
    assert engine.router.difficulty.name == routellm_base.DEFAULT_ROUTER
    decision = llm.invoke("Prove that the square root of 2 is irrational.").response_metadata[
        "routellm"
    ]
    pool = decision["pool"]
    assert decision["router"] == "zero_shot" and pool["policy"] == "cost_weight"
    assert pool["knob"] == 0.02
    # what the zero-shot choice rests on: the prompt's difficulty rank and the win rate behind it
    assert set(pool["extra"]) == {"difficulty", "win_rate"}
    assert 0.0 <= pool["extra"]["difficulty"] <= 1.0 and 0.0 <= pool["extra"]["win_rate"] <= 1.0
    # the zero-shot heuristic: the pricier the model, the higher its predicted quality
    assert pool["quality"]["big"] >= pool["quality"]["mid"] >= pool["quality"]["small"]


def test_a_list_of_models_is_named_by_the_models_themselves() -> None:
    llm = RouterChatModel(
        models=[fake("a"), scripted("mid", "x"), scripted("small", "y")],
        prices={"GenericFakeChatModel": (10, 30), "mid": (1, 2), "small": (0.1, 0.2)},
        router=FixedPoolRouter(QUALITY),
        cost_weight=0.0,
    )
    assert list(llm.models) == ["GenericFakeChatModel", "mid", "small"]
    assert chosen(llm.invoke(PROMPT)) == "mid"  # unknown to the fixed router: 0.5


# -- per-call settings -----------------------------------------------------------------------------


def test_per_call_arguments_override_the_fields() -> None:
    llm = pool_model()
    assert chosen(llm.invoke(PROMPT)) == "big"
    assert chosen(llm.invoke(PROMPT, cost_weight=1.0)) == "small"
    assert chosen(llm.invoke(PROMPT, quality_tolerance=0.15)) == "mid"
    assert chosen(llm.invoke(PROMPT, max_cost=0.001)) == "mid"
    assert chosen(llm.invoke(PROMPT, allowed_models=["mid", "small"])) == "mid"
    # a per-call budget is a policy ($1 per 1,000 calls affords mid, $0.1 only small), never
    # a keyword argument of the chosen model
    budgeted = llm.invoke(PROMPT, budget=1.0).response_metadata["routellm"]
    assert budgeted["model"] == "mid"
    assert (budgeted["pool"]["policy"], budgeted["pool"]["knob"]) == ("budget", 1.0)
    assert chosen(llm.invoke(PROMPT, budget=0.1)) == "small"
    message = llm.invoke(PROMPT, routellm_force="small")
    assert chosen(message) == "small"
    assert message.response_metadata["routellm"]["forced"] is True
    assert message.response_metadata["routellm"]["pool"]["policy"] == "forced"
    # no per-call setting reached a model
    for model in llm.models.values():
        for call in model.calls:
            assert not {
                "cost_weight",
                "quality_tolerance",
                "budget",
                "max_cost",
                "allowed_models",
            } & set(call)
            assert "routellm_force" not in call


def test_per_call_settings_through_config_configurable() -> None:
    llm = pool_model()
    assert chosen(llm.invoke(PROMPT, config={"configurable": {"cost_weight": 1.0}})) == "small"
    configured = llm.with_config(configurable={"allowed_models": ["mid", "small"]})
    assert chosen(configured.invoke(PROMPT)) == "mid"
    forced = {"configurable": {"routellm_force": "small"}}
    assert chosen(llm.invoke(PROMPT, config=forced)) == "small"
    assert chosen(llm.invoke(PROMPT, config={"metadata": {"routellm_force": "mid"}})) == "mid"
    # an argument wins over the config
    assert chosen(llm.invoke(PROMPT, config=forced, routellm_force="big")) == "big"
    # a stream, a batch and async calls read it too
    chunks = list(llm.stream(PROMPT, config={"configurable": {"quality_tolerance": 0.15}}))
    assert chosen(chunks[0]) == "mid"
    many = llm.batch([PROMPT, PROMPT], config={"configurable": {"max_cost": 0.001}})
    assert [chosen(m) for m in many] == ["mid", "mid"]
    budgeted = llm.invoke(PROMPT, config={"configurable": {"budget": 1.0}})
    assert budgeted.response_metadata["routellm"]["pool"]["policy"] == "budget"
    assert chosen(budgeted) == "mid"
    assert "budget" not in llm.models["mid"].calls[-1]
    assert "budget" in {spec.id for spec in llm.config_specs}


@pytest.mark.asyncio
async def test_async_calls_and_streams_route_with_per_call_settings() -> None:
    llm = pool_model()
    message = await llm.ainvoke(PROMPT, config={"configurable": {"cost_weight": 1.0}})
    assert chosen(message) == "small"
    chunks = [c async for c in llm.astream(PROMPT, allowed_models=["mid"])]
    assert chosen(chunks[0]) == "mid" and "routellm" not in chunks[-1].response_metadata
    assert "".join(str(c.content) for c in chunks) == "mid answer"


def test_the_first_chunk_of_a_stream_carries_the_decision() -> None:
    llm = pool_model(cost_weight=0.02)
    chunks = list(llm.stream(PROMPT))
    assert chosen(chunks[0]) == "mid"
    # mid 0.8 - 0.02 * 0.515, big 0.9 - 0.02 * 7.71, small 0.5 - 0.02 * 0.0515
    assert chunks[0].additional_kwargs["routellm"]["pool"]["order"] == ["mid", "big", "small"]
    assert all("routellm" not in c.response_metadata for c in chunks[1:])
    whole = chunks[0]
    for chunk in chunks[1:]:
        whole += chunk
    assert whole.content == "mid answer" and whole.response_metadata["model_name"] == "mid"


def test_dry_run_decide_takes_the_per_call_settings() -> None:
    llm = pool_model()
    assert llm.decide(PROMPT, allowed_models=["small"]).side == "small"
    assert llm.decide(PROMPT, force="mid").forced
    assert llm.decide(PROMPT, cost_weight=1.0).pool.cost_weight == 1.0
    assert sum(len(m.calls) for m in llm.models.values()) == 0
    with pytest.raises(TypeError, match="unexpected keyword arguments \\['nope'\\]"):
        llm.decide(PROMPT, nope=1)


# -- fallback along the policy's order -----------------------------------------------------------


class Failing(ScriptedChatModel):
    """Raises on every call (and before its first chunk)."""

    def _generate(self, messages: list[BaseMessage], *args: Any, **kwargs: Any) -> Any:
        self.calls.append({"messages": messages})
        raise RuntimeError(f"{self.model_name} is down")

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        self.calls.append({"messages": messages, "streamed": True})
        raise RuntimeError(f"{self.model_name} is down")


def test_fallback_walks_the_policy_order_and_names_every_failure() -> None:
    pool = models()
    pool["mid"] = Failing(model_name="mid")
    llm = pool_model(models=pool, cost_weight=0.1, fallback=True)
    message = llm.invoke(PROMPT)  # order: mid, small, big
    decision = message.response_metadata["routellm"]
    assert (decision["side"], decision["fallback_from"]) == ("small", "mid")
    assert decision["fallback_reason"] == "mid: RuntimeError: mid is down"
    assert message.content == "small answer"
    chunks = list(llm.stream(PROMPT))
    assert chosen(chunks[0]) == "small"
    report = llm.cost_report()
    assert report.models["small"].calls == 2 and report.models["mid"].calls == 0

    pool["small"] = Failing(model_name="small")
    llm = pool_model(models=pool, cost_weight=0.1, fallback=True)
    decision = llm.invoke(PROMPT).response_metadata["routellm"]
    assert decision["side"] == "big"
    assert decision["fallback_reason"] == (
        "mid: RuntimeError: mid is down; small: RuntimeError: small is down"
    )
    # the order holds only allowed models: with big left out, the last failure is raised
    with pytest.raises(RuntimeError, match="small is down") as raised:
        llm.invoke(PROMPT, allowed_models=["mid", "small"])
    assert str(raised.value.__cause__) == "mid is down"


def test_without_fallback_the_chosen_models_error_is_raised() -> None:
    pool = models()
    pool["mid"] = Failing(model_name="mid")
    llm = pool_model(models=pool, cost_weight=0.02)
    with pytest.raises(RuntimeError, match="mid is down"):
        llm.invoke(PROMPT)
    assert pool["small"].calls == [] and pool["big"].calls == []


def test_max_cost_bounds_the_fallback_order_of_a_forced_call() -> None:
    pool = models()
    pool["mid"] = Failing(model_name="mid")
    llm = pool_model(models=pool, fallback=True, max_cost=0.001)
    decision = llm.invoke(PROMPT, routellm_force="mid").response_metadata["routellm"]
    assert decision["pool"]["order"] == ["mid", "small"]  # big is over the ceiling
    assert decision["side"] == "small"
    with pytest.raises(PoolError, match="over max_cost"):
        llm.invoke(PROMPT, routellm_force="big")


# -- tools and structured output -------------------------------------------------------------------


@tool
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


def test_bind_tools_binds_each_models_own_and_the_chosen_one_gets_them() -> None:
    llm = pool_model(cost_weight=0.02)
    bound = llm.bind_tools([add], tool_choice="add")
    assert chosen(bound.invoke(PROMPT)) == "mid"
    (call,) = llm.models["mid"].calls
    assert call["tools"][0]["function"]["name"] == "add" and call["tool_choice"] == "add"
    assert chosen(bound.invoke(PROMPT, allowed_models=["small"])) == "small"
    assert llm.models["small"].calls[0]["tools"][0]["function"]["name"] == "add"
    # the copy shares the original's cost tracker
    assert llm.cost_report().calls == 2


def test_bind_tools_names_a_pool_model_that_cannot() -> None:
    pool = {**models(), "plain": FakeListChatModel(responses=["x"])}
    llm = pool_model(models=pool, prices={**PRICES, "plain": (0.1, 0.1)})
    with pytest.raises(ValueError, match="the pool model 'plain' \\(FakeListChatModel\\)"):
        llm.bind_tools([add])


class Answer(BaseModel):
    value: int


def test_with_structured_output_is_parsed_by_the_answering_model() -> None:
    def replying(name: str) -> ScriptedChatModel:
        value = {"big": 1, "mid": 2, "small": 3}[name]
        call = {"name": "Answer", "args": {"value": value}, "id": f"call_{name}"}
        return ScriptedChatModel(
            model_name=name, replies=[AIMessage(content="", tool_calls=[call])]
        )

    llm = pool_model(models={n: replying(n) for n in PRICES}, cost_weight=0.02)
    structured = llm.with_structured_output(Answer)
    assert structured.invoke(PROMPT) == Answer(value=2)  # mid
    assert structured.invoke(PROMPT, config={"configurable": {"routellm_force": "small"}}) == (
        Answer(value=3)
    )
    # per-call settings as config keys or as call arguments, with include_raw too
    with_raw = llm.with_structured_output(Answer, include_raw=True)
    raw = with_raw.invoke(PROMPT, config={"configurable": {"cost_weight": 0.0}})
    assert raw["parsed"] == Answer(value=1) and chosen(raw["raw"]) == "big"
    raw = with_raw.invoke(PROMPT, cost_weight=0.0)
    assert raw["parsed"] == Answer(value=1) and chosen(raw["raw"]) == "big"
    raw = with_raw.invoke(PROMPT, routellm_force="small")
    assert raw["parsed"] == Answer(value=3) and chosen(raw["raw"]) == "small"


# -- costs per model ----------------------------------------------------------------------------------


def test_cost_report_per_model_and_savings_against_the_most_expensive() -> None:
    llm = pool_model()
    llm.invoke(PROMPT)  # big: 11 in / 7 out
    llm.invoke(PROMPT, routellm_force="mid")  # 11 / 5
    llm.invoke(PROMPT, routellm_force="small")  # 11 / 3
    llm.invoke(PROMPT, routellm_force="small")
    report = llm.cost_report()
    assert isinstance(report, PoolCostReport)
    assert list(report.models) == ["big", "mid", "small"]
    assert {n: t.calls for n, t in report.models.items()} == {"big": 1, "mid": 1, "small": 2}
    assert report.shares == {"big": 0.25, "mid": 0.25, "small": 0.5}
    assert report.models["small"].cost == pytest.approx(2 * (11 * 0.1 + 3 * 0.2) / 1e6)
    total = (11 * 10 + 7 * 30 + 11 * 1 + 5 * 2 + 2 * (11 * 0.1 + 3 * 0.2)) / 1e6
    assert report.total_cost == pytest.approx(total)
    assert report.baseline_model == "big"
    # every call's tokens at big's prices
    assert report.always_baseline_cost == pytest.approx((44 * 10 + 18 * 30) / 1e6)
    assert report.savings == pytest.approx(report.always_baseline_cost - total)
    text = report.format()
    assert "small: 2 calls, 22 in / 6 out tokens" in text and "always-big: $" in text
    assert report.to_dict()["models"]["mid"]["calls"] == 1
    llm.reset_costs()
    assert llm.cost_report().calls == 0


def test_two_model_cost_report_is_unchanged() -> None:
    llm = RouterChatModel(
        strong=scripted("big-model", "s"), weak=scripted("small-model", "w"), threshold=0.0
    )
    llm.invoke("hi")
    report = llm.cost_report()
    assert isinstance(report, CostReport) and report.strong.calls == 1
    assert report.format().splitlines()[0] == "calls: 1  strong share: 100%"


def test_the_cost_callback_counts_a_pool_per_model() -> None:
    handler = RouteLLMCostCallbackHandler(PRICES, candidates=list(PRICES), use_default_prices=False)
    llm = pool_model()
    llm.invoke(PROMPT, config={"callbacks": [handler]})
    llm.invoke(PROMPT, routellm_force="small", config={"callbacks": [handler]})
    report = handler.report()
    assert isinstance(report, PoolCostReport) and report.baseline_model == "big"
    assert {n: t.calls for n, t in report.models.items()} == {"big": 1, "mid": 0, "small": 1}


# -- bad input ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"prices": {"big": (1, 1), "mid": (1, 1)}}, "model 'small' has no price"),
        ({"prices": {**PRICES, "huge": (50, 100)}}, "prices name \\['huge'\\], which are not"),
        ({"prices": None}, "model 'big' has no price"),
        ({"prices": {**PRICES, "mid": (-1, 2)}}, "model 'mid'.*non-negative"),
        (
            {"router": FixedPoolRouter(QUALITY, trained_on=["big", "mid"])},
            "has never seen \\['small'\\] of the pool \\['big', 'mid', 'small'\\]: add each",
        ),
        ({"router": "task_experts"}, "'task_experts' is a bundled two-model router"),
        ({"router": "no/such/folder"}, "unknown pool router 'no/such/folder'"),
        ({"router": "pool_knn"}, "has never seen \\['big', 'mid', 'small'\\]"),
        ({"router": routellm_base.RandomRouter(seed=0)}, "ZeroShotPoolRouter\\(difficulty="),
        ({"strong": scripted("s", "x")}, "either models= .* not both: got models= and strong="),
        ({"threshold": 0.5}, "\\['threshold'\\] route between two models"),
        ({"cost_weight": -1.0}, "cost_weight must be >= 0"),
        ({"quality_tolerance": 0.1}, "at most one of cost_weight, quality_tolerance and budget"),
        ({"budget_window": 10}, "give budget too"),
        ({"output_tokens": {"nope": 10}}, "output_tokens names \\['nope'\\]"),
        ({"models": {}}, "models= is empty"),
        ({"prices": {**PRICES, "big": (float("nan"), 30.0)}}, "model 'big': price .* finite"),
        ({"prices": {**PRICES, "mid": (1.0, float("inf"))}}, "model 'mid': price .* finite"),
    ],
)
def test_bad_pool_settings_fail_at_construction(kwargs, message) -> None:
    with pytest.raises(ValidationError, match=message):
        pool_model(**kwargs)


def test_a_bad_pool_setting_is_a_validation_error_carrying_the_pool_error() -> None:
    # the README's promise: pydantic's ValidationError (the framework's convention for a bad
    # field), its message the PoolError's, the PoolError itself in its errors()' ctx
    with pytest.raises(ValidationError, match="model 'mid' has no price") as raised:
        pool_model(prices={"big": (1, 1), "small": (1, 1)})
    error = raised.value.errors()[0]["ctx"]["error"]
    assert isinstance(error, PoolError) and "model 'mid' has no price" in str(error)


def test_a_model_named_twice_is_refused() -> None:
    with pytest.raises(ValidationError, match="models name 'mid' twice"):
        RouterChatModel(models=[scripted("mid", "a"), scripted("mid", "b")], prices={"mid": (1, 1)})


def test_pool_settings_between_two_models_are_refused() -> None:
    with pytest.raises(ValidationError, match="\\['cost_weight'\\] route a pool"):
        RouterChatModel(strong=scripted("s", "x"), weak=scripted("w", "y"), cost_weight=0.1)
    with pytest.raises(ValidationError, match="no weak model: give strong= and weak="):
        RouterChatModel(strong=scripted("s", "x"))
    llm = RouterChatModel(strong=scripted("s", "x"), weak=scripted("w", "y"), threshold=0.5)
    with pytest.raises(RoutingInputError, match="\\['allowed_models'\\] route a pool"):
        llm.invoke("hi", allowed_models=["s"])


def test_unknown_names_and_bad_values_at_the_call_are_clear() -> None:
    llm = pool_model()
    with pytest.raises(PoolError, match="allowed model 'huge' is not in the pool \\[big, mid"):
        llm.invoke(PROMPT, allowed_models=["mid", "huge"])
    with pytest.raises(PoolError, match="forced model 'huge' is not in the pool"):
        llm.invoke(PROMPT, routellm_force="huge")
    with pytest.raises(PoolError, match="forced model 'huge' is not in the pool"):
        llm.invoke(PROMPT, config={"configurable": {"routellm_force": "huge"}})
    with pytest.raises(PoolError, match="forced model 'big' is not one of the allowed"):
        llm.invoke(PROMPT, routellm_force="big", allowed_models=["mid"])
    with pytest.raises(InvalidPolicyError, match="quality_tolerance must be in \\[0, 1\\]"):
        llm.invoke(PROMPT, quality_tolerance=2.0)
    with pytest.raises(PoolError, match="no candidate of the pool .* max_cost"):
        llm.invoke(PROMPT, max_cost=0.0)
    assert sum(len(m.calls) for m in llm.models.values()) == 0  # nothing was called


def test_a_pool_of_one_answers_with_its_model_and_runs_no_router() -> None:
    spy = FixedPoolRouter({"only": 0.1})
    llm = RouterChatModel(models={"only": scripted("only", "hello")}, prices={"only": (1, 2)})
    assert isinstance(llm.engine.router, SingleModelRouter)  # the bundled router is not loaded
    message = llm.invoke(PROMPT)
    assert message.content == "hello" and chosen(message) == "only"
    llm = RouterChatModel(
        models={"only": scripted("only", "hi")}, prices={"only": (1, 2)}, router=spy
    )
    decision = llm.invoke(PROMPT).response_metadata["routellm"]
    assert decision["model"] == "only" and spy.texts == []
    assert decision["router"] == "single_model" and decision["pool"]["quality"] == {}
    # a router that never saw the model is refused, as in a larger pool (names and loaded alike)
    for router in ("pool_knn", FixedPoolRouter({"only": 0.1}, trained_on=["other"])):
        with pytest.raises(ValidationError, match="never seen \\['only'\\]"):
            RouterChatModel(
                models={"only": scripted("only", "x")}, prices={"only": (1, 2)}, router=router
            )


def test_swap_router_in_a_pool_checks_the_new_router_first() -> None:
    llm = pool_model(cost_weight=0.02)
    assert chosen(llm.invoke(PROMPT)) == "mid"
    copy = llm.bind_tools([add])
    with pytest.raises(PoolError, match="has never seen \\['small'\\]"):
        llm.swap_router(FixedPoolRouter(QUALITY, trained_on=["big", "mid"]))
    assert chosen(llm.invoke(PROMPT)) == "mid"
    new = FixedPoolRouter({"big": 0.9, "mid": 0.1, "small": 0.1})
    llm.swap_router(new)
    assert chosen(llm.invoke(PROMPT)) == "big" and chosen(copy.invoke(PROMPT)) == "big"


def test_swap_router_in_a_pool_returns_the_setting_replaced_as_it_was_given() -> None:
    """Left at its default, a pool's router setting replaced is "zero_shot", not the
    ZeroShotPoolRouter loaded from it."""
    llm = RouterChatModel(models=models(), prices=PRICES, cost_weight=0.0)
    llm.invoke(PROMPT)
    new = FixedPoolRouter({"big": 0.9, "mid": 0.1, "small": 0.1})
    assert llm.swap_router(new) == "zero_shot"
    assert llm.swap_router("zero_shot") is new
    assert llm.swap_router(new) == "zero_shot"


# -- inside LangChain's own machinery --------------------------------------------------------------


def test_lcel_chain_prompt_pool_parser_with_configurable() -> None:
    prompt = ChatPromptTemplate.from_messages([("system", "Be brief."), ("human", "{question}")])
    llm = pool_model(cost_weight=0.02)
    seen: list[str] = []
    chain = (
        prompt
        | llm
        | RunnableLambda(lambda m: seen.append(chosen(m)) or m)
        | (lambda m: str(m.content))
    )
    rec = RunRecorder()
    assert chain.invoke({"question": PROMPT}, config={"callbacks": [rec]}) == "mid answer"
    assert len(rec.starts) == 1  # one model run: the router's
    answer = chain.invoke(
        {"question": PROMPT}, config={"configurable": {"allowed_models": ["big"]}}
    )
    assert answer == "big answer" and seen == ["mid", "big"]
    pieces = list(chain.stream({"question": PROMPT}, config={"configurable": {"cost_weight": 1.0}}))
    assert "".join(pieces) == "small answer"
    # the chain's config schema lists the keys the pool reads
    assert {"allowed_models", "cost_weight", "quality_tolerance", "max_cost", "routellm_force"} <= (
        {spec.id for spec in chain.config_specs}
    )
    two = RouterChatModel(strong=scripted("s", "x"), weak=scripted("w", "y"))
    # no pool settings: the pair's own
    assert [spec.id for spec in two.config_specs] == ["threshold", "strong_share", "routellm_force"]


def test_a_langgraph_agent_routes_each_step_within_the_pool() -> None:
    import warnings

    from lc_helpers import ReactiveToolModel

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from langgraph.prebuilt import create_react_agent

    pool = {name: ReactiveToolModel(model_name=name) for name in PRICES}
    llm = pool_model(models=pool, cost_weight=0.02)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        agent = create_react_agent(llm, tools=[add])
    state = agent.invoke({"messages": [HumanMessage("What is 2 + 3?")]})
    messages = state["messages"]
    assert [m.type for m in messages] == ["human", "ai", "tool", "ai"]
    assert messages[2].content == "5" and messages[3].content == "The answer is 5."
    assert [chosen(m) for m in (messages[1], messages[3])] == ["mid", "mid"]
    assert messages[1].response_metadata["routellm"]["pool"]["quality"] == QUALITY
    # per-call settings through the graph's config reach every step
    state = agent.invoke(
        {"messages": [HumanMessage("What is 2 + 3?")]},
        config={"configurable": {"allowed_models": ["small"]}},
    )
    assert [chosen(m) for m in state["messages"] if m.type == "ai"] == ["small", "small"]
    assert all(c["tools"][0]["function"]["name"] == "add" for c in pool["small"].calls)
    report = llm.cost_report()
    assert report.models["mid"].calls == 2 and report.models["small"].calls == 2


@pytest.mark.slow
def test_a_real_local_model_in_the_pool(smollm2_loader) -> None:
    pool = {
        "smollm2": smollm2_loader(model_name="smollm2", max_new_tokens=12),
        "big": scripted("big", "big answer"),
        "mid": scripted("mid", "mid answer"),
    }
    llm = RouterChatModel(
        models=pool,
        prices={"smollm2": (0.05, 0.1), "big": (10.0, 30.0), "mid": (1.0, 2.0)},
        router=FixedPoolRouter({"smollm2": 0.8, "big": 0.9, "mid": 0.6}),
        cost_weight=0.05,  # smollm2: nearly as good as big for a fraction of the price
    )
    prompt = ChatPromptTemplate.from_messages([("human", "{question}")])
    chain = prompt | llm
    message = chain.invoke({"question": "What is the capital of France?"})
    assert chosen(message) == "smollm2" and str(message.content).strip()
    usage = message.usage_metadata
    report = llm.cost_report()
    totals = report.models["smollm2"]
    assert (totals.calls, totals.input_tokens, totals.output_tokens) == (
        1,
        usage["input_tokens"],
        usage["output_tokens"],
    )
    assert totals.estimated_calls == 0  # the local model reports its usage
    assert totals.cost == pytest.approx(
        (usage["input_tokens"] * 0.05 + usage["output_tokens"] * 0.1) / 1e6
    )
    assert report.always_baseline_cost == pytest.approx(
        (usage["input_tokens"] * 10 + usage["output_tokens"] * 30) / 1e6
    )
    chunks = list(llm.stream("Say hello.", allowed_models=["smollm2", "mid"]))
    assert chosen(chunks[0]) == "smollm2" and len(chunks) >= 2
    assert chosen(llm.invoke("Say hello.", routellm_force="big")) == "big"


@pytest.mark.asyncio
async def test_astream_events_read_the_configurable_settings() -> None:
    llm = pool_model()
    events = [
        e
        async for e in llm.astream_events(
            PROMPT, config={"configurable": {"cost_weight": 1.0}}, version="v2"
        )
    ]
    chunks = [e["data"]["chunk"] for e in events if e["event"] == "on_chat_model_stream"]
    assert "".join(str(c.content) for c in chunks) == "small answer"
    (end,) = [e["data"]["output"] for e in events if e["event"] == "on_chat_model_end"]
    assert chosen(end) == "small"


def test_copies_and_pickles_of_a_pool_route_alike() -> None:
    import copy
    import pickle

    llm = pool_model(cost_weight=0.02)
    for other in (copy.deepcopy(llm), pickle.loads(pickle.dumps(llm)), llm.model_copy()):
        assert chosen(other.invoke(PROMPT)) == "mid"
        assert list(other.models) == ["big", "mid", "small"]
    # model_copy shares the cost tracker; deep copies and pickles start their own
    assert llm.cost_report().calls == 1
    assert llm.model_copy(update={"cost_weight": 1.0}).invoke(PROMPT).content == "small answer"
    assert llm.cost_report().calls == 2


# -- trained routers by name, and the own-traffic loop ---------------------------------------------


def test_the_bundled_pool_router_routes_a_pool_of_models_it_knows_by_name() -> None:
    names = ("llama-3.1-nemotron-51b-instruct", "llama-3.1-8b-instruct", "gemma-2-9b-it")
    llm = RouterChatModel(
        models={n: scripted(n, f"{n} answer") for n in names},
        prices={names[0]: (0.9, 0.9), names[1]: (0.2, 0.2), names[2]: (0.1, 0.1)},
        router="pool_knn",
        cost_weight=0.0,
    )
    answer = llm.invoke("Solve for x: 3x + 5 = 20. Show the steps.")
    decision = answer.response_metadata["routellm"]
    assert decision["router"] == "pool_knn" and decision["checkpoint_id"]
    assert set(decision["pool"]["quality"]) == set(names)
    best = max(decision["pool"]["quality"], key=decision["pool"]["quality"].get)
    assert decision["model"] == best  # cost_weight 0: the best predicted quality
    assert answer.content == f"{best} answer"


def test_a_pool_logs_its_decisions_and_judged_shadow_comparisons_yield_named_battles(
    tmp_path,
) -> None:
    from langchain_core.messages import AIMessage

    from routellm_base.log import RoutingLog, read_comparisons, read_decisions
    from routellm_base.log.training_data import pool_battles

    class Judge(ScriptedChatModel):
        """Prefers the answer that starts with "big"."""

        def _reply(self, messages: list[BaseMessage]) -> AIMessage:
            user = str(messages[-1].content)
            a = user.split("[The Start of Assistant A's Answer]\n")[1]
            b = user.split("[The Start of Assistant B's Answer]\n")[1]
            verdict = (
                "[[A]]" if a.startswith("big") else "[[B]]" if b.startswith("big") else "[[C]]"
            )
            return AIMessage(content=verdict)

    path = tmp_path / "log.db"
    log = RoutingLog(path, store_prompts=True)
    llm = pool_model(
        models={n: scripted(n, *[f"{n} answer"] * 10) for n in PRICES},
        cost_weight=0.02,
        log=log,
        shadow_rate=1.0,
        shadow_seed=0,
        judge=Judge(model_name="judge"),
    )
    for i in range(4):
        assert chosen(llm.invoke(f"question {i}")) == "mid"
    assert llm.flush_log(30)
    rows = read_decisions(path)
    assert [r["side"] for r in rows] == ["mid"] * 4
    assert all(r["pool_policy"] == "cost_weight" and r["threshold"] is None for r in rows)
    comparisons = read_comparisons(path)
    assert len(comparisons) == 4
    battles, _ = pool_battles(str(path))
    assert len(battles) == 4
    for battle in battles:
        assert "mid" in (battle.model_a, battle.model_b) and battle.answered == "mid"
        other = battle.model_a if battle.model_b == "mid" else battle.model_b
        assert battle.winner == ("model_a" if other == "big" else "tie")
    log.close()


def test_a_prompt_with_no_known_token_goes_to_the_priciest_model_unless_the_rule_is_off() -> None:
    """The pool's no-known-tokens rule was undocumented, and no_known_tokens_side='weak' was
    refused as a setting "between two models" without saying None switches the rule off."""
    router = FixedPoolRouter(QUALITY)
    router.embedder = routellm_base.load_router("mf").embedder  # the bundled static embedder
    emoji = "😀🎉🔥"  # no token the embedder knows; at cost_weight 1.0 a scored call goes small
    ruled = pool_model(router=router, cost_weight=1.0).invoke(emoji).response_metadata["routellm"]
    assert ruled["side"] == "big" and ruled["no_known_tokens"] and not ruled["pool"]["quality"]
    off = pool_model(router=router, cost_weight=1.0, no_known_tokens_side=None)
    scored = off.invoke(emoji).response_metadata["routellm"]
    assert scored["side"] == "small" and scored["no_known_tokens"]
    assert scored["pool"]["quality"] == QUALITY and router.texts == [emoji]
    with pytest.raises(
        ValidationError,
        match="no_known_tokens_side='weak' is for two models: a pool sends a call whose routing "
        "text has no token .* to its priciest usable model .* no_known_tokens_side=None",
    ):
        pool_model(no_known_tokens_side="weak")


def test_the_pools_prices_go_to_its_routing_log_and_price_its_report(tmp_path, capsys) -> None:
    """A trial: RouterChatModel(models=, prices=, log=RoutingLog(...)) then ``routellm report``
    said "against always the priciest model: unknown (give --price ...)": the log stored no
    prices (only serve gave its pool's to the log)."""
    import json

    from routellm_base.cli import main
    from routellm_base.log import RoutingLog

    path = tmp_path / "log.db"
    log = RoutingLog(path)
    # The store opened and written before the pool's model is made: its prices are stored then.
    log.record(
        pool_model().decide(PROMPT),
        candidates={n: n for n in PRICES},
        input_tokens=11,
        output_tokens=7,
    )
    assert log.flush(10)
    llm = pool_model(log=log)
    for _ in range(3):
        llm.invoke(PROMPT)
    assert llm.flush_log(10) and log.stats().failed == 0
    assert main(["report", "--log", str(path), "--json"]) == 0
    pool = json.loads(capsys.readouterr().out)["pool"]
    assert pool["baseline_model"] == "big" and pool["savings_usd"] is not None
    assert main(["report", "--log", str(path)]) == 0
    text = capsys.readouterr().out
    assert "unknown (give --price" not in text and "against always big" in text
