"""``RouterLLM``: a LlamaIndex LLM over the engine's one call path (``RoutedCall``): each call
is routed once and handed, unchanged, to the chosen LLM's own method of the same name, so roles,
content blocks, tools and provider formats stay the chosen model's business."""

from __future__ import annotations

import contextvars
from collections.abc import AsyncGenerator, Callable, Generator, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, NamedTuple

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
from llama_index.core.bridge.pydantic import Field
from llama_index.core.llms.callbacks import llm_chat_callback, llm_completion_callback
from llama_index.core.llms.function_calling import FunctionCallingLLM
from llama_index.core.llms.llm import LLM, ToolSelection

from routellm_base import RoutingDecision, RoutingTextFn
from routellm_base.errors import RouteLLMError
from routellm_base.routed_call import FORCE_KWARG, Answer, Candidate, RoutedCall
from routellm_base.router_fields import MODELS_DOC, RouterFields

from .messages import to_chat_turns, tool_call_messages
from .queries import stock_query_field

if TYPE_CHECKING:
    from llama_index.core.tools.types import BaseTool

ROUTELLM_KEY = "routellm"
"""Key of the routing decision (a dict) in every response's ``additional_kwargs``."""


class _Request(NamedTuple):
    """One call as the caller made it: the method, its messages or prompt, its arguments."""

    method: str
    messages: Any
    kwargs: dict[str, Any]


class SideNotFunctionCallingError(RouteLLMError, ValueError):
    """A tool call was routed (or could be routed) to a side that cannot call functions."""


def can_call_functions(llm: LLM) -> bool:
    """True for a :class:`FunctionCallingLLM` whose metadata says it calls functions."""
    return isinstance(llm, FunctionCallingLLM) and bool(llm.metadata.is_function_calling_model)


def _min_known(first: int, *rest: int) -> int:
    # LlamaIndex's -1 means unknown (MockLLM's num_output): not a budget for the router.
    known = [v for v in (first, *rest) if v > 0]
    return min(known) if known else first


