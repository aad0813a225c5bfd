"""The ASGI app of ``routellm serve``: OpenAI's chat-completions API, routed by the engine.

``POST /v1/chat/completions`` with model ``router-<router>`` (the configured policy) or
``router-<router>-<threshold>`` decides strong or weak with :class:`RoutingEngine`, sends the
request on to that side's OpenAI-compatible upstream under the side's model name, and answers
with the upstream's answer plus how it was routed: a ``routellm`` object in the JSON body (in
the first chunk of a stream) and ``x-routellm-*`` headers. ``GET /v1/models`` lists the routed
models, ``GET /health`` answers without auth. Errors are OpenAI's error JSON.

With a pool configured, model ``router-<pool router>`` (the pool's policy) or
``router-<pool router>-<cost_weight>`` (lambda, quality per USD per 1,000 calls) routes among
the pool's models with :class:`~routellm_base.pool.PoolEngine`; the request may narrow the
candidates (``routellm_models``: a list of pool model names), cap the expected cost
(``routellm_max_cost``: USD per call) and force a model (``routellm_force``: its name). A
failing model falls back along the policy's order (not when the upstream refused the request).

The app keeps no state between requests beyond the loaded router and the connection pools, so
any number of workers or machines can serve side by side.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import math
import os
import statistics
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar

import aiohttp
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from ..checkpoints import BUNDLED_ROUTERS, load_router
from ..decision import SIDES, RoutingDecision, Side
from ..engine import RoutingEngine
from ..errors import PoolError, RouteLLMError
from ..routed_call import Answer, CallSinks, Candidate, RoutedCall
from ..routing_text import ChatTurn
from .config import CONFIG_ENV, ZERO_SHOT_POOL_ROUTER, ServeConfig, ServeConfigError, _about
from .sse import DONE_EVENT, StreamError, StreamTally, head_with, message_text
from .upstream import Upstream, UpstreamError, error_code, error_message

logger = logging.getLogger("routellm.serve")

MODEL_PREFIX = "router-"
FORCE_FIELD = "routellm_force"
"""Request field that skips the router: ``"strong"`` or ``"weak"``; for a pool, a model name."""
MODELS_FIELD = "routellm_models"
"""Request field of a pool request: the pool models the call may go to (a non-empty list of
names; default: the whole pool)."""
MAX_COST_FIELD = "routellm_max_cost"
"""Request field of a pool request: USD per call that the chosen model may be expected to cost
at most; under the pool's own ``max_cost``, if any, which a request can lower, never raise."""
POOL_FIELDS = (MODELS_FIELD, MAX_COST_FIELD)
FIELD_PREFIX = "routellm_"
"""Request fields of this prefix are the server's own (never sent upstream): an unknown one
(a misspelling) is a 400, not passed on."""
INLINE_DECISION_MAX_S = 0.001
"""A router whose warm-up decisions take less than this decides on the event loop; slower ones
(torch classifiers, large SW indexes) decide in a worker thread so the loop keeps serving."""
INLINE_DECISION_MAX_BODY = 32 * 1024
"""Longer request bodies decide in a worker thread: tokenising grows with the text."""

EXPOSED_HEADERS = (
    "x-routellm-side",
    "x-routellm-model",
    "x-routellm-router",
    "x-routellm-threshold",
    "x-routellm-forced",
    "x-routellm-win-rate",
    "x-routellm-fallback-from",
    "x-routellm-policy",
    "x-routellm-cost-weight",
    "x-routellm-expected-cost",
    "x-routellm-quality",
    "retry-after",
)
"""Response headers a browser page may read under ``--cors-origin``."""

_T = TypeVar("_T")

if TYPE_CHECKING:
    from ..pool import PoolEngine


