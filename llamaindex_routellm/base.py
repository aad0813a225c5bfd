"""``RouterLLM``: a LlamaIndex LLM that sends each call to a strong or a weak LLM.

Every call is routed once by :class:`routellm_base.RoutingEngine` and then handed, unchanged, to
the chosen LLM's own method of the same name (``chat`` -> ``chat``, ``astream_complete`` ->
``astream_complete``, ``chat_with_tools`` -> ``chat_with_tools``), so roles, content blocks,
tools and provider-specific formatting stay the chosen model's business.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Generator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from llama_index.core.base.llms.types import (
    ChatMessage,
    ChatResponse,
    ChatResponseAsyncGen,
    ChatResponseGen,
    CompletionResponse,
    CompletionResponseAsyncGen,
    CompletionResponseGen,
    LLMMetadata,
    MessageRole,
)
from llama_index.core.bridge.pydantic import Field, PrivateAttr, field_serializer
from llama_index.core.callbacks import CallbackManager
from llama_index.core.callbacks.base import global_stack_trace
from llama_index.core.instrumentation import get_dispatcher
from llama_index.core.instrumentation.span import active_span_id
from llama_index.core.llms.callbacks import llm_chat_callback, llm_completion_callback
from llama_index.core.llms.function_calling import FunctionCallingLLM
from llama_index.core.llms.llm import LLM, ToolSelection

from routellm_base import (
    DEFAULT_NO_KNOWN_TOKENS_SIDE,
    RoutingDecision,
    RoutingEngine,
    RoutingPolicy,
    RoutingTextFn,
    RoutingTextOptions,
    Side,
)
from routellm_base.checkpoints import DEFAULT_ROUTER, check_router_spec
from routellm_base.engine_cache import EngineCache, EngineSettings, RouterSpec
from routellm_base.errors import RouteLLMError, RoutingInputError
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

from .messages import to_chat_turns, tool_call_messages
from .queries import stock_query_field

if TYPE_CHECKING:
    from llama_index.core.tools.types import BaseTool

    from routellm_base.log import RoutingLog

dispatcher = get_dispatcher(__name__)

_T = TypeVar("_T")

ROUTELLM_KEY = "routellm"
"""Key of the routing decision (a dict) in every response's ``additional_kwargs``."""
FORCE_KWARG = "routellm_force"
"""Per-call keyword: ``"strong"`` or ``"weak"`` skips the router and uses that side."""
DECISION_KWARG = "routellm_decision"
"""Per-call keyword: reuse a decision already made (``_prepare_chat_with_tools`` sets it)."""


class SideNotFunctionCallingError(RouteLLMError, ValueError):
    """A tool call was routed (or could be routed) to a side that cannot call functions."""


def can_call_functions(llm: LLM) -> bool:
    """True for a :class:`FunctionCallingLLM` whose metadata says it calls functions."""
    return isinstance(llm, FunctionCallingLLM) and bool(llm.metadata.is_function_calling_model)


def _min_known(a: int, b: int) -> int:
    # LlamaIndex uses -1 for "unknown" (e.g. MockLLM's num_output): ignore unknown values so
    # one side's sentinel does not become the router's budget.
    known = [v for v in (a, b) if v > 0]
    return min(known) if known else a


class _EngineCache:
    """The lazily built engines (per routing setting, following :meth:`RouterLLM.swap_router`)
    and the log, shared by a model and its ``model_copy`` copies.

    Deep copies and pickles start empty (a lock can be neither); the engine is then rebuilt on
    first use from the copy's own fields.
    """

    def __init__(self) -> None:
        self.engines = EngineCache()
        self.log = LazyLog()
        self.shadow = LazyShadow()

    def __deepcopy__(self, memo: dict[int, Any]) -> _EngineCache:
        return _EngineCache()

    def __getstate__(self) -> dict[str, Any]:
        return {}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__()  # type: ignore[misc]


class _Nesting:
    """Where a call's side events nest, captured inside the router's call.

    A fallback attempt is restored to it: LlamaIndex's ``as_trace`` leaves an exception event
    on the callback trace stack when the failed side raises (the fallback's LLM event would nest
    under it), and a stream's fallback starts after the router's span has closed (its span would
    have no parent)."""

    def __init__(self) -> None:
        self.trace_stack = global_stack_trace.get()
        self.span_id = active_span_id.get()

    @contextmanager
    def restored(self) -> Generator[None, None, None]:
        global_stack_trace.set(self.trace_stack)
        token = active_span_id.set(self.span_id)
        try:
            yield
        finally:
            active_span_id.reset(token)


