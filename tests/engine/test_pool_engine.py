"""The pool engine core: prices, policies, decisions and fallback among several models."""

from __future__ import annotations

import numpy as np
import pytest

from routellm_base import InvalidPolicyError, load_router
from routellm_base.errors import PoolError
from routellm_base.pool import (
    Pool,
    PoolEngine,
    PoolPolicy,
    PoolRouter,
    ZeroShotPoolRouter,
    prompt_tokens,
)
from routellm_base.pool.policy import solve_cost_weight
from routellm_base.routed_call import Candidate, RoutedCall

PRICES = {"big": (10.0, 30.0), "mid": (1.0, 2.0), "small": (0.1, 0.1)}


class TableRouter(PoolRouter):
    """Quality read from a table keyed by the routing text (the logic under test is the
    policy's, not a learned router's)."""

    family = "table"

    def __init__(self, table: dict[str, dict[str, float]], models=("big", "mid", "small")):
        super().__init__("table", models=models)
        self.table = table

    def _quality(self, texts, pool, columns):
        return np.array([[self.table[t][name] for name in pool.names] for t in texts])


EASY = {"big": 0.9, "mid": 0.86, "small": 0.85}
HARD = {"big": 0.9, "mid": 0.5, "small": 0.2}
MIDDLING = {"big": 0.9, "mid": 0.8, "small": 0.3}


def engine(policy: PoolPolicy | None = None, **kw) -> PoolEngine:
    router = TableRouter({"easy": EASY, "hard": HARD, "middling": MIDDLING})
    return PoolEngine(router, Pool(PRICES, output_tokens=100), policy=policy, **kw)


def test_expected_cost_is_prompt_tokens_and_answer_length_at_the_prices():
    pool = Pool(PRICES, output_tokens={"big": 200})
    costs = pool.expected_costs([1000.0])
    assert costs[0] == pytest.approx(
        [(1000 * 10 + 200 * 30) / 1e6, (1000 * 1 + 256 * 2) / 1e6, (1000 * 0.1 + 256 * 0.1) / 1e6]
    )
    assert pool.most_expensive == "big"
    assert prompt_tokens("abcdefgh") == 2.0
    assert (
        prompt_tokens([{"role": "user", "content": "abcd"}, {"role": "assistant", "content": "ef"}])
        == 1.5
    )


@pytest.mark.parametrize(
    ("prices", "message"),
    [
        ({}, "at least one model"),
        ({"a": None}, "no price"),
        ({"a": (1.0,)}, "'a'"),
        ({"a": (-1.0, 1.0)}, "non-negative"),
        ({"a": (float("nan"), 10.0)}, "model 'a': price input_per_million must be a finite"),
        ({"a": (1.0, float("inf"))}, "model 'a': price output_per_million must be a finite"),
        ({"": (1.0, 1.0)}, "non-empty"),
    ],
)
def test_bad_pools_name_what_is_wrong(prices, message):
    with pytest.raises(PoolError, match=message):
        Pool(prices)


def test_duplicate_names_and_unknown_output_tokens_are_refused():
    from routellm_base.costs import ModelPrice
    from routellm_base.pool import PoolModel

    price = ModelPrice(1.0, 1.0)
    with pytest.raises(PoolError, match="twice"):
        Pool([PoolModel("a", price), PoolModel("a", price)])
    with pytest.raises(PoolError, match="not in the pool"):
        Pool({"a": (1, 1)}, output_tokens={"b": 10})


