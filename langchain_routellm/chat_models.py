"""`RouterChatModel`: a LangChain chat model that routes each call to a strong or a weak model."""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

from langchain_core.callbacks import (
    AsyncCallbackManagerForLLMRun,
    CallbackManager,
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
from langchain_core.runnables import Runnable, RunnableConfig, RunnableLambda, ensure_config
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
from routellm_base.checkpoints import check_router_spec
from routellm_base.costs import CostReport, CostTracker, PriceLike
from routellm_base.decision import SIDES, Side
from routellm_base.routers.base import Router

_T = TypeVar("_T")

FORCE_KWARG = "routellm_force"
"""Call kwarg (and config ``metadata`` key) that forces a side: ``"strong"`` or ``"weak"``."""

_STREAM_CALL_KWARG = "_routellm_stream_call"
"""Private kwarg that carries the router's run id and config from ``stream()`` to ``_stream``.

``BaseChatModel.stream`` calls ``_stream`` without a run manager, so without this the chosen
model's run could not nest under the router's run. It is stripped before tracing."""

_USAGE_STASH = "routellm_usage"
"""``response_metadata`` key under which the router's *own run* reports the chosen model's usage.

The chosen model's run (nested under the router's run) already reports its usage; if the router's
run reported it again as ``usage_metadata``, every handler that sums usage (LangChain's
``UsageMetadataCallbackHandler``, LangSmith) would count it twice. ``invoke``/``stream``/``batch``
move it back into the returned message's ``usage_metadata``."""


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


@dataclass
class _StreamCall:
    """What ``stream()`` hands ``_stream``: the router run's id and config, and a slot for the
    usage of the chunk being yielded (see ``_USAGE_STASH``)."""

    run_id: uuid.UUID
    config: RunnableConfig
    usage: UsageMetadata | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def take_usage(self) -> UsageMetadata | None:
        with self.lock:
            usage, self.usage = self.usage, None
            return usage


class _EngineHolder:
    """The lazily created engine and the cost tracker, shared by a model and its ``bind_tools``
    copies."""

    def __init__(self) -> None:
        self.engine: RoutingEngine | None = None
        self.costs: CostTracker | None = None
        self.lock = threading.Lock()


class RouterChatModel(BaseChatModel):
    """A chat model that sends each call to a strong or a weak chat model (RouteLLM).

    The router scores the conversation (by default its last user turn), estimates the chance that
    the strong model's answer beats the weak one's, and calls the strong model when that win rate
    reaches the threshold. The chosen model's run nests under the router's run.

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

    Stream: the decision is on the first chunk (so a UI can show the route before any token)
    and therefore in the aggregated message.

    Tools and structured output: ``bind_tools`` / ``with_structured_output`` bind on both sides at
    bind time; a side that cannot do it raises ``ValueError`` naming that side.

    Costs: ``llm.cost_report()`` (every call made through this instance) or a
    :class:`~langchain_routellm.RouteLLMCostCallbackHandler` passed as a callback.

    Fallback (off by default): with ``fallback=True``, a call whose chosen model raises is
    retried once on the other side (see the ``fallback`` field)::

        llm = RouterChatModel(strong=..., weak=..., fallback=True)
        msg = llm.invoke("hi")
        msg.response_metadata["routellm"]["fallback_from"]    # "strong" if strong raised
        msg.response_metadata["routellm"]["fallback_reason"]  # "RateLimitError: ..."

    Tracing: the chosen model's run is a child of the router's run, tagged ``routellm:<side>``.
    Its usage is counted there, once: the router's own run reports it under
    ``response_metadata["routellm_usage"]`` instead of ``usage_metadata`` (so usage-summing
    handlers do not count it twice), and ``invoke``/``stream``/``batch`` (and async) move it back
    into the returned message's ``usage_metadata``. Only the legacy ``generate()`` API returns it
    under ``routellm_usage``.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True, extra="forbid")

    strong: BaseChatModel
    """The strong (expensive, better) chat model."""
    weak: BaseChatModel
    """The weak (cheap) chat model."""
    router: str | Path | Router = "mf"
    """A bundled router name (``"mf"``, ``"random"``), a checkpoint folder, or a
    ``routellm_base.Router`` instance."""
    threshold: float | None = None
    """Win-rate threshold in [0, 1]: calls with ``win_rate >= threshold`` go strong. Give this or
    ``strong_share``, not both."""
    strong_share: float | None = None
    """Target share of calls sent to the strong model, turned into a threshold through the
    router's calibration. With neither this nor ``threshold``, the engine's default (0.5)."""
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

    * ``invoke``/``batch`` (and async): any failure of the chosen model falls back, also with
      ``streaming=True`` (the chunks are aggregated before anything is returned).
    * ``stream``/``astream``: only a failure *before the first chunk* falls back; once a chunk
      has been yielded a partial answer cannot be replaced, so the error is re-raised.
    * A forced side (``routellm_force``) is only the first try: it falls back too. Leave
      ``fallback`` off where a call must never reach the other side.
    * ``with_structured_output`` runnables fall back the same way (on either side's error,
      parse errors included).
    * Tracing: the failed attempt is an errored child run of the router's run, the fallback a
      second child run tagged ``routellm:<side>`` and ``routellm:fallback``. Costs (
      :meth:`cost_report`, :class:`~langchain_routellm.RouteLLMCostCallbackHandler`) count the
      side that answered; the failed attempt reports no usage and is not counted.
    """

    _engine_holder: _EngineHolder = PrivateAttr(default_factory=_EngineHolder)
    _sides: dict[Side, Runnable] | None = PrivateAttr(default=None)
    """Set on ``bind_tools`` copies: the sides with the tools bound."""

    @model_validator(mode="after")
    def _validate(self) -> Self:
        # Fail at construction, not at the first call: the engine validates the policy and
        # routing-text options, so build those parts now (cheap; no router is loaded).
        RoutingPolicy(threshold=self.threshold, strong_share=self.strong_share)
        self._routing_text_options()
        check_router_spec(self.router)
        self._new_cost_tracker()  # validates the prices now
        return self

    # -- LangChain plumbing -------------------------------------------------------------------

    @property
    def _llm_type(self) -> str:
        return "routellm-router"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {
            "strong": self._side_name("strong"),
            "weak": self._side_name("weak"),
            "router": self._router_label(),
            "threshold": self.threshold,
            "strong_share": self.strong_share,
            "routing_text_mode": self.routing_text_mode,
            "routing_text_max_tokens": self.routing_text_max_tokens,
            "fallback": self.fallback,
        }

    def _get_invocation_params(
        self, stop: list[str] | None = None, **kwargs: Any
    ) -> dict[str, Any]:
        kwargs.pop(_STREAM_CALL_KWARG, None)  # an object, and private: never traced
        return super()._get_invocation_params(stop=stop, **kwargs)

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> LangSmithParams:
        kwargs.pop(_STREAM_CALL_KWARG, None)
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

    def _should_stream(self, *, async_api: bool, run_manager: Any = None, **kwargs: Any) -> bool:
        # invoke() always goes through _generate, which gets the run manager and so nests the
        # chosen model's run; the chosen model then streams to any streaming handler itself.
        if _STREAM_CALL_KWARG not in kwargs:
            return False
        return super()._should_stream(async_api=async_api, run_manager=run_manager, **kwargs)

    def _should_use_protocol_streaming(
        self, *, async_api: bool, run_manager: Any = None, **kwargs: Any
    ) -> bool:
        # Same reason as _should_stream: keep invoke() on the _generate path.
        return False

    # -- public API ---------------------------------------------------------------------------

    def invoke(
        self,
        input: LanguageModelInput,
        config: RunnableConfig | None = None,
        *,
        stop: list[str] | None = None,
        **kwargs: Any,
    ) -> AIMessage:
        return _restore_usage(super().invoke(input, config, stop=stop, **kwargs))

    async def ainvoke(
        self,
        input: LanguageModelInput,
        config: RunnableConfig | None = None,
        *,
        stop: list[str] | None = None,
        **kwargs: Any,
    ) -> AIMessage:
        return _restore_usage(await super().ainvoke(input, config, stop=stop, **kwargs))

    def stream(
        self,
        input: LanguageModelInput,
        config: RunnableConfig | None = None,
        *,
        stop: list[str] | None = None,
        **kwargs: Any,
    ) -> Iterator[AIMessageChunk]:
        config, call = _prepare_stream_call(config)
        for chunk in super().stream(
            input, config, stop=stop, **{_STREAM_CALL_KWARG: call}, **kwargs
        ):
            yield _with_usage(chunk, call)

    async def astream(
        self,
        input: LanguageModelInput,
        config: RunnableConfig | None = None,
        *,
        stop: list[str] | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[AIMessageChunk]:
        config, call = _prepare_stream_call(config)
        async for chunk in super().astream(
            input, config, stop=stop, **{_STREAM_CALL_KWARG: call}, **kwargs
        ):
            yield _with_usage(chunk, call)

    @property
    def engine(self) -> RoutingEngine:
        """The routing engine, created on first use and cached (thread-safe)."""
        holder = self._engine_holder
        if holder.engine is None:
            with holder.lock:
                if holder.engine is None:
                    holder.engine = RoutingEngine(
                        self.router,
                        threshold=self.threshold,
                        strong_share=self.strong_share,
                        routing_text_options=self._routing_text_options(),
                        no_known_tokens_side=self.no_known_tokens_side,
                    )
        return holder.engine

    def decide(self, messages: LanguageModelInput, *, force: Side | None = None) -> RoutingDecision:
        """How a call with these messages would be routed, without calling any model."""
        turns = messages_to_turns(self._convert_input(messages).to_messages())
        return self.engine.decide(
            turns,
            strong_model=self._side_name("strong"),
            weak_model=self._side_name("weak"),
            force=force,
        )

    def cost_report(self) -> CostReport:
        """Tokens and estimated cost per side, strong share and savings vs always-strong, over
        every call made through this instance (and its ``bind_tools`` copies)."""
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

    def bind_tools(
        self,
        tools: Sequence[dict[str, Any] | type | Callable[..., Any] | Any],
        *,
        tool_choice: str | dict[str, Any] | bool | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        """Bind ``tools`` on both sides now; the chosen side receives them at call time.

        Raises ``ValueError`` naming the side whose model cannot bind tools.
        """
        if tool_choice is not None:
            kwargs["tool_choice"] = tool_choice
        bound: dict[Side, Runnable] = {}
        for side in SIDES:
            model = self._side_runnable(side)
            try:
                bound[side] = model.bind_tools(tools, **kwargs)  # type: ignore[attr-defined]
            except (NotImplementedError, AttributeError) as exc:
                raise ValueError(
                    f"RouterChatModel.bind_tools: the {side} model ({type(model).__name__}) does "
                    f"not support tool calling, so calls routed to the {side} side could not use "
                    f"the tools. Give a tool-calling model as {side}=. ({exc!r})"
                ) from exc
        routed = self.model_copy()
        routed._sides = bound
        # model_copy shares private attributes, so the copy reuses this engine and cost tracker.
        return routed.bind()

    def with_structured_output(
        self,
        schema: dict[str, Any] | type,
        *,
        include_raw: bool = False,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, dict[str, Any] | Any]:
        """Each side's own ``with_structured_output`` (so each uses its native method), routed.

        Raises ``ValueError`` at bind time naming the side whose model cannot do it.
        """
        structured: dict[Side, Runnable] = {}
        for side in SIDES:
            model = self._side_runnable(side)
            try:
                structured[side] = model.with_structured_output(  # type: ignore[attr-defined]
                    schema, include_raw=include_raw, **kwargs
                )
            except (NotImplementedError, AttributeError) as exc:
                raise ValueError(
                    f"RouterChatModel.with_structured_output: the {side} model "
                    f"({type(model).__name__}) does not support structured output. ({exc!r})"
                ) from exc

        def route(input: LanguageModelInput, config: RunnableConfig) -> Any:
            decision = self._decide(self._convert_input(input).to_messages(), _force_from(config))
            return self._with_fallback(
                decision, lambda d: structured[d.side].invoke(input, _tagged(config, d))
            )[0]

        async def aroute(input: LanguageModelInput, config: RunnableConfig) -> Any:
            decision = await self._adecide(
                self._convert_input(input).to_messages(), _force_from(config)
            )

            async def attempt(d: RoutingDecision) -> Any:
                return await structured[d.side].ainvoke(input, _tagged(config, d))

            return (await self._awith_fallback(decision, attempt))[0]

        return RunnableLambda(route, afunc=aroute, name="RouterChatModel.with_structured_output")

    # -- generation -----------------------------------------------------------------------------

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        _, force = _pop_call_and_force(kwargs, run_manager)
        decision = self._decide(messages, force)
        call_kwargs = self._call_kwargs(stop, kwargs)

        def attempt(decision: RoutingDecision) -> BaseMessage:
            chosen = self._side_runnable(decision.side)
            config = _child_config(_child_of(run_manager), decision, run_manager)
            if not self.streaming:
                return chosen.invoke(messages, config, **call_kwargs)
            message: BaseMessage | None = None
            for chunk in chosen.stream(messages, config, **call_kwargs):
                message = chunk if message is None else message + chunk
            if message is None:
                raise ValueError(f"the {decision.side} model streamed no chunks")
            return message

        message, decision = self._with_fallback(decision, attempt)
        return self._result(message, decision, messages)

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        _, force = _pop_call_and_force(kwargs, run_manager)
        decision = await self._adecide(messages, force)
        call_kwargs = self._call_kwargs(stop, kwargs)

        async def attempt(decision: RoutingDecision) -> BaseMessage:
            chosen = self._side_runnable(decision.side)
            config = _child_config(_child_of(run_manager), decision, run_manager)
            if not self.streaming:
                return await chosen.ainvoke(messages, config, **call_kwargs)
            message: BaseMessage | None = None
            async for chunk in chosen.astream(messages, config, **call_kwargs):
                message = chunk if message is None else message + chunk
            if message is None:
                raise ValueError(f"the {decision.side} model streamed no chunks")
            return message

        message, decision = await self._awith_fallback(decision, attempt)
        return self._result(message, decision, messages)

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        call, force = _pop_call_and_force(kwargs, run_manager)
        decision = self._decide(messages, force)
        call_kwargs = self._call_kwargs(stop, kwargs)
        first_error: Exception | None = None
        while True:
            chosen = self._side_runnable(decision.side)
            config = _child_config(
                self._stream_child(run_manager, call, stop, kwargs), decision, run_manager
            )
            chunks: list[AIMessageChunk] = []
            try:
                for chunk in chosen.stream(messages, config, **call_kwargs):
                    chunks.append(chunk)
                    yield self._chunk(chunk, decision, first=len(chunks) == 1, call=call)
            except Exception as error:
                decision = self._stream_fallback(decision, error, chunks, first_error)
                first_error = error
                continue
            self._record_cost(decision, messages, chunks)
            return

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        call, force = _pop_call_and_force(kwargs, run_manager)
        decision = await self._adecide(messages, force)
        call_kwargs = self._call_kwargs(stop, kwargs)
        first_error: Exception | None = None
        while True:
            chosen = self._side_runnable(decision.side)
            config = _child_config(
                self._stream_child(run_manager, call, stop, kwargs), decision, run_manager
            )
            chunks: list[AIMessageChunk] = []
            try:
                async for chunk in chosen.astream(messages, config, **call_kwargs):
                    chunks.append(chunk)
                    yield self._chunk(chunk, decision, first=len(chunks) == 1, call=call)
            except Exception as error:
                decision = self._stream_fallback(decision, error, chunks, first_error)
                first_error = error
                continue
            self._record_cost(decision, messages, chunks)
            return

    # -- fallback -------------------------------------------------------------------------------

    def _stream_fallback(
        self, decision: RoutingDecision, error: Exception, chunks: list[AIMessageChunk], first_error: Exception | None
    ) -> RoutingDecision:
        """The decision to stream again with after ``error``; re-raises when a stream cannot fall
        back: fallback off, a chunk already sent (a partial answer cannot be replaced), or the
        other side failed too (raised from the first error)."""
        if first_error is not None:
            raise error from first_error
        if chunks or not self.fallback:
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

    def _router_label(self) -> str:
        return self.router.name if isinstance(self.router, Router) else str(self.router)

    def _side_name(self, side: Side) -> str:
        explicit = self.strong_model_name if side == "strong" else self.weak_model_name
        return explicit or _model_name(self.strong if side == "strong" else self.weak)

    def _side_runnable(self, side: Side) -> Runnable:
        if self._sides is not None:
            return self._sides[side]
        return self.strong if side == "strong" else self.weak

    def _decide(self, messages: Sequence[BaseMessage], force: Any) -> RoutingDecision:
        return self.engine.decide(
            messages_to_turns(messages),
            strong_model=self._side_name("strong"),
            weak_model=self._side_name("weak"),
            force=force,
        )

    async def _adecide(self, messages: Sequence[BaseMessage], force: Any) -> RoutingDecision:
        if self._engine_holder.engine is None:
            # Loading a router reads (and hashes) a checkpoint: keep it off the event loop.
            await asyncio.to_thread(lambda: self.engine)
        return await self.engine.adecide(
            messages_to_turns(messages),
            strong_model=self._side_name("strong"),
            weak_model=self._side_name("weak"),
            force=force,
        )

    def _call_kwargs(self, stop: list[str] | None, kwargs: dict[str, Any]) -> dict[str, Any]:
        call = dict(kwargs)
        stop = stop if stop is not None else self.stop
        if stop:
            call["stop"] = stop
        if self.temperature is not None:
            call.setdefault("temperature", self.temperature)
        if self.max_tokens is not None:
            call.setdefault("max_tokens", self.max_tokens)
        return call

    def _stream_child(
        self,
        run_manager: CallbackManagerForLLMRun | AsyncCallbackManagerForLLMRun | None,
        call: _StreamCall | None,
        stop: list[str] | None,
        kwargs: Mapping[str, Any],
    ) -> CallbackManager | Any:
        """The callbacks for the chosen model's run, nested under the router's run."""
        if run_manager is not None:
            return _child_of(run_manager)
        if call is None:
            return None
        # Rebuild what BaseChatModel.stream() configured for the router's run (same handlers,
        # tags and metadata), then derive the child exactly as RunManager.get_child() does.
        config = call.config
        manager = CallbackManager.configure(
            config.get("callbacks"),
            self.callbacks,
            self.verbose,
            config.get("tags"),
            self.tags,
            {
                **(config.get("metadata") or {}),
                **self._get_ls_params_with_defaults(stop=stop, **kwargs),
            },
            self.metadata,
        )
        return _child_of(manager, call.run_id)

    def _annotated_metadata(
        self, metadata: Mapping[str, Any], decision: RoutingDecision
    ) -> dict[str, Any]:
        return {**metadata, "routellm": decision.to_dict(), "model_name": decision.model}

    def _result(
        self, message: BaseMessage, decision: RoutingDecision, messages: Sequence[BaseMessage]
    ) -> ChatResult:
        if not isinstance(message, AIMessage):
            raise TypeError(
                f"the {decision.side} model returned {type(message).__name__}, not an AIMessage"
            )
        self._record_cost(decision, messages, [message])
        metadata = self._annotated_metadata(message.response_metadata, decision)
        if message.usage_metadata:
            metadata[_USAGE_STASH] = dict(message.usage_metadata)
        update: dict[str, Any] = {"response_metadata": metadata, "usage_metadata": None}
        if isinstance(message.id, str) and message.id.startswith("lc_"):
            update["id"] = None  # the chosen run's id; the router's run sets its own
        if isinstance(message, AIMessageChunk):
            # streaming=True aggregates chunks; return a plain message.
            message = AIMessage(
                content=message.content,
                additional_kwargs=message.additional_kwargs,
                tool_calls=message.tool_calls,
                invalid_tool_calls=message.invalid_tool_calls,
                id=message.id,
                name=message.name,
            )
        return ChatResult(generations=[ChatGeneration(message=message.model_copy(update=update))])

    def _chunk(
        self,
        chunk: AIMessageChunk,
        decision: RoutingDecision,
        *,
        first: bool,
        call: _StreamCall | None,
    ) -> ChatGenerationChunk:
        if not isinstance(chunk, AIMessageChunk):
            # A side without native streaming: BaseChatModel.stream yields its invoke() message.
            chunk = AIMessageChunk(**chunk.model_dump(exclude={"type"}))
        # Only the first chunk names the model: merge_dicts concatenates repeated strings.
        metadata = {k: v for k, v in chunk.response_metadata.items() if k != "model_name"}
        if first:
            metadata = self._annotated_metadata(metadata, decision)
        update: dict[str, Any] = {"response_metadata": metadata}
        if isinstance(chunk.id, str) and chunk.id.startswith("lc_"):
            update["id"] = None
        if call is not None and chunk.usage_metadata:
            # See _USAGE_STASH: the router's run must not count it again; stream() restores it.
            with call.lock:
                call.usage = chunk.usage_metadata
            update["usage_metadata"] = None
        return ChatGenerationChunk(message=chunk.model_copy(update=update))

    def _record_cost(
        self,
        decision: RoutingDecision,
        messages: Sequence[BaseMessage],
        outputs: Sequence[BaseMessage],
    ) -> None:
        if not outputs:
            return
        usage = _sum_usage(outputs)
        self._cost_tracker().record(
            decision.side,
            decision.model,
            input_tokens=usage["input_tokens"] if usage else None,
            output_tokens=usage["output_tokens"] if usage else None,
            input_text=_messages_text(messages),
            output_text="".join(m.text for m in outputs),
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


def _force_from(config: Mapping[str, Any] | None) -> Side | None:
    if not config:
        return None
    return (config.get("metadata") or {}).get(FORCE_KWARG)


def _force_from_manager(run_manager: Any) -> Side | None:
    return (getattr(run_manager, "metadata", None) or {}).get(FORCE_KWARG) if run_manager else None


def _pop_call_and_force(kwargs: dict[str, Any], run_manager: Any) -> tuple[_StreamCall | None, Side | None]:
    """Take the private stream-call record and the forced side out of a call's ``kwargs``.

    The side is forced by the call argument, else the run's metadata, else the config the
    stream was called with.
    """
    call: _StreamCall | None = kwargs.pop(_STREAM_CALL_KWARG, None)
    force = (
        kwargs.pop(FORCE_KWARG, None)
        or _force_from_manager(run_manager)
        or (_force_from(call.config) if call else None)
    )
    return call, force


def _child_of(manager: Any, run_id: uuid.UUID | None = None) -> CallbackManager | None:
    """A child callback manager, as ``ParentRunManager.get_child()`` builds one (LLM run managers
    have no ``get_child``: LangChain does not expect a chat model to call another)."""
    if manager is None:
        return None
    child = CallbackManager(handlers=[], parent_run_id=run_id or manager.run_id)
    child.set_handlers(manager.inheritable_handlers)
    child.add_tags(manager.inheritable_tags)
    child.add_metadata(manager.inheritable_metadata)
    return child


def _child_config(callbacks: Any, decision: RoutingDecision, run_manager: Any) -> RunnableConfig:
    """Config for the chosen model's call: nested callbacks, tagged with the route taken."""
    parent_id = getattr(run_manager, "run_id", None) or getattr(callbacks, "parent_run_id", None)
    info = {
        "routellm_side": decision.side,
        "routellm_model": decision.model,
        "routellm_parent_run_id": str(parent_id) if parent_id else None,
    }
    tags = [f"routellm:{decision.side}"]
    if decision.fallback_from is not None:
        info["routellm_fallback_from"] = decision.fallback_from
        tags.append("routellm:fallback")
    if callbacks is not None and hasattr(callbacks, "add_metadata"):
        # Not inherited: only the chosen model's own run is marked (cost handlers rely on it).
        callbacks.add_metadata(info, inherit=False)
        callbacks.add_tags(tags, inherit=False)
        return RunnableConfig(callbacks=callbacks)
    return RunnableConfig(callbacks=callbacks, metadata=info, tags=tags)


def _tagged(config: RunnableConfig, decision: RoutingDecision) -> RunnableConfig:
    metadata = {**(config.get("metadata") or {}), "routellm": decision.to_dict()}
    return {**config, "metadata": metadata}


def _prepare_stream_call(config: RunnableConfig | None) -> tuple[RunnableConfig, _StreamCall]:
    config = ensure_config(config)
    run_id = config.get("run_id") or uuid.uuid4()
    base = {k: v for k, v in config.items() if k != "run_id"}
    return {**config, "run_id": run_id}, _StreamCall(run_id=run_id, config=base)  # type: ignore[typeddict-item]


def _with_usage(chunk: AIMessageChunk, call: _StreamCall) -> AIMessageChunk:
    usage = call.take_usage()
    if usage is None and _USAGE_STASH not in chunk.response_metadata:
        return chunk
    if usage is None:  # stream() fell back to invoke(): restore from the stash
        return _restore_usage(chunk)  # type: ignore[return-value]
    # A copy: the original is the one BaseChatModel.stream() reports to on_llm_end.
    return chunk.model_copy(update={"usage_metadata": usage})


def _restore_usage(message: AIMessage) -> AIMessage:
    stash = message.response_metadata.get(_USAGE_STASH)
    if stash is None:
        return message
    metadata = {k: v for k, v in message.response_metadata.items() if k != _USAGE_STASH}
    return message.model_copy(update={"usage_metadata": stash, "response_metadata": metadata})
