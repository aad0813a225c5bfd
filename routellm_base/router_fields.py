"""The settings and services every routed model shares, written once for both integrations.

:class:`RouterFields` is a pydantic mixin: ``RouterChatModel`` (LangChain) and ``RouterLLM``
(LlamaIndex) inherit its fields, their one documentation, their validation, and the methods
around the call (``engine``, ``swap_router``, ``cost_report``, ``shadow_stats``,
``flush_log``); :meth:`RouterFields._decided_call` starts the engine's
:class:`~routellm_base.routed_call.RoutedCall`. An integration adds its model fields
(``strong``, ``weak`` for two models; ``models`` for a pool of several) and three small hooks:
how its models are named, how its judge model chats, and (optionally) a default routing-text
hook. Nothing here imports a framework.

Two models (``strong=``/``weak=``) route by the router's win rate and a threshold
(:class:`~routellm_base.RoutingEngine`). A pool (``models=``, ``prices=``) routes by each
candidate's predicted quality and expected cost under a
:class:`~routellm_base.pool.PoolPolicy` (:class:`~routellm_base.pool.PoolEngine`); the
candidates are keyed by model name throughout (decisions, ``routellm_force``, cost reports).
"""

from __future__ import annotations

import asyncio
import difflib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_serializer

from .checkpoints import DEFAULT_ROUTER, check_policy_resolves, check_router_spec
from .costs import DEFAULT_PRICES, CostReport, CostTracker, PoolCostReport
from .decision import SIDES, RoutingDecision
from .engine import RoutingEngine
from .engine_cache import EngineSettings, RouterSpec
from .errors import PoolError, RoutingInputError
from .judging import PairwiseJudge
from .log_field import warn_if_sides_share_a_name
from .policy import DEFAULT_NO_KNOWN_TOKENS_SIDE, RoutingPolicy
from .pool import DEFAULT_OUTPUT_TOKENS, PoolEngine, PoolPolicy, PoolRouter
from .pool.policy import DEFAULT_BUDGET_WINDOW, DEFAULT_COST_WEIGHT
from .pool_fields import (
    ZERO_SHOT,
    PoolSettings,
    check_router,
    pool_prices,
    pool_router_spec,
    take_route,
)
from .routed_call import FORCE_KWARG, CallServices, CallSinks, Candidate, RoutedCall, checked_force
from .routers.base import Router
from .routing_text import ChatTurn, RoutingTextFn, RoutingTextOptions
from .shadow import ShadowRunner, ShadowStats, check_shadow_settings, flush_shadow_and_log

if TYPE_CHECKING:
    from .log import LogStats, RoutingLog

ChatFn = Callable[[list[dict[str, str]]], str]