class RouterLLM(RouterFields, FunctionCallingLLM):
    """An LLM that routes every call to ``strong`` or ``weak`` with a learned router (RouteLLM).

    Works anywhere an LLM does (``Settings.llm``, query engines, chat engines) and, when both
    sides are function-calling LLMs, in agents such as ``FunctionAgent``. The routing fields,
    ``cost_report``, ``swap_router``, ``shadow_stats`` and ``flush_log`` are shared with
    LangChain's ``RouterChatModel``: see :class:`routellm_base.router_fields.RouterFields`.

    * Each call is routed once and handed to the chosen side's method of the same name with the
      caller's messages and keyword arguments; ``routellm_force="strong"``/``"weak"`` picks the
      side instead, ``threshold=`` or ``strong_share=`` (through the router's calibration) sets
      this call's policy (each removed, never passed on; the decision records the threshold
      used; a bad value is an ``InvalidPolicyError`` before any LLM is called, an unknown
      ``routellm_*`` argument a ``RoutingInputError``); :meth:`route` decides without calling
      either LLM.
    * Each response, and every chunk of a stream, carries the decision as a dict in
      ``additional_kwargs["routellm"]``; :func:`llamaindex_routellm.record_decisions` collects
      them from inside query engines.
    * Tool calls: ``FunctionCallingLLM``'s own ``*_chat_with_tools`` template drives them;
      the routed ``chat`` hands the tools to the chosen side's ``*_chat_with_tools``, so each
      side prepares its own request (a fallback prepares again on the other side).
      ``get_tool_calls_from_response`` is answered by the side that produced the response.
    * ``metadata``: the tightest context window and output budget of the models a call may
      go to, and ``is_chat_model=True`` (each model's own ``chat`` formats its prompts).
    * Each call is one LLM event on the router's callback manager (a ``TokenCountingHandler``
      there counts it once); the sides keep their own callback managers and are never modified.
    * Tokens for costs and the log: as the side reports them (``additional_kwargs``
      ``prompt_tokens``/``completion_tokens``, as LlamaIndex's OpenAI LLM does), else cl100k.

    Example: ``Settings.llm = RouterLLM(strong=OpenAI(model="gpt-4o"),
    weak=OpenAI(model="gpt-4o-mini"), strong_share=0.3)``.

    **A pool of several models**: ``RouterLLM(models={"gpt-4o": OpenAI(model="gpt-4o"),
    "gpt-4o-mini": ..., "llama": ...}, prices={"gpt-4o": (2.5, 10.0), ...}, cost_weight=0.05)``
    takes its per-call settings as keyword arguments of any chat/complete method (tools need
    every model it may reach to call functions); its policy, decision record and cost report:
    see :class:`~routellm_base.router_fields.RouterFields`.
    """

    strong: LLM | None = Field(
        default=None, description="The strong (capable, costly) LLM, for hard calls (two models)."
    )
    weak: LLM | None = Field(
        default=None, description="The weak (cheap) LLM; every other call goes here (two models)."
    )
    models: dict[str, LLM] | list[LLM] | None = Field(default=None, description=MODELS_DOC)
    route_on_query: bool = Field(
        default=True,
        description="When a user or system message is one of LlamaIndex's stock templates "
        "with a {query_str} (text QA, refine, tree summarise, ...) filled in, route on the "
        "query alone instead of the query plus retrieved context. Off: score the whole message. "
        "A routing_text_fn takes precedence.",
    )

    _judge_type: ClassVar[tuple[type, str]] = (LLM, "LlamaIndex LLM")

    def __init__(self, strong: LLM | None = None, weak: LLM | None = None, **kwargs: Any) -> None:
        super().__init__(strong=strong, weak=weak, **kwargs)
        self._check_settings()

    @classmethod
    def class_name(cls) -> str:
        return "RouterLLM"

    # -- the integration's hooks of RouterFields, and metadata ------------------------------------

    def _own_model_name(self, model: Any) -> str:
        name = model.metadata.model_name
        # LlamaIndex's default model_name is "unknown": the class name says more.
        return name if name and name != "unknown" else model.class_name()

    def _judge_chat(self, judge: Any) -> tuple[Callable[[list[dict[str, str]]], str], str]:
        def chat(messages: list[dict[str, str]]) -> str:
            turns = [ChatMessage(role=m["role"], content=m["content"]) for m in messages]
            return judge.chat(turns).message.content or ""

        return chat, judge.metadata.model_name

    def _default_routing_text_fn(self) -> RoutingTextFn | None:
        return stock_query_field() if self.route_on_query else None

    @property
    def metadata(self) -> LLMMetadata:
        """The tightest limits of the models a call may go to (the two sides, or every model of
        a pool), so prompts fit whichever one is chosen; function calling only when every one
        calls functions."""
        llms = [candidate.model for candidate in self._candidates()]
        metas = [llm.metadata for llm in llms]  # type: ignore[union-attr]
        roles = {m.system_role for m in metas}
        return LLMMetadata(
            context_window=_min_known(*(m.context_window for m in metas)),
            num_output=_min_known(*(m.num_output for m in metas)),
            # Always a chat model: predict() then hands messages to the chosen model's chat(),
            # which applies that model's own prompt format. As a "completion model" the router
            # would format prompts with *its* completion_to_prompt and the model's be skipped.
            is_chat_model=True,
            is_function_calling_model=all(can_call_functions(llm) for llm in llms),  # type: ignore[arg-type]
            model_name=f"routellm({self._models_label()})",
            system_role=roles.pop() if len(roles) == 1 else MessageRole.SYSTEM,
        )

    def to_payload(self) -> dict[str, Any]:
        """Observability payload: the router's settings and both sides' own payloads."""
        # Built here rather than via super(): older llama-index-core has no LLM.to_payload.
        payloads = {c.key: _payload(c.model) for c in self._candidates()}
        return {
            "class_name": self.class_name(),
            **self.metadata.model_dump(),
            **self._routing_params(),
            "route_on_query": self.route_on_query,
            **({"models": payloads} if self.models is not None else payloads),
        }

    # -- routing: route, hand to the chosen side, attach, finish ----------------------------------

    def route(
        self, messages: str | Sequence[ChatMessage], *, force: str | None = None, **route: Any
    ) -> RoutingDecision:
        """The decision for a prompt or conversation, calling no LLM (enters no share window,
        nor a pool's budget window). The per-call settings as for a call: two models'
        ``threshold`` or ``strong_share``; a pool's ``allowed_models``, ``cost_weight``,
        ``quality_tolerance``, ``budget``, ``max_cost``."""
        return self._dry_run(_turns(messages), *self._dry_route(force, route, "route"))

    async def aroute(
        self, messages: str | Sequence[ChatMessage], *, force: str | None = None, **route: Any
    ) -> RoutingDecision:
        """:meth:`route` without blocking the event loop (the router runs in a worker thread)."""
        return await self._adry_run(_turns(messages), *self._dry_route(force, route, "aroute"))

    def _start(self, request: _Request) -> RoutedCall[LLM]:
        return self._decided_call(_turns(request.messages), *self._pop_route(request.kwargs))

    async def _astart(self, request: _Request) -> RoutedCall[LLM]:
        turns = _turns(request.messages)
        return await self._adecided_call(turns, *self._pop_route(request.kwargs))

    def _attempt(self, request: _Request) -> Callable[[Candidate[LLM]], Any]:
        """Calls the request's method of a candidate; a call carrying ``tools`` (prepared by
        :meth:`_prepare_chat_with_tools`) goes to the candidate's ``*_chat_with_tools``."""
        method, messages, kwargs = request
        if "tools" not in kwargs:
            return lambda candidate: getattr(candidate.model, method)(messages, **kwargs)
        call = dict(kwargs)
        tools = call.pop("tools")

        def attempt(candidate: Candidate[LLM]) -> Any:
            self._check_function_calling([candidate.key])
            with_tools = getattr(candidate.model, f"{method}_with_tools")
            return with_tools(tools, chat_history=list(messages), **call)

        return attempt

    def _finish(
        self, call: RoutedCall[LLM], response: Any, request: _Request, outcome: str = "complete"
    ) -> None:
        """Account the answer once; a plain call may be shadowed (the other side's chat/complete)."""
        method, messages, kwargs = request
        plain = "chat" if "chat" in method else "complete"
        shadow = None if "tools" in kwargs else _shadow(plain, messages, kwargs)
        call.finish(_answer(response), shadow=shadow, outcome=outcome)

    def _run(self, call: RoutedCall[LLM], response: Any, request: _Request) -> Any:
        self._finish(call, response, request)
        return _attach(response, call.decision)

    def _stream(self, call: RoutedCall[LLM], request: _Request) -> Generator[Any, None, None]:
        """Start the chosen side's stream now (call-time errors fall back in this call)."""
        chunks = call.open_stream(_in_this_context(self._attempt(request)))
        return call.tagged(chunks, _attach, self._end_of_stream(call, request))  # type: ignore[return-value]

    async def _astream(self, call: RoutedCall[LLM], request: _Request) -> AsyncGenerator[Any, None]:
        """Async :meth:`_stream`. A fallback started while the stream is read runs in the reading
        task's context: a coroutine cannot be run in another context without a task of its own."""
        chunks = await call.aopen_stream(self._attempt(request))
        return call.atagged(chunks, _attach, self._end_of_stream(call, request))  # type: ignore[return-value]

    def _end_of_stream(
        self, call: RoutedCall[LLM], request: _Request
    ) -> Callable[[list[Any], str], None]:
        # A stream's last chunk holds the whole text (and any usage the side reports); of a
        # stream cut short (broken, or closed by its consumer), the text answered so far.
        return lambda chunks, outcome: self._finish(
            call, chunks[-1] if chunks else None, request, outcome
        )

    @llm_chat_callback()
    def chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        call = self._start(request := _Request("chat", messages, kwargs))
        return self._run(call, call.run(self._attempt(request)), request)

    @llm_chat_callback()
    def stream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponseGen:
        call = self._start(request := _Request("stream_chat", messages, kwargs))
        return self._stream(call, request)

    @llm_chat_callback()
    async def achat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        call = await self._astart(request := _Request("achat", messages, kwargs))
        return self._run(call, await call.arun(self._attempt(request)), request)

    @llm_chat_callback()
    async def astream_chat(
        self, messages: Sequence[ChatMessage], **kwargs: Any
    ) -> ChatResponseAsyncGen:
        call = await self._astart(request := _Request("astream_chat", messages, kwargs))
        return await self._astream(call, request)

    @llm_completion_callback()
    def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        call = self._start(request := _completion("complete", prompt, formatted, kwargs))
        return self._run(call, call.run(self._attempt(request)), request)

    @llm_completion_callback()
    def stream_complete(
        self, prompt: str, formatted: bool = False, **kwargs: Any
    ) -> CompletionResponseGen:
        call = self._start(request := _completion("stream_complete", prompt, formatted, kwargs))
        return self._stream(call, request)

    @llm_completion_callback()
    async def acomplete(
        self, prompt: str, formatted: bool = False, **kwargs: Any
    ) -> CompletionResponse:
        call = await self._astart(request := _completion("acomplete", prompt, formatted, kwargs))
        return self._run(call, await call.arun(self._attempt(request)), request)

    @llm_completion_callback()
    async def astream_complete(
        self, prompt: str, formatted: bool = False, **kwargs: Any
    ) -> CompletionResponseAsyncGen:
        request = _completion("astream_complete", prompt, formatted, kwargs)
        return await self._astream(await self._astart(request), request)

    # -- tools: FunctionCallingLLM's template drives; these are its hooks -------------------------

    def _check_function_calling(self, sides: Sequence[str]) -> None:
        pool = self.models is not None
        for side in sides:
            if can_call_functions(llm := self._candidate(side).model):
                continue
            raise SideNotFunctionCallingError(
                f"RouterLLM: {f'the pool model {side!r}' if pool else f'the {side} side'} "
                f"({type(llm).__name__}, model {llm.metadata.model_name!r}) is not a "
                "function-calling LLM, so tool calls cannot be routed to it. Give "
                "FunctionCallingLLMs with metadata.is_function_calling_model=True, or keep tool "
                f"calls off it with {'allowed_models=[...] or ' if pool else ''}{FORCE_KWARG}=..."
            )

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
        """The routed ``chat``'s arguments for a tool call (the conversation, tools and options)
        for the chosen side's own ``*_chat_with_tools`` to prepare. Both sides (or the forced
        one; in a pool, every model the call allows) must call functions, so a bad side fails
        on the first tool call, not a late one."""
        self._check_function_calling(self._reachable(kwargs))
        options = {"verbose": verbose, "allow_parallel_tool_calls": allow_parallel_tool_calls}
        # Only pass tool_required when set: older integrations' signatures lack it.
        options.update({"tool_required": True} if tool_required else {})
        messages = tool_call_messages(user_msg, chat_history)
        return {"messages": messages, "tools": tools, **options, **kwargs}

    def get_tool_calls_from_response(
        self, response: ChatResponse, error_on_no_tool_call: bool = True, **kwargs: Any
    ) -> list[ToolSelection]:
        """Parsed by the side that produced ``response`` (read from its recorded decision)."""
        record = response.additional_kwargs.get(ROUTELLM_KEY)
        side = record.get("side") if isinstance(record, dict) else None
        # No decision recorded (e.g. the empty placeholder an agent uses when a stream yields
        # nothing): ask each function-calling side in turn.
        keys = self._candidate_keys()
        llms = {s: self._candidate(s).model for s in keys}
        sides = [side] if side in keys else [s for s in keys if can_call_functions(llms[s])]
        self._check_function_calling(sides or keys)
        first_error: Exception | None = None
        for name in sides:
            try:
                return llms[name].get_tool_calls_from_response(  # type: ignore[attr-defined]
                    response, error_on_no_tool_call=error_on_no_tool_call, **kwargs
                )
            except Exception as exc:  # try the other side; re-raise the first error
                first_error = first_error or exc
        assert first_error is not None
        raise first_error