def test_cost_weight_trades_quality_for_cost():
    e = engine()
    # lambda 0: best predicted quality whatever it costs
    assert e.decide("easy", cost_weight=0.0).model == "big"
    # cost of big for a 1-token prompt ~ $3.0 per 1,000 calls, small ~$0.01: a lambda of 0.1
    # costs big 0.3 quality, more than its 0.05 edge on an easy prompt but less than 0.7 on a hard one
    assert e.decide("easy", cost_weight=0.1).model == "small"
    assert e.decide("hard", cost_weight=0.1).model == "big"
    d = e.decide("middling", cost_weight=0.1)
    assert d.model == "mid"
    assert d.pool.order == ("mid", "big", "small")
    assert d.pool.policy == "cost_weight" and d.pool.knob == 0.1
    assert set(d.pool.quality) == set(d.pool.expected_cost) == set(PRICES)
    assert d.win_rate is None and d.threshold is None
    assert d.to_dict()["pool"]["order"] == ["mid", "big", "small"]


def test_quality_tolerance_takes_the_cheapest_nearly_as_good():
    e = engine(PoolPolicy(quality_tolerance=0.1))
    assert e.decide("easy").model == "small"
    assert e.decide("middling").model == "mid"
    d = e.decide("hard")
    assert d.model == "big" and d.pool.order == ("big", "mid", "small")
    assert e.decide("middling", quality_tolerance=0.0).model == "big"


def test_max_cost_is_hard_and_allowed_narrows_the_pool():
    e = engine()
    d = e.decide("hard", cost_weight=0.0, max_cost=0.001)
    assert d.model == "mid" and "big" not in d.pool.order
    assert e.decide("hard", cost_weight=0.0, allowed=["small", "mid"]).model == "mid"
    assert e.decide("hard", cost_weight=0.0, allowed=["small"]).pool.order == ("small",)
    with pytest.raises(PoolError, match="max_cost.*'small'"):
        e.decide("hard", max_cost=1e-9)


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"force": "gpt-5"}, PoolError, "forced model 'gpt-5' is not in the pool"),
        ({"allowed": ["big", "nope"]}, PoolError, "allowed model 'nope'"),
        ({"allowed": []}, PoolError, "name at least one"),
        ({"cost_weight": -1}, InvalidPolicyError, "cost_weight"),
        ({"quality_tolerance": 2}, InvalidPolicyError, "quality_tolerance"),
        ({"max_cost": "1"}, InvalidPolicyError, "max_cost"),
        ({"temperature": 1}, InvalidPolicyError, "temperature"),
    ],
)
def test_bad_call_settings_name_what_is_wrong(kwargs, error, message):
    with pytest.raises(error, match=message):
        engine().decide("easy", **kwargs)


def test_policy_takes_one_knob():
    with pytest.raises(InvalidPolicyError, match="at most one"):
        PoolPolicy(cost_weight=0.1, budget=2.0)
    # a per-call knob replaces the engine's
    assert PoolPolicy(budget=2.0).with_overrides(cost_weight=0.3).name == "cost_weight"
    assert PoolPolicy(cost_weight=0.3).with_overrides(max_cost=1.0).cost_weight == 0.3


def test_forced_skips_the_router_and_keeps_a_fallback_order():
    d = engine().decide("unscored text", force="small")
    assert d.forced and d.model == "small" and d.pool.policy == "forced"
    assert d.pool.order == ("small", "big", "mid")


def _costs(text: str) -> dict[str, float]:
    tokens = len(text) / 4
    return {n: (tokens * i + 100 * o) / 1e6 for n, (i, o) in PRICES.items()}


def test_a_forced_call_shows_the_expected_costs_its_bounds_were_checked_on():
    d = engine().decide("middling", force="small", allowed=["small", "mid"], max_cost=0.0001)
    # no router ran (quality empty), but every model's expected cost was computed for max_cost
    assert d.pool.quality == {}
    assert d.pool.expected_cost == pytest.approx(_costs("middling"))
    assert d.pool.order == ("small",)
    assert d.pool.excluded == {"big": "not allowed", "mid": "over max_cost"}
    record = d.to_dict()
    assert record["expected_cost"] == pytest.approx(_costs("middling")["small"])
    assert record["pool"]["excluded"] == {"big": "not allowed", "mid": "over max_cost"}


