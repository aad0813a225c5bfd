"""The engines an integration routes with: built on first use, one per routing setting, and
replaced as a whole when a new router is swapped in.

Both integrations keep one :class:`EngineCache` per model, shared by the model's shallow copies
(LangChain's ``bind_tools`` / ``with_structured_output`` runnables, ``model_copy``). A model
asks for its engine with its own :class:`EngineSettings`, so a copy with another threshold gets
its own engine. :meth:`EngineCache.swap` replaces the router of the model and of every copy
sharing the cache in one step: it builds the new engine completely before publishing it, calls
in flight keep the engine they started with, and every call after the swap uses the new one.
"""

from __future__ import annotations

import threading
import weakref
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from .checkpoints import load_router
from .decision import Side
from .engine import RoutingEngine
from .routers.base import Router
from .routing_text import RoutingTextOptions

RouterSpec = Router | str | Path
"""A bundled router name, a checkpoint folder, or a loaded :class:`Router`."""

MAX_ENGINES = 16
"""Engines a cache keeps at most (the oldest built goes first): a model whose fields are
reassigned many times, e.g. a threshold sweep, must not keep every router it ever loaded."""


@dataclass(frozen=True)
class EngineSettings:
    """Everything a :class:`RoutingEngine` is built from, as a model's fields give it."""

    router: RouterSpec
    threshold: float | None
    strong_share: float | None
    routing_text_options: RoutingTextOptions
    no_known_tokens_side: Side | None
    share_window: int | None = None

    def build(self) -> RoutingEngine:
        """A new engine with these settings (loads the router when it is a name or folder)."""
        return RoutingEngine(
            self.router,
            threshold=self.threshold,
            strong_share=self.strong_share,
            routing_text_options=self.routing_text_options,
            no_known_tokens_side=self.no_known_tokens_side,
            share_window=self.share_window,
        )

    def key(self) -> tuple[Any, ...]:
        """A hashable key of these settings; a ``Router`` instance counts by identity."""
        return (
            router_key(self.router),
            self.threshold,
            self.strong_share,
            self.routing_text_options,
            self.no_known_tokens_side,
            self.share_window,
        )


def router_key(router: RouterSpec) -> Any:
    """A router as a dict key: a loaded router by identity, a name or folder by its text."""
    return router if isinstance(router, Router) else str(router)


class EngineCache:
    """A model's engines and the routers swapped in for the one its ``router`` field names;
    thread-safe.

    Deep copies and pickles start empty (a lock can be neither): a copy then builds its engine
    from its own fields on first use.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._engines: dict[tuple[Any, ...], RoutingEngine] = {}
        # A router a model's field names -> the router now routing in its place. Loaded routers
        # are held weakly as keys: once no field names one, its entry goes.
        self._swapped_specs: dict[str, Router] = {}
        self._swapped_routers: weakref.WeakKeyDictionary[Router, Router] = (
            weakref.WeakKeyDictionary()
        )
        # A router swapped in from a name or folder -> that name or folder, as it was given.
        self._given: weakref.WeakKeyDictionary[Router, str | Path] = weakref.WeakKeyDictionary()

    def __deepcopy__(self, memo: dict[int, Any]) -> EngineCache:
        return EngineCache()

    def __reduce__(self) -> tuple[type[EngineCache], tuple[()]]:
        return EngineCache, ()

    def __len__(self) -> int:
        """Engines built and kept."""
        return len(self._engines)

    def router_for(self, router: RouterSpec) -> RouterSpec:
        """The router that routes for a field naming ``router``: the one swapped in, else
        ``router`` itself."""
        if isinstance(router, Router):
            return self._swapped_routers.get(router, router)
        return self._swapped_specs.get(str(router), router)

    def _resolved(self, settings: EngineSettings) -> EngineSettings:
        router = self.router_for(settings.router)
        return settings if router is settings.router else replace(settings, router=router)

    def peek(self, settings: EngineSettings) -> RoutingEngine | None:
        """The engine for ``settings`` if it is built, else ``None`` (builds nothing)."""
        return self._engines.get(self._resolved(settings).key())

    def get(self, settings: EngineSettings) -> RoutingEngine:
        """The engine for ``settings``, built on first use (under the lock, so once)."""
        resolved = self._resolved(settings)
        key = resolved.key()
        engine = self._engines.get(key)
        if engine is not None:
            return engine
        with self._lock:
            engine = self._engines.get(key)
            if engine is None:
                engine = resolved.build()
                self._keep(key, engine)
            return engine

    def swap(self, settings: EngineSettings, router: RouterSpec) -> RouterSpec:
        """Route with ``router`` from now on, for the model whose settings these are and for
        every model sharing this cache whose router was the same one.

        * The new router is loaded and its engine built, with its threshold resolved, before
          anything changes: a missing checkpoint, or a ``strong_share`` the new router has no
          calibration for, raises here (:class:`~routellm_base.errors.UnknownRouterError`,
          :class:`~routellm_base.errors.CheckpointError`,
          :class:`~routellm_base.errors.InvalidPolicyError`) and leaves the old router routing.
        * Calls in flight keep the engine they started with; every engine lookup after this
          returns gets the new one. The settings' policy carries over (``strong_share``
          through the new checkpoint's calibration, or the same fixed ``threshold``); a
          ``share_window`` starts afresh, as the old router's win rates do not apply.
        * Loading reads (and hashes) the checkpoint in the calling thread.

        Returns the router replaced as it was given (the name or folder, the default's name
        included, or the ``Router`` instance), so swapping it back rolls back (a name or folder
        is loaded again).
        """
        loaded = router if isinstance(router, Router) else load_router(router)
        new_settings = replace(settings, router=loaded)
        engine = new_settings.build()
        _ = engine.calibrated_threshold  # a bad policy for this router fails now, not in a call
        with self._lock:
            old = self.router_for(settings.router)
            old_key = router_key(old)
            replaced = self._given.get(old, old) if isinstance(old, Router) else old
            if not isinstance(router, Router):
                self._given[loaded] = router
            for spec, current in list(self._swapped_specs.items()):
                if current is old:
                    self._swapped_specs[spec] = loaded
            for current_key, current in list(self._swapped_routers.items()):
                if current is old:
                    self._swapped_routers[current_key] = loaded
            for spec in (settings.router, old, router):
                if isinstance(spec, Router):
                    if spec is not loaded:
                        self._swapped_routers[spec] = loaded
                else:
                    self._swapped_specs[str(spec)] = loaded
            # Nothing resolves to the replaced router any more: drop its engines (calls in
            # flight hold theirs).
            for key in [k for k in self._engines if k[0] == old_key]:
                del self._engines[key]
            self._keep(new_settings.key(), engine)
        return replaced

    def _keep(self, key: tuple[Any, ...], engine: RoutingEngine) -> None:
        # Under self._lock.
        self._engines[key] = engine
        while len(self._engines) > MAX_ENGINES:
            del self._engines[next(iter(self._engines))]
