"""RouterChatModel on live traffic: holding the strong share (``share_window``) and swapping in a
new router (``swap_router``) while calls run, through real LangChain machinery."""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from langchain_core.caches import InMemoryCache
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.tools import tool
from lc_helpers import fake, scripted
from live_routers import ConstantRouter, ShiftedRouter, consistent

from langchain_routellm import RouterChatModel
from routellm_base import Calibration, InvalidPolicyError, RandomRouter, UnknownRouterError
from routellm_base.checkpoints import load_router
from routellm_base.log import RoutingLog, read_decisions

HIGH = Calibration.from_win_rates(np.linspace(0.6, 1.0, 101), "high")
"""A calibration whose median is 0.8: strong_share=0.5 means threshold 0.8."""


def _decision(message) -> dict:  # type: ignore[no-untyped-def]
    return message.response_metadata["routellm"]


@tool
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


# -- share_window ------------------------------------------------------------------------------


def test_share_window_holds_the_share_through_a_chain_and_its_bound_copies(tmp_path: Path):
    log = RoutingLog(tmp_path / "log.db")
    llm = RouterChatModel(
        strong=scripted("big", "strong answer"),
        weak=scripted("small", "weak answer"),
        router=ShiftedRouter(seed=0),
        strong_share=0.3,
        share_window=100,
        log=log,
    )
    chain = ChatPromptTemplate.from_messages([("human", "{q}")]) | llm
    first = chain.batch([{"q": f"question {i}"} for i in range(100)])
    records = [_decision(m)["extra"]["share_window"] for m in first]
    assert sorted(r["fill"] for r in records) == list(range(100))  # each call entered once
    assert all(r["threshold_from"] == "calibration" and r["size"] == 100 for r in records)
    # The copy bind_tools makes (e.g. for an agent) routes with the same window.
    bound = llm.bind_tools([add])
    assert _decision(bound.invoke("one more"))["extra"]["share_window"]["fill"] == 100
    later = [llm.invoke(f"later {i}") for i in range(200)]
    later_decisions = [_decision(m) for m in later]
    assert all(d["extra"]["share_window"]["threshold_from"] == "window" for d in later_decisions)
    shares = {
        "static": np.mean([_decision(m)["side"] == "strong" for m in first]),
        "held": np.mean([d["side"] == "strong" for d in later_decisions]),
    }
    # The traffic scores higher than the calibration set: 0.3 through the calibration sends
    # about 60% strong; the window brings it back to 0.3 (+-0.065: two binomial sd of 200 calls).
    assert shares["static"] > 0.5 and abs(shares["held"] - 0.3) <= 0.065
    # A dry run reports the threshold in force without entering the window.
    dry = llm.decide("just asking")
    assert dry.extra["share_window"]["fill"] == 100 and dry.threshold == llm.engine.threshold
    log.flush()
    rows = read_decisions(tmp_path / "log.db")
    assert len(rows) == 301
    assert json.loads(rows[-1]["extra"])["share_window"]["threshold_from"] == "window"
    assert rows[-1]["threshold"] == later_decisions[-1]["threshold"]
    log.close()


def test_share_window_needs_a_share_not_a_threshold():
    # Pydantic wraps the InvalidPolicyError (a ValueError) raised at construction.
    with pytest.raises(ValueError, match="does not apply to a fixed threshold"):
        RouterChatModel(strong=fake("a"), weak=fake("b"), threshold=0.5, share_window=100)
    with pytest.raises(ValueError, match="share_window must be a whole number"):
        RouterChatModel(strong=fake("a"), weak=fake("b"), share_window=0)


# -- swap_router -------------------------------------------------------------------------------


