"""Holding the strong share on live traffic (``share_window``): the online quantile, its
thread safety, what a decision records, and a replayed stream whose distribution shifts."""

from __future__ import annotations

import csv
import json
import random
import threading
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from routellm_base import (
    InvalidPolicyError,
    RandomRouter,
    RoutingEngine,
    RoutingPolicy,
    load_router,
)
from routellm_base.share_window import ShareWindow

TARGET = 0.3
TOLERANCE = 0.05
"""Realised share over a block of 400-500 calls: about two binomial standard deviations
(2 * sqrt(0.3 * 0.7 / 400) = 0.046)."""


@settings(max_examples=60, deadline=None)
@given(
    rates=st.lists(st.floats(0, 1, allow_nan=False), min_size=1, max_size=300),
    size=st.integers(1, 120),
    share=st.floats(0.01, 0.99),
)
def test_the_threshold_is_the_quantile_of_the_last_size_win_rates(rates, size, share):
    window = ShareWindow(size, share, warmup=1)
    window.take(rates, calibrated=0.5)
    held = window.peek(calibrated=0.5)
    last = np.asarray(rates[-size:])
    assert held.source == "window" and held.fill == len(last) == len(window)
    assert held.threshold == pytest.approx(float(np.quantile(last, 1.0 - share)), abs=1e-12)


def test_the_calibration_serves_until_the_warmup_is_filled():
    window = ShareWindow(50, 0.3, warmup=10)
    for i in range(10):
        held = window.take([0.9], calibrated=0.42)
        assert (held.threshold, held.source, held.fill) == (0.42, "calibration", i)
    held = window.take([0.9], calibrated=0.42)
    assert (held.threshold, held.source, held.fill, held.size) == (0.9, "window", 10, 50)
    assert held.to_dict() == {
        "threshold_from": "window",
        "size": 50,
        "fill": 10,
        "target_share": 0.3,
    }


def test_concurrent_takes_each_see_the_window_as_it_stood_and_add_once():
    # 8 threads x 250 calls into a window that holds them all: if taking the threshold and
    # adding the win rate were two steps, two calls could see the same fill.
    window = ShareWindow(2000, 0.5, warmup=1)
    fills: list[int] = []
    lock = threading.Lock()

    def caller(seed: int) -> None:
        rng = np.random.default_rng(seed)
        for rate in rng.random(250):
            held = window.take([rate], calibrated=0.5)
            with lock:
                fills.append(held.fill)

    threads = [threading.Thread(target=caller, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(fills) == list(range(2000)) and len(window) == 2000


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"threshold": 0.5, "share_window": 100}, "does not apply to a fixed threshold"),
        ({"strong_share": 0.3, "share_window": 0}, "share_window must be a whole number"),
        ({"strong_share": 0.3, "share_window": 10.5}, "share_window must be a whole number"),
        ({"strong_share": 0.3, "share_window": True}, "share_window must be a whole number"),
        (
            {"strong_share": 0.3, "share_window": 10, "share_window_warmup": 11},
            r"share_window_warmup must be a whole number of calls in \[1, share_window=10\]",
        ),
        ({"strong_share": 0.3, "share_window_warmup": 5}, "needs a share_window"),
    ],
)
def test_bad_share_windows_name_the_problem(kwargs, message):
    with pytest.raises(InvalidPolicyError, match=message):
        RoutingPolicy(**kwargs)


def test_decisions_record_the_threshold_and_where_it_came_from():
    engine = RoutingEngine(RandomRouter(seed=3), strong_share=0.3, share_window=20)
    calibrated = engine.calibrated_threshold  # uniform calibration: 0.7
    assert calibrated == pytest.approx(0.7)
    decisions = [engine.decide(f"question {i}") for i in range(40)]
    for i, d in enumerate(decisions):
        record = d.extra["share_window"]
        assert record["fill"] == min(i, 20) and record["size"] == 20
        assert record["threshold_from"] == ("calibration" if i < 20 else "window")
        assert d.side == ("strong" if d.win_rate >= d.threshold else "weak")
    assert all(d.threshold == calibrated for d in decisions[:20])
    # Past warm-up the threshold is the quantile of the 20 win rates before the call.
    rates = [d.win_rate for d in decisions]
    for i in range(20, 40):
        assert decisions[i].threshold == pytest.approx(np.quantile(rates[i - 20 : i], 0.7))
    # Forced calls and dry runs report the threshold in force but do not enter the window.
    forced = engine.decide("x", force="weak")
    dry = engine.decide("y", observe=False)
    assert forced.extra["share_window"]["fill"] == dry.extra["share_window"]["fill"] == 20
    assert forced.threshold == dry.threshold == engine.threshold
    assert engine.decide("z").extra["share_window"]["fill"] == 20  # full: the oldest left


def test_without_a_window_decisions_carry_no_window_record():
    d = RoutingEngine(RandomRouter(seed=0), strong_share=0.3).decide("hello")
    assert "share_window" not in d.extra and d.threshold == pytest.approx(0.7)


# -- a replayed stream whose distribution shifts ----------------------------------------------


def _shifting_stream(data_dir: Path) -> list[str]:
    """600 AlpacaEval chat prompts, then 600 GSM8K maths problems (each shuffled, seed 0): on
    the first the bundled router scores lower than on its calibration set (Arena-Hard prompts),
    on the second much higher."""
    lines = (data_dir / "alpaca_eval/prompts.jsonl").read_text().splitlines()
    alpaca = [json.loads(line)["prompt"] for line in lines if line.strip()]
    gsm8k_csv = data_dir / "routellm/routellm/evals/gsm8k/gsm8k_responses.csv"
    with open(gsm8k_csv, newline="") as f:
        gsm8k = [row["prompt"] for row in csv.DictReader(f)]
    rng = random.Random(0)
    rng.shuffle(alpaca)
    rng.shuffle(gsm8k)
    return alpaca[:600] + gsm8k[:600]


def _realised_shares(engine: RoutingEngine, stream: list[str]) -> tuple[float, float]:
    """Strong share of calls 100-599 (first source, after warm-up) and 800-1199 (second
    source, once a 200-call window has refilled), routing one call at a time as live."""
    strong = np.array([engine.decide(prompt).side == "strong" for prompt in stream])
    return float(strong[100:600].mean()), float(strong[800:].mean())


@pytest.fixture(scope="module")
def task_experts():
    return load_router("task_experts")


def test_static_calibration_drifts_off_the_target_on_shifting_traffic(data_dir, task_experts):
    first, second = _realised_shares(
        RoutingEngine(task_experts, strong_share=TARGET), _shifting_stream(data_dir)
    )
    # Measured: 0.18 on the chat prompts, 0.75 on the maths problems.
    assert first < TARGET - 0.1 and second > TARGET + 0.3


def test_a_share_window_holds_the_target_on_shifting_traffic(data_dir, task_experts):
    engine = RoutingEngine(task_experts, strong_share=TARGET, share_window=200)
    first, second = _realised_shares(engine, _shifting_stream(data_dir))
    # Measured: 0.28 and 0.31. Without the window this fails (see the test above).
    assert abs(first - TARGET) <= TOLERANCE and abs(second - TARGET) <= TOLERANCE
