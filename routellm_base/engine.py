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
from .errors import InvalidPolicyError, RoutingInputError
from .policy import DEFAULT_NO_KNOWN_TOKENS_SIDE, RoutingPolicy, decide_sides
from .routers.base import Router
from .routing_text import ChatTurn, RoutingText, RoutingTextOptions, routing_text
from .share_window import ShareWindow, WindowThreshold

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
        threshold: float | None = None,
        strong_share: float | None = None,
    ) -> RoutingDecision:
        """Route one conversation (a list of turns, or a bare prompt string).

        ``observe=False`` is a dry run: the win rate does not enter the share window.
        ``candidates``: the pool's model names by key (``{"strong": ..., "weak": ...}``),
        instead of ``strong_model`` / ``weak_model``; the decision's ``side`` is a key.
        ``threshold`` / ``strong_share``: this call's own policy, see :meth:`decide_many`.
        """
        return self.decide_many(
            [conversation],
            strong_model=strong_model,
            weak_model=weak_model,
            force=force,
            observe=observe,
            candidates=candidates,
            threshold=threshold,
            strong_share=strong_share,
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
        threshold: float | None = None,
        strong_share: float | None = None,
    ) -> list[RoutingDecision]:
        """Route several conversations with one batched router call (and, with a share window,
        one threshold). ``candidates`` as for :meth:`decide`.

        ``threshold`` (a win rate in [0, 1]) or ``strong_share`` (0..1, turned into a threshold
        through the router's calibration, as the engine's own policy is): these calls' own
        policy instead of the engine's. They are routed by it alone and stay out of a share
        window (which holds the engine's own share); each decision's ``threshold`` is the one
        used and ``extra["call_policy"]`` the setting given (``{"threshold": t}`` or
        ``{"strong_share": s}``). Errors (:class:`InvalidPolicyError`, before the router runs):
        both given, a value outside [0, 1], a ``strong_share`` the router has no calibration
        for, and a ``strong_share`` on an engine with a share window (its share is held on
        live traffic, not read off the calibration: give a ``threshold``)."""
        if candidates is not None:
            strong_model, weak_model = pair_names(candidates)
        if force is not None and force not in SIDES:
            raise RoutingInputError(f"force must be 'strong', 'weak' or None, got {force!r}")
        policy, call_policy = self._call_policy(threshold, strong_share)
        start = time.perf_counter()
        window = self.window if call_policy is None else None
        calibrated = (
            self.calibrated_threshold if call_policy is None else policy.threshold_for(self.router)
        )
        if force is not None:
            held = None if window is None else window.peek(calibrated)
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
                    extra=_policy_extra(held, call_policy),
                )
                for _ in conversations
            ]
        texts = [routing_text(c, self.routing_text_options) for c in conversations]
        no_known = self._unreadable([t.readable_text for t in texts])
        # The rule routes these calls (no win rate); with no_known_tokens_side=None they are
        # scored, and their decisions still say no_known_tokens.
        unreadable = [u and policy.no_known_tokens_side is not None for u in no_known]
        rates = np.full(len(texts), np.nan)
        scored = [i for i in range(len(texts)) if not unreadable[i]]
        if scored:
            rates[scored] = self.router.strong_win_rate([texts[i].text for i in scored])
        held = None
        if window is not None:
            # The calls are routed with the window as it stood, then their win rates enter it;
            # rule-routed calls (no known token) have no win rate and stay out, as they stay
            # out of a calibration.
            held = window.take(rates[scored], calibrated) if observe else window.peek(calibrated)
        threshold = calibrated if held is None else held.threshold
        strong = decide_sides(np.nan_to_num(rates, nan=0.0), threshold)
        seconds = (time.perf_counter() - start) / max(len(conversations), 1)
        decisions = []
        for text, rate, go_strong, ruled, unknown in zip(
            texts, rates, strong, unreadable, no_known, strict=True
        ):
            if ruled:  # a strong share of 0 or 1 holds for these calls too
                go_strong = (policy.end_side or policy.no_known_tokens_side) == "strong"
            extra = {**_extra(text), **_policy_extra(held, call_policy)}
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

    def _call_policy(
        self, threshold: float | None, strong_share: float | None
    ) -> tuple[RoutingPolicy, dict[str, float] | None]:
        """The policy a call routes by: the engine's, or the call's own ``threshold`` /
        ``strong_share`` (checked; with the engine's ``no_known_tokens_side``), and the call's
        setting as given (``None`` for the engine's policy)."""
        if threshold is None and strong_share is None:
            return self.policy, None
        if strong_share is not None and self.window is not None:
            raise InvalidPolicyError(
                f"a per-call strong_share does not apply to a router holding its strong_share "
                f"on live traffic (share_window={self.window.size}): give the call a threshold "
                "instead, or route it with a model of its own strong_share"
            )
        policy = RoutingPolicy(
            threshold=threshold,
            strong_share=strong_share,
            no_known_tokens_side=self.policy.no_known_tokens_side,
        )
        given = {"threshold": policy.threshold} if threshold is not None else {}
        return policy, given or {"strong_share": policy.target_share}

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
        threshold: float | None = None,
        strong_share: float | None = None,
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
            threshold=threshold,
            strong_share=strong_share,
        )


def _extra(text: RoutingText) -> dict[str, Any]:
    return {"routing_text_truncated": True} if text.truncated else {}


def _policy_extra(
    held: WindowThreshold | None, call_policy: dict[str, float] | None
) -> dict[str, Any]:
    """A decision's record of where its threshold came from: the share window's state, or
    the call's own setting."""
    if call_policy is not None:
        return {"call_policy": dict(call_policy)}
    return {} if held is None else {"share_window": held.to_dict()}
