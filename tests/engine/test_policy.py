import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from routellm_base import (
    Calibration,
    InvalidPolicyError,
    RandomRouter,
    RoutingPolicy,
    calibrate_threshold,
)
from routellm_base.policy import decide_sides
from routellm_base.routers.base import Router


@pytest.mark.parametrize(
    "kwargs",
    [
        {"threshold": 1.5},
        {"threshold": -0.1},
        {"threshold": math.nan},
        {"threshold": True},
        {"threshold": "0.5"},
        {"strong_share": 2},
        {"threshold": 0.3, "strong_share": 0.3},
    ],
)
def test_invalid_policies_name_the_problem(kwargs):
    with pytest.raises(InvalidPolicyError, match="threshold|strong_share"):
        RoutingPolicy(**kwargs)


def test_threshold_passes_through():
    assert RoutingPolicy(threshold=0.42).threshold_for(RandomRouter()) == 0.42


def test_default_share_is_half():
    # The random router's calibration is the uniform distribution: share s <-> threshold 1 - s.
    assert RoutingPolicy().threshold_for(RandomRouter()) == pytest.approx(0.5)
    assert RoutingPolicy(strong_share=0.3).threshold_for(RandomRouter()) == pytest.approx(0.7)


def test_share_needs_a_calibration():
    router = RandomRouter()
    router.calibration = None
    with pytest.raises(InvalidPolicyError, match="no stored calibration") as error:
        RoutingPolicy(strong_share=0.3).threshold_for(router)
    message = str(error.value)
    assert f"no stored calibration for {router.strong_model!r} vs {router.weak_model!r}" in message
    assert "routellm calibrate --router DIR --prompts FILE" in message and "share_window" not in message
    with pytest.raises(InvalidPolicyError, match="a share_window starts from it too"):
        RoutingPolicy(strong_share=0.3, share_window=50).threshold_for(router)
    # The ends need no calibration: a share of 0 sends no call strong, 1 every call.
    none = RoutingPolicy(strong_share=0.0).threshold_for(router)
    assert none > 1.0 and not decide_sides(np.array([0.0, 0.5, 1.0]), none).any()
    every = RoutingPolicy(strong_share=1.0).threshold_for(router)
    assert every == 0.0 and decide_sides(np.array([0.0, 0.5, 1.0]), every).all()


@settings(max_examples=60, deadline=None)
@given(
    rates=st.lists(st.floats(0, 1, allow_nan=False), min_size=50, max_size=400, unique=True),
    share=st.floats(0.05, 0.95),
)
def test_calibrated_threshold_sends_the_target_share_strong(rates, share):
    calibration = Calibration.from_win_rates(rates, "test")
    threshold = calibration.threshold_for_share(share)
    achieved = float(np.mean(np.asarray(rates) >= threshold))
    # Interpolating stored quantiles can be off by up to two items.
    assert abs(achieved - share) <= 2.0 / len(rates) + 1e-9


@settings(max_examples=40, deadline=None)
@given(share_a=st.floats(0, 1), share_b=st.floats(0, 1))
def test_threshold_is_monotone_in_share(share_a, share_b):
    calibration = Calibration.from_win_rates(np.linspace(0.1, 0.9, 97) ** 2, "test")
    lo, hi = sorted((share_a, share_b))
    assert calibration.threshold_for_share(hi) <= calibration.threshold_for_share(lo)


def test_share_zero_sends_nothing_strong():
    rates = np.linspace(0, 0.8, 101)
    threshold = Calibration.from_win_rates(rates, "t").threshold_for_share(0.0)
    assert not np.any(rates >= threshold)


class _LengthRouter(Router):
    """Win rate = the prompt's length in hundredths: the same for the same prompt."""

    family = "length"

    def _win_rate(self, texts):
        return np.array([len(t) / 100 for t in texts])


def test_calibrate_on_user_prompts():
    router = _LengthRouter("length")
    prompts = ["x" * n for n in range(1, 101)]
    threshold = calibrate_threshold(router, prompts, 0.25)
    assert np.mean(router.strong_win_rate(prompts) >= threshold) == 0.25
    with pytest.raises(InvalidPolicyError):
        calibrate_threshold(router, [], 0.25)


def test_the_random_router_is_not_calibrated_it_takes_the_share_as_is():
    """Its win rates are fresh draws: a threshold fitted on one draw sent another share on the
    next. strong_share S needs no calibration: its stored one is uniform, threshold 1 - S."""
    prompts = [f"prompt {i}" for i in range(10)]
    with pytest.raises(InvalidPolicyError, match="cannot calibrate 'random': the random router"):
        calibrate_threshold(RandomRouter(seed=3), prompts, 0.25)
    assert RoutingPolicy(strong_share=0.25).threshold_for(RandomRouter()) == pytest.approx(0.75)


def test_a_constant_router_cannot_be_given_a_strong_share():
    # Trained on battles whose outcomes never vary, a router scores every prompt alike: no
    # threshold sends 30% strong (it used to send all of them), but the ends still mean all/none.
    calibration = Calibration.from_win_rates([0.5] * 30, "judged log")
    with pytest.raises(InvalidPolicyError, match="every one of the 30 prompts of 'judged log'"):
        calibration.threshold_for_share(0.3)
    assert calibration.threshold_for_share(0.0) > 1.0 >= calibration.threshold_for_share(1.0)