def test_swap_router_replaces_a_bundled_checkpoint_for_the_model_and_its_copies(tmp_path: Path):
    log = RoutingLog(tmp_path / "log.db")
    llm = RouterChatModel(
        strong=scripted("gpt-4o", "strong"),
        weak=scripted("gpt-4o-mini", "weak"),
        router="task_experts",
        strong_share=0.3,
        log=log,
    )
    agent_model = llm.bind_tools([add])  # made before the swap, as an agent would
    before = _decision(llm.invoke("Prove that sqrt(2) is irrational"))
    mf = load_router("mf")
    replaced = llm.swap_router("mf")
    assert replaced == "task_experts"  # the setting replaced, as it was given
    after = [
        _decision(m) for m in (llm.invoke("Prove it again"), agent_model.invoke("Add 2 and 3"))
    ]
    assert before["router"] == "task_experts" and llm.router == "mf"
    assert all(d["router"] == "mf" for d in after)
    assert all(d["checkpoint_id"] == mf.metadata["checkpoint_id"] for d in after)
    assert after[0]["threshold"] == pytest.approx(mf.calibration.threshold_for_share(0.3))
    # Rolling back loads the name again.
    assert llm.swap_router(replaced) == "mf"
    assert llm.engine.router.name == "task_experts" and llm.router == "task_experts"
    assert _decision(agent_model.invoke("Add 1 and 1"))["router"] == "task_experts"
    log.flush()
    rows = read_decisions(tmp_path / "log.db")
    assert [r["router"] for r in rows] == ["task_experts", "mf", "mf", "task_experts"]
    assert rows[1]["checkpoint_id"] == mf.metadata["checkpoint_id"] != rows[0]["checkpoint_id"]
    assert len(llm._services.engines) == 1  # the replaced router's engines are dropped
    log.close()


def test_swap_router_returns_the_default_router_by_name_and_a_given_router_as_given():
    """Left at its default, the router setting replaced is "task_experts", not the
    TaskExpertsRouter the engine loaded from it (the README: "as it was given")."""
    llm = RouterChatModel(
        strong=scripted("gpt-4o", "strong"), weak=scripted("gpt-4o-mini", "weak"), strong_share=0.3
    )
    copy = llm.bind_tools([add])
    llm.invoke("Prove that sqrt(2) is irrational")  # the engine loads the default router
    first = ConstantRouter("first", 0.2, "a" * 64)
    assert llm.swap_router(first) == "task_experts"
    assert llm.swap_router("mf") is first
    # A copy, whose field still names the default, replaces the router in use as it was given.
    assert copy.bound.swap_router("task_experts") == "mf"  # type: ignore[attr-defined]
    assert _decision(llm.invoke("hi"))["router"] == "task_experts"


def test_a_failed_swap_changes_nothing(tmp_path: Path):
    llm = RouterChatModel(
        strong=scripted("big", "strong answer"),
        weak=scripted("small", "weak answer"),
        router=RandomRouter(seed=0),
        strong_share=0.3,
    )
    llm.invoke("warm up")
    with pytest.raises(UnknownRouterError, match="unknown router"):
        llm.swap_router(tmp_path / "no-such-checkpoint")
    uncalibrated = ConstantRouter("raw", 0.5, "c" * 64)
    uncalibrated.calibration = None
    with pytest.raises(InvalidPolicyError, match="no stored calibration"):
        llm.swap_router(uncalibrated)
    assert isinstance(llm.router, RandomRouter)
    assert _decision(llm.invoke("still routing"))["router"] == "random"


