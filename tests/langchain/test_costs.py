"""Cost accounting: the engine's CostTracker, the callback handler and the router's accessor,
checked against hand-computed numbers."""

from __future__ import annotations

import threading

import pytest
from lc_helpers import fake, scripted

import routellm_base
from langchain_routellm import RouteLLMCostCallbackHandler, RouterChatModel
from routellm_base.costs import DEFAULT_PRICES, CostTracker, ModelPrice, as_price
from routellm_base.errors import RoutingInputError

PRICES = {"big-model": (10.0, 20.0), "small-model": {"input": 1.0, "output": 2.0}}

# 2 strong calls of 11 in / 7 out, 3 weak calls of 5 in / 3 out, prices per 1M tokens:
STRONG_COST = (22 * 10 + 14 * 20) / 1e6  # 0.000500
WEAK_COST = (15 * 1 + 9 * 2) / 1e6  # 0.000033
ALWAYS_STRONG = (37 * 10 + 23 * 20) / 1e6  # 0.000830: all 37 in / 23 out tokens at strong prices


def _router(**kw: object) -> RouterChatModel:
    return RouterChatModel(
        strong=scripted("big-model", "strong answer here", in_tokens=11, out_tokens=7),
        weak=scripted("small-model", "weak answer here", in_tokens=5, out_tokens=3),
        router=routellm_base.RandomRouter(seed=0),
        threshold=0.5,
        **kw,
    )


def _check(report) -> None:
    assert report.calls == 5
    assert report.strong_share == pytest.approx(0.4)
    assert (report.strong.calls, report.strong.input_tokens, report.strong.output_tokens) == (
        2,
        22,
        14,
    )
    assert (report.weak.calls, report.weak.input_tokens, report.weak.output_tokens) == (3, 15, 9)
    assert report.strong.cost == pytest.approx(STRONG_COST)
    assert report.weak.cost == pytest.approx(WEAK_COST)
    assert report.total_cost == pytest.approx(STRONG_COST + WEAK_COST)
    assert report.always_strong_cost == pytest.approx(ALWAYS_STRONG)
    assert report.savings == pytest.approx(ALWAYS_STRONG - STRONG_COST - WEAK_COST)
    assert report.savings_share == pytest.approx(297 / 830)
    assert report.strong.estimated_calls == report.weak.estimated_calls == 0
    assert report.strong.models == {"big-model": 2} and report.weak.models == {"small-model": 3}


def _run_calls(llm: RouterChatModel, config: dict) -> None:
    # invoke, stream and batch paths, sides forced so the totals are known exactly
    llm.invoke("a", config=config, routellm_force="strong")
    list(llm.stream("b", config=config, routellm_force="strong"))
    llm.invoke("c", config=config, routellm_force="weak")
    list(llm.stream("d", config=config, routellm_force="weak"))
    llm.batch(["e"], config=config, routellm_force="weak")


def test_callback_handler_numbers() -> None:
    handler = RouteLLMCostCallbackHandler(PRICES)
    _run_calls(_router(), {"callbacks": [handler]})
    _check(handler.report())


def test_accessor_numbers() -> None:
    llm = _router(prices=PRICES)
    _run_calls(llm, {})
    _check(llm.cost_report())
    llm.reset_costs()
    assert llm.cost_report().calls == 0


@pytest.mark.asyncio
async def test_async_paths_are_counted_once() -> None:
    handler = RouteLLMCostCallbackHandler(PRICES)
    llm = _router(prices=PRICES)
    cfg = {"callbacks": [handler]}
    await llm.ainvoke("a", config=cfg, routellm_force="strong")
    [c async for c in llm.astream("b", config=cfg, routellm_force="strong")]
    await llm.ainvoke("c", config=cfg, routellm_force="weak")
    [c async for c in llm.astream("d", config=cfg, routellm_force="weak")]
    await llm.abatch(["e"], config=cfg, routellm_force="weak")
    _check(handler.report())
    _check(llm.cost_report())


