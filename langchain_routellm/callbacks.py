"""A LangChain callback handler that accounts the cost of routed calls."""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from typing import Any
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.messages import BaseMessage
from langchain_core.outputs import ChatGeneration, LLMResult

from routellm_base.costs import CostReport, CostTracker, PoolCostReport, PriceLike
from routellm_base.errors import RoutingInputError


class RouteLLMCostCallbackHandler(BaseCallbackHandler):
    """Tokens and estimated cost per side of every call a ``RouterChatModel`` routes.

    Pass it as a callback (``config={"callbacks": [handler]}``, or in the router's
    ``callbacks=``); read :meth:`report`. Each routed call is one ``RouterChatModel`` run whose
    answer carries the decision, so each call is counted once, on the side that answered; runs
    of other models and cache hits are ignored. Tokens a model does not report are counted
    with cl100k and flagged as estimated.

    ``prices`` and ``strong_model`` (the always-strong baseline's model; default: the strong model
    seen most) as for :class:`routellm_base.costs.CostTracker`. For a pool of several models,
    give ``candidates`` (the pool's model names) and optionally ``baseline_model`` (default: the
    most expensive by ``prices``): :meth:`report` is then a ``PoolCostReport`` per model.
    """

    run_inline = True  # record starts before ends, in order, also under async callback managers

    def __init__(
        self,
        prices: Mapping[str, PriceLike] | None = None,
        *,
        strong_model: str | None = None,
        use_default_prices: bool = True,
        candidates: Sequence[str] | None = None,
        baseline_model: str | None = None,
    ) -> None:
        super().__init__()
        self.tracker = CostTracker(
            prices,
            strong_model=strong_model,
            use_default_prices=use_default_prices,
            candidates=candidates,
            baseline_model=baseline_model,
        )
        self._runs: dict[UUID, str] = {}  # input text of the router runs in flight
        self._lock = threading.Lock()

    def on_chat_model_start(
        self, serialized: Any, messages: list[list[BaseMessage]], *, run_id: UUID, **kwargs: Any
    ) -> None:
        # Only a router's runs (one run per routed call; its ls_provider is "routellm").
        if (kwargs.get("metadata") or {}).get("ls_provider") != "routellm":
            return
        text = "\n".join(m.text for batch in messages for m in batch)
        with self._lock:
            self._runs[run_id] = text

    def on_llm_end(self, response: LLMResult, *, run_id: UUID, **kwargs: Any) -> None:
        with self._lock:
            input_text = self._runs.pop(run_id, None)
        if input_text is None or not response.generations or not response.generations[0]:
            return
        generation = response.generations[0][0]
        message = generation.message if isinstance(generation, ChatGeneration) else None
        decision = message.response_metadata.get("routellm") if message is not None else None
        if not decision:
            return
        usage = message.usage_metadata if message is not None else None
        if usage and usage.get("total_cost") == 0:
            return  # a cache hit (LangChain zeroes its cost): no model was called
        if decision.get("pool") is not None and self.tracker.candidates is None:
            raise RoutingInputError(
                f"a call routed among a pool (answered by {decision['model']!r}) reached a "
                "handler that counts strong/weak: give RouteLLMCostCallbackHandler(prices, "
                "candidates=[the pool's model names])"
            )
        self.tracker.record(
            decision["side"],
            decision["model"],
            input_tokens=usage["input_tokens"] if usage else None,
            output_tokens=usage["output_tokens"] if usage else None,
            input_text=input_text,
            output_text=generation.text,
        )

    def on_llm_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        with self._lock:
            self._runs.pop(run_id, None)

    def report(self) -> CostReport | PoolCostReport:
        """Totals so far."""
        return self.tracker.report()

    def reset(self) -> None:
        self.tracker.reset()