class ApiError(Exception):
    """An error answer in OpenAI's shape: ``{"error": {"message", "type", "param", "code"}}``."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.code = code
        self.param = param
        self.headers = headers or {}

    def response(self) -> Response:
        body = {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.code,
            }
        }
        return Response(
            json.dumps(body),
            status_code=self.status,
            media_type="application/json",
            headers=self.headers,
        )


class RoutingServer:
    """The router, the per-side upstream pools and the request handlers of one server process."""

    def __init__(self, config: ServeConfig) -> None:
        self.config = config
        self.client_keys = tuple(k.encode() for k in config.client_keys())
        # Resolve the upstream keys now, so a missing variable stops start-up, not a request.
        if config.strong is not None and config.weak is not None:
            config.strong.api_key("strong")
            config.weak.api_key("weak")
        for model in config.pool.models if config.pool is not None else ():
            model.upstream().api_key(f"pool model {model.name!r}")
        self.router = load_router(config.router)
        self.router_name = self.router.name
        self.engine: RoutingEngine | None = None
        self.models: dict[str, str] = {}
        if config.strong is not None and config.weak is not None:
            self.engine = RoutingEngine(
                self.router,
                threshold=config.threshold,
                strong_share=config.strong_share,
                share_window=config.share_window,
            )
            self.models = {"strong": config.strong.model, "weak": config.weak.model}
        self.pool_engine: PoolEngine | None = None
        self.pool_router_name: str | None = None
        if config.pool is not None:
            self.pool_engine = self._pool_engine(config)
            self.pool_router_name = self.pool_engine.router.name
            if self.engine is not None and self.pool_router_name == self.router_name:
                with _about("pool.router"):
                    raise ServeConfigError(
                        f"pool.router {config.pool.router!r} and router {config.router!r} are "
                        f"both named {self.router_name!r}: model "
                        f"'{MODEL_PREFIX}{self.router_name}' would name both; load a pool "
                        "router of another name"
                    )
        self.decide_inline = self._time_decisions() < INLINE_DECISION_MAX_S
        self.upstreams: dict[str, Upstream] = {}
        self.pool_upstreams: dict[str, Upstream] = {}
        self._engine_at = lru_cache(maxsize=256)(self._new_engine)
        self.routing_log = None
        if config.log:
            from ..log import RoutingLog  # SQLAlchemy only when a log is asked for

            self.routing_log = RoutingLog(
                config.log,
                store_prompts=config.log_store_prompts,
                # the pool's prices price its calls (and shadow calls) in the log
                prices=config.pool.prices() if config.pool is not None else None,
            )

    def _pool_engine(self, config: ServeConfig) -> PoolEngine:
        """The pool's engine: its models and prices, its policy, its router (the zero-shot
        router on this server's router, or a trained pool router). Raises
        :class:`ServeConfigError` naming the setting that is wrong."""
        from ..pool import Pool, PoolEngine, ZeroShotPoolRouter, load_pool_router

        pool_config = config.pool
        assert pool_config is not None
        where = "pool.router"
        name = pool_config.router
        # The fixes offered are settings of the config ([pool] keys), not Python calls.
        zero_shot = (
            f'router = "{ZERO_SHOT_POOL_ROUTER}" in [pool] (routes any models; it judges each '
            "prompt's difficulty with the top-level router)"
        )
        try:
            with _about(where):
                if name == ZERO_SHOT_POOL_ROUTER:
                    router: Any = ZeroShotPoolRouter(self.router)
                elif name in BUNDLED_ROUTERS and not Path(name).expanduser().is_dir():
                    raise ServeConfigError(
                        f"pool.router: {name!r} is a two-model router (strong/weak win rates), "
                        f"not a pool router: set {zero_shot} and router = {name!r} at the top "
                        f'level for {name!r} to judge; or router = "pool_knn" (bundled) or a '
                        "folder written by `routellm train pool` in [pool]"
                    )
                else:
                    router = load_pool_router(name)
            where = "pool.models"
            with _about(where):
                unseen = [n for n in pool_config.names if n not in (router.models or ())]
                if router.models is not None and unseen:
                    raise ServeConfigError(
                        f"pool.models: pool router {name!r} was trained on "
                        f"{list(router.models)} and has never seen {unseen}: set {zero_shot}, "
                        "or set router in [pool] to a folder written by `routellm train pool` "
                        "on scored data that includes these models (in Python, "
                        "routellm_base.pool.add_model adds a model to a trained router)"
                    )
                output_tokens = {
                    m.name: m.output_tokens
                    for m in pool_config.models
                    if m.output_tokens is not None
                }
                pool = Pool(pool_config.prices(), output_tokens=output_tokens)
                return PoolEngine(router, pool, policy=pool_config.policy())
        except ServeConfigError:
            raise
        except RouteLLMError as exc:
            error = ServeConfigError(f"{where}: {exc}")
            error.serve_keys = (where,)  # type: ignore[attr-defined]
            raise error from exc

    # -- app -----------------------------------------------------------------------------------

    def app(self) -> Starlette:
        @contextlib.asynccontextmanager
        async def lifespan(app: Starlette) -> AsyncIterator[None]:
            if self.engine is not None:
                self.upstreams = {side: Upstream(side, self.config) for side in SIDES}
                logger.info(
                    "routing with %s (threshold %.6f) between strong %s and weak %s; decisions %s",
                    self.router_name,
                    self.engine.threshold,
                    self.models["strong"],
                    self.models["weak"],
                    "on the event loop" if self.decide_inline else "in worker threads",
                )
            pool = self.config.pool
            if pool is not None and self.pool_engine is not None:
                self.pool_upstreams = {
                    m.name: Upstream(m.name, self.config, upstream=m.upstream())
                    for m in pool.models
                }
                logger.info(
                    "routing %s with %s (%s %s) among the pool %s; decisions %s",
                    f"{MODEL_PREFIX}{self.pool_router_name}",
                    self.pool_router_name,
                    self.pool_engine.policy.name,
                    self.pool_engine.policy.knob,
                    ", ".join(pool.names),
                    "on the event loop" if self.decide_inline else "in worker threads",
                )
            try:
                yield
            finally:
                if self.routing_log is not None:
                    self.routing_log.close()  # drains what is queued
                for upstream in [*self.upstreams.values(), *self.pool_upstreams.values()]:
                    await upstream.aclose()

        async def api_error(request: Request, exc: Exception) -> Response:
            assert isinstance(exc, ApiError)
            return exc.response()

        async def http_error(request: Request, exc: Exception) -> Response:
            assert isinstance(exc, HTTPException)
            return ApiError(
                exc.status_code, f"{request.method} {request.url.path}: {exc.detail}"
            ).response()

        async def server_error(request: Request, exc: Exception) -> Response:
            return ApiError(
                500, f"internal error ({type(exc).__name__})", type="server_error"
            ).response()

        middleware = []
        if self.config.cors_origins:
            # Preflights are answered here, before routing and the key check: a browser sends
            # them without the key. Every other request still needs it.
            middleware.append(
                Middleware(
                    CORSMiddleware,
                    allow_origins=self.config.cors_origins,
                    allow_methods=["GET", "POST"],
                    # Echo what the page asks for: authorization, content-type, and the
                    # x-stainless-* headers of OpenAI's JavaScript client.
                    allow_headers=["*"],
                    expose_headers=EXPOSED_HEADERS,
                )
            )
        return Starlette(
            middleware=middleware,
            routes=[
                Route("/v1/chat/completions", self.chat_completions, methods=["POST"]),
                Route("/v1/models", self.list_models, methods=["GET"]),
                Route("/health", self.health, methods=["GET"]),
            ],
            exception_handlers={
                ApiError: api_error,
                HTTPException: http_error,
                Exception: server_error,
            },
            lifespan=lifespan,
        )

    # -- endpoints -----------------------------------------------------------------------------

    async def health(self, request: Request) -> Response:
        body: dict[str, Any] = {"status": "ok", "router": self.router_name}
        if self.engine is not None:
            body.update(
                threshold=self.engine.threshold,
                strong_model=self.models["strong"],
                weak_model=self.models["weak"],
            )
            window = self.engine.window
            if window is not None:  # where this process's threshold comes from now
                body["share_window"] = window.peek(self.engine.calibrated_threshold).to_dict()
        if self.pool_engine is not None:
            policy = self.pool_engine.policy
            body["pool"] = {
                "router": self.pool_router_name,
                "models": list(self.pool_engine.pool.names),
                "policy": policy.name,
                "knob": policy.knob,
                "max_cost": policy.max_cost,
            }
        return _json(body)

    def served_models(self) -> list[str]:
        """The model names a request may ask for (without a per-request knob)."""
        names = [] if self.engine is None else [f"{MODEL_PREFIX}{self.router_name}"]
        if self.pool_router_name is not None:
            names.append(f"{MODEL_PREFIX}{self.pool_router_name}")
        return names

    async def list_models(self, request: Request) -> Response:
        self._authorise(request)
        return _json(
            {
                "object": "list",
                "data": [
                    {"id": name, "object": "model", "created": 0, "owned_by": "routellm"}
                    for name in self.served_models()
                ],
            }
        )

    async def chat_completions(self, request: Request) -> Response:
        start = time.perf_counter()
        try:
            self._authorise(request)
            raw = await self._read_body(request)
            body = _parse_body(raw)
            engine, cost_weight = self._engine_for(body["model"])
            _check_own_fields(body, pool=engine is None)
            if engine is None:
                route = self._pool_route(body, cost_weight)
                force = self._pool_force(body.pop(FORCE_FIELD, None))
                call = self._pool_call(route, _turns(body["messages"]), force, start)
            else:
                for field in POOL_FIELDS:
                    if field in body:
                        raise ApiError(
                            400,
                            f"'{field}' routes a pool of several models: "
                            + (
                                f"ask for model '{MODEL_PREFIX}{self.pool_router_name}'"
                                if self.pool_router_name
                                else "this server has no pool configured"
                            ),
                            param=field,
                        )
                force = _force(body.pop(FORCE_FIELD, None))
                call = self._routed_call(engine, _turns(body["messages"]), force, start)
            await self._decide(call, len(raw))
            if body.get("stream") is True:
                response = await self._stream(request, body, call)
            else:
                response = await self._complete(request, body, call)
        except ApiError as exc:
            _log(start, exc.status, exc.type)
            raise
        if not isinstance(response, StreamingResponse):  # a stream logs when it ends
            _log(start, 200, response.headers["x-routellm-side"])
        return response

    # -- routing -------------------------------------------------------------------------------

    def _engine_for(self, model: Any) -> tuple[RoutingEngine | None, float | None]:
        """The engine a model name asks for: ``(engine, None)`` between strong and weak,
        ``(None, cost_weight)`` for the pool (``cost_weight`` ``None``: the pool's policy);
        :class:`ApiError` 400 for any other name."""
        uses = []
        if self.engine is not None:
            name = self.router_name
            # The example threshold is the server's own: one that fits this router's win rates.
            uses.append(
                f"'{MODEL_PREFIX}{name}' (the server's policy) or '{MODEL_PREFIX}{name}-<threshold>', "
                f"e.g. '{MODEL_PREFIX}{name}-{self.engine.threshold:.3f}'"
            )
        if self.pool_engine is not None:
            name = self.pool_router_name
            uses.append(
                f"'{MODEL_PREFIX}{name}' (the pool's policy) or '{MODEL_PREFIX}{name}-<cost_weight>' "
                f"(quality per USD per 1,000 calls), e.g. '{MODEL_PREFIX}{name}-0.02'"
            )
        usage = "use " + "; or, for the pool, ".join(uses)
        if not isinstance(model, str):
            raise ApiError(
                400, f"model must be a string: {usage}", param="model", code="model_not_found"
            )
        rest = model[len(MODEL_PREFIX) :] if model.startswith(MODEL_PREFIX) else None
        served = []
        if self.engine is not None:
            served.append((self.router_name, False))
        if self.pool_router_name is not None:
            served.append((self.pool_router_name, True))
        served.sort(key=lambda item: -len(item[0]))  # the longer name first: "x-1" before "x"
        for name, pool in served:
            if rest == name:
                return (None, None) if pool else (self.engine, None)
        for name, pool in served:
            if rest is None or not rest.startswith(name + "-"):
                continue
            text = rest[len(name) + 1 :]
            try:
                value = float(text)
            except ValueError:
                value = math.nan
            if pool:
                if not (math.isfinite(value) and value >= 0.0):
                    raise ApiError(
                        400,
                        f"the cost weight in model {model!r} must be a number >= 0 (quality per "
                        f"USD per 1,000 calls), got {text!r}",
                        param="model",
                        code="invalid_value",
                    )
                return None, value
            if not 0.0 <= value <= 1.0:  # also refuses nan
                raise ApiError(
                    400,
                    f"the threshold in model {model!r} must be a number in [0, 1], got {text!r}",
                    param="model",
                    code="invalid_value",
                )
            return self._engine_at(value), None
        if rest is not None:
            raise ApiError(
                400,
                f"model {model!r} names a router this server does not serve: {usage}",
                param="model",
                code="model_not_found",
            )
        raise ApiError(
            400,
            f"model {model!r} is not a routed model: {usage}",
            param="model",
            code="model_not_found",
        )

    def _new_engine(self, threshold: float) -> RoutingEngine:
        return RoutingEngine(self.router, threshold=threshold)

    def _pool_route(self, body: dict[str, Any], cost_weight: float | None) -> dict[str, Any]:
        """A pool request's routing settings (``allowed``, ``max_cost``, ``cost_weight``), its
        ``routellm_*`` fields taken out of the body (they are not sent upstream);
        :class:`ApiError` 400 naming a bad field."""
        assert self.pool_engine is not None
        names = list(self.pool_engine.pool.names)
        route: dict[str, Any] = {}
        if cost_weight is not None:
            route["cost_weight"] = cost_weight
        models = body.pop(MODELS_FIELD, None)
        if models is not None:
            if (
                not isinstance(models, list)
                or not models
                or not all(isinstance(m, str) for m in models)
            ):
                raise ApiError(
                    400,
                    f"'{MODELS_FIELD}' must be a non-empty list of the pool's model names "
                    f"{names}, got {json.dumps(models)[:200]}",
                    param=MODELS_FIELD,
                )
            unknown = [m for m in models if m not in names]
            if unknown:
                raise ApiError(
                    400,
                    f"'{MODELS_FIELD}' names {unknown}, not in the pool {names}",
                    param=MODELS_FIELD,
                    code="model_not_found",
                )
            route["allowed"] = models
        max_cost = body.pop(MAX_COST_FIELD, None)
        if max_cost is not None:
            if (
                isinstance(max_cost, bool)
                or not isinstance(max_cost, (int, float))
                or not (math.isfinite(max_cost) and max_cost >= 0)
            ):
                raise ApiError(
                    400,
                    f"'{MAX_COST_FIELD}' must be a number >= 0 (USD per call), got "
                    f"{json.dumps(max_cost)[:100]}",
                    param=MAX_COST_FIELD,
                )
            # The operator's [pool] max_cost is a ceiling: a request may only tighten it.
            cap = self.pool_engine.policy.max_cost
            route["max_cost"] = float(max_cost) if cap is None else min(float(max_cost), cap)
        return route

    def _pool_force(self, value: Any) -> str | None:
        assert self.pool_engine is not None
        names = list(self.pool_engine.pool.names)
        if value is None or (isinstance(value, str) and value in names):
            return value
        raise ApiError(
            400,
            f"'{FORCE_FIELD}' must be one of the pool's models {names} or null, got "
            f"{json.dumps(value)[:100]}",
            param=FORCE_FIELD,
        )

    def _pool_call(
        self, route: dict[str, Any], turns: list[ChatTurn], force: str | None, start: float
    ) -> RoutedCall[Upstream]:
        """The request's routed call over the pool's upstreams: it falls back along the
        policy's order (when configured) unless an upstream refused the request itself, and
        finishes into the routing log."""
        assert self.pool_engine is not None
        call: RoutedCall[Upstream] = RoutedCall(
            self.pool_engine,
            [Candidate(n, n, self.pool_upstreams[n]) for n in self.pool_engine.pool.names],
            turns,
            force=force,
            fallback=self.config.fallback,
            falls_back=lambda error: not (isinstance(error, UpstreamError) and error.caller_error),
            sinks=CallSinks(log=self.routing_log),
            route=route,
        )
        call.started = start
        return call

    def _routed_call(
        self, engine: RoutingEngine, turns: list[ChatTurn], force: str | None, start: float
    ) -> RoutedCall[Upstream]:
        """The request's routed call over the two upstreams: it falls back (when configured)
        unless the upstream refused the request itself, and finishes into the routing log."""
        call: RoutedCall[Upstream] = RoutedCall(
            engine,
            [Candidate(side, self.models[side], self.upstreams[side]) for side in SIDES],
            turns,
            force=force,
            fallback=self.config.fallback,
            falls_back=lambda error: not (isinstance(error, UpstreamError) and error.caller_error),
            sinks=CallSinks(log=self.routing_log),
        )
        call.started = start  # the request's latency counts from its first byte
        return call

    async def _decide(self, call: RoutedCall[Upstream], body_size: int) -> None:
        try:
            if self.decide_inline and body_size <= INLINE_DECISION_MAX_BODY:
                call.decide()
            else:
                await call.adecide()
        except PoolError as exc:  # e.g. no allowed model within max_cost
            # a forced call skips max_cost: its only error is a model outside routellm_models
            param = (
                FORCE_FIELD
                if call.force is not None
                else MAX_COST_FIELD
                if "max_cost" in call.route
                else None
            )
            raise ApiError(
                400, f"cannot route this request: {exc}", param=param, code="no_model_fits"
            ) from exc
        except RouteLLMError as exc:
            raise ApiError(400, f"cannot route this request: {exc}", param="messages") from exc

    def _time_decisions(self) -> float:
        """Median seconds of a warm decision (also resolves the threshold, so a bad policy stops
        start-up)."""
        prompt = [
            ChatTurn(
                "user",
                "Explain the difference between a list and a tuple in Python, with an example.",
            )
        ]
        # Dry runs (observe=False): the probe prompt must not enter a share or budget window.
        engine: Any = self.engine if self.engine is not None else self.pool_engine
        for _ in range(3):
            engine.decide(prompt, observe=False)
        times = []
        for _ in range(7):
            start = time.perf_counter()
            engine.decide(prompt, observe=False)
            times.append(time.perf_counter() - start)
        return statistics.median(times)

    # -- upstream calls ------------------------------------------------------------------------

    async def _complete(
        self, request: Request, body: dict[str, Any], call: RoutedCall[Upstream]
    ) -> Response:
        async def attempt(candidate: Candidate[Upstream]) -> dict[str, Any]:
            upstream = candidate.model
            raw = await upstream.read(await upstream.open(_payload(body, upstream)))
            try:
                data = json.loads(raw)
            except ValueError:
                data = None
            if not isinstance(data, dict):
                raise UpstreamError(
                    upstream.side, f"answered with a body that is not a JSON object: {raw[:100]!r}"
                )
            return data

        data = await self._until_disconnect(request, self._run(call, attempt))
        decision = call.decision
        assert decision is not None
        data["routellm"] = _decision_body(decision)
        usage = data.get("usage") if isinstance(data.get("usage"), dict) else {}
        text = message_text(data) if self.routing_log is not None else ""
        call.finish(
            _answer(text, usage.get("prompt_tokens"), usage.get("completion_tokens")),
            estimate_tokens=True,
        )
        return Response(
            json.dumps(data), media_type="application/json", headers=_decision_headers(decision)
        )

    async def _stream(
        self, request: Request, body: dict[str, Any], call: RoutedCall[Upstream]
    ) -> Response:
        async def attempt(
            candidate: Candidate[Upstream],
        ) -> tuple[aiohttp.ClientResponse, AsyncIterator[bytes], bytes]:
            upstream = candidate.model
            response = await upstream.open(_payload(body, upstream))
            try:
                content_type = response.headers.get("content-type", "")
                if not content_type.startswith("text/event-stream"):
                    raise UpstreamError(
                        upstream.side,
                        f"answered a stream request with content-type {content_type!r}",
                    )
                chunks = upstream.chunks(response)
                try:
                    head = await head_with(chunks, {"routellm": _decision_body(call.decision)})  # type: ignore[arg-type]
                except StreamError as exc:
                    raise UpstreamError(upstream.side, str(exc)) from exc
                return response, chunks, head
            except BaseException:
                response.close()
                raise

        response, chunks, head = await self._until_disconnect(request, self._run(call, attempt))
        return _RelayedStream(
            head,
            chunks,
            response,
            call,
            StreamTally(read_answers=self.routing_log is not None),
        )

    async def _run(
        self,
        call: RoutedCall[Upstream],
        attempt: Callable[[Candidate[Upstream]], Awaitable[_T]],
    ) -> _T:
        """``attempt`` through the call's fallback driver. The routed side refusing the request
        itself (400/413/422) is answered as it is (no fallback: the other side would refuse it
        too); when every side tried fails, a refusal by the side fallen back to included,
        :class:`ApiError` with the most informative status (see :func:`_client_failure`) and
        a message naming each side's failure."""
        try:
            return await call.arun(attempt)
        except UpstreamError as exc:
            headers = _decision_headers(call.decision)  # type: ignore[arg-type]
            errors = [e for e in call.failures if isinstance(e, UpstreamError)]
            if exc.caller_error and len(errors) == 1:  # the only side tried refused
                raise ApiError(
                    exc.status or 400,
                    f"the {exc.side} upstream refused the request: {error_message(exc.body)}",
                    type="invalid_request_error",
                    code=error_code(exc.body) or "upstream_refused",
                    headers=headers,
                ) from exc
            for error in errors:
                logger.warning(
                    "%s upstream failed: status=%s timed_out=%s (%s)",
                    error.side,
                    error.status,
                    error.timed_out,
                    type(error.__context__).__name__ if error.__context__ else "answer",
                )
            failure = _client_failure(errors)
            code = failure.code
            if failure.source is not None:
                code = error_code(failure.source.body) or code
                if failure.source.retry_after is not None:
                    headers["retry-after"] = failure.source.retry_after
            raise ApiError(
                failure.status,
                ("every upstream tried failed: " if len(errors) > 1 else "the upstream failed: ")
                + "; ".join(str(e) for e in errors),
                type=failure.type,
                code=code,
                headers=headers,
            ) from exc

    async def _until_disconnect(self, request: Request, work: Awaitable[_T]) -> _T:
        """``work``, cancelled if the client disconnects first (the upstream request with it)."""
        this = asyncio.current_task()
        assert this is not None
        left: list[bool] = []

        async def watch() -> None:
            while (await request.receive())["type"] != "http.disconnect":
                pass
            left.append(True)
            this.cancel()

        watcher = asyncio.ensure_future(watch())
        try:
            return await work
        except asyncio.CancelledError:
            if not left:
                raise
            if sys.version_info >= (3, 11):
                this.uncancel()  # the cancel was ours, and is handled here
            raise ApiError(499, "client disconnected", type="client_disconnected") from None
        finally:
            watcher.cancel()

    # -- request checks ------------------------------------------------------------------------

    def _authorise(self, request: Request) -> None:
        if not self.client_keys:
            return
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise ApiError(
                401, "missing API key: send 'Authorization: Bearer <key>'", code="invalid_api_key"
            )
        given = token.strip().encode()
        if not any(hmac.compare_digest(given, key) for key in self.client_keys):
            raise ApiError(401, "invalid API key", code="invalid_api_key")

    async def _read_body(self, request: Request) -> bytes:
        limit = self.config.max_body_bytes
        too_large = ApiError(
            413,
            f"request body larger than the server's limit of {limit} bytes",
            code="request_too_large",
        )
        length = request.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > limit:
            raise too_large
        parts: list[bytes] = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise too_large
            parts.append(chunk)
        return b"".join(parts)


class _RelayedStream(StreamingResponse):
    """The upstream's event stream, passed on whole event by whole event as it arrives, ended
    as OpenAI ends one: with exactly one ``data: [DONE]``.

    * The relay stops at the upstream's ``data: [DONE]`` (anything after it is dropped), and
      adds one when the upstream's body ended without it.
    * An upstream that fails or times out after the first chunk ends the stream with an
      ``{"error": ...}`` event, then ``data: [DONE]`` (no fallback: what was sent stays sent).
    * The call is finished into the routing log exactly once, however the relay ends:
      ``complete`` (the answer reached its end, or ``[DONE]`` was relayed even if the client
      closed before the upstream's body ended, as the openai client does), ``cancelled`` (the
      client went away first) or ``broken`` (the upstream failed mid-stream, or sent an error
      event). Its tokens are the upstream's usage chunk when one was relayed, else counted from
      the prompt and the text relayed so far (cl100k, ``tokens_estimated``).
    * The upstream answer is closed however the relay ends, including when the client
      disconnects (Starlette cancels the relay), so the upstream sees its request cancelled;
      after ``[DONE]`` its body's end is read first, to keep the pooled connection.
    """

    def __init__(
        self,
        head: bytes,
        chunks: AsyncIterator[bytes],
        upstream: aiohttp.ClientResponse,
        call: RoutedCall[Upstream],
        tally: StreamTally,
    ) -> None:
        assert call.decision is not None
        super().__init__(
            self._relay(head, chunks),
            media_type="text/event-stream",
            headers={"cache-control": "no-cache", **_decision_headers(call.decision)},
        )
        self.upstream = upstream
        self.call = call
        self.tally = tally
        self.outcome = "cancelled"
        """How the relay ended: ``complete``, ``broken``, or ``cancelled`` until one of those."""

    async def _relay(self, head: bytes, chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        tally = self.tally
        out = tally.feed(head)
        try:
            if not tally.done:
                yield out
                async for chunk in chunks:
                    out = tally.feed(chunk)
                    if tally.done:
                        break
                    if out:
                        yield out
                else:
                    out = tally.end()  # the upstream's body ended without [DONE]
        except UpstreamError as exc:
            logger.warning("%s upstream failed mid-stream: timed_out=%s", exc.side, exc.timed_out)
            self.outcome = "broken"
            yield _error_event(exc) + DONE_EVENT
            return
        # Settled before the last bytes go out: a client that closes once it reads [DONE]
        # may cancel this relay before it resumes.
        self.outcome = "broken" if tally.error else "complete"
        yield out

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            try:
                await super().__call__(scope, receive, send)
            finally:
                self._finish()
            if self.tally.done:
                await self.call.chosen.model.drain(self.upstream)
        finally:
            self.upstream.close()  # a no-op when the answer was read to its end

    def _finish(self) -> None:
        """Finish the call into the routing log, once, with what was relayed."""
        tally = self.tally
        self.call.finish(
            _answer(tally.text, tally.input_tokens, tally.output_tokens),
            outcome=self.outcome,
            estimate_tokens=True,
        )
        side = self.call.decision.side if self.call.decision is not None else "-"
        _log(self.call.started, 200, f"stream {side} {self.outcome}")


def create_app(config: ServeConfig) -> Starlette:
    """The ASGI app for ``config`` (loads the router now; upstream pools open at start-up)."""
    return RoutingServer(config).app()


def app_from_environment() -> Starlette:
    """App factory for ``--workers`` processes: the settings come as JSON in ``ROUTELLM_SERVE_CONFIG``."""
    text = os.environ.get(CONFIG_ENV)
    if not text:
        raise RuntimeError(f"{CONFIG_ENV} is not set: start workers through `routellm serve`")
    return create_app(ServeConfig.from_json(text))


# -- helpers -----------------------------------------------------------------------------------


def _parse_body(raw: bytes) -> dict[str, Any]:
    try:
        body = json.loads(raw)
    except ValueError as exc:
        raise ApiError(400, f"request body is not valid JSON ({exc})", code="invalid_json") from exc
    if not isinstance(body, dict):
        raise ApiError(400, "request body must be a JSON object", code="invalid_json")
    if "messages" not in body:
        raise ApiError(
            400,
            "missing required field 'messages'",
            param="messages",
            code="missing_required_parameter",
        )
    if not isinstance(body["messages"], list) or not body["messages"]:
        raise ApiError(400, "'messages' must be a non-empty list of messages", param="messages")
    if "model" not in body:
        raise ApiError(
            400, "missing required field 'model'", param="model", code="missing_required_parameter"
        )
    if body.get("stream") not in (None, True, False):
        raise ApiError(
            400, f"'stream' must be true or false, got {body['stream']!r}", param="stream"
        )
    return body


def _check_own_fields(body: dict[str, Any], pool: bool) -> None:
    """:class:`ApiError` 400 for a ``routellm_*`` field the server does not know (a pool field
    on a pair request is refused later, with its own message)."""
    known = (FORCE_FIELD, *POOL_FIELDS)
    for field in body:
        if isinstance(field, str) and field.startswith(FIELD_PREFIX) and field not in known:
            takes = sorted(known) if pool else [FORCE_FIELD]
            raise ApiError(
                400,
                f"unknown field {field!r}: '{FIELD_PREFIX}*' fields set the routing and are "
                f"never sent upstream; model {body['model']!r} takes {takes}",
                param=field,
            )


def _force(value: Any) -> Side | None:
    if value is None or value in SIDES:
        return value
    raise ApiError(
        400, f"'{FORCE_FIELD}' must be 'strong', 'weak' or null, got {value!r}", param=FORCE_FIELD
    )


def _turns(messages: list[Any]) -> list[ChatTurn]:
    """OpenAI messages as the engine's turns; a missing or null content (an assistant turn with
    tool calls) counts as no text."""
    turns = []
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            raise ApiError(
                400, f"messages[{i}] must be an object with a string 'role'", param=f"messages[{i}]"
            )
        content = message.get("content")
        if content is None:
            content = ""
        elif not isinstance(content, (str, list)):
            raise ApiError(
                400,
                f"messages[{i}].content must be a string, a list of parts or null",
                param=f"messages[{i}].content",
            )
        turns.append(ChatTurn(message["role"], content))
    return turns


def _payload(body: dict[str, Any], upstream: Upstream) -> bytes:
    return json.dumps({**body, "model": upstream.model}).encode()


def _answer(text: str, input_tokens: Any, output_tokens: Any) -> Answer:
    """The log's view of an answer: its text, and the tokens the upstream reported (its usage)
    if both are counts (else neither: both are then estimated from the texts)."""
    known = all(
        isinstance(n, int) and not isinstance(n, bool) and n >= 0
        for n in (input_tokens, output_tokens)
    )
    return Answer(text, input_tokens if known else None, output_tokens if known else None)


class _ClientFailure(NamedTuple):
    """What a client is told when every side tried failed."""

    status: int
    type: str
    code: str | None
    """The error code when the upstream's answer gives none."""
    source: UpstreamError | None
    """The upstream answer whose ``Retry-After`` and error code go along, if any."""


def _client_failure(errors: list[UpstreamError]) -> _ClientFailure:
    """The most informative status for the sides' failures, in this order: any side
    rate-limited: 429 (a retry after the shortest ``Retry-After`` may find it free); every side
    without a free pooled connection in time: 503 ``upstream_busy`` (this server is busy); every
    side timed out: 504; every side answered the same status: that status (401, 403, 404, 503,
    ...), except an upstream's own 500, which is a 502 here; every side answered some 4xx: the
    routed side's; else 502."""
    rate_limited = [e for e in errors if e.status == 429]
    if rate_limited:
        source = min(rate_limited, key=_retry_after_seconds)
        return _ClientFailure(429, "upstream_error", "rate_limit_exceeded", source)
    if all(e.busy for e in errors):
        return _ClientFailure(503, "upstream_busy", "upstream_busy", None)
    if all(e.timed_out for e in errors):
        return _ClientFailure(504, "upstream_timeout", None, None)
    first = errors[0]
    agree = all(e.status == first.status for e in errors)
    all_4xx = all(e.status is not None and 400 <= e.status < 500 for e in errors)
    if first.status is not None and first.status != 500 and (agree or all_4xx):
        return _ClientFailure(first.status, "upstream_error", None, first)
    return _ClientFailure(502, "upstream_error", None, None)


def _retry_after_seconds(error: UpstreamError) -> float:
    """An answer's ``Retry-After`` in seconds, for ordering (an HTTP date or none sorts last)."""
    try:
        return float(error.retry_after)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return math.inf


def _error_event(exc: UpstreamError) -> bytes:
    """The ``{"error": ...}`` event that ends a stream the upstream broke off."""
    error = {
        "message": f"{exc}",
        "type": "upstream_timeout" if exc.timed_out else "upstream_error",
        "param": None,
        "code": None,
    }
    return b"data: " + json.dumps({"error": error}).encode() + b"\n\n"


def _decision_body(decision: RoutingDecision) -> dict[str, Any]:
    """The ``routellm`` object of an answer: the decision (for a pool with the answering
    model's ``expected_cost``, USD per call, beside its ``pool`` predictions)."""
    return decision.to_dict()


def _decision_headers(decision: RoutingDecision) -> dict[str, str]:
    pool = decision.pool
    headers = {
        "x-routellm-side": _header_safe(decision.side),
        "x-routellm-model": _header_safe(decision.model),
        "x-routellm-router": _header_safe(decision.router),
    }
    if pool is None:
        headers["x-routellm-threshold"] = repr(decision.threshold)
    headers["x-routellm-forced"] = "true" if decision.forced else "false"
    if decision.win_rate is not None:
        headers["x-routellm-win-rate"] = repr(decision.win_rate)
    if decision.fallback_from is not None:
        headers["x-routellm-fallback-from"] = _header_safe(decision.fallback_from)
    if pool is not None:
        headers["x-routellm-policy"] = pool.policy
        if pool.cost_weight is not None:
            headers["x-routellm-cost-weight"] = repr(pool.cost_weight)
        expected = decision.expected_cost
        if expected is not None:
            headers["x-routellm-expected-cost"] = repr(expected)
        quality = pool.quality.get(decision.model)
        if quality is not None:
            headers["x-routellm-quality"] = repr(quality)
    return headers


def _header_safe(value: str) -> str:
    return value.encode("ascii", "backslashreplace").decode("ascii")


def _json(data: dict[str, Any]) -> Response:
    return Response(json.dumps(data), media_type="application/json")


def _log(start: float, status: int, what: str) -> None:
    # Status, side and time only: prompts and answers never reach the log.
    if logger.isEnabledFor(logging.INFO):
        logger.info(
            "POST /v1/chat/completions %d %s %.1f ms",
            status,
            what,
            (time.perf_counter() - start) * 1000,
        )
