"""The one engine API the integrations adapt: conversation in, routing decision out.

messages -> routing text -> embedding -> win rate -> policy -> decision. Routing text the
router's embedder cannot read (no known token) skips the router and goes by the policy's
``no_known_tokens_side`` rule.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .checkpoints import DEFAULT_ROUTER, load_router
from .decision import SIDES, RoutingDecision, Side
from .errors import RoutingInputError
from .policy import DEFAULT_NO_KNOWN_TOKENS_SIDE, RoutingPolicy, decide_sides
from .routers.base import Router
from .routing_text import ChatTurn, RoutingText, RoutingTextOptions, routing_text

Conversation = Sequence[ChatTurn | Mapping[str, Any]] | str


class RoutingEngine:
    """Decides, per conversation, whether the strong or the weak model should answer.

    Thread-safe: routers and embedders guard their shared state, and the threshold is resolved
    once, under a lock.
    """

    def __init__(
        self,
        router: Router | str | Path = DEFAULT_ROUTER,
        *,
        threshold: float | None = None,
        strong_share: float | None = None,
        routing_text_options: RoutingTextOptions | None = None,
        no_known_tokens_side: Side | None = DEFAULT_NO_KNOWN_TOKENS_SIDE,
    ) -> None:
        """``no_known_tokens_side``: the side of a call whose routing text has no token the
        router's embedder knows (``None``: score it anyway); see :class:`RoutingPolicy`."""
        self.router = router if isinstance(router, Router) else load_router(router)
        self.policy = RoutingPolicy(
            threshold=threshold,
            strong_share=strong_share,
            no_known_tokens_side=no_known_tokens_side,
        )
        self.routing_text_options = routing_text_options or RoutingTextOptions()
        self._threshold: float | None = None
        self._lock = threading.Lock()

    @property
    def threshold(self) -> float:
        """The win-rate threshold in force (resolved from ``strong_share`` on first use)."""
        if self._threshold is None:
            with self._lock:
                if self._threshold is None:
                    self._threshold = self.policy.threshold_for(self.router)
        return self._threshold

    @property
    def checkpoint_id(self) -> str | None:
        """The sha256 of the router's checkpoint weights; ``None`` for a router not loaded
        from a checkpoint (e.g. ``random``)."""
        value = self.router.metadata.get("checkpoint_id")
        return str(value) if value else None

    def decide(
        self,
        conversation: Conversation,
        *,
        strong_model: str = "strong",
        weak_model: str = "weak",
        force: Side | None = None,
    ) -> RoutingDecision:
        """Route one conversation (a list of turns, or a bare prompt string)."""
        return self.decide_many(
            [conversation], strong_model=strong_model, weak_model=weak_model, force=force
        )[0]

    def decide_many(
        self,
        conversations: Sequence[Conversation],
        *,
        strong_model: str = "strong",
        weak_model: str = "weak",
        force: Side | None = None,
    ) -> list[RoutingDecision]:
        """Route several conversations with one batched router call."""
        if force is not None and force not in SIDES:
            raise RoutingInputError(f"force must be 'strong', 'weak' or None, got {force!r}")
        start = time.perf_counter()
        threshold = self.threshold
        if force is not None:
            seconds = (time.perf_counter() - start) / max(len(conversations), 1)
            return [
                RoutingDecision(
                    side=force,
                    model=strong_model if force == "strong" else weak_model,
                    win_rate=None,
                    threshold=threshold,
                    router=self.router.name,
                    seconds=seconds,
                    forced=True,
                )
                for _ in conversations
            ]
        texts = [routing_text(c, self.routing_text_options) for c in conversations]
        unreadable = self._unreadable([t.text for t in texts])
        rates = np.full(len(texts), np.nan)
        scored = [i for i in range(len(texts)) if not unreadable[i]]
        if scored:
            rates[scored] = self.router.strong_win_rate([texts[i].text for i in scored])
        strong = decide_sides(np.nan_to_num(rates, nan=0.0), threshold)
        seconds = (time.perf_counter() - start) / max(len(conversations), 1)
        decisions = []
        for text, rate, go_strong, no_known in zip(texts, rates, strong, unreadable):
            if no_known:
                go_strong = self.policy.no_known_tokens_side == "strong"
            decisions.append(
                RoutingDecision(
                    side="strong" if go_strong else "weak",
                    model=strong_model if go_strong else weak_model,
                    win_rate=None if no_known else float(rate),
                    threshold=threshold,
                    router=self.router.name,
                    seconds=seconds,
                    skipped_parts=text.skipped_parts,
                    routing_text_tokens=text.tokens,
                    routing_text_source=text.source,
                    no_known_tokens=no_known,
                    extra=_extra(text),
                )
            )
        return decisions

    def _unreadable(self, texts: list[str]) -> list[bool]:
        """Which texts the router's embedder has no token for (when the rule applies and the
        embedder can tell)."""
        embedder = self.router.embedder
        if self.policy.no_known_tokens_side is None or embedder is None or not texts:
            return [False] * len(texts)
        unreadable = embedder.unreadable(texts)
        if unreadable is None:
            return [False] * len(texts)
        return [bool(u) for u in unreadable]

    async def adecide(
        self,
        conversation: Conversation,
        *,
        strong_model: str = "strong",
        weak_model: str = "weak",
        force: Side | None = None,
    ) -> RoutingDecision:
        """:meth:`decide` in a worker thread, so embedding never blocks the event loop."""
        import asyncio  # only async callers pay for importing it

        return await asyncio.to_thread(
            self.decide, conversation, strong_model=strong_model, weak_model=weak_model, force=force
        )


def engine_settings_key(
    router: Router | str | Path,
    threshold: float | None,
    strong_share: float | None,
    routing_text_options: RoutingTextOptions,
    no_known_tokens_side: Side | None,
) -> tuple[Any, ...]:
    """A hashable key of everything a :class:`RoutingEngine` is built from.

    The integrations cache one engine per key, so an engine follows fields reassigned after
    construction (or changed by ``model_copy``). A ``Router`` instance counts by identity.
    """
    router_key: Any = router if isinstance(router, Router) else str(router)
    return (router_key, threshold, strong_share, routing_text_options, no_known_tokens_side)


def _extra(text: RoutingText) -> dict[str, Any]:
    return {"routing_text_truncated": True} if text.truncated else {}
