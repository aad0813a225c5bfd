"""Cost-quality metrics on small cases computed by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from routellm_base.errors import PoolError
from routellm_base.pool.evaluation import (
    Curve,
    choose,
    evaluate_pool,
    group_mean_predictions,
    hull_area,
    nondecreasing_hull,
    oracle,
    pairwise_accuracy,
    router_curve,
    single_models,
    upper_hull,
)


def test_upper_hull_drops_points_under_the_chord_and_keeps_the_best_at_one_cost():
    c, q = upper_hull(np.array([0.0, 1.0, 2.0, 1.0, 3.0]), np.array([0.0, 0.4, 1.0, 0.6, 0.9]))
    # (1, 0.4) lies under the chord from (0, 0) to (2, 1) and (1, 0.6) is above it (0.5)
    assert c.tolist() == [0.0, 1.0, 2.0, 3.0]
    assert q.tolist() == [0.0, 0.6, 1.0, 0.9]
    c2, q2 = nondecreasing_hull(c, q)  # cut after the best point
    assert c2.tolist() == [0.0, 1.0, 2.0] and q2.tolist() == [0.0, 0.6, 1.0]


def test_aiq_is_the_mean_of_the_hull_over_the_cost_range():
    # hull (1, 0.5) -> (3, 0.9), flat after: over [1, 5] the area is 2 * 0.7 + 2 * 0.9 = 3.2
    assert hull_area(np.array([1.0, 3.0]), np.array([0.5, 0.9]), 1.0, 5.0) == pytest.approx(0.8)
    curve = Curve("r", np.array([1.0, 3.0, 2.0]), np.array([0.5, 0.9, 0.6]))
    # (2, 0.6) lies under the chord (0.7 there): the hull ignores it
    assert curve.aiq((1.0, 5.0)) == pytest.approx(0.8)
    with pytest.raises(PoolError):
        hull_area(np.array([1.0]), np.array([0.5]), 2.0, 2.0)


def test_cost_to_match_interpolates_along_the_hull():
    curve = Curve("r", np.array([1.0, 3.0]), np.array([0.5, 0.9]))
    assert curve.cost_to_match(0.7) == pytest.approx(2.0)
    assert curve.cost_to_match(0.5) == pytest.approx(1.0)
    assert curve.cost_to_match(0.95) is None
    assert curve.quality_at(2.5) == pytest.approx(0.8)


def test_oracle_takes_the_cheapest_of_the_tied_best_models():
    scores = np.array([[1.0, 1.0, 0.0], [0.0, 0.0, 1.0], [0.0, 0.0, 0.0]])
    costs = np.array([[2.0, 1.0, 3.0], [1.0, 1.0, 5.0], [4.0, 2.0, 3.0]]) / 1000
    quality, cost = oracle(scores, costs)
    # item 0: models 0 and 1 tie at 1 -> model 1 ($1); item 1: model 2 ($5); item 2: all 0 -> $2
    assert quality == pytest.approx(2 / 3)
    assert cost == pytest.approx((1 + 5 + 2) / 3)


def test_single_models_and_the_zero_router():
    scores = np.array([[0.0, 1.0, 1.0], [0.0, 0.0, 1.0]])
    costs = np.array([[1.0, 2.0, 4.0], [1.0, 2.0, 4.0]]) / 1000
    q, c = single_models(scores, costs)
    assert q.tolist() == [0.0, 0.5, 1.0] and c.tolist() == pytest.approx([1.0, 2.0, 4.0])
    report = evaluate_pool({}, scores, costs, ["a", "b", "c"])
    assert report.best_single == 2
    # Zero router: (1, 0) - (2, 0.5) - (4, 1); (2, 0.5) lies above the chord (1/3 there)
    # area over [1, 4]: 1 * 0.25 + 2 * 0.75 = 1.75 -> AIQ 1.75 / 3
    assert report.zero.aiq(report.cost_range) == pytest.approx(1.75 / 3)
    row = report.row(report.zero)
    assert row["cost_to_match_best_single"] == pytest.approx(4.0)


def test_router_curve_sweeps_lambda_from_best_predicted_to_cheapest():
    scores = np.array([[1.0, 0.0], [0.0, 1.0]])
    costs = np.array([[1.0, 3.0], [1.0, 3.0]]) / 1000
    pred = scores.copy()  # a perfect router
    curve = router_curve(pred, scores, costs, cost_weights=[0.0, 0.3, math.inf])
    # lambda 0: the right model each time (q 1, $2); lambda 0.3: item 1's gain 1 < 0.3 * 2
    # is false (0.6 < 1), still the right one; infinity: the cheap model everywhere (q 0.5, $1)
    assert curve.quality.tolist() == [1.0, 1.0, 0.5]
    assert curve.cost.tolist() == pytest.approx([2.0, 2.0, 1.0])
    assert choose(pred, costs, 1.0).tolist() == [0, 0]  # 1 < 1.0 * 2: the cheaper one


def test_group_mean_predictions_and_pairwise_accuracy():
    train = np.array([[1.0, 0.0], [0.0, np.nan], [0.0, 1.0]])
    pred = group_mean_predictions(train, ["a", "a", "b"], ["b", "a", "c"])
    assert pred[0].tolist() == [0.0, 1.0]
    assert pred[1].tolist() == [0.5, 0.0]
    assert pred[2].tolist() == pytest.approx([1 / 3, 0.5])  # unseen group: overall mean
    acc, n = pairwise_accuracy(
        np.array([[0.9, 0.1], [0.5, 0.5]]),
        np.array([0, 0, 1, 1]),
        np.array([0, 1, 0, 0]),
        np.array([1, 0, 1, 1]),
        np.array([1.0, 1.0, 0.5, 0.0]),
    )
    # decisive: #0 right, #1 wrong, #3 a predicted tie (half); the tie battle #2 is left out
    assert n == 3 and acc == pytest.approx(1.5 / 3)


def test_evaluation_refuses_incomplete_items():
    with pytest.raises(PoolError, match="complete items"):
        evaluate_pool({}, np.array([[1.0, np.nan]]), np.array([[1.0, 1.0]]), ["a", "b"])
    with pytest.raises(PoolError, match="model names"):
        evaluate_pool({}, np.array([[1.0, 0.0]]), np.array([[1.0, 1.0]]), ["a"])
