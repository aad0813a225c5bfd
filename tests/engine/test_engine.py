import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from routellm_base import ChatTurn, RandomRouter, RoutingEngine, RoutingInputError
from routellm_base.routers.base import Router

PROMPTS = [f"question number {i}: explain topic {i % 7}" for i in range(64)]


def test_decision_fields_and_threshold_rule():
    engine = RoutingEngine("mf", strong_share=0.5)
    decisions = engine.decide_many(PROMPTS, strong_model="gpt-4o", weak_model="gpt-4o-mini")
    for d in decisions:
        assert (d.side == "strong") == (d.win_rate >= d.threshold)
        assert d.model == ("gpt-4o" if d.side == "strong" else "gpt-4o-mini")
        assert d.router == "mf" and d.seconds >= 0 and not d.forced
    record = decisions[0].to_dict()
    assert {"side", "model", "win_rate", "threshold", "router", "seconds"} <= set(record)


def test_batch_equals_one_at_a_time():
    engine = RoutingEngine("mf", threshold=0.5)
    batched = [d.win_rate for d in engine.decide_many(PROMPTS)]
    single = [engine.decide(p).win_rate for p in PROMPTS]
    assert batched == pytest.approx(single, abs=1e-6)


def test_force_skips_the_router():
    engine = RoutingEngine(RandomRouter(seed=0), threshold=0.99)
    decision = engine.decide("hi", force="strong", strong_model="S")
    assert decision.side == "strong" and decision.model == "S" and decision.forced and decision.win_rate is None
    with pytest.raises(RoutingInputError, match="force must be"):
        engine.decide("hi", force="medium")


def test_skipped_parts_reach_the_decision():
    engine = RoutingEngine("mf")
    decision = engine.decide([ChatTurn("user", [{"type": "text", "text": "what is this?"}, {"type": "image_url"}])])
    assert decision.skipped_parts == ("image_url",)


def test_concurrent_threads_match_sequential():
    engine = RoutingEngine("mf", strong_share=0.3)
    sequential = [engine.decide(p) for p in PROMPTS]
    fresh = RoutingEngine("mf", strong_share=0.3)  # cold cache and unresolved threshold
    with ThreadPoolExecutor(max_workers=64) as pool:
        concurrent = list(pool.map(fresh.decide, PROMPTS))
    assert [(d.side, round(d.win_rate, 6)) for d in concurrent] == [
        (d.side, round(d.win_rate, 6)) for d in sequential
    ]


async def test_async_tasks_match_sequential_and_do_not_block_the_loop():
    class SlowRouter(Router):
        family = "slow"

        def __init__(self):
            super().__init__("slow", calibration=RandomRouter().calibration)

        def _win_rate(self, texts):
            time.sleep(0.05)  # a blocking embedder call
            return [0.9 if "explain" in t else 0.1 for t in texts]

    engine = RoutingEngine(SlowRouter(), threshold=0.5)
    ticks = 0

    async def ticker():
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.005)

    task = asyncio.create_task(ticker())
    decisions = await asyncio.gather(*(engine.adecide(p) for p in PROMPTS[:16]))
    task.cancel()
    assert all(d.side == "strong" for d in decisions)
    assert ticks > 5  # the loop kept running while routers slept in worker threads
    assert threading.active_count() >= 1


def test_fallback_record():
    decision = RoutingEngine(RandomRouter(seed=0), threshold=0.0).decide("hi", strong_model="S", weak_model="W")
    assert decision.side == "strong"
    fallen = decision.fell_back("W", TimeoutError("strong model timed out"))
    assert (fallen.side, fallen.model, fallen.fallback_from) == ("weak", "W", "strong")
    assert fallen.fallback_reason == "TimeoutError: strong model timed out"
    assert fallen.win_rate == decision.win_rate
    with pytest.raises(ValueError, match="at most once"):
        fallen.fell_back("S", RuntimeError("again"))
