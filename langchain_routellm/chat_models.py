"""`RouterChatModel`: a LangChain chat model over the engine's one call path (``RoutedCall``):
messages become turns, the chosen model's own hooks answer under the router's run, and the
answer comes back with the decision in ``response_metadata["routellm"]``."""

from __future__ import annotations

import functools
import inspect
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from typing import Any, ClassVar, NamedTuple

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.language_models.base import LangSmithParams
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, ChatMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable, RunnableConfig, ensure_config
from langchain_core.runnables.utils import ConfigurableFieldSpec
from pydantic import ConfigDict, Field, model_validator
from typing_extensions import Self

from routellm_base import ChatTurn, RoutingDecision
from routellm_base.decision import Side
from routellm_base.pool_fields import CALL_SETTINGS, PAIR_CALL_SETTINGS, lift_settings
from routellm_base.routed_call import FORCE_KWARG, Answer, Candidate, RoutedCall
from routellm_base.router_fields import MODELS_DOC, RouterFields
from routellm_base.tokens import token_ids

from . import binding

_TOOL_KWARGS = frozenset(("tools", "functions", "tool_choice", "response_format"))
"""Call kwargs that make a call a tool call or structured output: such calls are not shadowed."""

In = LanguageModelInput
Config = RunnableConfig | None
Msgs = list[BaseMessage]
Stop = list[str] | None
Sync = CallbackManagerForLLMRun | None
Async = AsyncCallbackManagerForLLMRun | None


class _Args(NamedTuple):
    """One hook call's arguments, as LangChain gave them (the forced side taken out)."""

    messages: Msgs
    stop: Stop
    run_manager: Any
    kwargs: dict[str, Any]


_POOL_SPECS = [
    ConfigurableFieldSpec(id=key, annotation=kind, name=key, description=text, default=None)
    for key, (kind, text) in CALL_SETTINGS.items()
]

_SIDE_SPECS = [
    ConfigurableFieldSpec(id=key, annotation=kind, name=key, description=text, default=None)
    for key, (kind, text) in PAIR_CALL_SETTINGS.items()
]

_ROLES = {"human": "user", "ai": "assistant", "system": "system", "tool": "tool"}
"""Engine roles of LangChain's message types (a chunk's type names its class)."""


def messages_to_turns(messages: Sequence[BaseMessage]) -> list[ChatTurn]:
    """LangChain messages -> engine turns (the engine knows nothing of LangChain)."""
    turns = []
    for message in messages:
        kind = message.type.removesuffix("MessageChunk").lower()
        role = message.role if isinstance(message, ChatMessage) else _ROLES.get(kind, kind)
        content = message.content
        turns.append(ChatTurn(role, content if isinstance(content, str) else list(content)))
    return turns


