"""The framework-free pool parts both integrations share: per-model cost accounting, per-call
settings, the router a pool takes, the pool engine cache, and a forced call's bounds."""

from __future__ import annotations

import numpy as np
import pytest

from routellm_base import RandomRouter
from routellm_base.costs import CostReport, CostTracker, PoolCostReport
from routellm_base.errors import PoolError, RoutingInputError, UnknownRouterError
from routellm_base.pool import Pool, PoolEngine, PoolPolicy, PoolRouter, ZeroShotPoolRouter
from routellm_base.pool_fields import (
    PoolEngineCache,
    PoolSettings,
    SingleModelRouter,
    check_router,
    pool_prices,
    pool_router_spec,
    take_route,
)
from routellm_base.routing_text import RoutingTextOptions

PRICES = {"big": (10.0, 30.0), "mid": (1.0, 2.0), "small": (0.1, 0.2)}


class Fixed(PoolRouter):
    family = "fixed"

    def __init__(self, trained_on: tuple[str, ...] | None = None) -> None:
        super().__init__("fixed", models=trained_on)
        self.calls = 0

    def _quality(self, texts, pool, columns):  # type: ignore[no-untyped-def]
        self.calls += 1
        return np.tile(np.linspace(1.0, 0.5, len(pool)), (len(texts), 1))


# -- costs per model --------------------------------------------------------------------------------


def test_a_pool_tracker_counts_per_model_and_saves_against_the_priciest() -> None:
    tracker = CostTracker(PRICES, use_default_prices=False, candidates=list(PRICES))
    assert tracker.baseline_model == "big"  # the highest price for a typical call
    tracker.record("mid", "mid", input_tokens=100, output_tokens=10)
    tracker.record("small", "small", input_tokens=100, output_tokens=10)
    report = tracker.report()
    assert isinstance(report, PoolCostReport)
    assert list(report.models) == ["big", "mid", "small"] and report.calls == 2
    assert report.total_cost == pytest.approx((100 * 1 + 10 * 2 + 100 * 0.1 + 10 * 0.2) / 1e6)
    assert report.always_baseline_cost == pytest.approx((200 * 10 + 20 * 30) / 1e6)
    assert report.savings_share == pytest.approx(1 - report.total_cost / (2600 / 1e6))
    assert report.shares == {"big": 0.0, "mid": 0.5, "small": 0.5}
    with pytest.raises(RoutingInputError, match="'strong' is not a candidate of this tracker"):
        tracker.record("strong", "big", input_tokens=1, output_tokens=1)
    tracker.reset()
    assert tracker.report().calls == 0


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_a_price_that_is_no_finite_number_is_refused_naming_its_model(bad: float) -> None:
    # NaN passed ``value < 0``: every call went to the cheapest model and reports said $nan
    for prices in ({"gpt-4o": (bad, 10.0)}, {"gpt-4o": {"input": 2.5, "output": bad}}):
        with pytest.raises(RoutingInputError, match="model 'gpt-4o': price .* must be a finite"):
            CostTracker(prices)  # two models: the cost tracker
        with pytest.raises(PoolError, match="model 'gpt-4o': price .* must be a finite"):
            pool_prices(("gpt-4o",), prices)  # a pool


def test_a_pool_tracker_without_every_price_has_no_baseline() -> None:
    tracker = CostTracker({"a": (1, 1)}, use_default_prices=False, candidates=["a", "b"])
    tracker.record("b", "b", input_tokens=5, output_tokens=5)
    report = tracker.report()
    assert report.baseline_model is None and report.always_baseline_cost is None
    assert report.unpriced_models == ["b"] and "unknown" in report.format()


def test_tracker_arguments_of_two_models_and_of_a_pool_do_not_mix() -> None:
    with pytest.raises(RoutingInputError, match="baseline_model is a pool's baseline"):
        CostTracker(baseline_model="a")
    with pytest.raises(RoutingInputError, match="not one of the candidates"):
        CostTracker(candidates=["a"], baseline_model="b")
    with pytest.raises(RoutingInputError, match="distinct model names"):
        CostTracker(candidates=["a", "a"])
    two = CostTracker()
    assert isinstance(two.report(), CostReport)
    with pytest.raises(RoutingInputError, match="side must be 'strong' or 'weak'"):
        two.record("big", "big")


# -- per-call settings and the router a pool takes ------------------------------------------------------


def test_take_route_pops_the_settings_and_refuses_them_between_two_models() -> None:
    kwargs = {"allowed_models": ["a"], "cost_weight": None, "max_cost": 0.1, "temperature": 0}
    assert take_route(kwargs, pool=True) == {"allowed": ["a"], "max_cost": 0.1}
    assert kwargs == {"temperature": 0}
    assert take_route({"temperature": 0}, pool=False) == {}
    with pytest.raises(RoutingInputError, match="\\['quality_tolerance'\\] route a pool"):
        take_route({"quality_tolerance": 0.1}, pool=False)
    kwargs = {"budget": 2.0, "temperature": 0}  # a per-call setting, never the model's argument
    assert take_route(kwargs, pool=True) == {"budget": 2.0} and kwargs == {"temperature": 0}
    with pytest.raises(RoutingInputError, match="\\['budget'\\] route a pool"):
        take_route({"budget": 2.0}, pool=False)