# -- module helpers -------------------------------------------------------------------------------


def _turns(messages: str | Sequence[ChatMessage]) -> Any:
    return messages if isinstance(messages, str) else to_chat_turns(messages)


def _completion(method: str, prompt: str, formatted: bool, kwargs: dict[str, Any]) -> _Request:
    # The routing kwarg stays in kwargs for _start to take out, before the side is called.
    return _Request(method, prompt, {"formatted": formatted, **kwargs})


def _attach(response: Any, decision: RoutingDecision | None, first: bool = True) -> Any:
    # On the side's own response object (the router's answer is the side's, not a copy).
    assert decision is not None
    response.additional_kwargs[ROUTELLM_KEY] = decision.to_dict()
    return response


def _answer(response: Any) -> Answer:
    """A response's text (a stream's last chunk holds all of it) and the tokens it reports
    (``prompt_tokens``/``completion_tokens``, as LlamaIndex's OpenAI LLM does), both or none."""
    message = getattr(response, "message", None)
    text = message.content if message is not None else getattr(response, "text", None)
    tokens = getattr(response, "additional_kwargs", None) or {}
    inp, out = tokens.get("prompt_tokens"), tokens.get("completion_tokens")
    known = isinstance(inp, int) and isinstance(out, int)
    return Answer(text or "", inp if known else None, out if known else None)


def _shadow(
    method: str, messages: Any, kwargs: dict[str, Any]
) -> Callable[[Candidate[LLM]], Answer]:
    return lambda candidate: _answer(getattr(candidate.model, method)(messages, **kwargs))


def _in_this_context(attempt: Callable[[Candidate[LLM]], Any]) -> Callable[[Candidate[LLM]], Any]:
    """``attempt``, run in the context of the call that made it. LlamaIndex's
    ``Dispatcher.span`` closes a stream method's span once the generator is returned, so a
    fallback started while the stream is read runs in the call's context, copied now, and its
    span nests under the router's (as ``run_in_executor`` carries a context to a thread)."""
    context = contextvars.copy_context()
    return lambda candidate: context.run(attempt, candidate)


def _payload(llm: LLM) -> dict[str, Any]:
    to_payload = getattr(llm, "to_payload", None)
    own = {"class_name": llm.class_name(), "model_name": llm.metadata.model_name}
    return to_payload() if callable(to_payload) else own