class RouterLLM(FunctionCallingLLM):
    """An LLM that routes every call to ``strong`` or ``weak`` with a learned router (RouteLLM).

    Works anywhere an LLM does (``Settings.llm``, query engines, chat engines) and, when both
    sides are function-calling LLMs, in function-calling agents such as ``FunctionAgent``.

    * Every call is routed once, then handed to the chosen side's method of the same name with
      the caller's messages and keyword arguments (nothing is flattened into a prompt).
    * Each response carries the decision as a dict in ``response.additional_kwargs["routellm"]``
      (side, model, win_rate, threshold, router, ...); every chunk of a stream carries it.
      :func:`llamaindex_routellm.record_decisions` collects them from inside query engines.
    * Per call, ``routellm_force="strong"`` or ``"weak"`` skips the router and uses that side;
      the keyword is removed before the chosen LLM is called. :meth:`route` returns the
      decision without calling either LLM.
    * Tool calls (``chat_with_tools`` and friends) need function-calling LLMs on both sides (or
      on the forced side); ``get_tool_calls_from_response`` is answered by the side that
      produced the response.
    * ``metadata`` reports the smaller context window and output budget of the two sides and
      ``is_chat_model=True`` (each side's own ``chat`` formats prompts its own way).
    * Each call is one LLM event on the router's callback manager (so a
      ``TokenCountingHandler`` there counts it once). The sides are the caller's objects and
      are never modified: each keeps its own callback manager, and a handler given to a side
      sees that side's calls. Instrumentation spans of the side nest under the router's.
    * In a query engine the router scores the user's query, not the prompt filled with
      retrieved context: ``route_on_query`` (on by default) reads ``{query_str}`` back out of
      LlamaIndex's stock QA/refine/summarise templates; ``routing_text_fn`` takes any hook
      (e.g. :func:`llamaindex_routellm.query_field` over your own template).
    * A prompt whose routing text has no token the router's embedder knows (e.g. Thai, or
      emoji only) goes to ``no_known_tokens_side`` (default strong); the decision records
      ``no_known_tokens``. A conversation with no user message routes on its system text.
    * ``fallback=True`` (off by default) retries a call whose chosen side raised on the other
      side; the decision then records ``fallback_from`` and ``fallback_reason`` (see the field).
    * Learning from traffic (off by default): with a ``log``, ``shadow_rate=0.02`` also sends 2%
      of calls to the other side after the answer is returned, and ``judge=`` (any LLM) judges
      the two answers in the background; ``additional_kwargs["routellm"]["call_id"]`` is the
      key for feedback (``RoutingLog.feedback``). See those fields.

    Example::

        from llama_index.core import Settings
        from llama_index.llms.openai import OpenAI
        from llamaindex_routellm import RouterLLM

        Settings.llm = RouterLLM(strong=OpenAI(model="gpt-4o"), weak=OpenAI(model="gpt-4o-mini"),
                                 strong_share=0.3)
    """

    strong: LLM = Field(
        description="The strong (capable, costly) LLM; calls the router deems hard go here."
    )
    weak: LLM = Field(description="The weak (cheap) LLM; every other call goes here.")
    router: str | Path | Router = Field(
        default=DEFAULT_ROUTER,
        description=(
            "The router: a bundled name ('task_experts', the default; 'mf'; 'random'), a checkpoint folder, "
            "or a routellm_base.Router instance."
        ),
    )
    threshold: float | None = Field(
        default=None,
        description="Route strong when the router's strong-win rate is >= this (0..1). "
        "Give this or strong_share, not both.",
    )
    strong_share: float | None = Field(
        default=None,
        description="Target share of calls sent strong (0..1), turned into a threshold by the "
        "router's calibration. Default 0.5 when neither this nor threshold is given.",
    )
    routing_text_mode: Literal["last_user", "conversation"] = Field(
        default="last_user",
        description="What the router reads: the last user turn ('last_user', as in the paper) "
        "or the recent conversation ('conversation').",
    )
    routing_text_max_tokens: int | None = Field(
        default=None,
        description="Token budget (cl100k_base) of the routing text; None keeps the whole last "
        "user turn ('conversation' mode then uses 1024).",
    )
    routing_text_fn: RoutingTextFn | None = Field(
        default=None,
        exclude=True,
        description="A hook choosing the routing text: gets the conversation as "
        "routellm_base.ChatTurn records, returns the text to score, or None for the default "
        "rule (routing_text_max_tokens still applies). Takes precedence over route_on_query.",
    )
    route_on_query: bool = Field(
        default=True,
        description="When a user or system message is one of LlamaIndex's stock templates "
        "with a {query_str} (text QA, refine, tree summarise, ...) filled in, route on the "
        "query alone instead of the query plus retrieved context. Off: score the whole message.",
    )
    no_known_tokens_side: Literal["strong", "weak"] | None = Field(
        default=DEFAULT_NO_KNOWN_TOKENS_SIDE,
        description="Side of a call whose routing text has no token the router's embedder "
        "knows (a script outside its vocabulary, emoji only): the router cannot score it. "
        "None scores it anyway (every such call then gets the same win rate).",
    )
    strong_model_name: str | None = Field(
        default=None,
        description="Name reported for the strong side (decisions, metadata.model_name); "
        "default: its metadata.model_name, else its class name.",
    )
    weak_model_name: str | None = Field(
        default=None,
        description="Name reported for the weak side; default as for strong_model_name.",
    )
    fallback: bool = Field(
        default=False,
        description=(
            "Retry on the other side when the chosen side raises (off by default). When True "
            "and the chosen LLM raises an Exception (not KeyboardInterrupt or "
            "asyncio.CancelledError), the same call goes once to the other side; the decision "
            "in additional_kwargs['routellm'] then names the side that answered, with "
            "fallback_from (the side that failed) and fallback_reason ('<Type>: <message>'). "
            "If the other side raises too, its error is raised with the first as __cause__. "
            "chat/achat/complete/acomplete and *_with_tools fall back on any failure; streams "
            "(stream_*/astream_*) only when the chosen side fails before its first chunk, since "
            "a partial answer cannot be replaced (later errors are re-raised). A forced side "
            "(routellm_force) is only the first try and falls back too. A call pinned with "
            "routellm_decision (a request _prepare_chat_with_tools built in one side's format) "
            "does not fall back. Tool calls fall back only to a function-calling side."
        ),
    )

    share_window: int | None = Field(
        default=None,
        description="Hold strong_share on live traffic (off: None). A number of calls: the "
        "threshold is the (1 - strong_share) quantile of the win rates of the last share_window "
        "routed calls (forced and rule-routed calls have none and stay out), so the realised "
        "strong share follows the target when the traffic scores higher or lower than the "
        "router's calibration set. Until 100 calls (or share_window, if smaller) have been "
        "routed, the calibration's threshold applies. Each decision records the threshold it "
        "used and, in extra['share_window'], where it came from (threshold_from: 'window' or "
        "'calibration'), the window's size and fill. Kept per process; copies made with "
        "model_copy share it. Needs strong_share (or the default share), not threshold.",
    )

    log: Any = Field(
        default=None,
        exclude=True,
        description="Where to record every answered call: a SQLite file path, a SQLAlchemy URL "
        "(e.g. 'postgresql+psycopg://user@host/db') or a routellm_base.log.RoutingLog (for "
        "store_prompts=True, a redact hook, ...); None: no log. A path or URL opens one shared "
        "log per process. Recorded once after the answer (a stream: when consumed to its end) "
        "with the decision, both model names, the tokens the side reports (prompt_tokens/"
        "completion_tokens, as LlamaIndex's OpenAI LLM does; else unknown), their cost at the "
        "log's prices, and the latency. A failing store never fails the call "
        "(RoutingLog.stats() counts it). Needs the 'log' extra.",
    )
    shadow_rate: float = Field(
        default=0.0,
        description="Share of answered calls (0..1) also sent to the *other* side for a shadow "
        "comparison in the log (which it needs). The shadow call starts after the user's answer "
        "is complete (a stream: when consumed to its end), runs in a background thread through "
        "the other side's chat (or complete, for completion calls) with the same arguments "
        "(also for async calls, so it never runs on the caller's event loop), and never delays "
        "or fails the call: its failure is recorded in the comparison. Not shadowed: calls "
        "that fell back, and tool calls (a judge compares answers, not tool choices). Answers "
        "are stored only as the log's store_prompts says. flush_log() waits for running "
        "shadow calls.",
    )
    shadow_seed: int | None = Field(
        default=None,
        description="Seeds the shadow sampling (None: unseeded), for reproducible runs.",
    )
    judge: Any = Field(
        default=None,
        exclude=True,
        description="An LLM (usually the strong one, at temperature 0) that judges each shadow "
        "comparison in the background with routellm judge's pairwise logic (both answer "
        "orders; disagreement is a tie; an unreadable verdict is counted in the log's "
        "unparseable, never guessed), or a routellm_base.judging.PairwiseJudge. The judge sees "
        "the prompt and both answers. None: leave comparisons unjudged (judge later with "
        "routellm judge --log). Needs shadow_rate > 0.",
    )

    _engine_cache: _EngineCache = PrivateAttr(default_factory=_EngineCache)

    def __init__(
        self,
        strong: LLM,
        weak: LLM,
        router: str | Path | Router = DEFAULT_ROUTER,
        threshold: float | None = None,
        strong_share: float | None = None,
        routing_text_mode: Literal["last_user", "conversation"] = "last_user",
        routing_text_max_tokens: int | None = None,
        strong_model_name: str | None = None,
        weak_model_name: str | None = None,
        fallback: bool = False,
        callback_manager: CallbackManager | None = None,
        routing_text_fn: RoutingTextFn | None = None,
        route_on_query: bool = True,
        no_known_tokens_side: Literal["strong", "weak"] | None = DEFAULT_NO_KNOWN_TOKENS_SIDE,
        log: Any = None,
        share_window: int | None = None,
        shadow_rate: float = 0.0,
        shadow_seed: int | None = None,
        judge: Any = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            strong=strong,
            weak=weak,
            router=router,
            threshold=threshold,
            strong_share=strong_share,
            routing_text_mode=routing_text_mode,
            routing_text_max_tokens=routing_text_max_tokens,
            strong_model_name=strong_model_name,
            weak_model_name=weak_model_name,
            fallback=fallback,
            callback_manager=callback_manager or CallbackManager([]),
            routing_text_fn=routing_text_fn,
            route_on_query=route_on_query,
            no_known_tokens_side=no_known_tokens_side,
            log=log,
            share_window=share_window,
            shadow_rate=shadow_rate,
            shadow_seed=shadow_seed,
            judge=judge,
            **kwargs,
        )
        # Check the cheap settings now so that a bad threshold fails here, not at the first
        # call; the router itself (maybe an embedder) loads lazily on first use.
        self._policy()
        self._text_options()
        check_router_spec(self.router)  # a typo fails here, not at the first call
        self._routing_log()  # so does a bad log path or URL, or a missing driver
        check_shadow_settings(self.shadow_rate, self.log, self.judge, LLM, "LlamaIndex LLM")

    @classmethod
    def class_name(cls) -> str:
        return "RouterLLM"

    def __deepcopy__(self, memo: dict[int, Any] | None = None) -> RouterLLM:
        # Router instances are shared, not copied: they are thread-safe and may hold an
        # embedder (its weights and cache are worth sharing; its lock cannot be copied). A copied
        # RandomRouter would also fork the random sequence instead of continuing it.
        memo = {} if memo is None else memo
        if isinstance(self.router, Router):
            memo.setdefault(id(self.router), self.router)
        return super().__deepcopy__(memo)

    @field_serializer("router")
    def _serialize_router(self, router: str | Path | Router) -> str:
        return router.name if isinstance(router, Router) else str(router)

    # -- metadata -------------------------------------------------------------------------

    @property
    def metadata(self) -> LLMMetadata:
        """The tighter limits of the two sides, so prompts fit whichever side is chosen."""
        strong, weak = self.strong.metadata, self.weak.metadata
        return LLMMetadata(
            context_window=_min_known(strong.context_window, weak.context_window),
            num_output=_min_known(strong.num_output, weak.num_output),
            # Always a chat model: predict() then hands messages to the chosen side's chat(),
            # which applies that side's own prompt format (a completion-only side turns the
            # messages into its own prompt). As a "completion model" the router would format
            # prompts with *its* completion_to_prompt and the side's would be skipped.
            is_chat_model=True,
            is_function_calling_model=can_call_functions(self.strong)
            and can_call_functions(self.weak),
            model_name=f"routellm({self._side_name('strong')}|{self._side_name('weak')})",
            system_role=strong.system_role
            if strong.system_role == weak.system_role
            else MessageRole.SYSTEM,
        )

    def to_payload(self) -> dict[str, Any]:
        """Observability payload: the router's settings and both sides' own payloads."""
        # Built here rather than via super(): older llama-index-core has no LLM.to_payload.
        return {
            "class_name": self.class_name(),
            **self.metadata.model_dump(),
            "router": self._serialize_router(self._router_in_use()),
            "threshold": self.threshold,
            "strong_share": self.strong_share,
            "share_window": self.share_window,
            "no_known_tokens_side": self.no_known_tokens_side,
            "route_on_query": self.route_on_query,
            "fallback": self.fallback,
            "strong": _payload(self.strong),
            "weak": _payload(self.weak),
        }

    # -- routing --------------------------------------------------------------------------

    def _policy(self) -> RoutingPolicy:
        return RoutingPolicy(
            threshold=self.threshold,
            strong_share=self.strong_share,
            no_known_tokens_side=self.no_known_tokens_side,
            share_window=self.share_window,
        )

    def _text_options(self) -> RoutingTextOptions:
        fn = self.routing_text_fn
        if fn is None and self.route_on_query:
            fn = stock_query_field()
        return RoutingTextOptions(
            mode=self.routing_text_mode, max_tokens=self.routing_text_max_tokens, fn=fn
        )

    def _engine_settings(self) -> EngineSettings:
        # Fields may be reassigned after construction; the settings make the engine follow.
        return EngineSettings(
            self.router,
            self.threshold,
            self.strong_share,
            self._text_options(),
            self.no_known_tokens_side,
            self.share_window,
        )

    @property
    def engine(self) -> RoutingEngine:
        """The routing engine, built on first use (thread-safe) and cached. Its ``router`` is
        the router in use (after :meth:`swap_router`, the one swapped in)."""
        return self._engine_cache.engines.get(self._engine_settings())

    async def _aengine(self) -> RoutingEngine:
        engine = self._engine_cache.engines.peek(self._engine_settings())
        if engine is not None:
            return engine
        # Loading a router may load an embedder: keep it off the event loop.
        return await asyncio.to_thread(lambda: self.engine)

    def _router_in_use(self) -> RouterSpec:
        """This model's router, or the one swapped in for it (nothing is loaded)."""
        return self._engine_cache.engines.router_for(self.router)

    def swap_router(self, router: str | Path | Router) -> RouterSpec:
        """Route with ``router`` (a bundled name, a checkpoint folder or a ``Router``) from now
        on: a retrained checkpoint replaces the router of a live LLM in one step, as
        :meth:`routellm_base.engine_cache.EngineCache.swap` describes.

        * A bad folder, or a ``strong_share`` the new router has no calibration for, raises
          (``UnknownRouterError``, ``CheckpointError``, ``InvalidPolicyError``) and changes
          nothing. Calls in flight finish on the old router; calls started after this returns
          use the new one.
        * Copies made with ``model_copy`` switch too; ``router`` is set to the new one.
        * From async code: ``await asyncio.to_thread(llm.swap_router, path)`` (loading reads
          the checkpoint).

        Returns the router replaced, so ``llm.swap_router(old)`` rolls back.
        """
        replaced = self._engine_cache.engines.swap(self._engine_settings(), router)
        self.router = router
        return replaced

    def _routing_log(self) -> RoutingLog | None:
        return self._engine_cache.log.get(self.log)

    def _shadow_runner(self) -> ShadowRunner | None:
        return self._engine_cache.shadow.get(
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
            turns = [ChatMessage(role=m["role"], content=m["content"]) for m in messages]
            return judge.chat(turns).message.content or ""

        return PairwiseJudge(chat, judge.metadata.model_name)

    def shadow_stats(self) -> ShadowStats | None:
        """The shadow comparisons' counters (sampled, answered, judged, unparseable, failures,
        ...; see ``routellm_base.shadow.ShadowStats``); ``None`` when shadowing is off."""
        runner = self._shadow_runner()
        return None if runner is None else runner.stats()

    def flush_log(self, timeout: float | None = None) -> bool:
        """Wait until the shadow comparisons started so far are done (and judged) and everything
        queued for the log is written; ``False`` if ``timeout`` seconds passed first."""
        return flush_shadow_and_log(self._shadow_runner(), self._routing_log(), timeout)

    def _shadow_call(
        self, kwargs: Mapping[str, Any], call: Callable[[LLM], Any]
    ) -> Callable[[LLM], Any] | None:
        """``call`` (a side's plain ``chat`` or ``complete``) when this call may be shadowed:
        shadowing is on and the call is not pinned to a decision a tool request was built for."""
        return call if self.shadow_rate and DECISION_KWARG not in kwargs else None

    def _record(
        self,
        decision: RoutingDecision,
        conversation: Any,
        usage: Any,
        started: float,
        shadow: Callable[[LLM], Any] | None = None,
    ) -> None:
        """Queue an answered call for the routing log (if any) and offer it for a shadow
        comparison (``shadow`` makes the call on a side); ``usage`` is the response (or last
        chunk) whose ``additional_kwargs`` may carry token counts."""
        log = self._routing_log()
        if log is None:
            return
        tokens = getattr(usage, "additional_kwargs", None) or {}
        input_tokens, output_tokens = tokens.get("prompt_tokens"), tokens.get("completion_tokens")
        known = isinstance(input_tokens, int) and isinstance(output_tokens, int)
        log.record(
            decision,
            conversation=_conversation(conversation),
            strong_model=self._side_name("strong"),
            weak_model=self._side_name("weak"),
            checkpoint_id=decision.checkpoint_id,
            input_tokens=input_tokens if known else None,
            output_tokens=output_tokens if known else None,
            tokens_estimated=False if known else None,
            latency_seconds=time.perf_counter() - started,
        )
        if shadow is not None:
            self._offer_shadow(decision, conversation, usage, shadow)

    def _offer_shadow(
        self,
        decision: RoutingDecision,
        conversation: Any,
        answer: Any,
        shadow: Callable[[LLM], Any],
    ) -> None:
        runner = self._shadow_runner()
        if runner is None:
            return
        other = self._llm_for("weak" if decision.side == "strong" else "strong")

        def call_other() -> ShadowAnswer:
            response = shadow(other)
            tokens = getattr(response, "additional_kwargs", None) or {}
            input_tokens, output_tokens = (
                tokens.get("prompt_tokens"),
                tokens.get("completion_tokens"),
            )
            known = isinstance(input_tokens, int) and isinstance(output_tokens, int)
            return ShadowAnswer(
                _response_text(response),
                input_tokens if known else None,
                output_tokens if known else None,
            )

        runner.submit(
            decision,
            conversation=_conversation(conversation),
            answer=_response_text(answer),
            call_other=call_other,
            **self._model_names(),
        )

    def _side_name(self, side: Side) -> str:
        explicit = self.strong_model_name if side == "strong" else self.weak_model_name
        if explicit:
            return explicit
        llm = self.strong if side == "strong" else self.weak
        name = llm.metadata.model_name
        # LlamaIndex's default model_name is "unknown": the class name says more.
        return name if name and name != "unknown" else llm.class_name()

    def _model_names(self) -> dict[str, str]:
        return {"strong_model": self._side_name("strong"), "weak_model": self._side_name("weak")}

    def route(
        self, messages: str | Sequence[ChatMessage], *, force: Side | None = None
    ) -> RoutingDecision:
        """The decision for a prompt or a conversation, without calling either LLM (a dry run:
        it does not enter a ``share_window``)."""
        return self._route(messages, force, observe=False)

    async def aroute(
        self, messages: str | Sequence[ChatMessage], *, force: Side | None = None
    ) -> RoutingDecision:
        """:meth:`route` without blocking the event loop (the router runs in a worker thread)."""
        return await self._aroute(messages, force, observe=False)

    def _route(
        self, messages: str | Sequence[ChatMessage], force: Side | None, *, observe: bool
    ) -> RoutingDecision:
        return self.engine.decide(
            _conversation(messages), force=force, observe=observe, **self._model_names()
        )

    async def _aroute(
        self, messages: str | Sequence[ChatMessage], force: Side | None, *, observe: bool
    ) -> RoutingDecision:
        engine = await self._aengine()
        return await engine.adecide(
            _conversation(messages), force=force, observe=observe, **self._model_names()
        )

    @staticmethod
    def _pop_routing(kwargs: dict[str, Any]) -> tuple[Side | None, RoutingDecision | None]:
        force = kwargs.pop(FORCE_KWARG, None)
        prior = kwargs.pop(DECISION_KWARG, None)
        if force is not None and force not in ("strong", "weak"):
            raise RoutingInputError(f"{FORCE_KWARG} must be 'strong' or 'weak', got {force!r}")
        return force, _as_decision(prior)

    def _decide(
        self, messages: str | Sequence[ChatMessage], kwargs: dict[str, Any]
    ) -> tuple[RoutingDecision, bool]:
        """The decision, and whether the call may fall back (not when pinned to a prior one)."""
        force, prior = self._pop_routing(kwargs)
        if prior is not None:
            return prior, False
        return self._route(messages, force, observe=True), self.fallback

    async def _adecide(
        self, messages: str | Sequence[ChatMessage], kwargs: dict[str, Any]
    ) -> tuple[RoutingDecision, bool]:
        force, prior = self._pop_routing(kwargs)
        if prior is not None:
            return prior, False
        return await self._aroute(messages, force, observe=True), self.fallback

    # -- fallback -------------------------------------------------------------------------

    def _fell_back(self, decision: RoutingDecision, error: BaseException) -> RoutingDecision:
        other: Side = "weak" if decision.side == "strong" else "strong"
        return decision.fell_back(self._side_name(other), error)

    def _with_fallback(
        self,
        decision: RoutingDecision,
        attempt: Callable[[LLM], _T],
        may_fall_back: bool,
    ) -> tuple[_T, RoutingDecision, Exception | None]:
        """``attempt`` on the decided side; if it raises and ``may_fall_back``, once more on
        the other side. Returns the result, the decision of the side that answered and the
        first side's error (``None`` without a fallback)."""
        nesting = _Nesting()
        try:
            return attempt(self._llm_for(decision.side)), decision, None
        except Exception as error:
            if not may_fall_back:
                raise
            first = error
        decision = self._fell_back(decision, first)
        try:
            with nesting.restored():
                return attempt(self._llm_for(decision.side)), decision, first
        except Exception as second:
            raise second from first

    async def _awith_fallback(
        self,
        decision: RoutingDecision,
        attempt: Callable[[LLM], Awaitable[_T]],
        may_fall_back: bool,
    ) -> tuple[_T, RoutingDecision, Exception | None]:
        """Async :meth:`_with_fallback`."""
        nesting = _Nesting()
        try:
            return await attempt(self._llm_for(decision.side)), decision, None
        except Exception as error:
            if not may_fall_back:
                raise
            first = error
        decision = self._fell_back(decision, first)
        try:
            with nesting.restored():
                return await attempt(self._llm_for(decision.side)), decision, first
        except Exception as second:
            raise second from first

    def _call(
        self,
        decision: RoutingDecision,
        attempt: Callable[[LLM], Any],
        may_fall_back: bool,
        conversation: Any,
        shadow: Callable[[LLM], Any] | None = None,
    ) -> Any:
        started = time.perf_counter() - decision.seconds
        response, decision, _ = self._with_fallback(decision, attempt, may_fall_back)
        self._record(decision, conversation, response, started, shadow)
        return self._attach(response, decision)

    async def _acall(
        self,
        decision: RoutingDecision,
        attempt: Callable[[LLM], Awaitable[Any]],
        may_fall_back: bool,
        conversation: Any,
        shadow: Callable[[LLM], Any] | None = None,
    ) -> Any:
        started = time.perf_counter() - decision.seconds
        response, decision, _ = await self._awith_fallback(decision, attempt, may_fall_back)
        self._record(decision, conversation, response, started, shadow)
        return self._attach(response, decision)

    def _stream(
        self,
        decision: RoutingDecision,
        start: Callable[[LLM], Generator[Any, None, None]],
        may_fall_back: bool,
        conversation: Any,
        shadow: Callable[[LLM], Any] | None = None,
    ) -> Generator[Any, None, None]:
        """Start the decided side's stream now (so call-time errors surface at the call) and
        tag its chunks; fall back while no chunk has been yielded."""
        nesting, started = _Nesting(), time.perf_counter() - decision.seconds
        stream, decision, first = self._with_fallback(decision, start, may_fall_back)
        return self._tag(
            stream,
            decision,
            start,
            may_fall_back and first is None,
            first,
            nesting,
            (conversation, started, shadow),
        )

    async def _astream(
        self,
        decision: RoutingDecision,
        start: Callable[[LLM], Awaitable[AsyncGenerator[Any, None]]],
        may_fall_back: bool,
        conversation: Any,
        shadow: Callable[[LLM], Any] | None = None,
    ) -> AsyncGenerator[Any, None]:
        nesting, started = _Nesting(), time.perf_counter() - decision.seconds
        stream, decision, first = await self._awith_fallback(decision, start, may_fall_back)
        return self._atag(
            stream,
            decision,
            start,
            may_fall_back and first is None,
            first,
            nesting,
            (conversation, started, shadow),
        )

    def _llm_for(self, side: str) -> LLM:
        # The side is used as the caller gave it: its callback manager is its owner's choice
        # (it may be shared with other routers or called directly), and the router's own LLM
        # event already reports the call once to the router's handlers.
        return self.strong if side == "strong" else self.weak

    @staticmethod
    def _attach(response: Any, decision: RoutingDecision | dict[str, Any]) -> Any:
        response.additional_kwargs[ROUTELLM_KEY] = (
            decision if isinstance(decision, dict) else decision.to_dict()
        )
        return response

    def _tag(
        self,
        stream: Generator[Any, None, None],
        decision: RoutingDecision,
        start: Callable[[LLM], Generator[Any, None, None]],
        may_fall_back: bool,
        first_error: Exception | None,
        nesting: _Nesting,
        call: tuple[Any, float, Callable[[LLM], Any] | None],
    ) -> Generator[Any, None, None]:
        """Every chunk tagged with the decision. A failure before the first chunk starts the
        other side's stream when ``may_fall_back``; after it, the error is re-raised (a partial
        answer cannot be replaced). A failing fallback stream raises from ``first_error``.
        ``call`` (the conversation, the call's start and its shadow call) goes to the log at the
        stream's end."""
        while True:
            record = decision.to_dict()
            started, last = False, None
            try:
                for chunk in stream:
                    started, last = True, chunk
                    yield self._attach(chunk, record)
                self._record(decision, call[0], last, call[1], call[2])
                return
            except Exception as error:
                if first_error is not None:
                    raise error from first_error
                if started or not may_fall_back:
                    raise
                first_error = error
            decision = self._fell_back(decision, first_error)
            try:
                with nesting.restored():
                    stream = start(self._llm_for(decision.side))
            except Exception as second:
                raise second from first_error

    async def _atag(
        self,
        stream: AsyncGenerator[Any, None],
        decision: RoutingDecision,
        start: Callable[[LLM], Awaitable[AsyncGenerator[Any, None]]],
        may_fall_back: bool,
        first_error: Exception | None,
        nesting: _Nesting,
        call: tuple[Any, float, Callable[[LLM], Any] | None],
    ) -> AsyncGenerator[Any, None]:
        """Async :meth:`_tag`."""
        while True:
            record = decision.to_dict()
            started, last = False, None
            try:
                async for chunk in stream:
                    started, last = True, chunk
                    yield self._attach(chunk, record)
                self._record(decision, call[0], last, call[1], call[2])
                return
            except Exception as error:
                if first_error is not None:
                    raise error from first_error
                if started or not may_fall_back:
                    raise
                first_error = error
            decision = self._fell_back(decision, first_error)
            try:
                with nesting.restored():
                    stream = await start(self._llm_for(decision.side))
            except Exception as second:
                raise second from first_error

    # -- chat -----------------------------------------------------------------------------

    @llm_chat_callback()
    def chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        shadow = self._shadow_call(kwargs, lambda llm: llm.chat(messages, **kwargs))
        decision, may_fall_back = self._decide(messages, kwargs)
        return self._call(
            decision, lambda llm: llm.chat(messages, **kwargs), may_fall_back, messages, shadow
        )

    @llm_chat_callback()
    def stream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponseGen:
        shadow = self._shadow_call(kwargs, lambda llm: llm.chat(messages, **kwargs))
        decision, may_fall_back = self._decide(messages, kwargs)
        return self._stream(
            decision,
            lambda llm: llm.stream_chat(messages, **kwargs),
            may_fall_back,
            messages,
            shadow,
        )

    @llm_chat_callback()
    async def achat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        shadow = self._shadow_call(kwargs, lambda llm: llm.chat(messages, **kwargs))
        decision, may_fall_back = await self._adecide(messages, kwargs)
        return await self._acall(
            decision, lambda llm: llm.achat(messages, **kwargs), may_fall_back, messages, shadow
        )

    @llm_chat_callback()
    async def astream_chat(
        self, messages: Sequence[ChatMessage], **kwargs: Any
    ) -> ChatResponseAsyncGen:
        shadow = self._shadow_call(kwargs, lambda llm: llm.chat(messages, **kwargs))
        decision, may_fall_back = await self._adecide(messages, kwargs)
        return await self._astream(
            decision,
            lambda llm: llm.astream_chat(messages, **kwargs),
            may_fall_back,
            messages,
            shadow,
        )

    # -- completion -----------------------------------------------------------------------

    @llm_completion_callback()
    def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        shadow = self._shadow_call(
            kwargs, lambda llm: llm.complete(prompt, formatted=formatted, **kwargs)
        )
        decision, may_fall_back = self._decide(prompt, kwargs)
        return self._call(
            decision,
            lambda llm: llm.complete(prompt, formatted=formatted, **kwargs),
            may_fall_back,
            prompt,
            shadow,
        )

    @llm_completion_callback()
    def stream_complete(
        self, prompt: str, formatted: bool = False, **kwargs: Any
    ) -> CompletionResponseGen:
        shadow = self._shadow_call(
            kwargs, lambda llm: llm.complete(prompt, formatted=formatted, **kwargs)
        )
        decision, may_fall_back = self._decide(prompt, kwargs)
        return self._stream(
            decision,
            lambda llm: llm.stream_complete(prompt, formatted=formatted, **kwargs),
            may_fall_back,
            prompt,
            shadow,
        )

    @llm_completion_callback()
    async def acomplete(
        self, prompt: str, formatted: bool = False, **kwargs: Any
    ) -> CompletionResponse:
        shadow = self._shadow_call(
            kwargs, lambda llm: llm.complete(prompt, formatted=formatted, **kwargs)
        )
        decision, may_fall_back = await self._adecide(prompt, kwargs)
        return await self._acall(
            decision,
            lambda llm: llm.acomplete(prompt, formatted=formatted, **kwargs),
            may_fall_back,
            prompt,
            shadow,
        )

    @llm_completion_callback()
    async def astream_complete(
        self, prompt: str, formatted: bool = False, **kwargs: Any
    ) -> CompletionResponseAsyncGen:
        shadow = self._shadow_call(
            kwargs, lambda llm: llm.complete(prompt, formatted=formatted, **kwargs)
        )
        decision, may_fall_back = await self._adecide(prompt, kwargs)
        return await self._astream(
            decision,
            lambda llm: llm.astream_complete(prompt, formatted=formatted, **kwargs),
            may_fall_back,
            prompt,
            shadow,
        )

    # -- tools ----------------------------------------------------------------------------

    def _check_function_calling(self, sides: Sequence[str]) -> None:
        for side in sides:
            llm = self.strong if side == "strong" else self.weak
            if not can_call_functions(llm):
                raise SideNotFunctionCallingError(
                    f"RouterLLM: the {side} side ({type(llm).__name__}, model "
                    f"{llm.metadata.model_name!r}) is not a function-calling LLM, so tool calls "
                    "cannot be routed to it. Give FunctionCallingLLMs with "
                    "metadata.is_function_calling_model=True on both sides, or pin tool calls "
                    f"to the other side with {FORCE_KWARG}=..."
                )

    def _tools_decision_inputs(
        self, kwargs: dict[str, Any]
    ) -> tuple[Side | None, RoutingDecision | None]:
        force, prior = self._pop_routing(kwargs)
        # Checked before routing, on both sides unless the side is already fixed, so a router
        # with a non-function-calling side fails on the first tool call, not on an unlucky one.
        fixed = prior.side if prior is not None else force
        self._check_function_calling([fixed] if fixed else ["strong", "weak"])
        return force, prior

    @staticmethod
    def _tool_kwargs(
        tools: Sequence[BaseTool],
        user_msg: str | ChatMessage | None,
        chat_history: list[ChatMessage] | None,
        verbose: bool,
        allow_parallel_tool_calls: bool,
        tool_required: bool,
        kwargs: dict[str, Any],
    ) -> dict[str, Any]:
        call = {
            "tools": tools,
            "user_msg": user_msg,
            "chat_history": chat_history,
            "verbose": verbose,
            "allow_parallel_tool_calls": allow_parallel_tool_calls,
            **kwargs,
        }
        # Only pass tool_required when set: older integrations' signatures lack it.
        if tool_required:
            call["tool_required"] = True
        return call

    @dispatcher.span
    def chat_with_tools(
        self,
        tools: Sequence[BaseTool],
        user_msg: str | ChatMessage | None = None,
        chat_history: list[ChatMessage] | None = None,
        verbose: bool = False,
        allow_parallel_tool_calls: bool = False,
        tool_required: bool = False,
        **kwargs: Any,
    ) -> ChatResponse:
        """Route once, then the chosen side's own ``chat_with_tools`` formats tools and calls."""
        call = self._tool_kwargs(
            tools, user_msg, chat_history, verbose, allow_parallel_tool_calls, tool_required, kwargs
        )
        return self._routed_chat_with_tools(tool_call_messages(user_msg, chat_history), **call)

    @dispatcher.span
    async def achat_with_tools(
        self,
        tools: Sequence[BaseTool],
        user_msg: str | ChatMessage | None = None,
        chat_history: list[ChatMessage] | None = None,
        verbose: bool = False,
        allow_parallel_tool_calls: bool = False,
        tool_required: bool = False,
        **kwargs: Any,
    ) -> ChatResponse:
        """Async :meth:`chat_with_tools`; the router runs in a worker thread."""
        call = self._tool_kwargs(
            tools, user_msg, chat_history, verbose, allow_parallel_tool_calls, tool_required, kwargs
        )
        return await self._routed_achat_with_tools(
            tool_call_messages(user_msg, chat_history), **call
        )

    @dispatcher.span
    def stream_chat_with_tools(
        self,
        tools: Sequence[BaseTool],
        user_msg: str | ChatMessage | None = None,
        chat_history: list[ChatMessage] | None = None,
        verbose: bool = False,
        allow_parallel_tool_calls: bool = False,
        tool_required: bool = False,
        **kwargs: Any,
    ) -> ChatResponseGen:
        """Streaming :meth:`chat_with_tools`; every chunk carries the decision."""
        call = self._tool_kwargs(
            tools, user_msg, chat_history, verbose, allow_parallel_tool_calls, tool_required, kwargs
        )
        return self._routed_stream_chat_with_tools(
            tool_call_messages(user_msg, chat_history), **call
        )

    @dispatcher.span
    async def astream_chat_with_tools(
        self,
        tools: Sequence[BaseTool],
        user_msg: str | ChatMessage | None = None,
        chat_history: list[ChatMessage] | None = None,
        verbose: bool = False,
        allow_parallel_tool_calls: bool = False,
        tool_required: bool = False,
        **kwargs: Any,
    ) -> ChatResponseAsyncGen:
        """Async streaming :meth:`chat_with_tools` (what ``FunctionAgent`` calls)."""
        call = self._tool_kwargs(
            tools, user_msg, chat_history, verbose, allow_parallel_tool_calls, tool_required, kwargs
        )
        return await self._routed_astream_chat_with_tools(
            tool_call_messages(user_msg, chat_history), **call
        )

    # The four helpers below carry the router's own LLM callback/instrumentation events around
    # the chosen side's *_with_tools call; ``messages`` is the conversation routed on (and the
    # one reported in the router's events), the side gets the original arguments.

    def _tool_attempt(self, method: str, kwargs: dict[str, Any]) -> Callable[[LLM], Any]:
        """Calls ``method`` of a side; a side reached by falling back is checked first."""

        def attempt(llm: LLM) -> Any:
            side: Side = "strong" if llm is self.strong else "weak"
            self._check_function_calling([side])
            return getattr(llm, method)(**kwargs)

        return attempt

    @llm_chat_callback()
    def _routed_chat_with_tools(
        self, messages: Sequence[ChatMessage], **kwargs: Any
    ) -> ChatResponse:
        force, prior = self._tools_decision_inputs(kwargs)
        decision = prior or self._route(messages, force, observe=True)
        attempt = self._tool_attempt("chat_with_tools", kwargs)
        return self._call(decision, attempt, self.fallback and prior is None, messages)

    @llm_chat_callback()
    async def _routed_achat_with_tools(
        self, messages: Sequence[ChatMessage], **kwargs: Any
    ) -> ChatResponse:
        force, prior = self._tools_decision_inputs(kwargs)
        decision = prior or await self._aroute(messages, force, observe=True)
        attempt = self._tool_attempt("achat_with_tools", kwargs)
        return await self._acall(decision, attempt, self.fallback and prior is None, messages)

    @llm_chat_callback()
    def _routed_stream_chat_with_tools(
        self, messages: Sequence[ChatMessage], **kwargs: Any
    ) -> ChatResponseGen:
        force, prior = self._tools_decision_inputs(kwargs)
        decision = prior or self._route(messages, force, observe=True)
        attempt = self._tool_attempt("stream_chat_with_tools", kwargs)
        return self._stream(decision, attempt, self.fallback and prior is None, messages)

    @llm_chat_callback()
    async def _routed_astream_chat_with_tools(
        self, messages: Sequence[ChatMessage], **kwargs: Any
    ) -> ChatResponseAsyncGen:
        force, prior = self._tools_decision_inputs(kwargs)
        decision = prior or await self._aroute(messages, force, observe=True)
        attempt = self._tool_attempt("astream_chat_with_tools", kwargs)
        return await self._astream(decision, attempt, self.fallback and prior is None, messages)

    def _prepare_chat_with_tools(
        self,
        tools: Sequence[BaseTool],
        user_msg: str | ChatMessage | None = None,
        chat_history: list[ChatMessage] | None = None,
        verbose: bool = False,
        allow_parallel_tool_calls: bool = False,
        tool_required: bool = False,
        **kwargs: Any,
    ) -> dict[str, Any]:
        """Route once and let the chosen side prepare its own request.

        The returned kwargs carry the decision under ``routellm_decision``, so
        ``router.chat(**prepared)`` goes to the same side without routing again.
        """
        force, prior = self._tools_decision_inputs(kwargs)
        decision = prior or self._route(
            tool_call_messages(user_msg, chat_history), force, observe=True
        )
        side: FunctionCallingLLM = self._llm_for(decision.side)  # type: ignore[assignment]
        call = self._tool_kwargs(
            tools, user_msg, chat_history, verbose, allow_parallel_tool_calls, False, kwargs
        )
        # The _compat wrapper (newer llama-index-core) drops tool_required for integrations
        # whose signature lacks it; older cores only have the plain method.
        prepare = getattr(side, "_prepare_chat_with_tools_compat", None)
        if prepare is not None:
            prepared = prepare(**call, tool_required=tool_required)
        else:
            if tool_required:
                call["tool_required"] = True
            prepared = side._prepare_chat_with_tools(**call)
        prepared[DECISION_KWARG] = decision
        return prepared

    def _validate_chat_with_tools_response(
        self,
        response: ChatResponse,
        tools: Sequence[BaseTool],
        allow_parallel_tool_calls: bool = False,
        **kwargs: Any,
    ) -> ChatResponse:
        side = _response_side(response)
        if side is None:
            return response
        llm: FunctionCallingLLM = self._llm_for(side)  # type: ignore[assignment]
        return llm._validate_chat_with_tools_response(
            response, tools, allow_parallel_tool_calls=allow_parallel_tool_calls, **kwargs
        )

    def get_tool_calls_from_response(
        self,
        response: ChatResponse,
        error_on_no_tool_call: bool = True,
        **kwargs: Any,
    ) -> list[ToolSelection]:
        """Parsed by the side that produced ``response`` (read from its recorded decision)."""
        side = _response_side(response)
        if side is not None:
            llm = self._llm_for(side)
            if not can_call_functions(llm):
                self._check_function_calling([side])
            return llm.get_tool_calls_from_response(  # type: ignore[attr-defined]
                response, error_on_no_tool_call=error_on_no_tool_call, **kwargs
            )
        # No decision recorded: e.g. the empty placeholder an agent uses when a stream yields
        # nothing, or a response built elsewhere. Ask each function-calling side in turn.
        candidates = [s for s in ("strong", "weak") if can_call_functions(self._llm_for(s))]
        if not candidates:
            self._check_function_calling(["strong", "weak"])
        first_error: Exception | None = None
        for side_name in candidates:
            try:
                return self._llm_for(side_name).get_tool_calls_from_response(  # type: ignore[attr-defined]
                    response, error_on_no_tool_call=error_on_no_tool_call, **kwargs
                )
            except Exception as exc:  # try the other side; re-raise the first error
                first_error = first_error or exc
        assert first_error is not None
        raise first_error


def _payload(llm: LLM) -> dict[str, Any]:
    to_payload = getattr(llm, "to_payload", None)
    if callable(to_payload):
        return to_payload()
    return {"class_name": llm.class_name(), "model_name": llm.metadata.model_name}


def _conversation(messages: str | Sequence[ChatMessage]) -> Any:
    return messages if isinstance(messages, str) else to_chat_turns(messages)


def _response_text(response: Any) -> str:
    """The text of a chat or completion response (a stream's last chunk holds all of it)."""
    message = getattr(response, "message", None)
    text = message.content if message is not None else getattr(response, "text", None)
    return text or ""


def _as_decision(value: Any) -> RoutingDecision | None:
    if value is None or isinstance(value, RoutingDecision):
        return value
    if isinstance(value, Mapping):
        data = dict(value)
        data["skipped_parts"] = tuple(data.get("skipped_parts") or ())
        return RoutingDecision(**data)
    raise RoutingInputError(
        f"{DECISION_KWARG} must be a RoutingDecision or its to_dict(), got {type(value).__name__}"
    )


def _response_side(response: Any) -> Side | None:
    record = getattr(response, "additional_kwargs", {}).get(ROUTELLM_KEY)
    side = record.get("side") if isinstance(record, Mapping) else None
    return side if side in ("strong", "weak") else None