SHARE_WINDOW_DOC = (
    "Hold strong_share on live traffic (off: None). A number of calls: the threshold is the "
    "(1 - strong_share) quantile of the win rates of the last share_window routed calls (forced "
    "and rule-routed calls have none and stay out), so the realised strong share follows the "
    "target when the traffic scores higher or lower than the router's calibration set. Until "
    "100 calls (or share_window, if smaller) have been routed, the calibration's threshold "
    "applies. Each decision records the threshold it used and, in extra['share_window'], where "
    "it came from (threshold_from: 'window' or 'calibration'), the window's size and fill. Kept "
    "per process and shared by this model's copies (model_copy; in LangChain also bind_tools "
    "and with_structured_output). Needs strong_share (or the default share), not threshold."
)
FALLBACK_DOC = (
    "Retry on the other side when the chosen model raises (off by default). When True and the "
    "chosen model raises an Exception (not KeyboardInterrupt or asyncio.CancelledError), the "
    "same call goes once to the other side; the decision (the answer's 'routellm' record) then "
    "names the side that answered, with fallback_from (the side that failed) and "
    "fallback_reason ('<Type>: <message>'). If the other side raises too, its error is raised "
    "with the first as __cause__. Plain and tool calls fall back on any failure; streams only "
    "when the chosen model fails before its first chunk, since a partial answer cannot be "
    "replaced (later errors are re-raised). A forced side (routellm_force) is only the first "
    "try and falls back too: leave fallback off where a call must never reach the other side. "
    "The call is one run of the router: the failed attempt reports no usage and is not counted. "
    "A pool falls back along the decision's pool.order (the allowed models within max_cost, "
    "best first) until one answers or none is left; fallback_from names the first model that "
    "failed and fallback_reason lists each failure ('<model>: <Type>: <message>; ...'); when "
    "every one fails, the last error is raised with each failure's __cause__ the one before it."
)
LOG_DOC = (
    "Where to record every answered call: a SQLite file path, a SQLAlchemy URL (e.g. "
    "'postgresql+psycopg://user@host/db') or a routellm_base.log.RoutingLog (for "
    "store_prompts=True, a redact hook, ...); None: no log. A path or URL opens one shared log "
    "per process. Recorded once after the answer (a stream: after its last chunk, or, cut short "
    "after its first, with outcome 'cancelled' or 'broken' and the tokens answered so far) with the "
    "decision, both model names, tokens and cost as cost_report() counted them, and the "
    "latency; prompt text only as the log's store_prompts says. A failing store never fails "
    "the call (log_stats() counts it). Needs the 'log' extra."
)
SHADOW_RATE_DOC = (
    "Share of answered calls (0..1) also sent to the *other* side for a shadow comparison in "
    "the log (which it needs). The shadow call starts after the user's answer is complete (a "
    "stream: after its last chunk), runs in a background thread through the other side's plain "
    "call with the same messages and arguments (also for async calls, so it never runs on the "
    "caller's event loop), and never delays or fails the call: its failure is recorded in the "
    "comparison. Not shadowed: calls that fell back, and tool calls (LangChain: also structured output; a "
    "judge compares answers, not tool choices). Answers are stored only as the log's "
    "store_prompts says. flush_log() waits for running shadow calls."
)
MODELS_DOC = (
    "A pool of several models to route among, instead of strong=/weak=: {name: model} (the "
    "names are what decisions, routellm_force, allowed_models, prices and cost_report() call "
    "them), or a list of models named by the names they give themselves (two alike: an error; "
    "name them with a dict). The order is the pool's order (ties, a forced call's fallback). "
    "Needs prices= for exactly these names. A pool of one answers every call with its model and "
    "runs no router (its decisions name router 'single_model' and predict no quality; a router= "
    "given must still know the model, as in a larger pool). Per call: routellm_force=<name>, allowed_models=[names], cost_weight, "
    "quality_tolerance, budget, max_cost (LangChain: also config['configurable'])."
)
POLICY_DOC = (
    "Give at most one of cost_weight, quality_tolerance and budget (none: cost_weight "
    f"{DEFAULT_COST_WEIGHT}); max_cost combines with any. A pool only (models=)."
)
JUDGE_DOC = (
    "A model of the same framework (usually the strong one, at temperature 0) that judges each "
    "shadow comparison in the background with routellm judge's pairwise logic (both answer "
    "orders; disagreement is a tie; an unreadable verdict is counted in the log's unparseable, "
    "never guessed), or a routellm_base.judging.PairwiseJudge. The judge sees the prompt and "
    "both answers. None: leave comparisons unjudged (judge later with routellm judge --log). "
    "Needs shadow_rate > 0."
)


_POOL_ONLY = (
    "cost_weight",
    "quality_tolerance",
    "budget",
    "budget_window",
    "max_cost",
    "output_tokens",
)
"""Fields of a pool of several models (models=), refused between two."""

_TWO_MODELS_ONLY = (
    "threshold",
    "strong_share",
    "share_window",
    "strong_model_name",
    "weak_model_name",
)
"""Fields of two models (strong=/weak=), refused in a pool."""


