"""EngineCache: engines per routing setting, bounded, and router swaps followed by every model
that named the swapped router."""

from __future__ import annotations

import gc

import pytest

from routellm_base import RandomRouter, RoutingTextOptions
from routellm_base.engine_cache import MAX_ENGINES, EngineCache, EngineSettings


def settings(router, threshold=None, share=0.3):  # type: ignore[no-untyped-def]
    return EngineSettings(router, threshold, None if threshold is not None else share,
                          RoutingTextOptions(), "strong")  # fmt: skip


def test_one_engine_per_setting_and_a_sweep_keeps_a_bounded_number():
    cache, router = EngineCache(), RandomRouter(seed=0)
    assert cache.get(settings(router)) is cache.get(settings(router))
    for i in range(40):
        cache.get(settings(router, threshold=i / 40))
    assert len(cache) == MAX_ENGINES  # the oldest built went first
    assert cache.peek(settings(router, threshold=39 / 40)) is not None
    assert cache.peek(settings(router)) is None  # evicted: rebuilt on next use
    assert cache.get(settings(router)).router is router


def test_swaps_are_followed_by_every_field_that_named_the_swapped_router():
    cache = EngineCache()
    a, b, c = RandomRouter(name="a"), RandomRouter(name="b"), RandomRouter(name="c")
    assert cache.swap(settings(a), b) is a  # a copy whose field is a now routes with b
    assert cache.get(settings(a)).router is b
    # A model whose field was set to b (the swapping one) swaps again: both follow to c.
    assert cache.swap(settings(b), c) is b
    assert cache.get(settings(a)).router is cache.get(settings(b)).router is c
    # Back to a: no chain of swaps can loop.
    cache.swap(settings(c), a)
    assert {cache.router_for(r) for r in (a, b, c)} == {a}
    assert cache.get(settings(b)).router is a
    assert len(cache) == 1  # engines of replaced routers are dropped


def test_a_name_swapped_for_a_loaded_router_and_weakly_held_routers():
    cache = EngineCache()
    loaded = RandomRouter(name="new")
    cache.swap(settings("task_experts"), loaded)
    assert cache.router_for("task_experts") is loaded
    temporary = RandomRouter(name="temporary")
    cache.swap(settings(temporary), RandomRouter(name="other"))
    count = len(cache._swapped_routers)
    del temporary
    gc.collect()
    assert len(cache._swapped_routers) == count - 1  # no field can name it any more


def test_a_failed_swap_changes_nothing():
    cache, router = EngineCache(), RandomRouter(seed=1)
    engine = cache.get(settings(router))
    uncalibrated = RandomRouter(name="raw")
    uncalibrated.calibration = None
    with pytest.raises(ValueError, match="no stored calibration"):
        cache.swap(settings(router), uncalibrated)
    assert cache.get(settings(router)) is engine and cache.router_for(router) is router