def test_a_decision_says_why_each_model_outside_its_order_is_excluded():
    e = engine()
    d = e.decide("middling", cost_weight=0.0, allowed=["mid", "small"], max_cost=0.0001)
    assert d.model == "small" and d.pool.order == ("small",)
    assert set(d.pool.quality) == {"big", "mid", "small"}  # what the router predicted
    assert d.pool.excluded == {"big": "not allowed", "mid": "over max_cost"}
    assert e.decide("middling", max_cost=0.0001).pool.excluded == {
        "big": "over max_cost",
        "mid": "over max_cost",
    }
    plain = e.decide("middling")
    assert plain.pool.excluded == {} and plain.to_dict()["pool"]["excluded"] == {}
    assert plain.pool.extra == {}  # a router that reports nothing behind its predictions


def test_the_decision_has_the_answering_models_expected_cost_at_the_top():
    d = engine().decide("middling", cost_weight=0.0)
    assert d.model == "big"
    assert (
        d.expected_cost == d.to_dict()["expected_cost"] == pytest.approx(_costs("middling")["big"])
    )
    fell = d.fell_back("mid", RuntimeError("down"), to="mid")
    assert fell.to_dict()["expected_cost"] == pytest.approx(_costs("middling")["mid"])


def test_a_pool_of_one_always_answers_with_its_model():
    class Never(PoolRouter):
        family = "never"

        def _quality(self, texts, pool, columns):
            raise AssertionError("a pool of one needs no prediction")

    e = PoolEngine(Never("never", models=None), {"only": (1.0, 1.0)})
    d = e.decide("anything at all")
    assert d.model == "only"
    # nothing was predicted, so no quality is shown (it was an invented 1.0); the cost is known
    assert d.pool.quality == {} and d.pool.order == ("only",)
    assert d.pool.expected_cost == {"only": pytest.approx((15 / 4 + 256) / 1e6)}
    assert d.to_dict()["pool"]["quality"] == {}


def test_a_router_that_never_saw_a_model_names_the_pool_and_the_fix():
    router = TableRouter({}, models=("big", "mid"))
    with pytest.raises(PoolError, match=r"never seen \['small'\].*add_model.*zero-shot"):
        PoolEngine(router, PRICES)


def test_budget_holds_average_spend_on_the_window():
    rng = np.random.default_rng(0)
    quality = rng.uniform(0, 1, size=(500, 3))
    costs = np.tile([5.0, 1.0, 0.1], (500, 1))  # USD per 1,000 calls
    lam = solve_cost_weight(quality, costs, budget=1.5)
    pick = np.argmax(quality - lam * costs, axis=1)
    spent = costs[np.arange(500), pick].mean()
    assert spent <= 1.5
    # the smallest such lambda: a little less overspends
    pick = np.argmax(quality - lam * 0.99 * costs, axis=1)
    assert costs[np.arange(500), pick].mean() > 1.5 - 0.05
    assert solve_cost_weight(quality, costs, budget=10.0) == 0.0


def test_budget_policy_routes_live_traffic_within_budget():
    e = engine(PoolPolicy(budget=1.0, budget_window=50))
    texts = ["easy", "hard", "middling"] * 40
    decisions = e.decide_many(texts)
    spent = np.mean([d.pool.expected_cost[d.model] * 1000 for d in decisions])
    assert spent <= 1.0
    assert {d.model for d in decisions} != {"small"}  # the budget buys some quality
    assert decisions[0].pool.policy == "budget" and decisions[0].pool.knob == 1.0