def test_handler_inside_a_chain_and_ignores_unrouted_models() -> None:
    from langchain_core.prompts import ChatPromptTemplate

    handler = RouteLLMCostCallbackHandler(PRICES)
    llm = _router()
    chain = ChatPromptTemplate.from_messages([("human", "{q}")]) | llm
    chain.invoke(
        {"q": "x"},
        config={"callbacks": [handler]},
    )
    scripted("big-model", "direct call").invoke("not routed", config={"callbacks": [handler]})
    assert handler.report().calls == 1


def test_tiktoken_fallback_when_no_usage() -> None:
    # GenericFakeChatModel reports no usage: tokens are counted with cl100k_base.
    llm = RouterChatModel(
        strong=fake("s", "hello world"),
        weak=fake("w", "hello world"),
        router="random",
        threshold=0.0,
        strong_model_name="big-model",
        weak_model_name="small-model",
        prices=PRICES,
    )
    handler = RouteLLMCostCallbackHandler(PRICES)
    llm.invoke("hi", config={"callbacks": [handler]})
    for report in (handler.report(), llm.cost_report()):
        # cl100k: "hi" is 1 token, "hello world" is 2 ("hello", " world")
        assert (report.strong.input_tokens, report.strong.output_tokens) == (1, 2)
        assert report.strong.estimated_calls == 1
        assert report.strong.cost == pytest.approx((1 * 10 + 2 * 20) / 1e6)


def test_tracker_prices_and_errors() -> None:
    assert as_price((1, 2)) == ModelPrice(1.0, 2.0)
    assert as_price({"input_per_million": 3, "output_per_million": 4}) == ModelPrice(3.0, 4.0)
    with pytest.raises(RoutingInputError, match="non-negative"):
        ModelPrice(-1, 2)
    with pytest.raises(RoutingInputError, match="'input' and 'output'"):
        as_price({"input": 1})
    with pytest.raises(RoutingInputError, match="side must be"):
        CostTracker().record("medium", "m", input_tokens=1, output_tokens=1)  # type: ignore[arg-type]
    assert DEFAULT_PRICES["gpt-4o"] == ModelPrice(2.5, 10.0)


def test_unpriced_models_and_explicit_baseline() -> None:
    tracker = CostTracker({"judge": (100, 100)}, strong_model="judge", use_default_prices=False)
    tracker.record("strong", "unknown-strong", input_tokens=1000, output_tokens=0)
    tracker.record("weak", "unknown-weak", input_tokens=1000, output_tokens=1000)
    report = tracker.report()
    assert report.unpriced_models == ["unknown-strong", "unknown-weak"]
    assert report.total_cost == 0
    assert report.always_strong_cost == pytest.approx(3000 * 100 / 1e6)
    assert "no price" in report.format()
    assert CostTracker(use_default_prices=False).report().always_strong_cost is None


def test_prices_naming_neither_model_are_refused() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="'small-modle': did you mean 'small-model'"):
        _router(prices={"big-model": (10, 20), "small-modle": (1, 2)})
    with pytest.raises(ValidationError, match="'weak' is a side: key its price by 'small-model'"):
        _router(prices={"strong": (10, 20), "weak": (1, 2)})
    with pytest.raises(ValidationError, match="prices name \\['llama3.1-8b'\\]"):
        _router(weak_model_name="llama-3.1-8b", prices={"llama3.1-8b": (0.05, 0.08)})
    named = _router(weak_model_name="llama-3.1-8b", prices={"llama-3.1-8b": (0.05, 0.08)})
    assert named.cost_report().unpriced_models == []
    # one price table shared by several routers: both models priced, other names are fine
    shared = {"big-model": (10, 20), "small-model": (1, 2), "other-model": (3, 4)}
    assert _router(prices=shared).cost_report().unpriced_models == []


def test_tracker_is_thread_safe() -> None:
    tracker = CostTracker({"m": (1, 1)})

    def work() -> None:
        for _ in range(500):
            tracker.record("weak", "m", input_tokens=1, output_tokens=2)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    report = tracker.report()
    assert (report.weak.calls, report.weak.input_tokens, report.weak.output_tokens) == (
        4000,
        4000,
        8000,
    )
    assert report.weak.cost == pytest.approx(12000 / 1e6)
    assert report.to_dict()["calls"] == 4000
