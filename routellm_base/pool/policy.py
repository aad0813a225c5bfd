"""Choosing a candidate from predicted quality and expected cost (RouterBench's cost-aware
selection, Hu et al. 2024, section 3).

Units: quality q in [0, 1]; cost c in USD per 1,000 calls (a call's expected cost times 1,000),
so ``cost_weight`` lambda is quality given up per extra dollar per 1,000 calls. ``max_cost`` is
USD per call; ``budget`` USD per 1,000 calls.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import InvalidPolicyError, PoolError

DEFAULT_COST_WEIGHT = 0.02
"""lambda when a pool policy gives no knob: 0.02 quality per dollar per 1,000 calls, i.e. a model
costing $5 more per 1,000 calls must be predicted 0.10 better. On the RouterBench and LLMRouter
test splits (docs/results.md) this lands near the best single model's quality at well under its
cost; tune it on your own curve (``routellm eval --pool``)."""

DEFAULT_BUDGET_WINDOW = 1000
"""Calls whose predictions a budget policy solves its cost weight on."""

_POLICIES = ("cost_weight", "quality_tolerance", "budget")


def _non_negative(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidPolicyError(f"{what} must be a finite number >= 0, got {value!r}")
    if value < 0:
        raise InvalidPolicyError(f"{what} must be >= 0, got {value!r}")
    return float(value)


@dataclass(frozen=True)
class PoolChoice:
    """How a pool policy chose for one call: its ``policy`` (``"cost_weight"``,
    ``"quality_tolerance"``, ``"budget"`` or ``"forced"``) and ``knob`` (lambda, tau, the
    budget in USD per 1,000 calls; ``None`` when forced); ``cost_weight`` the lambda a budget
    solved for; each candidate's ``expected_cost`` (USD per call; every candidate, also for a
    forced call) and predicted ``quality`` (empty when no router ran: a forced call, a call
    whose text no token of the router's embedder knows, a pool of one); ``order`` the
    candidates the call may go to, best first (the fallback order); ``excluded`` why each
    other candidate may not (``"not allowed"``: left out of ``allowed_models``; ``"over
    max_cost"``: expected to cost more); ``extra`` what the router's prediction rests on
    (the zero-shot router: ``difficulty`` d(x) in [0, 1] and the raw ``win_rate`` it was
    ranked from; empty for a router that reports nothing)."""

    policy: str
    knob: float | None
    quality: dict[str, float]
    expected_cost: dict[str, float]
    order: tuple[str, ...]
    max_cost: float | None = None
    cost_weight: float | None = None
    excluded: dict[str, str] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "policy": self.policy,
            "knob": self.knob,
            "cost_weight": self.cost_weight,
            "max_cost": self.max_cost,
            "quality": dict(self.quality),
            "expected_cost": dict(self.expected_cost),
            "order": list(self.order),
            "excluded": dict(self.excluded),
            "extra": dict(self.extra),
        }


@dataclass(frozen=True)
class PoolPolicy:
    """Which candidate a call goes to, from each candidate's predicted quality q and expected
    cost c. Give at most one of:

    * ``cost_weight`` lambda >= 0 (quality per USD per 1,000 calls): the argmax of
      ``q - lambda * c``; lambda 0 takes the best predicted quality whatever it costs. The
      default when none is given (:data:`DEFAULT_COST_WEIGHT`).
    * ``quality_tolerance`` tau in [0, 1]: the cheapest candidate predicted within tau of the
      best one.
    * ``budget`` (USD per 1,000 calls): hold that average spend over the last ``budget_window``
      calls of live traffic: lambda is solved each batch as the smallest one whose choices
      over the window's predictions cost at most the budget on average (the first calls are
      solved on what the window holds, at least the call itself).

    ``max_cost`` (USD per call) combines with any of them: candidates expected to cost more
    are never chosen, and a call none fits raises :class:`PoolError`.
    """

    cost_weight: float | None = None
    quality_tolerance: float | None = None
    budget: float | None = None
    budget_window: int = DEFAULT_BUDGET_WINDOW
    max_cost: float | None = None

    def __post_init__(self) -> None:
        given = [name for name in _POLICIES if getattr(self, name) is not None]
        if len(given) > 1:
            raise InvalidPolicyError(
                f"give at most one of cost_weight, quality_tolerance and budget, got {given}"
            )
        if self.cost_weight is not None:
            _non_negative(self.cost_weight, "cost_weight")
        if self.quality_tolerance is not None:
            tau = _non_negative(self.quality_tolerance, "quality_tolerance")
            if tau > 1:
                raise InvalidPolicyError(f"quality_tolerance must be in [0, 1], got {tau!r}")
        if self.budget is not None:
            _non_negative(self.budget, "budget")
        if self.max_cost is not None:
            _non_negative(self.max_cost, "max_cost")
        window = self.budget_window
        if isinstance(window, bool) or not isinstance(window, int) or window < 1:
            raise InvalidPolicyError(
                f"budget_window must be a whole number of calls >= 1, got {window!r}"
            )

    @property
    def name(self) -> str:
        """``"cost_weight"``, ``"quality_tolerance"`` or ``"budget"``."""
        for name in _POLICIES:
            if getattr(self, name) is not None:
                return name
        return "cost_weight"

    @property
    def knob(self) -> float:
        """lambda, tau or the budget."""
        if self.quality_tolerance is not None:
            return self.quality_tolerance
        if self.budget is not None:
            return self.budget
        return DEFAULT_COST_WEIGHT if self.cost_weight is None else self.cost_weight

    def with_overrides(self, **overrides: Any) -> PoolPolicy:
        """This policy with per-call ``cost_weight`` / ``quality_tolerance`` / ``budget`` /
        ``max_cost`` (``None`` keeps this policy's); a new knob replaces the old one."""
        given = {k: v for k, v in overrides.items() if v is not None}
        unknown = set(given) - {*_POLICIES, "max_cost"}
        if unknown:
            raise InvalidPolicyError(f"unknown pool policy setting(s) {sorted(unknown)}")
        if not given:
            return self
        fields: dict[str, Any] = {
            "budget_window": self.budget_window,
            "max_cost": given.get("max_cost", self.max_cost),
        }
        knobs = {k: v for k, v in given.items() if k in _POLICIES}
        if knobs:
            fields.update(knobs)
        else:
            fields[self.name] = getattr(self, self.name)
        return PoolPolicy(**fields)

    def usable(self, costs: np.ndarray, allowed: np.ndarray, names: tuple[str, ...]) -> np.ndarray:
        """``allowed`` (shape ``(m,)``) narrowed, per call, to candidates within ``max_cost``
        (shape ``(n, m)``); :class:`PoolError` for a call that none fits."""
        usable = np.broadcast_to(allowed, costs.shape).copy()
        if self.max_cost is not None:
            usable &= costs <= self.max_cost + 1e-15
            empty = ~usable.any(axis=1)
            if empty.any():
                row = int(np.argmax(empty))
                cheapest = int(np.argmin(np.where(allowed, costs[row], np.inf)))
                raise PoolError(
                    f"no candidate of the pool [{', '.join(names)}] is expected to cost at most "
                    f"max_cost=${self.max_cost:.6g} per call; the cheapest allowed one, "
                    f"{names[cheapest]!r}, is expected at ${costs[row, cheapest]:.6g}: raise "
                    "max_cost or allow a cheaper model"
                )
        return usable

    def utility(
        self, quality: np.ndarray, costs: np.ndarray, usable: np.ndarray, cost_weight: float
    ) -> np.ndarray:
        """The score each candidate is ranked by, best highest, ``-inf`` where unusable
        (shape ``(n, m)``); ``cost_weight`` is lambda (for a budget, the solved one)."""
        if self.quality_tolerance is not None:
            best = np.max(np.where(usable, quality, -np.inf), axis=1, keepdims=True)
            within = quality >= best - self.quality_tolerance - 1e-12
            # within tau: cheapest first; the rest after them, best quality first
            score = np.where(within, 2.0 + 1.0 / (1.0 + 1000.0 * costs), quality)
        else:
            score = quality - cost_weight * 1000.0 * costs
        return np.where(usable, score, -np.inf)


def ranked(utility: np.ndarray, costs: np.ndarray) -> np.ndarray:
    """Candidate indices per call, best utility first (ties: cheaper first), shape ``(n, m)``."""
    return (
        np.lexsort((costs, -utility), axis=-1)
        if utility.ndim == 1
        else np.array([np.lexsort((c, -u)) for u, c in zip(utility, costs)])
    )


class BudgetWindow:
    """The last ``size`` calls' predictions, to solve the cost weight that holds a budget.

    Thread-safe. Each row holds one call's quality (``-inf`` where a candidate was not usable)
    and expected costs in USD per 1,000 calls.
    """

    def __init__(self, size: int, models: int) -> None:
        self.size = size
        self._quality = np.full((size, models), -np.inf)
        self._costs = np.zeros((size, models))
        self._filled = 0
        self._next = 0
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return self._filled

    def take(
        self,
        quality: np.ndarray,
        costs: np.ndarray,
        usable: np.ndarray,
        budget: float,
        observe: bool,
    ) -> float:
        """The smallest lambda whose choices over the window plus these calls cost at most
        ``budget`` (USD per 1,000 calls) on average; the calls enter the window when
        ``observe``. ``costs`` are USD per call."""
        q = np.where(usable, quality, -np.inf)
        c = 1000.0 * costs
        with self._lock:
            window_q = np.concatenate([self._quality[: self._filled], q])
            window_c = np.concatenate([self._costs[: self._filled], c])
            if observe:
                for row_q, row_c in zip(q, c):
                    self._quality[self._next] = row_q
                    self._costs[self._next] = row_c
                    self._next = (self._next + 1) % self.size
                    self._filled = min(self._filled + 1, self.size)
        return solve_cost_weight(window_q, window_c, budget)


def _mean_cost(quality: np.ndarray, costs: np.ndarray, cost_weight: float) -> float:
    score = quality - cost_weight * costs
    pick = np.argmax(score, axis=1)
    return float(costs[np.arange(len(costs)), pick].mean())


def solve_cost_weight(quality: np.ndarray, costs: np.ndarray, budget: float) -> float:
    """The smallest lambda >= 0 (to 0.1% of itself) whose argmax choices over ``quality`` /
    ``costs`` (both ``(n, m)``, costs in USD per 1,000 calls, ``-inf`` quality where unusable)
    cost at most ``budget`` on average; when no lambda does, the one that picks the cheapest
    usable candidate everywhere."""
    if _mean_cost(quality, costs, 0.0) <= budget:
        return 0.0
    finite = np.isfinite(quality)
    spread = float(np.ptp(quality[finite])) if finite.any() else 1.0
    gaps = np.diff(np.unique(costs[finite]))
    smallest_gap = float(gaps[gaps > 0].min()) if (gaps > 0).any() else 1.0
    high = max(spread, 1e-9) / smallest_gap * 2.0  # above it every call takes its cheapest
    if _mean_cost(quality, costs, high) > budget:
        return high
    low = 0.0
    while high - low > 1e-3 * high:
        mid = 0.5 * (low + high)
        if _mean_cost(quality, costs, mid) <= budget:
            high = mid
        else:
            low = mid
    return high