def test_zero_shot_sends_harder_prompts_to_pricier_models():
    router = ZeroShotPoolRouter(load_router())
    pool = Pool({"gpt-4o": (2.5, 10.0), "gpt-4o-mini": (0.15, 0.6), "llama-8b": (0.05, 0.08)})
    tiers = router.tiers(pool)
    assert tiers[2] == 0.0 and tiers[0] == 1.0 and 0 < tiers[1] < 1
    texts = [
        "hi there",
        "Prove that every bounded monotone sequence of reals converges, rigorously.",
    ]
    q = router.quality(texts, pool)
    assert q.shape == (2, 3)
    assert np.all(q[:, 0] == 1.0)  # the priciest model is predicted as good as any
    ranks = router.rank(texts)
    gap = q[:, 0] - q[:, 2]
    assert (ranks[1] > ranks[0]) == (gap[1] > gap[0])


def test_a_zero_shot_decision_shows_the_difficulty_behind_its_predictions():
    difficulty = load_router()
    router = ZeroShotPoolRouter(difficulty)
    pool = Pool({"gpt-4o": (2.5, 10.0), "gpt-4o-mini": (0.15, 0.6), "llama-8b": (0.05, 0.08)})
    text = "Prove that every bounded monotone sequence of reals converges, rigorously."
    d = PoolEngine(router, pool).decide(text)
    extra = d.pool.extra
    assert set(extra) == {"difficulty", "win_rate"}
    assert extra["win_rate"] == pytest.approx(float(difficulty.strong_win_rate([text])[0]))
    assert extra["difficulty"] == pytest.approx(float(router.rank([text])[0]))
    assert 0.0 <= extra["difficulty"] <= 1.0
    # the predicted qualities follow from it: q_m = 1 - 0.5 * d * (1 - t_m)
    expected = 1 - 0.5 * extra["difficulty"] * (1 - router.tiers(pool))
    assert list(d.pool.quality.values()) == pytest.approx(expected.tolist())
    assert d.to_dict()["pool"]["extra"] == extra
    assert d.win_rate is None  # the two-model field stays a two-model router's


def test_routed_call_falls_back_along_the_policy_order():
    e = engine()
    candidates = [Candidate(n, n, n) for n in PRICES]
    call = RoutedCall(e, candidates, "middling", fallback=True, route={"cost_weight": 0.1})
    assert call.decide().pool.order == ("mid", "big", "small")
    tried = []

    def attempt(candidate):
        tried.append(candidate.key)
        if candidate.key != "small":
            raise RuntimeError(f"{candidate.key} down")
        return "answer"

    assert call.run(attempt) == "answer"
    assert tried == ["mid", "big", "small"]
    assert call.decision.model == "small" and call.decision.fallback_from == "mid"
    assert "mid: RuntimeError: mid down" in call.decision.fallback_reason
    assert "big: RuntimeError: big down" in call.decision.fallback_reason


def test_routed_call_raises_the_last_failure_from_the_first_when_all_fail():
    call = RoutedCall(engine(), [Candidate(n, n, n) for n in PRICES], "middling", fallback=True)
    call.decide()

    def attempt(candidate):
        raise RuntimeError(candidate.key)

    with pytest.raises(RuntimeError) as raised:
        call.run(attempt)
    assert [str(e) for e in call.failures] == list(call.decision.pool.order)
    assert raised.value is call.failures[-1]
    # every failure is in the chain a traceback shows, each caused by the one before it
    assert len(call.failures) == 3
    chain = [raised.value]
    while chain[-1].__cause__ is not None:
        chain.append(chain[-1].__cause__)
    assert chain == call.failures[::-1]


def test_routed_call_chains_an_error_raised_twice_without_a_cycle():
    call = RoutedCall(engine(), [Candidate(n, n, n) for n in PRICES], "middling", fallback=True)
    call.decide()
    shared = RuntimeError("the same error object for every model")

    def attempt(candidate):
        raise shared

    with pytest.raises(RuntimeError) as raised:
        call.run(attempt)
    assert raised.value is shared and shared.__cause__ is None


def test_routed_call_checks_its_candidates_against_the_pool():
    with pytest.raises(Exception, match="pool order"):
        RoutedCall(engine(), [Candidate("small", "small", 1), Candidate("big", "big", 2)], "x")
