import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from routellm_base.evals import oracle_curve, quality_curve, random_baseline

STRONG = np.array([1.0, 1.0, 0.0, 1.0])
WEAK = np.array([0.0, 1.0, 1.0, 0.0])


def test_hand_worked_example():
    # Order by win rate: gains +1, 0, -1, +1 -> performance .5, .75, .75, .5, .75; PGR 0, 1, 1, 0, 1.
    curve = quality_curve(np.array([0.9, 0.8, 0.7, 0.1]), STRONG, WEAK)
    np.testing.assert_allclose(curve.shares, [0, 0.25, 0.5, 0.75, 1])
    np.testing.assert_allclose(curve.pgr, [0, 1, 1, 0, 1])
    assert curve.apgr() == pytest.approx(0.625)
    assert curve.cpt(0.5) == pytest.approx(0.125)
    assert curve.cpt(0.8) == pytest.approx(0.2)
    assert curve.strong_score == 0.75 and curve.weak_score == 0.5


def test_cpt_is_the_first_share_reaching_the_target():
    # PGR dips back to 0 at 75% and recovers: CPT still reports the first crossing.
    curve = quality_curve(np.array([0.9, 0.8, 0.7, 0.1]), STRONG, WEAK)
    assert curve.cpt(1.0) == pytest.approx(0.25)
    # Gains in routing order -1, 0, +1, +1: PGR 0, -1, -1, 0, 1 never reaches 1.5.
    never = quality_curve(np.array([0.1, 0.2, 0.9, 0.3]), np.array([1.0, 1, 0, 0]), np.array([0.0, 0, 1, 0]))
    np.testing.assert_allclose(never.pgr, [0, -1, -1, 0, 1])
    assert never.cpt(1.5) is None


def test_ties_enter_as_one_linear_step():
    tied = quality_curve(np.array([0.9, 0.9, 0.1, 0.1]), STRONG, WEAK)
    np.testing.assert_allclose(tied.shares, [0, 0.5, 1])
    np.testing.assert_allclose(tied.pgr, [0, 1, 1])
    assert tied.apgr() == pytest.approx(0.75)
    constant = quality_curve(np.full(4, 0.5), STRONG, WEAK)
    assert constant.apgr() == pytest.approx(0.5)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 1), st.integers(0, 1), st.floats(0, 1)), min_size=2, max_size=60))
def test_curve_invariants(rows):
    strong = np.array([r[0] for r in rows], dtype=float)
    weak = np.array([r[1] for r in rows], dtype=float)
    rates = np.array([r[2] for r in rows])
    curve = quality_curve(rates, strong, weak)
    assert curve.shares[0] == 0 and curve.shares[-1] == 1
    assert curve.performance[0] == pytest.approx(weak.mean())
    assert curve.performance[-1] == pytest.approx(strong.mean())
    if strong.mean() > weak.mean():
        # No router recovers more of the gap than the oracle.
        assert curve.apgr() <= oracle_curve(strong, weak).apgr() + 1e-9


def test_random_baseline_is_near_half():
    rng = np.random.default_rng(123)  # not random_baseline's own seed: keep the two independent
    strong = (rng.random(2000) < 0.8).astype(float)
    weak = (rng.random(2000) < 0.6).astype(float)
    mean, std, cpts = random_baseline(strong, weak, seeds=100)
    assert abs(mean - 0.5) < 0.02 and 0 < std < 0.05
    assert cpts[0.5][0] == pytest.approx(0.5, abs=0.05)


def test_equal_models_make_pgr_undefined():
    curve = quality_curve(np.array([0.2, 0.8]), np.array([1.0, 0.0]), np.array([0.0, 1.0]))
    with pytest.raises(ValueError, match="PGR is undefined"):
        curve.apgr()
