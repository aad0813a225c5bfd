"""The record of one routing decision."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import TYPE_CHECKING, Any, Literal

from .errors import RoutingInputError

if TYPE_CHECKING:
    from .pool.policy import PoolChoice

Side = Literal["strong", "weak"]
SIDES: tuple[Side, Side] = ("strong", "weak")

FORCE_KWARG = "routellm_force"
"""The call argument (and, in LangChain, config ``metadata`` key) that forces a candidate by its
key, skipping the router: ``"strong"`` or ``"weak"`` between two models, a model name in a pool;
both integrations take it."""


def pair_names(candidates: Mapping[str, str]) -> tuple[str, str]:
    """The strong and weak model names of a pool given as ``{key: model name}``.

    A pool is two candidates keyed ``"strong"`` and ``"weak"`` today (routing among more needs
    a policy for a pool); :class:`RoutingInputError` names any other set of keys.
    """
    if set(candidates) != set(SIDES):
        raise RoutingInputError(
            f"candidates must be keyed 'strong' and 'weak', got {sorted(candidates)}"
        )
    return candidates["strong"], candidates["weak"]


def new_call_id() -> str:
    """A fresh call id: 32 lowercase hex characters (a random UUID)."""
    return uuid.uuid4().hex


@dataclass(frozen=True)
class RoutingDecision:
    """How one call was routed.

    Between two models: ``win_rate`` is the router's estimate that the strong model's answer
    beats the weak one's; the call went strong when ``win_rate >= threshold`` unless ``forced``
    says a caller chose the side or ``no_known_tokens`` says a rule did. ``win_rate`` is
    ``None`` exactly then: forced decisions and rule-routed ones skip the router (with
    ``no_known_tokens_side=None`` there is no rule: such a call is scored, ``win_rate`` set and
    ``no_known_tokens`` still true).

    In a pool of several models (:class:`routellm_base.pool.PoolEngine`): ``side`` and
    ``model`` are the chosen candidate's name, ``win_rate`` and ``threshold`` are ``None``, and
    ``pool`` holds each candidate's predicted quality and expected cost, the policy and its
    knob, and the fallback order.
    """

    side: str
    """The chosen candidate's key: ``"strong"`` / ``"weak"`` between two models, the model
    name in a pool."""
    model: str
    win_rate: float | None
    threshold: float | None
    router: str
    seconds: float
    forced: bool = False
    checkpoint_id: str | None = None
    """The sha256 of the weights of the router that decided (``None``: a router not loaded from
    a checkpoint). Taken from the same engine as the win rate and threshold, so it names the
    router of this decision even while a new router is being swapped in."""
    skipped_parts: tuple[str, ...] = ()
    """Non-text content parts left out of the routing text, e.g. ``("image_url",)``."""
    routing_text_tokens: int | None = None
    routing_text_source: str | None = None
    """What the routing text was built from: ``"user"`` (the last user turn), ``"system"``
    (no user turn, so the system text), ``"routing_text_fn"`` (the caller's hook); ``None``
    for forced decisions, which read no text."""
    no_known_tokens: bool = False
    """The embedder knew no token of the routing text (e.g. a script its vocabulary lacks), so
    the router could not score it and the engine's ``no_known_tokens_side`` rule chose the side
    (``win_rate`` ``None``); with ``no_known_tokens_side=None`` the text was scored anyway
    (``win_rate`` set) and this still says so."""
    fallback_from: str | None = None
    """Set when the chosen side raised and the call fell back to this decision's side (in a
    pool, possibly after several candidates failed: the first one chosen)."""
    fallback_reason: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    """Further facts: ``routing_text_truncated``; ``share_window`` when the engine holds its
    strong share on live traffic (``{"threshold_from": "window" | "calibration", "size",
    "fill", "target_share"}``: ``threshold`` came from the window's quantile or, during
    warm-up, from the calibration; ``fill`` win rates were in the window of ``size``);
    ``call_policy`` when the call gave its own ``threshold`` or ``strong_share``
    (``{"threshold": t}`` or ``{"strong_share": s}``, as given; ``threshold`` is the one it
    meant)."""
    pool: PoolChoice | None = None
    """A pool decision's predictions, policy and fallback order (``None`` between two)."""
    call_id: str = field(default_factory=new_call_id)
    """Identifies the call this decision routes (32 hex characters, made with the decision and
    kept through a fallback): the routing log's ``call_id``, and what
    :meth:`routellm_base.log.RoutingLog.feedback` takes to attach feedback to the call."""

    def fell_back(
        self, other_model: str, error: BaseException, *, to: str | None = None
    ) -> RoutingDecision:
        """This decision after the chosen candidate raised ``error`` and the call went to
        ``to`` (a pool's next candidate; between two models, the other side, and at most once)."""
        reason = f"{type(error).__name__}: {error}"[:500]
        if to is None:
            if self.fallback_from is not None:
                raise ValueError("a decision falls back at most once")
            to = "weak" if self.side == "strong" else "strong"
        else:  # a pool may fall back along its order: keep every candidate's failure
            reason = f"{self.side}: {reason}"[:500]
            if self.fallback_reason is not None:
                reason = f"{self.fallback_reason}; {reason}"[:2000]
        return replace(
            self,
            side=to,
            model=other_model,
            fallback_from=self.fallback_from or self.side,
            fallback_reason=reason,
        )

    @property
    def expected_cost(self) -> float | None:
        """A pool decision's expected cost of the model that answers (``model``; after a
        fallback, the one fallen back to), USD per call; ``None`` between two models."""
        return None if self.pool is None else self.pool.expected_cost.get(self.model)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict of every field; a pool decision's also has a top-level
        ``expected_cost`` (:attr:`expected_cost`), as the integrations' metadata and
        ``routellm serve``'s answers show it."""
        # Built by hand: dataclasses.asdict deep-copies recursively and showed up in the
        # per-call overhead of the integrations.
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        data["skipped_parts"] = list(self.skipped_parts)
        data["extra"] = dict(self.extra)
        if self.pool is not None:
            data["pool"] = self.pool.to_dict()
            data["expected_cost"] = self.expected_cost
        return data
