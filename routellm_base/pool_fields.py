"""What a routed model needs to route among a pool of several models, written once for both
integrations: the per-call settings, the pool router a model's ``router`` field names, and the
engines built from a model's fields.

Framework-free: :class:`~routellm_base.router_fields.RouterFields` (the mixin both adapters
inherit) calls these; nothing here imports LangChain or LlamaIndex.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from .costs import ModelPrice
from .decision import FORCE_KWARG
from .errors import PoolError, RoutingInputError
from .pool import Pool, PoolEngine, PoolPolicy, PoolRouter, load_pool_router
from .routers.base import Router
from .routing_text import RoutingTextOptions

ZERO_SHOT = "zero_shot"
"""The ``router`` of a pool nobody has data for (the default): a
:class:`~routellm_base.pool.ZeroShotPoolRouter` over the bundled two-model router
(:func:`routellm_base.load_router`), whose win rate serves as each prompt's difficulty."""

ROUTE_KWARGS: dict[str, str] = {
    "allowed_models": "allowed",
    "cost_weight": "cost_weight",
    "quality_tolerance": "quality_tolerance",
    "budget": "budget",
    "max_cost": "max_cost",
}
"""The per-call pool settings a routed call takes (call arguments; in LangChain also
``config["configurable"]`` keys), by the name :meth:`PoolEngine.decide` takes them under. A
per-call ``budget`` is held over the engine's window of that size (``budget_window``, default
1,000 calls), shared by every call that gives a budget."""

ROUTE_KWARG_SET = frozenset(ROUTE_KWARGS)

CALL_SETTINGS: dict[str, tuple[Any, str]] = {
    "allowed_models": (list[str] | None, "The pool's models this call may go to (default: all)."),
    "cost_weight": (float | None, "lambda >= 0: quality given up per extra USD per 1,000 calls."),
    "quality_tolerance": (
        float | None,
        "tau in [0, 1]: the cheapest model predicted within tau of the best one.",
    ),
    "budget": (
        float | None,
        "USD per 1,000 calls: lambda is solved so the last budget_window budgeted calls cost "
        "this on average.",
    ),
    "max_cost": (float | None, "A hard ceiling, USD per call."),
    FORCE_KWARG: (str | None, "The pool model to answer this call, skipping the router."),
}
"""A pool's per-call settings, ``name -> (type, description)``: call arguments in both
integrations; in LangChain also ``config["configurable"]`` keys (its ``config_specs``)."""


PAIR_CALL_SETTINGS: dict[str, tuple[Any, str]] = {
    "threshold": (
        float | None,
        "Win-rate threshold in [0, 1] for this call: it goes strong when its win rate reaches "
        "it (instead of the router's own policy).",
    ),
    "strong_share": (
        float | None,
        "Share of calls (0..1) whose threshold this call uses, through the router's "
        "calibration (instead of the router's own policy).",
    ),
    FORCE_KWARG: (
        str | None,
        "'strong' or 'weak': the side to answer this call, skipping the router.",
    ),
}
"""The per-call settings of two models (``strong=``/``weak=``), ``name -> (type,
description)``: call arguments in both integrations; in LangChain also
``config["configurable"]`` keys. ``threshold`` or ``strong_share`` replaces the model's own
policy for the call (see :meth:`routellm_base.RoutingEngine.decide_many`)."""

PAIR_ROUTE_KWARGS = ("threshold", "strong_share")
"""The per-call policy settings of two models, as :meth:`RoutingEngine.decide` takes them."""

CALL_PREFIX = "routellm_"
"""Call arguments of this prefix are the router's own (never passed on to a model): an unknown
one (a misspelling) is refused, as ``routellm serve`` refuses an unknown ``routellm_*`` field."""


def lift_settings(
    configurable: Mapping[str, Any] | None, kwargs: dict[str, Any], pool: bool
) -> dict[str, Any]:
    """``kwargs`` with the per-call settings that ``configurable`` (a run's
    ``config["configurable"]``) gives and the call's own arguments do not (an argument wins):
    a pool's :data:`CALL_SETTINGS`, or two models' :data:`PAIR_CALL_SETTINGS`.

    Other keys are left alone (a run's configurable is shared by every runnable of a chain),
    except an unknown ``routellm_*`` key: :class:`RoutingInputError`, as for a call argument."""
    given = configurable or {}
    keys = CALL_SETTINGS if pool else PAIR_CALL_SETTINGS
    known = {*keys, FORCE_KWARG}
    unknown = sorted(
        k for k in given if isinstance(k, str) and k.startswith(CALL_PREFIX) and k not in known
    )
    if unknown:
        raise RoutingInputError(
            f"unknown config['configurable'] key(s) {unknown}: '{CALL_PREFIX}*' keys route the "
            f"call; this router reads {sorted(known)}"
        )
    lifted = {k: given[k] for k in keys if k in given and k not in kwargs}
    return {**kwargs, **lifted} if lifted else kwargs


MAX_POOL_ENGINES = 16
"""Pool engines a model keeps at most (the oldest built goes first)."""


