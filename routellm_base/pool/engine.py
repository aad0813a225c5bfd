"""The engine API for a pool: conversation in, routing decision among several models out.

messages -> routing text -> embedding -> each candidate's quality -> policy (with expected
costs) -> decision. The two-model engine (:class:`routellm_base.RoutingEngine`) stays the
win-rate path; this one shares its routing text and decision record.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from ..decision import RoutingDecision
from ..engine import Conversation
from ..errors import PoolError
from ..routing_text import RoutingTextOptions, routing_text, turn_texts
from .models import Pool
from .policy import BudgetWindow, PoolChoice, PoolPolicy, ranked
from .routers import PoolRouter

CHARS_PER_TOKEN = 4.0
"""A call's expected input tokens are its conversation's characters over 4 (the usual English
rule of thumb, and RouterBench-style estimates'); the cost actually billed is counted from the
model's reported usage after the call."""


def _excluded(
    names: Sequence[str], allowed: Sequence[bool], usable: Sequence[bool]
) -> dict[str, str]:
    """Why each candidate a call may not go to is left out: ``"not allowed"`` (not in the
    call's allowed models) or ``"over max_cost"`` (allowed, but expected to cost more)."""
    return {
        name: "not allowed" if not ok else "over max_cost"
        for name, ok, fits in zip(names, allowed, usable)
        if not fits
    }


def prompt_tokens(conversation: Conversation) -> float:
    """Expected input tokens of a conversation: all its turns' characters / 4."""
    if isinstance(conversation, str):
        return len(conversation) / CHARS_PER_TOKEN
    return sum(len(text) for _, text in turn_texts(conversation)) / CHARS_PER_TOKEN


class PoolEngine:
    """Decides, per conversation, which model of a pool should answer.

    ``router`` predicts each candidate's quality; ``pool`` names the candidates and their
    prices (:class:`Pool`, or a mapping ``{name: price}``); ``policy`` turns predictions and
    expected costs into a choice (default: :class:`PoolPolicy` with its default cost weight).
    Thread-safe; a budget policy keeps its window under a lock.

    Raises :class:`PoolError` when the router has never seen one of the pool's models.
    """

    def __init__(
        self,
        router: PoolRouter,
        pool: Pool | Mapping[str, Any],
        *,
        policy: PoolPolicy | None = None,
        routing_text_options: RoutingTextOptions | None = None,
        no_known_tokens_rule: bool = True,
    ) -> None:
        """``no_known_tokens_rule``: a call whose routing text has no token the router's
        embedder knows skips the router and goes to the priciest usable candidate (as the
        two-model engine sends it strong); ``False`` scores it anyway."""
        self.router = router
        self.pool = pool if isinstance(pool, Pool) else Pool(pool)
        self.policy = policy or PoolPolicy()
        self.routing_text_options = routing_text_options or RoutingTextOptions()
        self.no_known_tokens_rule = no_known_tokens_rule
        router.check_pool(self.pool)  # names unseen models now, not at the first call
        self._windows: dict[int, BudgetWindow] = {}
        self._lock = threading.Lock()

    @property
    def checkpoint_id(self) -> str | None:
        value = self.router.metadata.get("checkpoint_id")
        return str(value) if value else None

    def _window(self, policy: PoolPolicy) -> BudgetWindow:
        with self._lock:
            window = self._windows.get(policy.budget_window)
            if window is None:
                window = self._windows[policy.budget_window] = BudgetWindow(
                    policy.budget_window, len(self.pool)
                )
            return window

    def decide(
        self,
        conversation: Conversation,
        *,
        force: str | None = None,
        allowed: Iterable[str] | None = None,
        observe: bool = True,
        candidates: Mapping[str, str] | None = None,
        **policy: Any,
    ) -> RoutingDecision:
        """Route one conversation; see :meth:`decide_many`."""
        return self.decide_many(
            [conversation],
            force=force,
            allowed=allowed,
            observe=observe,
            candidates=candidates,
            **policy,
        )[0]

    def decide_many(
        self,
        conversations: Sequence[Conversation],
        *,
        force: str | None = None,
        allowed: Iterable[str] | None = None,
        observe: bool = True,
        candidates: Mapping[str, str] | None = None,
        **policy: Any,
    ) -> list[RoutingDecision]:
        """Route several conversations with one batched router call.

        * ``force``: a candidate's name; skips the router (not ``allowed`` nor ``max_cost``,
          which still bound it and its fallback order).
        * ``allowed``: the candidates these calls may go to (default: the whole pool).
        * ``cost_weight`` / ``quality_tolerance`` / ``budget`` / ``max_cost``: per-call
          overrides of the engine's :class:`PoolPolicy`.
        * ``candidates``: ``{name: name}`` of the pool a routed call holds; must match the
          pool (it is checked, so a call never routes to a model it cannot call).
        * ``observe=False``: a dry run; the calls do not enter a budget window.

        Raises :class:`PoolError` for an unknown name, :class:`InvalidPolicyError` for a bad
        policy setting, and :class:`PoolError` when ``max_cost`` leaves no candidate.
        """
        pool = self.pool
        if candidates is not None and tuple(candidates) != pool.names:
            raise PoolError(
                f"the call's candidates {list(candidates)} are not the engine's pool "
                f"{list(pool.names)}"
            )
        rules = self.policy.with_overrides(**policy)
        start = time.perf_counter()
        if force is not None:
            return self._forced(conversations, force, allowed, rules, start)
        allowed_mask = pool.mask(allowed)
        costs = pool.expected_costs([prompt_tokens(c) for c in conversations])
        usable = rules.usable(costs, allowed_mask, pool.names)
        texts = [routing_text(c, self.routing_text_options) for c in conversations]
        no_known = self._unreadable([t.readable_text for t in texts])
        # The rule routes these calls; without it they are scored, and still said no_known_tokens.
        unreadable = [u and self.no_known_tokens_rule for u in no_known]
        quality = np.full((len(texts), len(pool)), np.nan)
        scored = [i for i in range(len(texts)) if not unreadable[i]]
        facts: dict[int, dict[str, Any]] = {}
        if scored and len(pool) > 1:
            quality[scored], found = self.router.predict([texts[i].text for i in scored], pool)
            facts = dict(zip(scored, found or ()))
        # A pool of one answers with its model: no router runs, no quality is predicted.
        predicted = len(pool) > 1
        cost_weight = rules.knob if rules.name == "cost_weight" else 0.0
        if rules.budget is not None:
            rows = np.array(scored, dtype=int)
            cost_weight = (
                self._window(rules).take(
                    quality[rows], costs[rows], usable[rows], rules.budget, observe
                )
                if scored
                else 0.0
            )
        utility = rules.utility(np.nan_to_num(quality, nan=0.0), costs, usable, cost_weight)
        seconds = (time.perf_counter() - start) / max(len(conversations), 1)
        decisions = []
        # Python lists once per batch: indexing numpy scalars per candidate costs more than
        # the rest of a decision.
        usable_rows, quality_rows, cost_rows = usable.tolist(), quality.tolist(), costs.tolist()
        names = pool.names
        allowed_row = allowed_mask.tolist()
        for i, text in enumerate(texts):
            if unreadable[i]:  # the priciest usable candidate, as the two-model rule goes strong
                order_idx = ranked(np.where(usable[i], costs[i], -np.inf), costs[i])
            else:
                order_idx = ranked(utility[i], costs[i])
            row_usable = usable_rows[i]
            order = tuple(names[j] for j in order_idx.tolist() if row_usable[j])
            choice = PoolChoice(
                policy=rules.name,
                knob=rules.knob,
                quality={} if unreadable[i] or not predicted else dict(zip(names, quality_rows[i])),
                expected_cost=dict(zip(names, cost_rows[i])),
                order=order,
                max_cost=rules.max_cost,
                cost_weight=cost_weight if rules.name != "quality_tolerance" else None,
                excluded=_excluded(names, allowed_row, row_usable),
                extra=facts.get(i, {}),
            )
            decisions.append(
                self._decision(
                    order[0],
                    text,
                    seconds,
                    choice=choice,
                    no_known_tokens=no_known[i],
                )
            )
        return decisions

    def _forced(
        self,
        conversations: Sequence[Conversation],
        force: str,
        allowed: Iterable[str] | None,
        rules: PoolPolicy,
        start: float,
    ) -> list[RoutingDecision]:
        """Decisions for a forced call: the router is skipped, but the call stays within
        ``allowed`` and ``max_cost`` (a forced model outside them is a :class:`PoolError`), and
        so does its fallback order (the other usable candidates, in pool order)."""
        pool = self.pool
        forced = pool.index(force, "forced model")
        allowed_mask = pool.mask(allowed)
        if not allowed_mask[forced]:
            names = [n for n, ok in zip(pool.names, allowed_mask) if ok]
            raise PoolError(f"forced model {force!r} is not one of the allowed models {names}")
        costs = pool.expected_costs([prompt_tokens(c) for c in conversations])
        fits = np.ones((len(conversations), len(pool)), dtype=bool)
        if rules.max_cost is not None:
            fits = costs <= rules.max_cost + 1e-15
            if not fits[:, forced].all():
                row = int(np.argmin(fits[:, forced]))
                raise PoolError(
                    f"forced model {force!r} is expected to cost ${costs[row, forced]:.6g} per "
                    f"call, over max_cost=${rules.max_cost:.6g}: raise max_cost or force a "
                    "cheaper model"
                )
        seconds = (time.perf_counter() - start) / max(len(conversations), 1)
        allowed_row, cost_rows, fit_rows = allowed_mask.tolist(), costs.tolist(), fits.tolist()
        return [
            self._decision(
                force,
                None,
                seconds,
                forced=True,
                choice=PoolChoice(
                    policy="forced",
                    knob=None,
                    quality={},  # no router ran
                    expected_cost=dict(zip(pool.names, cost_rows[i])),
                    # a forced call that fails may still fall back, as between two models
                    order=(
                        force,
                        *(
                            name
                            for j, name in enumerate(pool.names)
                            if j != forced and allowed_mask[j] and fits[i, j]
                        ),
                    ),
                    max_cost=rules.max_cost,
                    excluded=_excluded(
                        pool.names,
                        allowed_row,
                        [ok and fit for ok, fit in zip(allowed_row, fit_rows[i])],
                    ),
                ),
            )
            for i in range(len(conversations))
        ]

    def _decision(
        self,
        name: str,
        text: Any,
        seconds: float,
        *,
        choice: PoolChoice,
        forced: bool = False,
        no_known_tokens: bool = False,
    ) -> RoutingDecision:
        extra = {"routing_text_truncated": True} if text is not None and text.truncated else {}
        return RoutingDecision(
            side=name,
            model=name,
            win_rate=None,
            threshold=None,
            router=self.router.name,
            seconds=seconds,
            forced=forced,
            checkpoint_id=self.checkpoint_id,
            skipped_parts=() if text is None else text.skipped_parts,
            routing_text_tokens=None if text is None else text.tokens,
            routing_text_source=None if text is None else text.source,
            no_known_tokens=no_known_tokens,
            extra=extra,
            pool=choice,
        )

    def _unreadable(self, texts: list[str]) -> list[bool]:
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
        force: str | None = None,
        allowed: Iterable[str] | None = None,
        observe: bool = True,
        candidates: Mapping[str, str] | None = None,
        **policy: Any,
    ) -> RoutingDecision:
        """:meth:`decide` in a worker thread, so embedding never blocks the event loop."""
        import asyncio

        return await asyncio.to_thread(
            self.decide,
            conversation,
            force=force,
            allowed=allowed,
            observe=observe,
            candidates=candidates,
            **policy,
        )