def test_the_router_a_pool_takes() -> None:
    names = ("big", "mid", "small")
    router = Fixed()
    assert pool_router_spec(router, names) is router
    assert pool_router_spec("zero_shot", names) == "zero_shot"
    assert pool_router_spec(router, ("big",)) == "single_model"
    assert pool_router_spec("pool_knn", names) == "pool_knn"  # loaded by check_router
    with pytest.raises(UnknownRouterError, match="'mf' is a bundled two-model router"):
        check_router("mf", Pool(PRICES))
    with pytest.raises(PoolError, match="ZeroShotPoolRouter\\(difficulty=router\\)"):
        pool_router_spec(RandomRouter(seed=0), names)
    with pytest.raises(PoolError, match="never seen \\['small'\\]"):
        check_router(Fixed(trained_on=("big", "mid")), Pool(PRICES))


def test_a_pool_of_one_checks_the_router_given_as_a_larger_pool_does() -> None:
    # it runs no router, but a router named for it that never saw its model is a mistake
    one = Pool({"my-own-model": (1.0, 1.0)})
    with pytest.raises(PoolError, match="'pool_knn' was trained on .* never seen \\['my-own"):
        check_router("pool_knn", one)
    with pytest.raises(PoolError, match="never seen \\['my-own-model'\\]"):
        check_router(Fixed(trained_on=("big",)), one)
    with pytest.raises(UnknownRouterError, match="'mf' is a bundled two-model router"):
        check_router("mf", one)
    assert check_router("zero_shot", one) is None  # routes any pool: nothing to load
    assert check_router(Fixed(trained_on=("big",)), Pool({"big": (1.0, 1.0)})) is None


def test_pool_prices_match_the_models_exactly() -> None:
    names = ("big", "mid")
    assert pool_prices(names, {"big": [10, 30], "mid": (1, 2)})[0][1].output_per_million == 30
    with pytest.raises(PoolError, match="model 'mid' has no price"):
        pool_prices(names, {"big": (1, 1)})
    with pytest.raises(PoolError, match="prices name \\['small'\\]"):
        pool_prices(names, PRICES)


# -- the engine cache --------------------------------------------------------------------------------


def settings(router: PoolRouter | str, **policy: float) -> PoolSettings:
    return PoolSettings(
        router,
        pool_prices(tuple(PRICES), PRICES),
        256.0,
        PoolPolicy(**policy),
        RoutingTextOptions(),
        True,
    )


def test_the_cache_builds_once_per_settings_and_swaps_after_checking() -> None:
    cache, router = PoolEngineCache(), Fixed()
    engine = cache.get(settings(router))
    assert isinstance(engine, PoolEngine) and cache.get(settings(router)) is engine
    assert cache.get(settings(router, cost_weight=1.0)) is not engine
    with pytest.raises(PoolError, match="never seen"):
        cache.swap(settings(router), Fixed(trained_on=("big",)))
    assert cache.router_in_use(router) is router
    new = Fixed()
    assert cache.swap(settings(router), new) is router
    assert cache.get(settings(router)).router is new and cache.router_in_use(router) is new


def test_a_pool_of_one_and_the_zero_shot_start() -> None:
    cache = PoolEngineCache()
    one = PoolSettings(
        "single_model", pool_prices(("a",), {"a": (1, 1)}), 256.0, PoolPolicy(),
        RoutingTextOptions(), True,
    )  # fmt: skip
    engine = cache.get(one)
    assert isinstance(engine.router, SingleModelRouter) and engine.router.embedder is None
    assert engine.decide("Hello there").model == "a"
    assert engine.decide("Hello there").pool.quality == {}  # nothing predicted, none invented
    zero = cache.get(settings("zero_shot"))
    assert isinstance(zero.router, ZeroShotPoolRouter)
    assert cache.get(settings("zero_shot", cost_weight=1.0)).router is zero.router  # loaded once


# -- a forced call's bounds -----------------------------------------------------------------------------


def test_a_forced_call_stays_within_allowed_and_max_cost() -> None:
    router = Fixed()
    engine = PoolEngine(router, PRICES)
    decision = engine.decide("hi", force="mid", allowed=["mid", "small"])
    assert decision.pool.order == ("mid", "small") and router.calls == 0
    assert engine.decide("hi", force="small", max_cost=0.001).pool.order == ("small", "mid")
    with pytest.raises(PoolError, match="forced model 'big' is not one of the allowed"):
        engine.decide("hi", force="big", allowed=["mid"])
    with pytest.raises(PoolError, match="forced model 'big' is expected to cost .* over max_cost"):
        engine.decide("hi", force="big", max_cost=0.001)