def take_route(kwargs: dict[str, Any], pool: bool) -> dict[str, Any]:
    """Pop the per-call routing settings out of a call's ``kwargs`` (``None`` values are no
    setting) and return them as the engine's ``decide`` takes them: a pool's
    (:data:`ROUTE_KWARGS`, for :meth:`PoolEngine.decide`), or two models' ``threshold`` /
    ``strong_share`` (for :meth:`RoutingEngine.decide`; their values are checked there).

    :class:`RoutingInputError`, before anything is popped, for a setting of the other kind
    (a pool's between two models, two models' in a pool) and for an unknown ``routellm_*``
    argument (:data:`CALL_PREFIX`; it names the known ones): never passed on to a model that
    would not know them. ``routellm_force`` is left in ``kwargs``."""
    own = ROUTE_KWARGS if pool else dict(zip(PAIR_ROUTE_KWARGS, PAIR_ROUTE_KWARGS, strict=True))
    other = PAIR_ROUTE_KWARGS if pool else ROUTE_KWARGS
    takes = sorted(CALL_SETTINGS if pool else PAIR_CALL_SETTINGS)
    given = sorted(key for key in other if key in kwargs)
    if given:
        if pool:
            raise RoutingInputError(
                f"{given} route between two models (strong=/weak=); a pool of several models "
                f"takes {takes} per call"
            )
        raise RoutingInputError(
            f"{given} route a pool of several models (models=...); a strong/weak router takes "
            f"{takes} per call"
        )
    for key in kwargs:
        if isinstance(key, str) and key.startswith(CALL_PREFIX) and key != FORCE_KWARG:
            raise RoutingInputError(
                f"unknown call argument {key!r}: '{CALL_PREFIX}*' arguments route the call and "
                f"are never passed on to a model; this router takes {takes} per call"
            )
    route = {}
    for key, name in own.items():
        if key in kwargs:
            value = kwargs.pop(key)
            if value is not None:
                route[name] = value
    return route


class SingleModelRouter(PoolRouter):
    """The router of a pool of one model: never called (the engine predicts nothing for a pool
    of one, and this router has no embedder to read the prompt with), so such a pool answers
    every call with its model, its decisions name router ``"single_model"`` with no predicted
    quality, and the router given is only checked against the model (:func:`check_router`)."""

    family = "single_model"

    def __init__(self) -> None:
        super().__init__("single_model", models=None)

    def _quality(self, texts: list[str], pool: Pool, columns: list[int] | None) -> np.ndarray:
        return np.ones((len(texts), len(pool)))


def pool_router_spec(router: Any, names: tuple[str, ...]) -> PoolRouter | str:
    """A model's ``router`` field as a pool engine takes it: a :class:`PoolRouter`, or a pool
    router's name or checkpoint folder as :func:`routellm_base.pool.load_pool_router` takes it
    (:data:`ZERO_SHOT`, a bundled name such as ``"pool_knn"``, a folder); ``"single_model"``
    for a pool of one (no router runs). A two-model :class:`Router` raises :class:`PoolError`
    saying what a pool takes (loads nothing)."""
    if isinstance(router, Router):
        raise PoolError(
            f"router {router.name!r} routes between two models; the pool {list(names)} "
            "needs a pool router: ZeroShotPoolRouter(difficulty=router) uses it as each "
            "prompt's difficulty, a trained pool router (e.g. 'pool_knn' or a folder written "
            "by `routellm train pool`) predicts each model's quality, or leave router= out "
            "for the zero-shot start over the bundled router"
        )
    if not isinstance(router, PoolRouter | str | Path):
        raise PoolError(
            f"a pool's router must be a PoolRouter, a pool router's name or a checkpoint "
            f"folder, got {type(router).__name__}"
        )
    if len(names) == 1:
        return "single_model"
    return router if isinstance(router, PoolRouter) else str(router)


def check_router(router: Any, pool: Pool) -> PoolRouter | None:
    """Raise unless ``router`` can route ``pool``: :func:`pool_router_spec`'s errors, a name
    or folder :func:`~routellm_base.pool.load_pool_router` cannot load, and a router that has
    never seen a model of the pool (its :class:`PoolError` names the pool, the unseen models
    and the fix). Returns the router it loaded for a name or folder (``None`` otherwise).

    A pool of one runs no router, but a router given is checked all the same (a name or
    folder is loaded), so a router that does not know the model is refused as in a larger
    pool, not silently ignored."""
    spec = pool_router_spec(router, pool.names)
    if spec == "single_model":
        spec = router if isinstance(router, PoolRouter) else str(router)
    if isinstance(spec, PoolRouter):
        spec.check_pool(pool)
        return None
    if spec == ZERO_SHOT:  # routes any pool: loaded on first use
        return None
    loaded = load_pool_router(spec)
    loaded.check_pool(pool)
    return loaded


