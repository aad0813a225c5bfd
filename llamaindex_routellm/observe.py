"""Collect the routing decisions of RouterLLM calls made deep inside query engines and agents."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from llama_index.core.bridge.pydantic import Field, PrivateAttr
from llama_index.core.instrumentation import get_dispatcher
from llama_index.core.instrumentation.event_handlers import BaseEventHandler
from llama_index.core.instrumentation.events import BaseEvent
from llama_index.core.instrumentation.events.llm import (
    LLMChatEndEvent,
    LLMChatStartEvent,
    LLMCompletionEndEvent,
    LLMCompletionStartEvent,
)

from .base import ROUTELLM_KEY, RouterLLM


class RoutingDecisionRecorder(BaseEventHandler):
    """An instrumentation event handler that keeps each routed call's decision dict.

    Only the router's own end events count (the chosen side's events share the response
    object, so they would count each call twice).
    """

    decisions: list[dict[str, Any]] = Field(
        default_factory=list, description="Decision dicts, in call order."
    )
    _router_spans: set[str] = PrivateAttr(default_factory=set)

    @classmethod
    def class_name(cls) -> str:
        return "RoutingDecisionRecorder"

    def handle(self, event: BaseEvent, **kwargs: Any) -> None:
        is_start = isinstance(event, (LLMChatStartEvent, LLMCompletionStartEvent))
        is_end = isinstance(event, (LLMChatEndEvent, LLMCompletionEndEvent))
        if is_start and event.model_dict.get("class_name") == RouterLLM.class_name():
            self._router_spans.add(str(event.span_id))
        elif is_end and event.span_id in self._router_spans and event.response is not None:
            decision = event.response.additional_kwargs.get(ROUTELLM_KEY)
            if decision is not None:
                self.decisions.append(decision)


@contextmanager
def record_decisions() -> Iterator[RoutingDecisionRecorder]:
    """``with record_decisions() as rec: engine.query(...)`` then read ``rec.decisions``.

    For streaming calls the decision is recorded when the stream is consumed to the end.
    """
    recorder = RoutingDecisionRecorder()
    root = get_dispatcher()
    root.add_event_handler(recorder)
    try:
        yield recorder
    finally:
        root.event_handlers.remove(recorder)
