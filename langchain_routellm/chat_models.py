"""`RouterChatModel`: a LangChain chat model that routes each call to a strong or a weak model."""

from __future__ import annotations

import asyncio
import functools
import inspect
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from langchain_core.callbacks import (
    AsyncCallbackManagerForLLMRun,
    CallbackManagerForLLMRun,
)
from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.language_models.base import LangSmithParams
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    ChatMessage,
    FunctionMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)
from langchain_core.messages.ai import UsageMetadata
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables import (
    Runnable,
    RunnableBinding,
    RunnableLambda,
    RunnableParallel,
    RunnablePassthrough,
    RunnableSequence,
    ensure_config,
)
from pydantic import ConfigDict, PrivateAttr, model_validator
from typing_extensions import Self

from routellm_base import (
    DEFAULT_NO_KNOWN_TOKENS_SIDE,
    ChatTurn,
    RoutingDecision,
    RoutingEngine,
    RoutingPolicy,
    RoutingTextFn,
    RoutingTextOptions,
)
from routellm_base.checkpoints import DEFAULT_ROUTER, check_router_spec
from routellm_base.costs import CostReport, CostTracker, PriceLike
from routellm_base.decision import SIDES, Side
from routellm_base.engine_cache import EngineCache, EngineSettings, RouterSpec
from routellm_base.judging import PairwiseJudge
from routellm_base.log_field import LazyLog
from routellm_base.routers.base import Router
from routellm_base.shadow import (
    LazyShadow,
    ShadowAnswer,
    ShadowRunner,
    ShadowStats,
    check_shadow_settings,
    flush_shadow_and_log,
)

if TYPE_CHECKING:
    from routellm_base.log import RoutingLog

_T = TypeVar("_T")

FORCE_KWARG = "routellm_force"
"""Call kwarg (and config ``metadata`` key) that forces a side: ``"strong"`` or ``"weak"``."""

_TOOL_KWARGS = ("tools", "functions", "tool_choice", "response_format")
"""Call kwargs that make a call a tool call or structured output: such calls are not shadowed."""

_TRACING_ONLY_KWARGS = ("ls_structured_output_format", "structured_output_format")
"""Kwargs a side's ``with_structured_output`` binds for tracing. ``BaseChatModel`` removes them
before its hooks run, so they are never passed to a side's hooks (a provider would send them)."""


def _model_name(model: Any) -> str:
    """The name a chat model goes by: its ``model_name``/``model``/``model_id``, else its class."""
    for attr in ("model_name", "model", "model_id", "deployment_name"):
        value = getattr(model, attr, None)
        if isinstance(value, str) and value:
            return value
    return type(model).__name__


_ROLES: tuple[tuple[type[BaseMessage], str], ...] = (
    (HumanMessage, "user"),
    (AIMessage, "assistant"),
    (SystemMessage, "system"),
    (ToolMessage, "tool"),
    (FunctionMessage, "function"),
)


def messages_to_turns(messages: Sequence[BaseMessage]) -> list[ChatTurn]:
    """LangChain messages -> engine turns (the engine knows nothing of LangChain)."""
    turns = []
    for message in messages:
        if isinstance(message, ChatMessage):
            role = message.role
        else:
            role = next((r for cls, r in _ROLES if isinstance(message, cls)), message.type)
        content = message.content
        turns.append(
            ChatTurn(role=role, content=content if isinstance(content, str) else list(content))
        )
    return turns


class _EngineHolder:
    """The lazily created engines and the cost tracker, shared by a model and its copies
    (``bind_tools``, ``with_structured_output``, ``model_copy``).

    Engines are kept per routing setting, so a ``model_copy(update={"threshold": ...})`` routes
    by its own settings, and a router swapped in (:meth:`RouterChatModel.swap_router`) routes
    for every copy. Deep copies and pickles start empty (a lock can be neither): the engine
    is rebuilt on first use from the copy's own fields, and the copy keeps its own cost totals.
    """

    def __init__(self) -> None:
        self.engines = EngineCache()
        self.costs: CostTracker | None = None
        self.log = LazyLog()
        self.shadow = LazyShadow()
        self.lock = threading.Lock()

    def __reduce__(self) -> tuple[type[_EngineHolder], tuple[()]]:
        return _EngineHolder, ()  # copy.deepcopy and pickle both rebuild an empty holder