def test_calls_in_flight_finish_on_the_old_router_and_new_calls_use_the_new(tmp_path: Path):
    gate = threading.Event()
    old = ConstantRouter("old", 0.2, "a" * 64, gate=gate)
    new = ConstantRouter("new", 0.9, "b" * 64, calibration=HIGH)
    log = RoutingLog(tmp_path / "log.db")
    llm = RouterChatModel(
        strong=scripted("big", "strong answer"),
        weak=scripted("small", "weak answer"),
        router=old,
        strong_share=0.5,
        log=log,
    )
    llm.engine  # noqa: B018 - built before the call, as on a warm server
    with ThreadPoolExecutor(1) as pool:
        in_flight = pool.submit(llm.invoke, "held inside the old router")
        assert old.entered.wait(10)
        llm.swap_router(new)  # does not wait for the call in flight
        fresh = _decision(llm.invoke("after the swap"))
        gate.set()
        held = _decision(in_flight.result(timeout=10))
    assert (held["router"], held["checkpoint_id"], held["side"]) == ("old", "a" * 64, "weak")
    assert held["threshold"] == pytest.approx(0.5)
    assert (fresh["router"], fresh["checkpoint_id"], fresh["side"]) == ("new", "b" * 64, "strong")
    assert fresh["threshold"] == pytest.approx(0.8)
    log.flush()
    rows = {r["router"]: r for r in read_decisions(tmp_path / "log.db")}
    assert rows["old"]["checkpoint_id"] == "a" * 64 and rows["new"]["checkpoint_id"] == "b" * 64
    log.close()


def test_no_call_sees_a_half_swapped_router_under_concurrent_swaps(tmp_path: Path):
    routers = [
        ConstantRouter("a", 0.3, "a" * 64),  # uniform calibration: threshold 0.5, weak
        ConstantRouter("b", 0.85, "b" * 64, calibration=HIGH),  # threshold 0.8, strong
    ]
    threshold_of = {r.name: r.calibration.threshold_for_share(0.5) for r in routers}
    log = RoutingLog(tmp_path / "log.db")
    llm = RouterChatModel(
        strong=scripted("big", "strong answer"),
        weak=scripted("small", "weak answer"),
        router=routers[0],
        strong_share=0.5,
        log=log,
    )
    bound = llm.bind_tools([add])
    stop = threading.Event()
    seen: list[dict] = []
    grew = threading.Condition()

    def caller(model: RouterChatModel) -> None:
        while not stop.is_set():
            decision = _decision(model.invoke("route me"))
            with grew:
                seen.append(decision)
                grew.notify_all()

    with ThreadPoolExecutor(6) as pool:
        futures = [pool.submit(caller, llm if i % 2 else bound) for i in range(6)]
        for i in range(40):
            llm.swap_router(routers[(i + 1) % 2])
            with grew:  # let a few calls run between swaps (calls keep running during them)
                count = len(seen)
                assert grew.wait_for(lambda c=count: len(seen) >= c + 3, timeout=60)
        stop.set()
        for f in futures:
            f.result(timeout=30)
    assert {d["router"] for d in seen} == {"a", "b"}
    assert all(consistent(d, routers, threshold_of) for d in seen)
    # After the last swap (to "a"), every call on the model and its bound copy uses "a".
    assert _decision(llm.invoke("x"))["router"] == _decision(bound.invoke("y"))["router"] == "a"
    log.flush()
    rows = read_decisions(tmp_path / "log.db")
    # Thousands of calls can outrun the writer: beyond max_queue a call is dropped, and counted.
    stats = log.stats()
    assert stats.recorded == len(seen) + 2 and stats.failed == 0
    assert len(rows) == stats.written == stats.recorded - stats.dropped > 0
    assert all(r["checkpoint_id"] == r["router"] * 64 for r in rows)
    assert len(llm._services.engines) == 1
    log.close()


def test_llm_cache_entries_of_the_old_router_are_not_reused_after_a_swap():
    # Same router name, another checkpoint: the cache key must still change.
    first = ConstantRouter("same-name", 0.2, "a" * 64)
    second = ConstantRouter("same-name", 0.9, "b" * 64)
    llm = RouterChatModel(
        strong=scripted("big", "strong answer"),
        weak=scripted("small", "weak answer"),
        router=first,
        threshold=0.5,
        cache=InMemoryCache(),
    )
    chain = llm | StrOutputParser()
    assert chain.invoke("same question") == chain.invoke("same question") == "weak answer"
    llm.swap_router(second)
    assert chain.invoke("same question") == "strong answer"