class RouterChatModel(RouterFields, BaseChatModel):
    """A chat model that sends each call to a strong or a weak chat model (RouteLLM): the call
    goes strong when the router's win rate for it (the chance that the strong model's answer
    beats the weak one's) reaches the threshold. The routing fields, ``cost_report``,
    ``swap_router``, ``shadow_stats`` and ``flush_log`` are shared with LlamaIndex's
    ``RouterLLM``: see :class:`routellm_base.router_fields.RouterFields`.

    ``RouterChatModel(strong=ChatOpenAI(model="gpt-4o"), weak=ChatOpenAI(model="gpt-4o-mini"),
    strong_share=0.3).invoke("Prove that sqrt(2) is irrational").response_metadata["routellm"]``
    is ``{"side": "strong", "win_rate": 0.71, ...}``.

    * Force a side: ``llm.invoke("hi", routellm_force="strong")``, ``llm.bind(...)``, or the
      config's ``{"metadata": {"routellm_force": "strong"}}`` (of the call or of the chain or
      agent it runs in; the legacy ``generate()`` takes the argument only).
    * This call's own policy: ``llm.invoke("hi", threshold=0.2)`` or ``strong_share=0.5``
      (through the router's calibration), also as ``config["configurable"]`` keys; taken out
      before the chosen model is called, recorded in the decision (``threshold`` used,
      ``extra["call_policy"]``); a bad value is an ``InvalidPolicyError`` before any model is
      called. An unknown ``routellm_*`` argument (a misspelling) is a ``RoutingInputError``.
    * One run per call: the chosen model's own hooks answer under the router's run (as
      ``ChatHuggingFace`` wraps its model), so tokens, usage and the decision are reported once;
      the chosen model's callbacks, tags, cache and ``output_version`` conversion are not used,
      its rate limiter is. A stream's first chunk carries the decision.
    * ``bind_tools`` / ``with_structured_output`` transform both sides at bind time (each keeps
      its native format); structured output is parsed by the side that answered.
    * An LLM cache reuses an answer only for the same messages, router settings, sides (with
      their bound tools), forced side and call options.

    **A pool of several models**: ``RouterChatModel(models={"gpt-4o": ChatOpenAI(model=
    "gpt-4o"), "gpt-4o-mini": ..., "llama": ...}, prices={"gpt-4o": (2.5, 10.0), ...},
    cost_weight=0.05)``. Its per-call settings are call arguments or ``config["configurable"]``
    keys (through a chain, an agent or ``with_config``; an argument wins); its policy, decision
    record and cost report: see :class:`~routellm_base.router_fields.RouterFields`.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True, extra="forbid")

    strong: BaseChatModel | None = Field(
        default=None, description="The strong (expensive, better) chat model (two models)."
    )
    weak: BaseChatModel | None = Field(
        default=None, description="The weak (cheap) chat model (two models)."
    )
    models: dict[str, BaseChatModel] | list[BaseChatModel] | None = Field(
        default=None, description=MODELS_DOC
    )
    stop: list[str] | None = None
    """Default stop sequences passed to the chosen model (a call's ``stop`` replaces them)."""
    temperature: float | None = None
    """Passed to the chosen model as a call argument when set (both sides must accept it)."""
    max_tokens: int | None = None
    """Passed to the chosen model as a call argument when set (both sides must accept it)."""
    streaming: bool = False
    """Whether ``invoke`` streams from the chosen model and aggregates the chunks."""

    _judge_type: ClassVar[tuple[type, str]] = (BaseChatModel, "LangChain chat model")

    @model_validator(mode="after")
    def _validate(self) -> Self:
        self._check_settings()
        return self

    # -- the integration's hooks of RouterFields, and LangChain's ---------------------------------

    def _own_model_name(self, model: Any) -> str:
        for attr in ("model_name", "model", "model_id", "deployment_name"):
            value = getattr(model, attr, None)
            if isinstance(value, str) and value:
                return value
        return type(model).__name__

    def _judge_chat(self, judge: Any) -> tuple[Callable[[list[dict[str, str]]], str], str]:
        return (lambda messages: str(judge.invoke(messages).text)), self._own_model_name(judge)

    @property
    def _llm_type(self) -> str:
        return "routellm-router"

    def get_token_ids(self, text: str) -> list[int]:
        """The token ids of ``text``: ``custom_get_token_ids(text)`` when set, else its
        ``cl100k_base`` ids (``routellm_base.tokens.token_ids``, the counter of the cost
        estimates; offline, any length, special-token look-alikes read as plain text).

        The lowest of LangChain's token-counting hooks: ``get_num_tokens`` and
        ``get_num_tokens_from_messages`` (so ``trim_messages(..., token_counter=llm)``) count
        with it. Not either side's own tokenizer: the side that will answer is not known until
        the call is routed, and cl100k is close for most chat models."""
        if self.custom_get_token_ids is not None:
            return self.custom_get_token_ids(text)
        return token_ids(text)

    @property
    def _identifying_params(self) -> dict[str, Any]:
        # With the checkpoint id: a swapped-in checkpoint never answers from the old one's cache.
        pool = self.models is not None  # a pool's names are in the routing params
        sides = {} if pool else {s: self._side_name(s) for s in ("strong", "weak")}
        call = {"stop": self.stop, "temperature": self.temperature, "max_tokens": self.max_tokens}
        return {**sides, **self._routing_params(), **call}

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> LangSmithParams:
        # Not BaseChatModel's own: its hasattr probes of missing pydantic attributes are slow.
        model = kwargs.get("model")
        name = model if isinstance(model, str) else self._models_label()
        params = LangSmithParams(ls_provider="routellm", ls_model_name=name, ls_model_type="chat")
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
        # The cache key: the router's settings, the call's kwargs (the forced side included) and
        # each side's own key with what is bound to it, so only the same call reuses an answer.
        sides = [f"{c.key}={c.model._get_llm_string(**c.bound)}" for c in self._candidates()]
        return "---".join([super()._get_llm_string(stop=stop, **kwargs), *sides])

    # BaseChatModel hands its hooks neither the config's metadata (before the cache lookup) nor
    # its configurable: the four entry points lift a forced model and the per-call settings
    # into the call's arguments (an argument wins), as _ConfigurableModel reads its config in
    # these four, so the hooks and the LLM cache key see them as call arguments.
    def invoke(self, input: In, config: Config = None, **kwargs: Any) -> AIMessage:
        return super().invoke(input, config, **self._lifted(config, kwargs))

    async def ainvoke(self, input: In, config: Config = None, **kwargs: Any) -> AIMessage:
        return await super().ainvoke(input, config, **self._lifted(config, kwargs))

    def stream(self, input: In, config: Config = None, **kwargs: Any) -> Iterator[AIMessageChunk]:
        return super().stream(input, config, **self._lifted(config, kwargs))

    def astream(
        self, input: In, config: Config = None, **kwargs: Any
    ) -> AsyncIterator[AIMessageChunk]:
        return super().astream(input, config, **self._lifted(config, kwargs))

    def _lifted(self, config: Config, kwargs: dict[str, Any]) -> dict[str, Any]:
        # The call's config merged over the one it runs under (a chain's, an agent's).
        config = ensure_config(config)
        kwargs = lift_settings(config.get("configurable"), kwargs, self.models is not None)
        forced = (config.get("metadata") or {}).get(FORCE_KWARG)
        if forced is not None and FORCE_KWARG not in kwargs:
            kwargs = {**kwargs, FORCE_KWARG: forced}
        return kwargs

    @property
    def config_specs(self) -> list[ConfigurableFieldSpec]:
        """The ``config["configurable"]`` keys a call reads (so ``config_schema()`` of a chain
        over it lists them): a pool's per-call settings, or between two models the forced side
        and the call's ``threshold`` / ``strong_share``."""
        return [*super().config_specs, *(_SIDE_SPECS if self.models is None else _POOL_SPECS)]

    # -- public API ---------------------------------------------------------------------------

    def decide(
        self, messages: LanguageModelInput, *, force: Side | str | None = None, **route: Any
    ) -> RoutingDecision:
        """How a call with these messages would be routed, without calling any model (a dry
        run: it does not enter a ``share_window``, nor a pool's budget window); the per-call
        settings as for a call (two models: ``threshold`` or ``strong_share``)."""
        turns = messages_to_turns(self._convert_input(messages).to_messages())
        return self._dry_run(turns, *self._dry_route(force, route, "decide"))

    def bind_tools(
        self,
        tools: Sequence[dict[str, Any] | type | Callable[..., Any] | Any],
        *,
        tool_choice: str | dict[str, Any] | bool | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        """A router over each candidate's own ``bind_tools(tools, ...)`` (both sides, or every
        model of a pool); ``ValueError`` names a model that cannot bind tools."""
        if tool_choice is not None:
            kwargs["tool_choice"] = tool_choice
        keys = self._candidate_keys()
        bound = {s: binding.transform(self, s, "bind_tools", tools, **kwargs) for s in keys}
        bound = {s: binding.model_and_kwargs(s, runnable) for s, runnable in bound.items()}
        return binding.routed_copy(self, bound).bind(**binding.tracing_kwargs(kwargs))

    def with_structured_output(
        self, schema: dict[str, Any] | type, *, include_raw: bool = False, **kwargs: Any
    ) -> Runnable[LanguageModelInput, dict[str, Any] | Any]:
        """A router over each candidate's own ``with_structured_output(schema, ...)``: one
        routed call, then the answering model's parser; ``ValueError`` names one that cannot.
        Its call arguments (``routellm_force``, ``threshold``, ...) reach the routed call, with
        ``include_raw=True`` too (whose output is ``{"raw", "parsed", "parsing_error"}``)."""
        return binding.structured(self, schema, include_raw, **kwargs)

    # -- the four hooks: decide, run the driver, annotate, finish ---------------------------------

    def _generate(
        self, messages: Msgs, stop: Stop = None, run_manager: Sync = None, **kwargs: Any
    ) -> ChatResult:
        args = _Args(messages, stop, run_manager, kwargs)
        call = self._decided_call(messages_to_turns(messages), *self._pop_route(kwargs))
        return self._result(call, call.run(self._attempt(args, stream=False)), args)

    async def _agenerate(
        self, messages: Msgs, stop: Stop = None, run_manager: Async = None, **kwargs: Any
    ) -> ChatResult:
        args = _Args(messages, stop, run_manager, kwargs)
        call = await self._adecided_call(messages_to_turns(messages), *self._pop_route(kwargs))
        return self._result(call, await call.arun(self._aattempt(args, stream=False)), args)

    def _stream(
        self, messages: Msgs, stop: Stop = None, run_manager: Sync = None, **kwargs: Any
    ) -> Iterator[ChatGenerationChunk]:
        args = _Args(messages, stop, run_manager, kwargs)
        call = self._decided_call(messages_to_turns(messages), *self._pop_route(kwargs))
        chunks = call.stream(self._attempt(args, stream=True))
        yield from call.tagged(chunks, _annotated_chunk, self._end_of_stream(call, args))

    async def _astream(
        self, messages: Msgs, stop: Stop = None, run_manager: Async = None, **kwargs: Any
    ) -> AsyncIterator[ChatGenerationChunk]:
        args = _Args(messages, stop, run_manager, kwargs)
        call = await self._adecided_call(messages_to_turns(messages), *self._pop_route(kwargs))
        chunks = call.astream(self._aattempt(args, stream=True))
        async for chunk in call.atagged(chunks, _annotated_chunk, self._end_of_stream(call, args)):
            yield chunk

    # -- calling a side, and its answer ---------------------------------------------------------

    def _side_call(
        self, candidate: Candidate[Any], args: _Args
    ) -> tuple[BaseChatModel, dict[str, Any]]:
        """The candidate's model and its hook's kwargs (see ``Candidate.call_options``)."""
        defaults = {"temperature": self.temperature, "max_tokens": self.max_tokens}
        call = candidate.call_options(args.kwargs, defaults)
        call["stop"] = args.stop if args.stop is not None else call.get("stop", self.stop)
        return candidate.model, call

    def _attempt(self, args: _Args, *, stream: bool) -> Callable[[Candidate[Any]], Any]:
        """Calls one candidate's own hook under the router's run: its ``_stream`` (when it
        streams), else its ``_generate`` (as chunks when streaming, as ``BaseChatModel.stream``
        does for a model that cannot)."""

        def attempt(candidate: Candidate[Any]) -> Any:
            model, call = self._side_call(candidate, args)
            if model.rate_limiter:
                model.rate_limiter.acquire(blocking=True)
            # The check BaseChatModel.stream makes: the model streams unless it cannot or is told not to.
            if stream and model._should_stream(async_api=False, **{**call, "stream": True}):
                return model._stream(args.messages, run_manager=args.run_manager, **call)
            result = model._generate(
                args.messages, **_with_run_manager(model._generate, args, call)
            )
            return _as_chunks(result) if stream else result

        return attempt

    def _aattempt(self, args: _Args, *, stream: bool) -> Callable[[Candidate[Any]], Any]:
        """Async :meth:`_attempt`."""

        async def attempt(candidate: Candidate[Any]) -> Any:
            model, call = self._side_call(candidate, args)
            if model.rate_limiter:
                await model.rate_limiter.aacquire(blocking=True)
            if stream and model._should_stream(async_api=True, **{**call, "stream": True}):
                return model._astream(args.messages, run_manager=args.run_manager, **call)
            hook = model._agenerate
            result = await hook(args.messages, **_with_run_manager(hook, args, call))
            return _aiter(_as_chunks(result)) if stream else result

        return attempt

    def _result(self, call: RoutedCall[Any], result: ChatResult, args: _Args) -> ChatResult:
        decision = call.decision
        assert decision is not None
        generations = []
        for generation in result.generations:
            message = generation.message
            if not isinstance(message, AIMessage):
                raise TypeError(
                    f"the {decision.side} model returned {type(message).__name__}, not an AIMessage"
                )
            message = message.model_copy(update=_annotated(message, decision))
            generations.append(
                ChatGeneration(message=message, generation_info=generation.generation_info)
            )
        self._finish(call, [g.message for g in generations], args)
        return ChatResult(generations=generations, llm_output=result.llm_output)

    def _finish(
        self,
        call: RoutedCall[Any],
        outputs: Sequence[BaseMessage],
        args: _Args,
        outcome: str = "complete",
    ) -> None:
        # An empty stream is an answered call with no text: accounted, as RouterLLM does.
        # Tools or structured output: nothing a pairwise answer judge can compare.
        plain = self.shadow_rate and self._bound is None and _TOOL_KWARGS.isdisjoint(args.kwargs)
        shadow = functools.partial(self._shadow_answer, args) if plain else None
        call.finish(_answer(outputs), shadow=shadow, outcome=outcome)

    def _end_of_stream(
        self, call: RoutedCall[Any], args: _Args
    ) -> Callable[[list[Any], str], None]:
        # Also a stream cut short (broken, or closed by its consumer): what it answered so far.
        return lambda chunks, outcome: self._finish(
            call, [c.message for c in chunks], args, outcome
        )

    def _shadow_answer(self, args: _Args, candidate: Candidate[Any]) -> Answer:
        model, call = self._side_call(candidate, args)
        return _answer([model.invoke(args.messages, **call)])


# -- module helpers -------------------------------------------------------------------------------


def _answer(messages: Sequence[BaseMessage]) -> Answer:
    """The answer's text and the tokens its messages report (``usage_metadata``), if any."""
    usages = [u for u in (getattr(m, "usage_metadata", None) for m in messages) if u]
    tokens = [
        sum(u[k] for u in usages) if usages else None for k in ("input_tokens", "output_tokens")
    ]
    return Answer("".join(str(m.text) for m in messages), *tokens)


def _annotated(
    message: BaseMessage, decision: RoutingDecision, metadata: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The message's ``response_metadata`` and ``additional_kwargs`` with the decision under
    ``"routellm"`` (one dict, in both) and the answering model's name."""
    record = decision.to_dict()
    metadata = message.response_metadata if metadata is None else metadata
    return {
        "response_metadata": {**metadata, "routellm": record, "model_name": decision.model},
        "additional_kwargs": {**message.additional_kwargs, "routellm": record},
    }


def _annotated_chunk(
    chunk: ChatGenerationChunk, decision: RoutingDecision, first: bool
) -> ChatGenerationChunk:
    message = chunk.message
    # Only the first chunk names the model: merge_dicts concatenates repeated strings.
    metadata = {k: v for k, v in message.response_metadata.items() if k != "model_name"}
    info = {k: v for k, v in (chunk.generation_info or {}).items() if k != "model_name"}
    update = _annotated(message, decision, metadata) if first else {"response_metadata": metadata}
    return ChatGenerationChunk(
        message=message.model_copy(update=update), generation_info=info or None
    )


def _with_run_manager(
    hook: Callable[..., Any], args: _Args, call: dict[str, Any]
) -> dict[str, Any]:
    # As BaseChatModel checks before calling its own hook: older models' hooks lack the argument.
    takes = _takes_run_manager(getattr(hook, "__func__", hook))
    return {**call, "run_manager": args.run_manager} if takes else call


@functools.cache
def _takes_run_manager(function: Callable[..., Any]) -> bool:
    return "run_manager" in inspect.signature(function).parameters


def _as_chunks(result: ChatResult) -> Iterator[ChatGenerationChunk]:
    for generation in result.generations:
        message = generation.message
        chunk = (
            message
            if isinstance(message, AIMessageChunk)
            else AIMessageChunk(**message.model_dump(exclude={"type"}))
        )
        yield ChatGenerationChunk(message=chunk, generation_info=generation.generation_info)


async def _aiter(chunks: Iterator[ChatGenerationChunk]) -> AsyncIterator[ChatGenerationChunk]:
    for chunk in chunks:
        yield chunk