@dataclass(frozen=True)
class PoolSettings:
    """Everything a :class:`PoolEngine` is built from, as a model's fields give it (hashable:
    a :class:`PoolRouter` counts by identity)."""

    router: PoolRouter | str
    """A :class:`PoolRouter`, or :data:`ZERO_SHOT`; ``"single_model"`` for a pool of one."""
    prices: tuple[tuple[str, ModelPrice], ...]
    """The pool's models and prices, in pool order."""
    output_tokens: float | tuple[tuple[str, float], ...]
    policy: PoolPolicy
    routing_text_options: RoutingTextOptions
    no_known_tokens_rule: bool

    def pool(self) -> Pool:
        tokens = self.output_tokens
        return Pool(
            dict(self.prices), output_tokens=dict(tokens) if isinstance(tokens, tuple) else tokens
        )

    def build(self, router: PoolRouter) -> PoolEngine:
        """A new engine with these settings, routing with ``router`` (this one's, resolved)."""
        return PoolEngine(
            router,
            self.pool(),
            policy=self.policy,
            routing_text_options=self.routing_text_options,
            no_known_tokens_rule=self.no_known_tokens_rule,
        )


class PoolEngineCache:
    """A model's pool engines, one per :class:`PoolSettings`, built on first use; the routers
    its ``router`` field names, resolved once (the zero-shot start loads the bundled router
    once); and the router swapped in for them. Thread-safe; shared by the model's shallow
    copies (``bind_tools``, ``model_copy``), empty in deep copies and pickles."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._engines: dict[PoolSettings, PoolEngine] = {}
        self._routers: dict[str, PoolRouter] = {}
        self._swapped: PoolRouter | None = None
        self._swapped_given: PoolRouter | str | None = None  # _swapped as it was given

    def __deepcopy__(self, memo: dict[int, Any]) -> PoolEngineCache:
        return PoolEngineCache()

    def __reduce__(self) -> tuple[type[PoolEngineCache], tuple[()]]:
        return PoolEngineCache, ()

    def _resolved(self, settings: PoolSettings) -> PoolSettings:
        swapped = self._swapped
        if swapped is None or settings.router == "single_model":
            return settings
        return replace(settings, router=swapped)

    def peek(self, settings: PoolSettings) -> PoolEngine | None:
        """The engine for ``settings`` if it is built (builds nothing)."""
        return self._engines.get(self._resolved(settings))

    def get(self, settings: PoolSettings) -> PoolEngine:
        """The engine for ``settings``, built on first use (under the lock, so once)."""
        settings = self._resolved(settings)
        engine = self._engines.get(settings)
        if engine is not None:
            return engine
        with self._lock:
            engine = self._engines.get(settings)
            if engine is None:
                engine = settings.build(self._router(settings.router))
                self._engines[settings] = engine
                while len(self._engines) > MAX_POOL_ENGINES:
                    del self._engines[next(iter(self._engines))]
            return engine

    def _router(self, spec: PoolRouter | str) -> PoolRouter:
        # Under self._lock.
        if isinstance(spec, PoolRouter):
            return spec
        router = self._routers.get(spec)
        if router is None:
            router = SingleModelRouter() if spec == "single_model" else load_pool_router(spec)
            self._routers[spec] = router
        return router

    def remember(self, spec: str, router: PoolRouter) -> None:
        """Use ``router``, already loaded from the name or folder ``spec``, for ``spec``."""
        with self._lock:
            self._routers.setdefault(spec, router)

    def router_in_use(self, spec: PoolRouter | str) -> PoolRouter | str:
        """The router that routes for a field naming ``spec``: the one swapped in, else the
        router ``spec`` resolved to, else ``spec`` itself (nothing is loaded)."""
        if self._swapped is not None and spec != "single_model":
            return self._swapped
        return spec if isinstance(spec, PoolRouter) else self._routers.get(spec, spec)

    def swap(
        self, settings: PoolSettings, router: PoolRouter | str, given: Any = None
    ) -> PoolRouter | str:
        """Route with ``router`` from now on, for every model sharing this cache: its engine is
        built (the router checked against the pool) before anything changes, so a router that
        has never seen a model of the pool raises :class:`PoolError` and changes nothing.
        Calls in flight keep their engine; a budget window starts afresh. Returns the router
        replaced as it was given (``given``, the name or folder ``router`` was loaded from, if
        any; for a field never swapped, its setting)."""
        with self._lock:
            resolved = self._router(router)
        new = replace(settings, router=resolved)
        engine = new.build(resolved)
        with self._lock:
            swapped = self._swapped is not None and settings.router != "single_model"
            replaced = self._swapped_given if swapped else settings.router
            self._swapped = resolved
            self._swapped_given = router if given is None else given
            self._engines = {new: engine}
        return replaced


def pool_prices(
    names: tuple[str, ...], prices: Mapping[str, Any] | None
) -> tuple[tuple[str, ModelPrice], ...]:
    """The pool's prices in pool order: every model priced, no price for a name outside the
    pool. :class:`PoolError` names a missing price, an unknown priced name or a bad price."""
    prices = dict(prices or {})
    unknown = [name for name in prices if name not in names]
    if unknown:
        raise PoolError(
            f"prices name {unknown}, which are not models of the pool {list(names)}: a pool's "
            "prices are keyed by its models' names exactly"
        )
    given = {name: prices.get(name) for name in names}
    pool = Pool({name: tuple(p) if isinstance(p, list) else p for name, p in given.items()})
    return tuple((m.name, m.price) for m in pool.models)
