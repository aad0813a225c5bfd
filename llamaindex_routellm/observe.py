"""Collect the routing decisions of RouterLLM calls made deep inside query engines and agents."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from llama_index.core.bridge.pydantic import Field, PrivateAttr
from llama_index.core.instrumentation import get_dispatcher
from llama_index.core.instrumentation.event_handlers import BaseEventHandler
from llama_index.core.instrumentation.events import BaseEvent
from llama_index.core.instrumentation.events.llm import LLMChatEndEvent, LLMCompletionEndEvent

from .base import ROUTELLM_KEY


class RoutingDecisionRecorder(BaseEventHandler):
    """An instrumentation event handler that keeps each routed call's decision dict, once per
    ``call_id`` (the chosen side's end event may carry the router's response object too)."""

    decisions: list[dict[str, Any]] = Field(
        default_factory=list, description="Decision dicts, in call order."
    )
    _seen: set[str] = PrivateAttr(default_factory=set)

    @classmethod
    def class_name(cls) -> str:
        return "RoutingDecisionRecorder"

    def handle(self, event: BaseEvent, **kwargs: Any) -> None:
        response = getattr(event, "response", None)
        if not isinstance(event, LLMChatEndEvent | LLMCompletionEndEvent) or response is None:
            return
        decision = response.additional_kwargs.get(ROUTELLM_KEY)
        if isinstance(decision, dict) and decision.get("call_id") not in self._seen:
            self._seen.add(decision.get("call_id"))
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