class RouterFields(BaseModel):
    """The routing settings of a routed model and the services its calls share.

    **A pool of several models** (``models=`` and ``prices=`` in USD per million input/output
    tokens): each call goes to one model by each model's predicted quality and expected cost
    under the policy (``cost_weight``, ``quality_tolerance``, ``budget``, ``max_cost``); the
    router is the zero-shot start (``"zero_shot"``, the default) or a trained ``PoolRouter``.

    * Per call, as call arguments (:data:`~routellm_base.pool_fields.CALL_SETTINGS`):
      ``routellm_force=<name>``, ``allowed_models=[names]``, ``cost_weight``,
      ``quality_tolerance``, ``budget``, ``max_cost``, taken out before the chosen model is
      called. An unknown name raises :class:`~routellm_base.errors.PoolError`, a bad value
      :class:`~routellm_base.errors.InvalidPolicyError`, before any model is called.
    * The decision (``additional_kwargs["routellm"]``; LangChain: also ``response_metadata``)
      names the model that answered (``side``/``model``) and its ``expected_cost`` (USD per
      call), and holds ``pool``: each candidate's predicted ``quality`` (0..1) and
      ``expected_cost``, the ``policy`` and its ``knob``, ``order`` (the fallback order: with
      ``fallback=True`` a failing model's call goes to the next one), ``excluded`` (why each
      other model may not take the call) and ``extra`` (what the prediction rests on: the
      zero-shot router's ``difficulty`` and ``win_rate``).
    * ``cost_report()`` is a ``PoolCostReport``: totals per model, and savings against always
      using the pool's most expensive model.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    router: str | Path | Router | PoolRouter = Field(
        default=DEFAULT_ROUTER,
        description="Two models: a bundled router name ('task_experts', the default; 'mf'; "
        "'random'), a checkpoint folder, or a routellm_base.Router instance. A pool (models=): "
        "a routellm_base.pool.PoolRouter (e.g. a trained pool router; PoolError at construction "
        "when it has never seen a model of the pool), or 'zero_shot' (the default for a pool: "
        "ZeroShotPoolRouter over the bundled router, harder prompts to pricier models).",
    )
    threshold: float | None = Field(
        default=None,
        description="Win-rate threshold in [0, 1]: calls with win_rate >= threshold go strong. "
        "Give this or strong_share, not both. Per call (two models), a threshold= or "
        "strong_share= call argument (LangChain: also config['configurable']) replaces the "
        "model's policy for that call, is never passed on to the chosen model, and is "
        "recorded in the decision (threshold, extra['call_policy']); such a call stays out of "
        "a share_window, which refuses a per-call strong_share.",
    )
    strong_share: float | None = Field(
        default=None,
        description="Target share of calls sent strong (0..1), turned into a threshold through "
        "the router's calibration. With neither this nor threshold, the engine's default (0.5).",
    )
    share_window: int | None = Field(default=None, description=SHARE_WINDOW_DOC)
    routing_text_mode: Literal["last_user", "conversation"] = Field(
        default="last_user",
        description="What the router scores: the last user turn (the paper's choice) or the "
        "whole conversation, newest turns first, within routing_text_max_tokens.",
    )
    routing_text_max_tokens: int | None = Field(
        default=None,
        description="Token budget (cl100k) of the routing text; None: the whole last user "
        "turn, or 1024 tokens in 'conversation' mode.",
    )
    routing_text_fn: RoutingTextFn | None = Field(
        default=None,
        exclude=True,
        description="A hook choosing the routing text: gets the conversation as "
        "routellm_base.ChatTurn records, returns the text to score or None for the default rule "
        "(routing_text_max_tokens still applies). In a RAG chain, route on the question rather "
        "than the filled-in prompt, e.g. routellm_base.TemplateField([template], 'question').",
    )
    no_known_tokens_side: Literal["strong", "weak"] | None = Field(
        default=DEFAULT_NO_KNOWN_TOKENS_SIDE,
        description="Side of a call whose routing text has no token the router's embedder "
        "knows (a script outside its vocabulary, emoji only), which the router cannot score; "
        "None scores it anyway. The decision records no_known_tokens. A pool (models=) sends "
        "such a call to its priciest usable model, with an empty quality (the default, "
        "'strong'); None scores it by the router; 'weak' is refused for a pool.",
    )
    strong_model_name: str | None = Field(
        default=None,
        description="Name reported for the strong model (decisions, response metadata, cost "
        "prices); default: the name the model gives itself, else its class name.",
    )
    weak_model_name: str | None = Field(
        default=None,
        description="Name reported for the weak model; default as for strong_model_name.",
    )
    prices: dict[str, Any] | None = Field(
        default=None,
        description="USD per 1M input/output tokens per model name, e.g. {'gpt-4o': (2.5, "
        "10.0)}, as routellm_base.costs.as_price takes them. Two models: for cost_report(), "
        "merged over routellm_base.costs.DEFAULT_PRICES, keyed by the two models' names "
        "(strong_model_name / weak_model_name, else their own; another name is a "
        "RoutingInputError). A pool: required, keyed by the pool's "
        "model names exactly (a missing or unknown name is a PoolError); they drive routing "
        "(expected cost per call) and cost_report(), with no default prices.",
    )
    cost_weight: float | None = Field(
        default=None,
        description="A pool's price/quality trade-off lambda >= 0: quality given up per extra "
        "USD per 1,000 calls; each call goes to the argmax of predicted quality - lambda * "
        "expected cost. 0: the best predicted quality whatever it costs. " + POLICY_DOC,
    )
    quality_tolerance: float | None = Field(
        default=None,
        description="A pool's 'cheapest that is nearly as good' policy, tau in [0, 1]: the "
        "cheapest candidate predicted within tau of the best one. " + POLICY_DOC,
    )
    budget: float | None = Field(
        default=None,
        description="A pool's spend target, USD per 1,000 calls: lambda is solved so that the "
        "last budget_window calls' choices cost at most this on average. " + POLICY_DOC,
    )
    budget_window: int | None = Field(
        default=None,
        description=f"Calls a budget is held over (default {DEFAULT_BUDGET_WINDOW}); kept per "
        "process and shared by this model's copies. A pool with budget= only.",
    )
    max_cost: float | None = Field(
        default=None,
        description="A pool's hard ceiling, USD per call: candidates expected to cost more "
        "are never chosen nor fallen back to, and a call none fits raises PoolError. Combines "
        "with any policy. A pool only.",
    )
    output_tokens: float | dict[str, float] | None = Field(
        default=None,
        description="A pool's expected answer length in tokens, for the expected cost of each "
        f"call (input: the prompt's characters / 4): one number, or {{name: tokens}} (missing "
        f"names: {DEFAULT_OUTPUT_TOKENS}). Default {DEFAULT_OUTPUT_TOKENS}. A pool only.",
    )
    fallback: bool = Field(default=False, description=FALLBACK_DOC)
    log: Any = Field(default=None, exclude=True, description=LOG_DOC)
    shadow_rate: float = Field(default=0.0, description=SHADOW_RATE_DOC)
    shadow_seed: int | None = Field(
        default=None,
        description="Seeds the shadow sampling (None: unseeded), for reproducible runs.",
    )
    judge: Any = Field(default=None, exclude=True, description=JUDGE_DOC)

    _services: CallServices = PrivateAttr(default_factory=CallServices)
    _bound: dict[str, tuple[Any, dict[str, Any]]] | None = PrivateAttr(default=None)
    """Set on copies made by a bind-time transform (LangChain's ``bind_tools`` and the like):
    per side, the model the side's transform returned and the arguments it bound."""

    # -- what an integration provides ---------------------------------------------------------

    strong: Any = None
    weak: Any = None
    models: Any = None
    """Typed by each integration: ``{name: model}`` or a list of its framework's models."""
    _judge_type: ClassVar[tuple[type, str]] = (object, "model")
    """The class a ``judge`` model must be, and its name in the error."""

    def _own_model_name(self, model: Any) -> str:
        """The name a model of this framework gives itself."""
        raise NotImplementedError

    def _judge_chat(self, judge: Any) -> tuple[ChatFn, str]:
        """``judge`` (a model of this framework) as a chat function and its name."""
        raise NotImplementedError

    def _default_routing_text_fn(self) -> RoutingTextFn | None:
        """The routing-text hook used when ``routing_text_fn`` is not set."""
        return None

    # -- validation, copies, serialisation ----------------------------------------------------

    def _check_settings(self) -> None:
        """Fail at construction, not at the first call: build the cheap parts now (no router
        is loaded). Raises the engine's own errors (``InvalidPolicyError``,
        ``UnknownRouterError``, ``RoutingInputError``, ``PoolError``); an integration calls
        it once built."""
        if self.models is not None:
            self._check_pool_settings()
            return
        missing = [side for side in SIDES if getattr(self, side) is None]
        if missing:
            raise RoutingInputError(
                f"no {' and no '.join(missing)} model: give strong= and weak= (two models), or "
                "models= and prices= (a pool of several)"
            )
        pool_only = [name for name in _POOL_ONLY if getattr(self, name) is not None]
        if pool_only:
            raise RoutingInputError(
                f"{pool_only} route a pool of several models (models=, prices=); between "
                "strong and weak, give threshold or strong_share"
            )
        policy = RoutingPolicy(
            threshold=self.threshold,
            strong_share=self.strong_share,
            no_known_tokens_side=self.no_known_tokens_side,
            share_window=self.share_window,
        )
        self._routing_text_options()
        check_router_spec(self.router)
        # A strong_share the router has no calibration for fails now, not at the first call
        # (LlamaIndex's query engine turns that ValueError into "Empty Response"). Reads the
        # checkpoint's config only, as swap_router's check loads: nothing is loaded twice.
        check_policy_resolves(self._router_in_use(), policy)
        self._check_pair_prices()
        self._new_cost_tracker()  # validates the prices
        if self.log is not None:
            self._routing_log()  # a bad path or URL, or a missing driver, fails here
        check_shadow_settings(
            self.shadow_rate, self.log, self.judge, *self._judge_type, seed=self.shadow_seed
        )
        if self.log is not None:
            warn_if_sides_share_a_name(self._side_name("strong"), self._side_name("weak"))

    def _check_pair_prices(self) -> None:
        """:class:`RoutingInputError` for a name in ``prices`` that is neither model's name
        (``strong_model_name`` / ``weak_model_name``, else the name a model gives itself) while
        a model is left without a price (given or in ``DEFAULT_PRICES``), or that is a side
        (``'strong'``/``'weak'``): between two models only those names are priced, so such a
        key is a typo that leaves a model counted as $0. A shared price table that prices both
        models and others too is accepted."""
        names = [self._side_name(side) for side in SIDES]
        unknown = [name for name in self.prices or {} if name not in names]
        if not unknown:
            return
        priced = {**DEFAULT_PRICES, **(self.prices or {})}
        unpriced = [name for name in names if name not in priced]
        if not unpriced and not any(name in SIDES for name in unknown):
            return
        hints = []
        for name in unknown:
            if name in SIDES:
                hints.append(f"{name!r} is a side: key its price by {self._side_name(name)!r}")
            elif close := difflib.get_close_matches(str(name), names, n=1, cutoff=0.8):
                hints.append(f"{name!r}: did you mean {close[0]!r}?")
        left = f", and {unpriced} would have no price (counted as $0)" if unpriced else ""
        raise RoutingInputError(
            f"prices name {unknown}, which are not the models' names (strong {names[0]!r}, "
            f"weak {names[1]!r}){left}: prices are keyed by the names decisions and "
            "cost_report() use (strong_model_name / weak_model_name, else each model's own name)"
            + (f"; {'; '.join(hints)}" if hints else "")
        )

    def _check_pool_settings(self) -> None:
        """:meth:`_check_settings` of a pool: the models named, priced and routable, the policy
        valid, and no setting of two models given (nothing given is silently ignored)."""
        given = [side for side in SIDES if getattr(self, side) is not None]
        if given:
            raise PoolError(
                f"give either models= (a pool of several models) or strong= and weak= (two "
                f"models), not both: got models= and {'= and '.join(given)}="
            )
        self.models = self._named_models(self.models)
        two_models = [name for name in _TWO_MODELS_ONLY if getattr(self, name) is not None]
        if two_models:
            raise PoolError(
                f"{two_models} route between two models (strong=/weak=); a pool routes by "
                "cost_weight, quality_tolerance, budget or max_cost"
            )
        if self.no_known_tokens_side == "weak":
            raise PoolError(
                "no_known_tokens_side='weak' is for two models: a pool sends a call whose routing "
                "text has no token the router's embedder knows to its priciest usable model "
                "(the default, 'strong'); give no_known_tokens_side=None to have the router "
                "score such calls instead"
            )
        if self.budget_window is not None and self.budget is None:
            raise PoolError("budget_window is the window a budget is held over: give budget too")
        if "router" not in self.model_fields_set:
            self.router = ZERO_SHOT
        settings = self._pool_settings()  # the prices, output tokens, policy, routing text
        loaded = check_router(self.router, settings.pool())
        if loaded is not None:  # a name or folder: loaded once, to check it knows the pool
            self._services.pools.remember(str(self.router), loaded)
        self._new_cost_tracker()

    def _named_models(self, models: Any) -> dict[str, Any]:
        """``models`` as ``{name: model}``: a dict as given, a list named by its models' own
        names (:class:`PoolError` for a name given twice or no model at all)."""
        if isinstance(models, dict):
            named = dict(models)
        else:
            named = {}
            for model in models:
                name = self._own_model_name(model)
                if name in named:
                    raise PoolError(
                        f"models name {name!r} twice ({[self._own_model_name(m) for m in models]}"
                        f"): name them apart with a dict, models={{'{name}-a': ..., "
                        f"'{name}-b': ...}}"
                    )
                named[name] = model
        if not named:
            raise PoolError("models= is empty: a pool needs at least one model")
        for name in named:
            if not isinstance(name, str) or not name:
                raise PoolError(f"a pool model's name must be a non-empty string, got {name!r}")
        return named

    def __deepcopy__(self, memo: dict[int, Any] | None = None) -> Any:
        # Router instances are shared, not copied: they are thread-safe and may hold an embedder
        # (its lock cannot be copied); a copied RandomRouter would fork its random sequence.
        memo = {} if memo is None else memo
        if isinstance(self.router, Router | PoolRouter):
            memo.setdefault(id(self.router), self.router)
        return super().__deepcopy__(memo)

    @field_serializer("router")
    def _serialize_router(self, router: str | Path | Router | PoolRouter) -> str:
        return router.name if isinstance(router, Router | PoolRouter) else str(router)

    # -- the engine -----------------------------------------------------------------------------

    def _routing_text_options(self) -> RoutingTextOptions:
        return RoutingTextOptions(
            mode=self.routing_text_mode,
            max_tokens=self.routing_text_max_tokens,
            fn=self.routing_text_fn or self._default_routing_text_fn(),
        )

    def _engine_settings(self) -> EngineSettings:
        # Fields may be reassigned after construction; the settings make the engine follow.
        return EngineSettings(
            self.router,
            self.threshold,
            self.strong_share,
            self._routing_text_options(),
            self.no_known_tokens_side,
            self.share_window,
        )

    def _pool_settings(self) -> PoolSettings:
        """The pool engine's settings from the fields as they are now (fields may be
        reassigned; the engine follows). Raises :class:`PoolError` / ``InvalidPolicyError``
        for a missing or unknown price, bad output tokens or a bad policy."""
        names = tuple(self.models)
        tokens: Any = DEFAULT_OUTPUT_TOKENS if self.output_tokens is None else self.output_tokens
        if isinstance(tokens, dict):
            tokens = tuple(tokens.items())
        return PoolSettings(
            pool_router_spec(self.router, names),
            pool_prices(names, self.prices),
            tokens,
            PoolPolicy(
                cost_weight=self.cost_weight,
                quality_tolerance=self.quality_tolerance,
                budget=self.budget,
                budget_window=(
                    DEFAULT_BUDGET_WINDOW if self.budget_window is None else self.budget_window
                ),
                max_cost=self.max_cost,
            ),
            self._routing_text_options(),
            self.no_known_tokens_side is not None,
        )

    @property
    def engine(self) -> RoutingEngine | PoolEngine:
        """The routing engine, built on first use and cached (thread-safe). Its ``router`` is
        the router in use (after :meth:`swap_router`, the one swapped in). A pool's is a
        :class:`~routellm_base.pool.PoolEngine`."""
        if self.models is not None:
            return self._services.pools.get(self._pool_settings())
        return self._services.engines.get(self._engine_settings())

    def _peek_engine(self, services: CallServices) -> RoutingEngine | PoolEngine | None:
        if self.models is not None:
            return services.pools.peek(self._pool_settings())
        return services.engines.peek(self._engine_settings())

    async def _aengine(self) -> RoutingEngine | PoolEngine:
        engine = self._peek_engine(self._services)
        # Loading a router reads (and hashes) a checkpoint: keep it off the event loop.
        return engine or await asyncio.to_thread(lambda: self.engine)

    def _router_in_use(self) -> RouterSpec | PoolRouter:
        """This model's router, or the one swapped in for it (nothing is loaded)."""
        if self.models is not None:
            return self._services.pools.router_in_use(
                pool_router_spec(self.router, tuple(self.models))
            )
        return self._services.engines.router_for(self.router)

    def swap_router(self, router: str | Path | Router | PoolRouter) -> RouterSpec | PoolRouter:
        """Route with ``router`` (a bundled name, a checkpoint folder or a ``Router``) from now
        on: a retrained checkpoint replaces the router of a live model in one step, as
        :meth:`routellm_base.engine_cache.EngineCache.swap` describes.

        * A bad folder, or a ``strong_share`` the new router has no calibration for, raises
          (``UnknownRouterError``, ``CheckpointError``, ``InvalidPolicyError``) and changes
          nothing. Calls in flight finish on the old router; calls started after this returns
          use the new one.
        * The copies made from this model (``model_copy``; LangChain's ``bind_tools``,
          ``with_structured_output``), e.g. inside an agent, switch too. This model's
          ``router`` field is set to the new one; a copy's field still names the old one, and
          the copy routes with the new one.
          LangChain's LLM-cache keys include the router in use and its checkpoint id.
        * From async code: ``await asyncio.to_thread(llm.swap_router, path)`` (loading reads
          the checkpoint).

        Returns the ``router`` setting replaced, as it was given (a name, default included, a
        folder or a router instance), so ``llm.swap_router(old)`` rolls back.

        A pool swaps to a :class:`~routellm_base.pool.PoolRouter`: one that has never seen a
        model of the pool raises :class:`PoolError` and changes nothing; a budget window
        starts afresh.
        """
        if self.models is not None:
            settings = self._pool_settings()
            loaded = (
                None if isinstance(router, PoolRouter) else check_router(router, settings.pool())
            )
            replaced = self._services.pools.swap(settings, loaded or router, router)  # type: ignore[arg-type]
            self.router = router
            return replaced
        replaced = self._services.engines.swap(self._engine_settings(), router)
        self.router = router
        return replaced

    def _routing_params(self) -> dict[str, Any]:
        """The routing settings that change a decision: what an LLM cache key and an
        observability payload report (the router in use, with its checkpoint id when loaded)."""
        if self.models is not None:
            return self._pool_routing_params()
        router = self._router_in_use()
        checkpoint = router.metadata.get("checkpoint_id") if isinstance(router, Router) else None
        fields = ("threshold", "strong_share", "share_window", "routing_text_mode")
        return {
            "router": router.name if isinstance(router, Router) else str(router),
            **({"router_checkpoint_id": checkpoint} if checkpoint else {}),
            **{name: getattr(self, name) for name in fields},
            "routing_text_max_tokens": self.routing_text_max_tokens,
            "no_known_tokens_side": self.no_known_tokens_side,
            "fallback": self.fallback,
        }

    def _pool_routing_params(self) -> dict[str, Any]:
        """:meth:`_routing_params` of a pool: the router in use, the models and their prices,
        the policy's fields."""
        router = self._router_in_use()
        loaded = isinstance(router, PoolRouter)
        checkpoint = router.metadata.get("checkpoint_id") if loaded else None  # type: ignore[union-attr]
        prices = {n: (p.input_per_million, p.output_per_million) for n, p in self._prices()}
        return {
            "router": router.name if loaded else str(router),  # type: ignore[union-attr]
            **({"router_checkpoint_id": checkpoint} if checkpoint else {}),
            "models": list(self.models),
            "prices": prices,
            **{name: getattr(self, name) for name in (*_POOL_ONLY, "routing_text_mode")},
            "routing_text_max_tokens": self.routing_text_max_tokens,
            "no_known_tokens_side": self.no_known_tokens_side,
            "fallback": self.fallback,
        }

    # -- candidates and the call ----------------------------------------------------------------

    def _side_name(self, side: str) -> str:
        if self.models is not None:
            return side  # a pool's candidates are keyed by their names
        explicit = self.strong_model_name if side == "strong" else self.weak_model_name
        return explicit or self._own_model_name(self.strong if side == "strong" else self.weak)

    def _candidate_keys(self) -> tuple[str, ...]:
        """The candidates' keys in fallback order: strong, weak; or the pool's names."""
        return SIDES if self.models is None else tuple(self.models)

    def _candidates(self) -> list[Candidate[Any]]:
        """The candidates in fallback order: strong, then weak; or the pool's models in pool
        order (each as its transform bound it)."""
        bound = self._bound  # a pydantic private attribute: read once
        return [self._candidate(key, bound) for key in self._candidate_keys()]

    def _candidate(self, key: str, bound: Any = ...) -> Candidate[Any]:
        bound = self._bound if bound is ... else bound
        if bound is not None:
            return Candidate(key, self._side_name(key), *bound[key])
        if self.models is not None:
            model = self.models.get(key)
            if model is None:
                raise PoolError(f"model {key!r} is not in the pool {list(self.models)}")
            return Candidate(key, key, model)
        return Candidate(key, self._side_name(key), self.strong if key == "strong" else self.weak)

    def _checked_force(self, force: Any) -> str | None:
        """``force`` if it is ``None`` or a candidate's key; else :class:`RoutingInputError`
        (two models) or :class:`PoolError` naming the pool."""
        if self.models is None:
            return checked_force(force)
        if force is not None and force not in self.models:
            raise PoolError(
                f"{FORCE_KWARG}={force!r} is not a model of the pool {list(self.models)}"
            )
        return force

    def _dry_route(
        self, force: Any, route: dict[str, Any], method: str
    ) -> tuple[str | None, dict[str, Any] | None]:
        """A dry run's checked forced candidate and per-call settings; any other keyword
        argument of ``method`` is a ``TypeError``."""
        settings = self._take_route(route)
        if route:
            raise TypeError(f"{method}() got unexpected keyword arguments {sorted(route)}")
        return self._checked_force(force), settings

    def _pop_route(self, kwargs: dict[str, Any]) -> tuple[str | None, dict[str, Any] | None]:
        """Take a call's forced candidate and its per-call routing settings out of its
        ``kwargs``, before any candidate sees them (a pool's names are checked by its engine)."""
        route = self._take_route(kwargs)
        force = kwargs.pop(FORCE_KWARG, None)
        return (force if self.models is not None else self._checked_force(force)), route

    def _reachable(self, kwargs: dict[str, Any]) -> list[str]:
        """The candidates a call with these arguments may go to: the forced one, else a pool's
        ``allowed_models``, else all (names checked; the arguments are left in place)."""
        force = self._checked_force(kwargs.get(FORCE_KWARG))
        allowed = kwargs.get("allowed_models") if self.models is not None else None
        allowed = [allowed] if isinstance(allowed, str) else allowed
        return [force] if force else list(allowed or self._candidate_keys())

    def _models_label(self) -> str:
        """The candidates' names joined by ``|``: ``strong|weak`` names, or the pool's."""
        return "|".join(self._side_name(key) for key in self._candidate_keys())

    def _take_route(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        """Pop a call's per-call routing settings out of its ``kwargs``: a pool's
        (``allowed_models``, ``cost_weight``, ``quality_tolerance``, ``budget``, ``max_cost``),
        or two models' ``threshold`` / ``strong_share``. A setting of the other kind, or an
        unknown ``routellm_*`` argument, is a :class:`RoutingInputError` (see
        :func:`~routellm_base.pool_fields.take_route`); values are validated by the engine
        when the call routes, before any model is called."""
        return take_route(kwargs, self.models is not None)

    def _decided_call(
        self,
        turns: Sequence[ChatTurn] | str,
        force: str | None,
        route: dict[str, Any] | None = None,
    ) -> RoutedCall[Any]:
        """A call routed now (its win rate enters a share window, a pool's predictions a
        budget window); its finish goes to this model's cost tracker, log and shadow runner.
        ``route``: the call's own routing settings (see :meth:`_take_route`)."""
        services = self._services  # a pydantic private attribute: read once per call
        if self.models is None:
            engine: Any = services.engines.peek(self._engine_settings())
        else:
            engine = services.pools.peek(self._pool_settings())
        call = self._new_call(services, engine or self.engine, turns, force, route)
        call.decide()
        return call

    async def _adecided_call(
        self,
        turns: Sequence[ChatTurn] | str,
        force: str | None,
        route: dict[str, Any] | None = None,
    ) -> RoutedCall[Any]:
        """:meth:`_decided_call` with the engine built and the router run off the event loop."""
        call = self._new_call(self._services, await self._aengine(), turns, force, route)
        await call.adecide()
        return call

    def _new_call(
        self,
        services: CallServices,
        engine: RoutingEngine | PoolEngine,
        turns: Sequence[ChatTurn] | str,
        force: str | None,
        route: dict[str, Any] | None = None,
    ) -> RoutedCall[Any]:
        log = services.log.get(self.log, self.prices)
        shadow = self._shadow_runner(log) if self.shadow_rate else None
        sinks = CallSinks(services.cost_tracker(self._new_cost_tracker), log, shadow)
        candidates = self._candidates()
        return RoutedCall(
            engine,
            candidates,
            turns,
            force=force,
            fallback=self.fallback,
            sinks=sinks,
            route=route,
        )

    def _dry_run(
        self,
        turns: Sequence[ChatTurn] | str,
        force: str | None,
        route: dict[str, Any] | None = None,
    ) -> RoutingDecision:
        """How a call would be routed, calling no model; its win rate enters no share window
        (a pool's predictions no budget window)."""
        names = {c.key: c.name for c in self._candidates()}
        engine: Any = self.engine
        return engine.decide(turns, force=force, observe=False, candidates=names, **(route or {}))

    async def _adry_run(
        self,
        turns: Sequence[ChatTurn] | str,
        force: str | None,
        route: dict[str, Any] | None = None,
    ) -> RoutingDecision:
        """:meth:`_dry_run` with the router off the event loop (a worker thread)."""
        names = {c.key: c.name for c in self._candidates()}
        engine: Any = await self._aengine()
        return await engine.adecide(
            turns, force=force, observe=False, candidates=names, **(route or {})
        )

    # -- costs, log, shadow ---------------------------------------------------------------------

    def _prices(self) -> tuple[tuple[str, Any], ...]:
        """A pool's prices in pool order (validated: every model priced, no other name)."""
        return pool_prices(tuple(self.models), self.prices)

    def _new_cost_tracker(self) -> CostTracker:
        if self.models is not None:
            prices = dict(self._prices())
            pool = self._pool_settings().pool()
            return CostTracker(
                prices,
                use_default_prices=False,
                candidates=pool.names,
                baseline_model=pool.most_expensive,
            )
        prices = {n: tuple(p) if isinstance(p, list) else p for n, p in (self.prices or {}).items()}
        return CostTracker(prices, strong_model=self._side_name("strong"))

    def _cost_tracker(self) -> CostTracker:
        return self._services.cost_tracker(self._new_cost_tracker)

    def cost_report(self) -> CostReport | PoolCostReport:
        """Tokens and estimated cost per side, strong share and savings vs always-strong, over
        every call made through this model and its copies (``bind_tools``,
        ``with_structured_output``, ``model_copy``). Tokens a model does not report are counted
        with cl100k and flagged as estimated.

        A pool: a :class:`~routellm_base.costs.PoolCostReport`: totals per model (by name, in
        pool order), each model's share of calls, and savings against always using the pool's
        most expensive model (its prices on the same tokens)."""
        return self._cost_tracker().report()

    def reset_costs(self) -> None:
        """Zero the totals behind :meth:`cost_report`."""
        self._cost_tracker().reset()

    def _routing_log(self) -> RoutingLog | None:
        return self._services.log.get(self.log, self.prices)

    def _shadow_runner(self, log: RoutingLog | None = None) -> ShadowRunner | None:
        log = log or self._routing_log()
        return self._services.shadow.get(
            log, self.shadow_rate, self.shadow_seed, self.judge, self._pairwise
        )

    def _pairwise(self) -> PairwiseJudge | None:
        if self.judge is None or isinstance(self.judge, PairwiseJudge):
            return self.judge
        return PairwiseJudge(*self._judge_chat(self.judge))

    def shadow_stats(self) -> ShadowStats | None:
        """The shadow comparisons' counters (sampled, answered, judged, unparseable, failures,
        ...; see ``routellm_base.shadow.ShadowStats``); ``None`` when shadowing is off."""
        runner = self._shadow_runner()
        return None if runner is None else runner.stats()

    def log_stats(self) -> LogStats | None:
        """The routing log's counters (recorded, written, dropped, failed, pending,
        ``last_error``; see ``routellm_base.log.LogStats``), also when ``log`` was given as a
        path or URL; ``None`` without a log."""
        log = self._routing_log()
        return None if log is None else log.stats()

    def flush_log(self, timeout: float | None = None) -> bool:
        """Wait until the shadow comparisons started so far are done (and judged) and everything
        queued for the log is written; ``False`` if ``timeout`` seconds passed first."""
        return flush_shadow_and_log(self._shadow_runner(), self._routing_log(), timeout)
