"""``bind_tools`` and ``with_structured_output`` of a ``RouterChatModel``: each side's own method,
at bind time, under a router copy that calls the side the decision names."""

from __future__ import annotations

from operator import itemgetter
from typing import TYPE_CHECKING, Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage
from langchain_core.runnables import (
    Runnable,
    RunnableBinding,
    RunnableLambda,
    RunnableMap,
    RunnablePassthrough,
    RunnableSequence,
)

if TYPE_CHECKING:
    from .chat_models import RouterChatModel

_TRACING_ONLY_KWARGS = ("ls_structured_output_format", "structured_output_format")
"""Kwargs a side's ``with_structured_output`` binds for tracing. ``BaseChatModel`` removes them
before its hooks run, so they are never passed to a side's hooks (a provider would send them)."""


def structured(router: RouterChatModel, schema: Any, include_raw: bool, **kwargs: Any) -> Runnable:
    """See :meth:`RouterChatModel.with_structured_output`. Each side is asked for its plain
    ``binding | parser`` form; ``include_raw`` is then wrapped around the routed call as
    ``BaseChatModel.with_structured_output`` wraps it (``raw``, ``parsed``, ``parsing_error``),
    with the routed call first in both forms so that the call's arguments reach it."""
    bound, parsers, tracing = {}, {}, {}
    for side in router._candidate_keys():
        binding, parsers[side] = _split(
            side, transform(router, side, "with_structured_output", schema, **kwargs)
        )
        bound[side] = model_and_kwargs(side, binding)
        # The structured-output format for the router's own run (the first candidate's method).
        tracing = tracing or tracing_kwargs(_bound_kwargs(binding))
    routed = routed_copy(router, bound).bind(**tracing)

    def parse_as_answering_side(message: AIMessage) -> Runnable:
        return parsers[message.response_metadata["routellm"]["side"]]

    parse = RunnableLambda(parse_as_answering_side, name="parse_as_answering_side")
    chain: Runnable = routed | parse
    if include_raw:
        parsed = RunnablePassthrough.assign(
            parsed=itemgetter("raw") | parse, parsing_error=lambda _: None
        )
        unparsed = RunnablePassthrough.assign(parsed=lambda _: None)
        # The routed model first, as in the chain above: a sequence passes a call's arguments
        # (``routellm_force``, ``threshold``, ...) on to its first step only, and
        # ``BaseChatModel``'s own ``RunnableMap(raw=model)`` would drop them.
        chain = (
            routed
            | RunnableMap(raw=RunnablePassthrough())
            | parsed.with_fallbacks([unparsed], exception_key="parsing_error")
        )
    return chain.with_config(run_name="RouterChatModel.with_structured_output")


def transform(
    router: RouterChatModel, side: str, method: str, /, *args: Any, **kwargs: Any
) -> Runnable:
    model = router._candidate(side).model
    try:
        return getattr(model, method)(*args, **kwargs)
    except (NotImplementedError, AttributeError) as exc:
        pool = router.models is not None
        raise ValueError(
            f"RouterChatModel.{method}: the {'pool' if pool else side} model"
            f"{f' {side!r}' if pool else ''} ({type(model).__name__}) does not support it, so "
            "calls routed to it could not either. Give a model that does"
            f"{f', or leave {side!r} out of models=' if pool else f' as {side}='}. ({exc!r})"
        ) from exc


def routed_copy(router: RouterChatModel, bound: dict[str, Any]) -> RouterChatModel:
    # model_copy shares private attributes, so the copy reuses the engine and cost tracker.
    routed = router.model_copy()
    routed._bound = bound
    return routed


def model_and_kwargs(side: str, runnable: Runnable) -> tuple[BaseChatModel, dict[str, Any]]:
    """The chat model under a side's binding and the kwargs bound to it (outer bindings win, as
    ``RunnableBinding`` merges them), tracing-only kwargs left out."""
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


def tracing_kwargs(kwargs: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in kwargs.items() if k in _TRACING_ONLY_KWARGS}


def _split(side: str, structured: Runnable) -> tuple[Runnable, Runnable]:
    """A side's ``with_structured_output`` runnable (without ``include_raw``) as (model
    binding, parser): LangChain's chat models build it as ``binding | parser``."""
    if isinstance(structured, RunnableSequence) and isinstance(structured.first, RunnableBinding):
        rest = structured.steps[1:]
        return structured.first, rest[0] if len(rest) == 1 else RunnableSequence(*rest)
    raise ValueError(
        f"RouterChatModel.with_structured_output: the {side} model's structured output "
        f"({type(structured).__name__}) is not a model binding followed by a parser, so the "
        "router cannot route it."
    )
