"""A call's own policy between two models (``threshold=`` / ``strong_share=`` per call): the
engine routes that call by it, records it, keeps it out of a share window, and refuses a bad
value before the router runs; the per-call settings are taken out of a call's arguments, the
other kind's and an unknown ``routellm_*`` argument refused."""

from __future__ import annotations

import numpy as np
import pytest

from routellm_base import (
    Calibration,
    InvalidPolicyError,
    RandomRouter,
    RoutingEngine,
    RoutingInputError,
)
from routellm_base.pool_fields import lift_settings, take_route
from routellm_base.routed_call import Candidate, RoutedCall
from routellm_base.routers.base import Router


class FixedRouter(Router):
    """The same win rate for every text; a uniform calibration unless told otherwise."""

    family = "fixed"

    def __init__(self, rate: float, calibration: Calibration | None = None) -> None:
        super().__init__("fixed", calibration=calibration)
        self.rate = rate
        self.scored = 0

    def _win_rate(self, texts: list[str]) -> np.ndarray:
        self.scored += len(texts)
        return np.full(len(texts), self.rate)


UNIFORM = RandomRouter().calibration


def test_a_per_call_threshold_routes_that_call_and_is_recorded() -> None:
    engine = RoutingEngine(FixedRouter(0.4, UNIFORM), threshold=0.5)
    own = engine.decide("hi")
    assert own.side == "weak" and own.threshold == 0.5 and "call_policy" not in own.extra
    call = engine.decide("hi", threshold=0.3)
    assert call.side == "strong" and call.threshold == 0.3 and call.win_rate == 0.4
    assert call.extra["call_policy"] == {"threshold": 0.3}
    assert engine.decide("hi").side == "weak"  # the engine's own policy is unchanged
    forced = engine.decide("hi", force="weak", threshold=0.3)
    assert forced.forced and forced.threshold == 0.3


def test_a_per_call_strong_share_goes_through_the_calibration() -> None:
    engine = RoutingEngine(FixedRouter(0.6, UNIFORM), strong_share=0.3)  # threshold 0.7
    assert engine.decide("hi").side == "weak"
    call = engine.decide("hi", strong_share=0.5)  # the uniform calibration: threshold 0.5
    assert call.side == "strong" and call.threshold == pytest.approx(0.5)
    assert call.extra["call_policy"] == {"strong_share": 0.5}
    assert engine.decide("hi", strong_share=0.0).side == "weak"
    assert engine.decide("hi", strong_share=1.0).side == "strong"


async def test_adecide_takes_the_call_policy() -> None:
    engine = RoutingEngine(FixedRouter(0.4, UNIFORM), threshold=0.5)
    assert (await engine.adecide("hi", threshold=0.1)).side == "strong"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"threshold": 0.2, "strong_share": 0.5}, "either threshold or strong_share, not both"),
        ({"threshold": 1.5}, "threshold must be in \\[0, 1\\], got 1.5"),
        ({"threshold": "high"}, "threshold must be a number in \\[0, 1\\], got 'high'"),
        ({"strong_share": -0.1}, "strong_share must be in \\[0, 1\\]"),
    ],
)
def test_bad_per_call_values_are_refused_before_the_router_runs(kwargs, message) -> None:
    router = FixedRouter(0.4, UNIFORM)
    with pytest.raises(InvalidPolicyError, match=message):
        RoutingEngine(router, threshold=0.5).decide("hi", **kwargs)
    assert router.scored == 0


def test_a_per_call_strong_share_needs_a_calibration() -> None:
    engine = RoutingEngine(FixedRouter(0.4), threshold=0.5)
    with pytest.raises(InvalidPolicyError, match="no stored calibration .* Give a threshold"):
        engine.decide("hi", strong_share=0.3)
    assert engine.decide("hi", strong_share=1.0).side == "strong"  # the ends need none


def test_a_share_window_takes_a_per_call_threshold_but_refuses_a_share() -> None:
    engine = RoutingEngine(RandomRouter(seed=1), strong_share=0.3, share_window=10)
    for i in range(3):
        engine.decide(f"question {i}")
    assert len(engine.window) == 3
    call = engine.decide("x", threshold=0.0)
    assert call.side == "strong" and call.threshold == 0.0
    assert "share_window" not in call.extra and call.extra["call_policy"] == {"threshold": 0.0}
    assert len(engine.window) == 3  # the call stayed out of the window
    with pytest.raises(InvalidPolicyError, match="share_window=10\\): give the call a threshold"):
        engine.decide("x", strong_share=0.5)


def test_a_routed_pair_call_passes_its_policy_to_the_engine() -> None:
    engine = RoutingEngine(FixedRouter(0.4, UNIFORM), threshold=0.5)
    candidates = [Candidate("strong", "S", object()), Candidate("weak", "W", object())]
    call = RoutedCall(engine, candidates, "hi", route={"threshold": 0.2})
    assert call.decide().side == "strong"
    with pytest.raises(RoutingInputError, match="\\['max_cost'\\] route a pool of several"):
        RoutedCall(engine, candidates, "hi", route={"max_cost": 0.1})


def test_take_route_of_two_models_pops_their_policy() -> None:
    kwargs = {"threshold": 0.2, "strong_share": None, "temperature": 0, "routellm_force": "weak"}
    assert take_route(kwargs, pool=False) == {"threshold": 0.2}
    assert kwargs == {"temperature": 0, "routellm_force": "weak"}  # the forced side stays
    with pytest.raises(RoutingInputError, match="a strong/weak router takes \\['routellm_force'"):
        take_route({"max_cost": 0.1}, pool=False)


def test_take_route_of_a_pool_refuses_two_models_policy() -> None:
    kwargs = {"threshold": 0.2, "temperature": 0}
    with pytest.raises(RoutingInputError, match="\\['threshold'\\] route between two models"):
        take_route(kwargs, pool=True)
    assert kwargs == {"threshold": 0.2, "temperature": 0}  # nothing popped


@pytest.mark.parametrize("pool", [False, True])
def test_an_unknown_routellm_argument_is_refused_naming_the_known_ones(pool: bool) -> None:
    with pytest.raises(RoutingInputError, match="unknown call argument 'routellm_forse'") as err:
        take_route({"routellm_forse": "strong"}, pool=pool)
    assert "'routellm_force'" in str(err.value)
    assert ("'allowed_models'" if pool else "'threshold'") in str(err.value)


def test_configurable_lifts_two_models_policy() -> None:
    given = {"threshold": 0.2, "strong_share": 0.4, "cost_weight": 1.0}
    assert lift_settings(given, {"strong_share": None}, pool=False) == {
        "strong_share": None,
        "threshold": 0.2,
    }