class RouterChatModel(BaseChatModel):
    """A chat model that sends each call to a strong or a weak chat model (RouteLLM).

    The router scores the conversation (by default its last user turn), estimates the chance that
    the strong model's answer beats the weak one's, and calls the strong model when that win rate
    reaches the threshold.

    Setup:
        ```python
        from langchain_openai import ChatOpenAI
        from langchain_routellm import RouterChatModel

        llm = RouterChatModel(
            strong=ChatOpenAI(model="gpt-4o"),
            weak=ChatOpenAI(model="gpt-4o-mini"),
            strong_share=0.3,  # about 30% of calls go to gpt-4o
        )
        ```

    Invoke:
        ```python
        msg = llm.invoke("Prove that sqrt(2) is irrational")
        msg.response_metadata["routellm"]    # {"side": "strong", "win_rate": 0.71, ...}
        msg.response_metadata["model_name"]  # "gpt-4o"
        msg.usage_metadata                   # the chosen model's usage
        ```

    Force a side for one call:
        ```python
        llm.invoke("hi", routellm_force="strong")
        llm.bind(routellm_force="weak")                     # a runnable that always goes weak
        chain.invoke(x, {"metadata": {"routellm_force": "strong"}})  # from a chain's config
        ```
        The config's metadata is read from the router's run (``invoke``, ``batch``, and every
        call inside a chain or graph); a direct ``llm.stream(...)`` call is given no run by
        LangChain, so force its side with the ``routellm_force`` argument.

    Stream: the decision is on the first chunk (so a UI can show the route before any token)
    and therefore in the aggregated message.

    One run per call: the router calls the chosen model's own hooks (``_generate``, ``_stream``
    and their async forms) under the router's run, as ``ChatHuggingFace`` wraps its model. That
    one chat-model run reports each token once (``astream_events``, LangGraph's
    ``stream_mode="messages"``), its usage once, and carries the decision. The chosen model's
    own callbacks, tags and cache are therefore not used; its rate limiter is.

    Tools and structured output: ``bind_tools`` / ``with_structured_output`` transform both
    sides at bind time (each side's own method, so each keeps its native tool or JSON format) and
    return a router over the transformed sides; a side that cannot do it raises ``ValueError``
    naming that side. Structured output is parsed with the parser of the side that answered.

    Cache: with a LangChain LLM cache (``set_llm_cache`` or ``cache=``), an answer is reused only
    for the same messages, router settings, sides (with their bound tools), forced side and call
    options.

    Costs: ``llm.cost_report()`` (every call made through this instance and the runnables its
    ``bind_tools`` / ``with_structured_output`` return) or a
    :class:`~langchain_routellm.RouteLLMCostCallbackHandler` passed as a callback (in the call's
    config or in ``callbacks=``).

    Copies: ``copy.deepcopy`` and ``pickle`` work before and after the first call; a copy
    rebuilds its engine on first use and keeps its own cost totals.

    Routing log (off by default): ``log="routellm.db"`` (a SQLite file), a SQLAlchemy URL or a
    :class:`routellm_base.log.RoutingLog` records every answered call once, after the answer,
    off the call's path (see the ``log`` field).

    Holding the strong share (off by default): ``share_window=1000`` keeps the share of calls
    sent strong at ``strong_share`` on *this* traffic, with the threshold at the quantile of
    the last 1000 win rates (see the ``share_window`` field).

    A new router for a live model: ``llm.swap_router("runs/retrained")`` loads it and replaces
    the router at once for this model and the runnables made from it (see :meth:`swap_router`).

    Learning from traffic (off by default): with a log, ``shadow_rate=0.02`` also sends 2% of
    calls to the other side after the answer is returned, and ``judge=`` (any chat model) judges
    the two answers in the background; ``response_metadata["routellm"]["call_id"]`` is the key
    for feedback (``RoutingLog.feedback``). See the ``shadow_rate`` and ``judge`` fields::

        llm = RouterChatModel(strong=..., weak=..., log="routellm.db", shadow_rate=0.02,
                              judge=ChatOpenAI(model="gpt-4o", temperature=0))

    Fallback (off by default): with ``fallback=True``, a call whose chosen model raises is
    retried once on the other side (see the ``fallback`` field)::

        llm = RouterChatModel(strong=..., weak=..., fallback=True)
        msg = llm.invoke("hi")
        msg.response_metadata["routellm"]["fallback_from"]    # "strong" if strong raised
        msg.response_metadata["routellm"]["fallback_reason"]  # "RateLimitError: ..."
    """

    model_config = ConfigDict(arbitrary_types_allowed=True, extra="forbid")

    strong: BaseChatModel
    """The strong (expensive, better) chat model."""
    weak: BaseChatModel
    """The weak (cheap) chat model."""
    router: str | Path | Router = DEFAULT_ROUTER
    """A bundled router name (``"task_experts"``, the default; ``"mf"``; ``"random"``), a
    checkpoint folder, or a ``routellm_base.Router`` instance."""
    threshold: float | None = None
    """Win-rate threshold in [0, 1]: calls with ``win_rate >= threshold`` go strong. Give this or
    ``strong_share``, not both."""
    strong_share: float | None = None
    """Target share of calls sent to the strong model, turned into a threshold through the
    router's calibration. With neither this nor ``threshold``, the engine's default (0.5)."""
    share_window: int | None = None
    """Hold ``strong_share`` on live traffic (off: ``None``). A number of calls: the threshold
    is the ``1 - strong_share`` quantile of the win rates of the last ``share_window`` routed
    calls (forced and rule-routed calls have none and stay out), so the realised strong share
    follows the target when the traffic scores higher or lower than the router's calibration
    set. Until 100 calls (or ``share_window``, if smaller) have been routed, the calibration's
    threshold applies. Each decision records the threshold it used and, in
    ``extra["share_window"]``, where it came from (``threshold_from``: ``"window"`` or
    ``"calibration"``), the window's ``size`` and ``fill``. The window is shared by this
    model's ``bind_tools`` / ``with_structured_output`` runnables and kept per process. Needs
    ``strong_share`` (or the default share), not ``threshold``."""
    routing_text_mode: Literal["last_user", "conversation"] = "last_user"
    """What the router scores: the last user turn (the paper's choice) or the whole conversation,
    newest turns first, within ``routing_text_max_tokens``."""
    routing_text_max_tokens: int | None = None
    """Token budget (cl100k) of the routing text; ``None``: whole last user turn, or 1024 tokens
    in ``conversation`` mode."""
    routing_text_fn: RoutingTextFn | None = None
    """A hook choosing the routing text: gets the conversation as ``routellm_base.ChatTurn``
    records, returns the text to score (``routing_text_max_tokens`` still applies) or ``None``
    for the default rule. In a RAG chain, route on the question rather than the filled-in
    prompt, e.g. ``routellm_base.TemplateField([rag_template_text], "question")``."""
    no_known_tokens_side: Literal["strong", "weak"] | None = DEFAULT_NO_KNOWN_TOKENS_SIDE
    """Side of a call whose routing text has no token the router's embedder knows (a script
    outside its vocabulary, emoji only), which the router cannot score; ``None`` scores it
    anyway. The decision records ``no_known_tokens``."""
    strong_model_name: str | None = None
    """Name reported for the strong model (``response_metadata["model_name"]``, cost prices);
    default: the model's ``model_name``/``model``/``model_id``, else its class name."""
    weak_model_name: str | None = None
    """Name reported for the weak model; default as for ``strong_model_name``."""
    prices: dict[str, Any] | None = None
    """USD per 1M input/output tokens per model name for :meth:`cost_report`, e.g.
    ``{"gpt-4o": (2.5, 10.0)}``; merged over ``routellm_base.costs.DEFAULT_PRICES``."""
    stop: list[str] | None = None
    """Default stop sequences passed to the chosen model (a call's ``stop`` replaces them)."""
    temperature: float | None = None
    """When set, passed to the chosen model as the ``temperature`` call argument. Leave unset
    (and configure the sides) unless both sides accept it at call time."""
    max_tokens: int | None = None
    """When set, passed to the chosen model as the ``max_tokens`` call argument. Leave unset
    (and configure the sides) unless both sides accept it at call time."""
    streaming: bool = False
    """Whether ``invoke`` streams from the chosen model and aggregates the chunks."""
    fallback: bool = False
    """Retry on the other side when the chosen model raises (off by default).

    When ``True`` and the chosen model raises an ``Exception`` (not ``KeyboardInterrupt`` or
    ``asyncio.CancelledError``), the same messages and call arguments go to the other side once.
    The decision in ``response_metadata["routellm"]`` then names the side that answered, with
    ``fallback_from`` (the side that failed) and ``fallback_reason`` (``"<Type>: <message>"``).
    If the other side raises too, its error is raised with the first as ``__cause__``.

    * ``invoke``/``batch`` (and async): any failure of the chosen model falls back.
    * Streams (``stream``/``astream``, and ``invoke`` when it streams: ``streaming=True`` or a
      streaming consumer such as ``astream_events`` or LangGraph): only a failure *before the
      first chunk* falls back; once a chunk has been delivered a partial answer cannot be
      replaced, so the error is re-raised.
    * A forced side (``routellm_force``) is only the first try: it falls back too. Leave
      ``fallback`` off where a call must never reach the other side.
    * ``bind_tools`` / ``with_structured_output`` runnables fall back the same way (a model
      error; a parse error of structured output is the caller's, as for any chat model).
    * Tracing and costs: the call is one run; the failed attempt reports no usage and is not
      counted (:meth:`cost_report`, :class:`~langchain_routellm.RouteLLMCostCallbackHandler`).
    """

    log: Any = None
    """Where to record every answered call: a SQLite file path, a SQLAlchemy URL (e.g.
    ``"postgresql+psycopg://user@host/db"``) or a :class:`routellm_base.log.RoutingLog` (for
    ``store_prompts=True``, a ``redact`` hook, ...). ``None``: no log. A path or URL opens one
    shared log per process. Recorded after the answer (a stream: after its last chunk) with the
    decision, both model names, tokens and cost as :meth:`cost_report` counted them, and the
    latency; prompt text only as the log's ``store_prompts`` says. A failing store never fails
    the call (see ``RoutingLog.stats()``). Needs the ``log`` extra."""
    shadow_rate: float = 0.0
    """Share of answered calls (in [0, 1]) also sent to the *other* side, for a shadow
    comparison in the ``log`` (which it needs). The shadow call starts after the user's answer
    is complete (a stream: after its last chunk), runs in a background thread through the other
    side's ``invoke`` with the same messages and call arguments (also for async calls, so it
    never runs on the caller's event loop), and never delays or fails the call: its failure is
    recorded in the comparison. Not shadowed: calls that fell back, and calls with tools or
    structured output (a judge compares answers, not tool choices). Answers are stored only as
    the log's ``store_prompts`` says. :meth:`flush_log` waits for running shadow calls."""
    shadow_seed: int | None = None
    """Seeds the shadow sampling (``None``: unseeded), for reproducible runs."""
    judge: Any = None
    """A chat model (usually the strong one, at temperature 0) that judges each shadow
    comparison in the background, with ``routellm judge``'s pairwise logic (both answer orders;
    disagreement is a tie; an unreadable verdict is counted in the log's ``unparseable``, never
    guessed), or a ``routellm_base.judging.PairwiseJudge``. The judge sees the prompt and both
    answers. ``None``: leave comparisons unjudged (judge later with ``routellm judge --log``).
    Needs ``shadow_rate > 0``."""

    _engine_holder: _EngineHolder = PrivateAttr(default_factory=_EngineHolder)
    _bound: dict[Side, tuple[BaseChatModel, dict[str, Any]]] | None = PrivateAttr(default=None)
    """Set on ``bind_tools`` / ``with_structured_output`` copies: per side, the model a side's
    transform bound and the kwargs it bound (tools, response format, ...)."""

    @model_validator(mode="after")
    def _validate(self) -> Self:
        # Fail at construction, not at the first call: the engine validates the policy and
        # routing-text options, so build those parts now (cheap; no router is loaded).
        RoutingPolicy(
            threshold=self.threshold, strong_share=self.strong_share, share_window=self.share_window
        )
        self._routing_text_options()
        check_router_spec(self.router)
        self._new_cost_tracker()  # validates the prices now
        if self.log is not None:
            self._routing_log()  # a bad path or URL, or a missing driver, fails here
        check_shadow_settings(
            self.shadow_rate, self.log, self.judge, BaseChatModel, "LangChain chat model"
        )
        return self

    # -- LangChain plumbing -------------------------------------------------------------------

    @property
    def _llm_type(self) -> str:
        return "routellm-router"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        router = self._router_in_use()
        # A loaded router's checkpoint id is part of the LLM-cache key, so that a swapped-in
        # checkpoint (even in a reused folder) never answers from the old router's entries.
        checkpoint = router.metadata.get("checkpoint_id") if isinstance(router, Router) else None
        return {
            "strong": self._side_name("strong"),
            "weak": self._side_name("weak"),
            "router": self._router_label(),
            **({"router_checkpoint_id": checkpoint} if checkpoint else {}),
            "threshold": self.threshold,
            "strong_share": self.strong_share,
            "share_window": self.share_window,
            "routing_text_mode": self.routing_text_mode,
            "routing_text_max_tokens": self.routing_text_max_tokens,
            "stop": self.stop,
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
            "fallback": self.fallback,
        }

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> LangSmithParams:
        params = LangSmithParams(
            ls_provider="routellm",
            ls_model_name=kwargs["model"]
            if isinstance(kwargs.get("model"), str)
            else f"{self._side_name('strong')}|{self._side_name('weak')}",
            ls_model_type="chat",
        )
        temperature = kwargs.get("temperature", self.temperature)
        if isinstance(temperature, int | float):
            params["ls_temperature"] = temperature
        max_tokens = kwargs.get("max_tokens", self.max_tokens)
        if isinstance(max_tokens, int):
            params["ls_max_tokens"] = max_tokens
        if stop or self.stop:
            params["ls_stop"] = stop or self.stop
        return params

    def _get_llm_string(self, stop: list[str] | None = None, **kwargs: Any) -> str:
        # The cache key: the router's settings and the call's kwargs (the forced side included,
        # see _generate_with_cache), plus each side's own key with what is bound to it (tools,
        # response format), so that an answer is reused only by the same call to the same pair.
        sides = [
            f"{side}={model._get_llm_string(**bound)}"
            for side, (model, bound) in ((s, self._side(s)) for s in SIDES)
        ]
        return "---".join([super()._get_llm_string(stop=stop, **kwargs), *sides])

    def _generate_with_cache(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        # LangChain keys its cache on the call's kwargs only; a side forced through the config's
        # metadata changes the answer too, so it becomes a kwarg before the cache is looked up.
        return super()._generate_with_cache(
            messages, stop, run_manager, **_with_forced_side(kwargs, run_manager)
        )

    async def _agenerate_with_cache(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        return await super()._agenerate_with_cache(
            messages, stop, run_manager, **_with_forced_side(kwargs, run_manager)
        )

    # -- public API ---------------------------------------------------------------------------

    @property
    def engine(self) -> RoutingEngine:
        """The routing engine, created on first use and cached (thread-safe). Its ``router``
        is the router in use (after :meth:`swap_router`, the one swapped in)."""
        return self._engine_holder.engines.get(self._engine_settings())

    def _engine_settings(self) -> EngineSettings:
        return EngineSettings(
            self.router,
            self.threshold,
            self.strong_share,
            self._routing_text_options(),
            self.no_known_tokens_side,
            self.share_window,
        )

    def swap_router(self, router: str | Path | Router) -> RouterSpec:
        """Route with ``router`` (a bundled name, a checkpoint folder or a ``Router``) from now
        on: a retrained checkpoint replaces the router of a live model in one step, as
        :meth:`routellm_base.engine_cache.EngineCache.swap` describes.

        * A bad folder, or a ``strong_share`` the new router has no calibration for, raises
          (``UnknownRouterError``, ``CheckpointError``, ``InvalidPolicyError``) and changes
          nothing. Calls in flight finish on the old router; calls started after this returns
          use the new one.
        * The runnables made from this model (``bind_tools``, ``with_structured_output``,
          ``model_copy``), e.g. inside an agent, switch too; ``router`` is set to the new one.
          LLM-cache keys include the router in use and its checkpoint id.
        * From async code: ``await asyncio.to_thread(llm.swap_router, path)`` (loading reads
          the checkpoint).

        Returns the router replaced, so ``llm.swap_router(old)`` rolls back.
        """
        replaced = self._engine_holder.engines.swap(self._engine_settings(), router)
        self.router = router
        return replaced

    def decide(self, messages: LanguageModelInput, *, force: Side | None = None) -> RoutingDecision:
        """How a call with these messages would be routed, without calling any model (a dry
        run: it does not enter a ``share_window``)."""
        return self.engine.decide(
            messages_to_turns(self._convert_input(messages).to_messages()),
            strong_model=self._side_name("strong"),
            weak_model=self._side_name("weak"),
            force=force,
            observe=False,
        )

    def cost_report(self) -> CostReport:
        """Tokens and estimated cost per side, strong share and savings vs always-strong, over
        every call made through this instance (and its ``bind_tools`` /
        ``with_structured_output`` runnables)."""
        return self._cost_tracker().report()

    def reset_costs(self) -> None:
        """Zero the totals behind :meth:`cost_report`."""
        self._cost_tracker().reset()

    def _new_cost_tracker(self) -> CostTracker:
        return CostTracker(
            {name: _as_price_like(p) for name, p in (self.prices or {}).items()},
            strong_model=self._side_name("strong"),
        )

    def _cost_tracker(self) -> CostTracker:
        holder = self._engine_holder
        if holder.costs is None:
            with holder.lock:
                if holder.costs is None:
                    holder.costs = self._new_cost_tracker()
        return holder.costs

    def _routing_log(self) -> RoutingLog | None:
        return self._engine_holder.log.get(self.log)

    def _shadow_runner(self) -> ShadowRunner | None:
        return self._engine_holder.shadow.get(
            self._routing_log(),
            self.shadow_rate,
            self.shadow_seed,
            self.judge,
            self._pairwise_judge,
        )

    def _pairwise_judge(self) -> PairwiseJudge | None:
        judge = self.judge
        if judge is None or isinstance(judge, PairwiseJudge):
            return judge

        def chat(messages: list[dict[str, str]]) -> str:
            return str(judge.invoke(messages).text)

        return PairwiseJudge(chat, _model_name(judge))

    def shadow_stats(self) -> ShadowStats | None:
        """The shadow comparisons' counters (sampled, answered, judged, unparseable, failures,
        ...; see ``routellm_base.shadow.ShadowStats``); ``None`` when shadowing is off."""
        runner = self._shadow_runner()
        return None if runner is None else runner.stats()

    def flush_log(self, timeout: float | None = None) -> bool:
        """Wait until the shadow comparisons started so far are done (and judged) and everything
        queued for the log is written; ``False`` if ``timeout`` seconds passed first."""
        return flush_shadow_and_log(self._shadow_runner(), self._routing_log(), timeout)

    def bind_tools(
        self,
        tools: Sequence[dict[str, Any] | type | Callable[..., Any] | Any],
        *,
        tool_choice: str | dict[str, Any] | bool | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        """A router over both sides' ``bind_tools(tools, ...)``: the chosen side gets its own
        binding (its own tool format) at call time.

        Raises ``ValueError`` naming the side whose model cannot bind tools.
        """
        if tool_choice is not None:
            kwargs["tool_choice"] = tool_choice
        bound = {
            side: _model_and_kwargs(side, self._transform(side, "bind_tools", tools, **kwargs))
            for side in SIDES
        }
        return self._routed_copy(bound).bind(**_tracing_kwargs(kwargs))

    def with_structured_output(
        self,
        schema: dict[str, Any] | type,
        *,
        include_raw: bool = False,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, dict[str, Any] | Any]:
        """A router over both sides' ``with_structured_output(schema, ...)`` (so each uses its
        native method): one routed model call, then the answering side's own parser.

        The result takes ``routellm_force`` and the other call arguments as ``invoke`` does.
        Raises ``ValueError`` at bind time naming the side whose model cannot do it.
        """
        bound: dict[Side, tuple[BaseChatModel, dict[str, Any]]] = {}
        parsers: dict[Side, Runnable] = {}
        tracing: dict[str, Any] = {}
        for side in SIDES:
            structured = self._transform(
                side, "with_structured_output", schema, include_raw=include_raw, **kwargs
            )
            binding, parsers[side] = _split_structured(side, structured)
            bound[side] = _model_and_kwargs(side, binding)
            # The structured-output format for the router's own run (the strong side's method).
            tracing = tracing or _tracing_kwargs(_bound_kwargs(binding))
        routed = self._routed_copy(bound).bind(**tracing)

        def parser_of_the_answering_side(message: AIMessage) -> Runnable:
            return parsers[message.response_metadata["routellm"]["side"]]

        parse = RunnableLambda(parser_of_the_answering_side, name="parse_as_answering_side")
        return (routed | parse).with_config(run_name="RouterChatModel.with_structured_output")

    def _transform(self, side: Side, method: str, /, *args: Any, **kwargs: Any) -> Runnable:
        model, _ = self._side(side)
        try:
            return getattr(model, method)(*args, **kwargs)
        except (NotImplementedError, AttributeError) as exc:
            raise ValueError(
                f"RouterChatModel.{method}: the {side} model ({type(model).__name__}) does not "
                f"support it, so calls routed to the {side} side could not either. Give a "
                f"model that does as {side}=. ({exc!r})"
            ) from exc

    def _routed_copy(self, bound: dict[Side, tuple[BaseChatModel, dict[str, Any]]]) -> Self:
        # model_copy shares private attributes, so the copy reuses this engine and cost tracker.
        routed = self.model_copy()
        routed._bound = bound
        return routed

    # -- generation -----------------------------------------------------------------------------

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        started = time.perf_counter()
        decision = self._decide(messages, _pop_forced_side(kwargs, run_manager))

        def attempt(d: RoutingDecision) -> ChatResult:
            model, call = self._side_call(d.side, stop, kwargs)
            if model.rate_limiter:
                model.rate_limiter.acquire(blocking=True)
            if _takes_run_manager(model._generate):
                return model._generate(messages, run_manager=run_manager, **call)
            return model._generate(messages, **call)

        result, decision = self._with_fallback(decision, attempt)
        return self._result(result, decision, messages, started, (stop, kwargs))

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        started = time.perf_counter()
        decision = await self._adecide(messages, _pop_forced_side(kwargs, run_manager))

        async def attempt(d: RoutingDecision) -> ChatResult:
            model, call = self._side_call(d.side, stop, kwargs)
            if model.rate_limiter:
                await model.rate_limiter.aacquire(blocking=True)
            if _takes_run_manager(model._agenerate):
                return await model._agenerate(messages, run_manager=run_manager, **call)
            return await model._agenerate(messages, **call)

        result, decision = await self._awith_fallback(decision, attempt)
        return self._result(result, decision, messages, started, (stop, kwargs))

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        started = time.perf_counter()
        decision = self._decide(messages, _pop_forced_side(kwargs, run_manager))
        first_error: Exception | None = None
        while True:
            outputs: list[BaseMessage] = []
            try:
                for chunk in self._side_chunks(decision.side, messages, stop, run_manager, kwargs):
                    outputs.append(chunk.message)
                    yield self._chunk(chunk, decision, first=len(outputs) == 1)
            except Exception as error:
                decision = self._stream_fallback(decision, error, outputs, first_error)
                first_error = error
                continue
            self._record_call(decision, messages, outputs, started, (stop, kwargs))
            return

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        started = time.perf_counter()
        decision = await self._adecide(messages, _pop_forced_side(kwargs, run_manager))
        first_error: Exception | None = None
        while True:
            outputs: list[BaseMessage] = []
            try:
                async for chunk in self._aside_chunks(
                    decision.side, messages, stop, run_manager, kwargs
                ):
                    outputs.append(chunk.message)
                    yield self._chunk(chunk, decision, first=len(outputs) == 1)
            except Exception as error:
                decision = self._stream_fallback(decision, error, outputs, first_error)
                first_error = error
                continue
            self._record_call(decision, messages, outputs, started, (stop, kwargs))
            return

    def _side_chunks(
        self,
        side: Side,
        messages: list[BaseMessage],
        stop: list[str] | None,
        run_manager: CallbackManagerForLLMRun | None,
        kwargs: Mapping[str, Any],
    ) -> Iterator[ChatGenerationChunk]:
        """The chosen side's chunks: its ``_stream``, or its whole answer as one chunk when it
        cannot stream (as ``BaseChatModel.stream`` does for such a model)."""
        model, call = self._side_call(side, stop, kwargs)
        if model.rate_limiter:
            model.rate_limiter.acquire(blocking=True)
        if _streams(model, call, async_api=False):
            yield from model._stream(messages, run_manager=run_manager, **call)
            return
        if _takes_run_manager(model._generate):
            result = model._generate(messages, run_manager=run_manager, **call)
        else:
            result = model._generate(messages, **call)
        yield from _as_chunks(result)

    async def _aside_chunks(
        self,
        side: Side,
        messages: list[BaseMessage],
        stop: list[str] | None,
        run_manager: AsyncCallbackManagerForLLMRun | None,
        kwargs: Mapping[str, Any],
    ) -> AsyncIterator[ChatGenerationChunk]:
        """Async :meth:`_side_chunks`."""
        model, call = self._side_call(side, stop, kwargs)
        if model.rate_limiter:
            await model.rate_limiter.aacquire(blocking=True)
        if _streams(model, call, async_api=True):
            async for chunk in model._astream(messages, run_manager=run_manager, **call):
                yield chunk
            return
        if _takes_run_manager(model._agenerate):
            result = await model._agenerate(messages, run_manager=run_manager, **call)
        else:
            result = await model._agenerate(messages, **call)
        for chunk in _as_chunks(result):
            yield chunk

    # -- fallback -------------------------------------------------------------------------------

    def _stream_fallback(
        self,
        decision: RoutingDecision,
        error: Exception,
        outputs: list[BaseMessage],
        first_error: Exception | None,
    ) -> RoutingDecision:
        """The decision to stream again with after ``error``; re-raises when a stream cannot fall
        back: fallback off, a chunk already sent (a partial answer cannot be replaced), or the
        other side failed too (raised from the first error)."""
        if first_error is not None:
            raise error from first_error
        if outputs or not self.fallback:
            raise error
        return self._fell_back(decision, error)

    def _fell_back(self, decision: RoutingDecision, error: BaseException) -> RoutingDecision:
        other: Side = "weak" if decision.side == "strong" else "strong"
        return decision.fell_back(self._side_name(other), error)

    def _with_fallback(
        self, decision: RoutingDecision, attempt: Callable[[RoutingDecision], _T]
    ) -> tuple[_T, RoutingDecision]:
        """``attempt(decision)``; if it raises and ``fallback`` is on, once more on the other
        side. Returns the result and the decision of the side that answered."""
        try:
            return attempt(decision), decision
        except Exception as error:
            if not self.fallback:
                raise
            first = error
        decision = self._fell_back(decision, first)
        try:
            return attempt(decision), decision
        except Exception as second:
            raise second from first

    async def _awith_fallback(
        self, decision: RoutingDecision, attempt: Callable[[RoutingDecision], Awaitable[_T]]
    ) -> tuple[_T, RoutingDecision]:
        """Async :meth:`_with_fallback`."""
        try:
            return await attempt(decision), decision
        except Exception as error:
            if not self.fallback:
                raise
            first = error
        decision = self._fell_back(decision, first)
        try:
            return await attempt(decision), decision
        except Exception as second:
            raise second from first

    # -- helpers --------------------------------------------------------------------------------

    def _routing_text_options(self) -> RoutingTextOptions:
        return RoutingTextOptions(
            mode=self.routing_text_mode,
            max_tokens=self.routing_text_max_tokens,
            fn=self.routing_text_fn,
        )

    def _router_in_use(self) -> RouterSpec:
        """This model's router, or the one swapped in for it (nothing is loaded)."""
        return self._engine_holder.engines.router_for(self.router)

    def _router_label(self) -> str:
        router = self._router_in_use()
        return router.name if isinstance(router, Router) else str(router)

    def _side_name(self, side: Side) -> str:
        explicit = self.strong_model_name if side == "strong" else self.weak_model_name
        return explicit or _model_name(self.strong if side == "strong" else self.weak)

    def _side(self, side: Side) -> tuple[BaseChatModel, dict[str, Any]]:
        """The side's model and the kwargs bound to it (by ``bind_tools`` and the like)."""
        if self._bound is not None:
            return self._bound[side]
        return (self.strong if side == "strong" else self.weak), {}

    def _side_call(
        self, side: Side, stop: list[str] | None, kwargs: Mapping[str, Any]
    ) -> tuple[BaseChatModel, dict[str, Any]]:
        """The side's model and the kwargs of its hook call: bound kwargs, then the call's
        (which win, as for ``RunnableBinding``), then the router's defaults."""
        model, bound = self._side(side)
        call = {**bound, **kwargs}
        if self.temperature is not None:
            call.setdefault("temperature", self.temperature)
        if self.max_tokens is not None:
            call.setdefault("max_tokens", self.max_tokens)
        call["stop"] = stop if stop is not None else self.stop
        return model, call

    def _decide(self, messages: Sequence[BaseMessage], force: Any) -> RoutingDecision:
        return self.engine.decide(
            messages_to_turns(messages),
            strong_model=self._side_name("strong"),
            weak_model=self._side_name("weak"),
            force=force,
        )

    async def _adecide(self, messages: Sequence[BaseMessage], force: Any) -> RoutingDecision:
        engine = self._engine_holder.engines.peek(self._engine_settings())
        if engine is None:
            # Loading a router reads (and hashes) a checkpoint: keep it off the event loop.
            engine = await asyncio.to_thread(lambda: self.engine)
        return await engine.adecide(
            messages_to_turns(messages),
            strong_model=self._side_name("strong"),
            weak_model=self._side_name("weak"),
            force=force,
        )

    def _annotated_metadata(
        self, metadata: Mapping[str, Any], decision: RoutingDecision
    ) -> dict[str, Any]:
        return {**metadata, "routellm": decision.to_dict(), "model_name": decision.model}

    def _result(
        self,
        result: ChatResult,
        decision: RoutingDecision,
        messages: Sequence[BaseMessage],
        started: float,
        call: tuple[list[str] | None, Mapping[str, Any]],
    ) -> ChatResult:
        generations = []
        for generation in result.generations:
            message = generation.message
            if not isinstance(message, AIMessage):
                raise TypeError(
                    f"the {decision.side} model returned {type(message).__name__}, not an AIMessage"
                )
            metadata = self._annotated_metadata(message.response_metadata, decision)
            generations.append(
                ChatGeneration(
                    message=message.model_copy(update={"response_metadata": metadata}),
                    generation_info=generation.generation_info,
                )
            )
        self._record_call(decision, messages, [g.message for g in generations], started, call)
        return ChatResult(generations=generations, llm_output=result.llm_output)

    def _chunk(
        self, chunk: ChatGenerationChunk, decision: RoutingDecision, *, first: bool
    ) -> ChatGenerationChunk:
        message = chunk.message
        # Only the first chunk names the model: merge_dicts concatenates repeated strings.
        metadata = {k: v for k, v in message.response_metadata.items() if k != "model_name"}
        info = {k: v for k, v in (chunk.generation_info or {}).items() if k != "model_name"}
        if first:
            metadata = self._annotated_metadata(metadata, decision)
        return ChatGenerationChunk(
            message=message.model_copy(update={"response_metadata": metadata}),
            generation_info=info or None,
        )

    def _record_call(
        self,
        decision: RoutingDecision,
        messages: Sequence[BaseMessage],
        outputs: Sequence[BaseMessage],
        started: float,
        call: tuple[list[str] | None, Mapping[str, Any]],
    ) -> None:
        """Count the answered call's cost, queue it for the routing log (if any) and offer it
        for a shadow comparison. ``call`` is the call's ``(stop, kwargs)``."""
        if not outputs:
            return
        usage = _sum_usage(outputs)
        cost = self._cost_tracker().record(
            decision.side,
            decision.model,
            input_tokens=usage["input_tokens"] if usage else None,
            output_tokens=usage["output_tokens"] if usage else None,
            input_text=_messages_text(messages),
            output_text="".join(m.text for m in outputs),
        )
        log = self._routing_log()
        if log is not None:
            log.record(
                decision,
                conversation=messages_to_turns(messages),
                strong_model=self._side_name("strong"),
                weak_model=self._side_name("weak"),
                checkpoint_id=decision.checkpoint_id,
                input_tokens=cost.input_tokens,
                output_tokens=cost.output_tokens,
                tokens_estimated=cost.estimated,
                cost_usd=cost.cost,
                latency_seconds=time.perf_counter() - started,
            )
        if self.shadow_rate:
            self._offer_shadow(decision, messages, outputs, call)

    def _offer_shadow(
        self,
        decision: RoutingDecision,
        messages: Sequence[BaseMessage],
        outputs: Sequence[BaseMessage],
        call: tuple[list[str] | None, Mapping[str, Any]],
    ) -> None:
        stop, kwargs = call
        if self._bound is not None or any(k in kwargs for k in _TOOL_KWARGS):
            return  # tools or structured output: nothing a pairwise answer judge can compare
        runner = self._shadow_runner()
        if runner is None:
            return
        other: Side = "weak" if decision.side == "strong" else "strong"
        model, other_call = self._side_call(other, stop, kwargs)
        history = list(messages)

        def call_other() -> ShadowAnswer:
            message = model.invoke(history, **other_call)
            usage = getattr(message, "usage_metadata", None)
            return ShadowAnswer(
                str(message.text),
                usage["input_tokens"] if usage else None,
                usage["output_tokens"] if usage else None,
            )

        runner.submit(
            decision,
            conversation=messages_to_turns(messages),
            answer="".join(str(m.text) for m in outputs),
            call_other=call_other,
            strong_model=self._side_name("strong"),
            weak_model=self._side_name("weak"),
        )


# -- module helpers -------------------------------------------------------------------------------


def _messages_text(messages: Sequence[BaseMessage]) -> str:
    return "\n".join(m.text for m in messages)


def _sum_usage(messages: Sequence[BaseMessage]) -> UsageMetadata | None:
    total: UsageMetadata | None = None
    for m in messages:
        usage = getattr(m, "usage_metadata", None)
        if usage:
            total = (
                usage
                if total is None
                else UsageMetadata(
                    input_tokens=total["input_tokens"] + usage["input_tokens"],
                    output_tokens=total["output_tokens"] + usage["output_tokens"],
                    total_tokens=total["total_tokens"] + usage["total_tokens"],
                )
            )
    return total


def _as_price_like(value: Any) -> PriceLike:
    return tuple(value) if isinstance(value, list) else value  # type: ignore[return-value]


def _forced_side_in(metadata: Mapping[str, Any] | None) -> Any:
    return (metadata or {}).get(FORCE_KWARG)


def _with_forced_side(kwargs: dict[str, Any], run_manager: Any) -> dict[str, Any]:
    """``kwargs`` with the side forced by the run's metadata, unless the call forced one."""
    if kwargs.get(FORCE_KWARG) is not None:
        return kwargs
    forced = _forced_side_in(getattr(run_manager, "metadata", None))
    return kwargs if forced is None else {**kwargs, FORCE_KWARG: forced}


def _pop_forced_side(kwargs: dict[str, Any], run_manager: Any) -> Any:
    """Take the forced side out of a call's ``kwargs``: the call argument, else the run's
    metadata, else (a stream, which LangChain starts without handing over its run) the config of
    the runnable the call runs in."""
    forced = kwargs.pop(FORCE_KWARG, None)
    if forced is None:
        forced = _forced_side_in(getattr(run_manager, "metadata", None))
    if forced is None and run_manager is None:
        forced = _forced_side_in(ensure_config().get("metadata"))
    return forced


def _takes_run_manager(hook: Callable[..., Any]) -> bool:
    # As BaseChatModel checks before calling its own hook: older models' hooks lack the argument.
    return _function_takes_run_manager(getattr(hook, "__func__", hook))


@functools.cache
def _function_takes_run_manager(function: Callable[..., Any]) -> bool:
    return "run_manager" in inspect.signature(function).parameters


def _streams(model: BaseChatModel, call: Mapping[str, Any], *, async_api: bool) -> bool:
    """Whether ``model`` streams for this call: it implements a stream hook (async may use the
    sync one) and its ``disable_streaming`` does not turn streaming off."""
    cls = type(model)
    implemented = cls._stream is not BaseChatModel._stream or (
        async_api and cls._astream is not BaseChatModel._astream
    )
    disabled = model.disable_streaming is True or (
        model.disable_streaming == "tool_calling" and bool(call.get("tools"))
    )
    return implemented and not disabled


def _as_chunks(result: ChatResult) -> Iterator[ChatGenerationChunk]:
    for generation in result.generations:
        message = generation.message
        chunk = (
            message
            if isinstance(message, AIMessageChunk)
            else AIMessageChunk(**message.model_dump(exclude={"type"}))
        )
        yield ChatGenerationChunk(message=chunk, generation_info=generation.generation_info)


def _model_and_kwargs(side: Side, runnable: Runnable) -> tuple[BaseChatModel, dict[str, Any]]:
    """The chat model under a side's ``bind_tools``-style binding and the kwargs bound to it
    (outer bindings win, as ``RunnableBinding`` merges them), tracing-only kwargs left out."""
    kwargs = _bound_kwargs(runnable)
    while isinstance(runnable, RunnableBinding):
        runnable = runnable.bound
    if not isinstance(runnable, BaseChatModel):
        raise ValueError(
            f"RouterChatModel: the {side} model's transform returned "
            f"{type(runnable).__name__}, not a chat model with bound arguments, so the router "
            "cannot call it as one of its sides."
        )
    return runnable, {k: v for k, v in kwargs.items() if k not in _TRACING_ONLY_KWARGS}


def _bound_kwargs(runnable: Runnable) -> dict[str, Any]:
    """The kwargs of a chain of ``RunnableBinding``s, outer ones winning."""
    kwargs: dict[str, Any] = {}
    while isinstance(runnable, RunnableBinding):
        kwargs = {**runnable.kwargs, **kwargs}
        runnable = runnable.bound
    return kwargs


def _tracing_kwargs(kwargs: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in kwargs.items() if k in _TRACING_ONLY_KWARGS}


def _split_structured(side: Side, structured: Runnable) -> tuple[Runnable, Runnable]:
    """A side's ``with_structured_output`` runnable as (model binding, parser).

    LangChain's chat models build it as ``binding | parser`` or, with ``include_raw=True``,
    ``RunnableMap(raw=binding) | parser``; the parser then reads ``{"raw": message}``.
    """
    if isinstance(structured, RunnableSequence):
        first, rest = structured.first, structured.steps[1:]
        raw = isinstance(first, RunnableParallel) and list(first.steps__) == ["raw"]
        binding = first.steps__["raw"] if raw else first  # type: ignore[attr-defined]
        if isinstance(binding, RunnableBinding):
            parser = rest[0] if len(rest) == 1 else RunnableSequence(*rest)
            if raw:
                parser = RunnableParallel(raw=RunnablePassthrough()) | parser
            return binding, parser
    raise ValueError(
        f"RouterChatModel.with_structured_output: the {side} model's structured output "
        f"({type(structured).__name__}) is not a model binding followed by a parser, so the "
        "router cannot route it."
    )
