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
from .decision import SIDES, RoutingDecision, Side, pair_names
from .errors import RoutingInputError
from .policy import DEFAULT_NO_KNOWN_TOKENS_SIDE, RoutingPolicy, decide_sides
from .routers.base import Router
from .routing_text import ChatTurn, RoutingText, RoutingTextOptions, routing_text
from .share_window import ShareWindow

Conversation = Sequence[ChatTurn | Mapping[str, Any]] | str


class RoutingEngine:
    """Decides, per conversation, whether the strong or the weak model should answer.

    Thread-safe: routers and embedders guard their shared state, the threshold is resolved
    once, under a lock, and a share window (``share_window``) updates under its own lock.
    The router is fixed for an engine's life; the integrations swap routers by swapping engines.
    """

    def __init__(
        self,
        router: Router | str | Path = DEFAULT_ROUTER,
        *,
        threshold: float | None = None,
        strong_share: float | None = None,
        routing_text_options: RoutingTextOptions | None = None,
        no_known_tokens_side: Side | None = DEFAULT_NO_KNOWN_TOKENS_SIDE,
        share_window: int | None = None,
        share_window_warmup: int | None = None,
    ) -> None:
        """``no_known_tokens_side``: the side of a call whose routing text has no token the
        router's embedder knows (``None``: score it anyway); see :class:`RoutingPolicy`.

        ``share_window`` (calls; opt-in): hold ``strong_share`` on the traffic routed here, with
        the threshold at the ``1 - strong_share`` quantile of the last ``share_window`` scored
        win rates, starting from the calibration's threshold until ``share_window_warmup``
        calls (default ``min(share_window, 100)``) are in the window. Each decision records
        it in ``extra["share_window"]``. Raises :class:`InvalidPolicyError` for a bad policy.
        """
        self.policy = RoutingPolicy(
            threshold=threshold,
            strong_share=strong_share,
            no_known_tokens_side=no_known_tokens_side,
            share_window=share_window,
            share_window_warmup=share_window_warmup,
        )
        self.router = router if isinstance(router, Router) else load_router(router)
        self.routing_text_options = routing_text_options or RoutingTextOptions()
        self.window = (
            None
            if share_window is None
            else ShareWindow(share_window, self.policy.target_share, share_window_warmup)
        )
        self._threshold: float | None = None
        self._lock = threading.Lock()

    @property
    def threshold(self) -> float:
        """The win-rate threshold in force: the policy's (resolved from ``strong_share`` on
        first use) or, with a share window past its warm-up, the window's current quantile."""
        if self.window is not None:
            return self.window.peek(self.calibrated_threshold).threshold
        return self.calibrated_threshold

    @property
    def calibrated_threshold(self) -> float:
        """The policy's own threshold: ``threshold`` as given, or ``strong_share`` through the
        router's calibration (where a share window starts)."""
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
        observe: bool = True,
        candidates: Mapping[str, str] | None = None,
    ) -> RoutingDecision:
        """Route one conversation (a list of turns, or a bare prompt string).

        ``observe=False`` is a dry run: the win rate does not enter the share window.
        ``candidates``: the pool's model names by key (``{"strong": ..., "weak": ...}``),
        instead of ``strong_model`` / ``weak_model``; the decision's ``side`` is a key.
        """
        return self.decide_many(
            [conversation],
            strong_model=strong_model,
            weak_model=weak_model,
            force=force,
            observe=observe,
            candidates=candidates,
        )[0]

    def decide_many(
        self,
        conversations: Sequence[Conversation],
        *,
        strong_model: str = "strong",
        weak_model: str = "weak",
        force: Side | None = None,
        observe: bool = True,
        candidates: Mapping[str, str] | None = None,
    ) -> list[RoutingDecision]:
        """Route several conversations with one batched router call (and, with a share window,
        one threshold). ``candidates`` as for :meth:`decide`."""
        if candidates is not None:
            strong_model, weak_model = pair_names(candidates)
        if force is not None and force not in SIDES:
            raise RoutingInputError(f"force must be 'strong', 'weak' or None, got {force!r}")
        start = time.perf_counter()
        calibrated = self.calibrated_threshold
        if force is not None:
            held = None if self.window is None else self.window.peek(calibrated)
            seconds = (time.perf_counter() - start) / max(len(conversations), 1)
            return [
                RoutingDecision(
                    side=force,
                    model=strong_model if force == "strong" else weak_model,
                    win_rate=None,
                    threshold=calibrated if held is None else held.threshold,
                    router=self.router.name,
                    seconds=seconds,
                    forced=True,
                    checkpoint_id=self.checkpoint_id,
                    extra={} if held is None else {"share_window": held.to_dict()},
                )
                for _ in conversations
            ]
        texts = [routing_text(c, self.routing_text_options) for c in conversations]
        no_known = self._unreadable([t.readable_text for t in texts])
        # The rule routes these calls (no win rate); with no_known_tokens_side=None they are
        # scored, and their decisions still say no_known_tokens.
        unreadable = [u and self.policy.no_known_tokens_side is not None for u in no_known]
        rates = np.full(len(texts), np.nan)
        scored = [i for i in range(len(texts)) if not unreadable[i]]
        if scored:
            rates[scored] = self.router.strong_win_rate([texts[i].text for i in scored])
        held = None
        if self.window is not None:
            # The calls are routed with the window as it stood, then their win rates enter it;
            # rule-routed calls (no known token) have no win rate and stay out, as they stay
            # out of a calibration.
            held = (
                self.window.take(rates[scored], calibrated)
                if observe
                else self.window.peek(calibrated)
            )
        threshold = calibrated if held is None else held.threshold
        strong = decide_sides(np.nan_to_num(rates, nan=0.0), threshold)
        seconds = (time.perf_counter() - start) / max(len(conversations), 1)
        decisions = []
        for text, rate, go_strong, ruled, unknown in zip(
            texts, rates, strong, unreadable, no_known, strict=True
        ):
            if ruled:  # a strong share of 0 or 1 holds for these calls too
                go_strong = (self.policy.end_side or self.policy.no_known_tokens_side) == "strong"
            extra = _extra(text)
            if held is not None:
                extra["share_window"] = held.to_dict()
            decisions.append(
                RoutingDecision(
                    side="strong" if go_strong else "weak",
                    model=strong_model if go_strong else weak_model,
                    win_rate=None if ruled else float(rate),
                    threshold=threshold,
                    router=self.router.name,
                    seconds=seconds,
                    checkpoint_id=self.checkpoint_id,
                    skipped_parts=text.skipped_parts,
                    routing_text_tokens=text.tokens,
                    routing_text_source=text.source,
                    no_known_tokens=unknown,
                    extra=extra,
                )
            )
        return decisions

    def _unreadable(self, texts: list[str]) -> list[bool]:
        """Which texts the router's embedder has no token for (when the embedder can tell)."""
        embedder = self.router.embedder
        if embedder is None or not texts:
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
        observe: bool = True,
        candidates: Mapping[str, str] | None = None,
    ) -> RoutingDecision:
        """:meth:`decide` in a worker thread, so embedding never blocks the event loop."""
        import asyncio  # only async callers pay for importing it

        return await asyncio.to_thread(
            self.decide,
            conversation,
            strong_model=strong_model,
            weak_model=weak_model,
            force=force,
            observe=observe,
            candidates=candidates,
        )


def _extra(text: RoutingText) -> dict[str, Any]:
    return {"routing_text_truncated": True} if text.truncated else {}
