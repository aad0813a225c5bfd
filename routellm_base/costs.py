"""Cost accounting for routed calls: tokens and estimated cost per side, savings vs always-strong.

Framework-agnostic: the integrations feed :meth:`CostTracker.record` with one routed call at a
time (side, model, input/output tokens); :meth:`CostTracker.report` sums them up. Between two
models the candidates are the sides ``strong`` and ``weak`` (:class:`CostReport`); in a pool of
several models each candidate is keyed by its model name (:class:`PoolCostReport`), and savings
are counted against always using the pool's most expensive model.

Prices are USD per one million tokens, per model name. A model with no price is counted in tokens
and costs 0 (its calls are listed in ``CostReport.unpriced_models`` so a missing price is never
silent). Savings compare the actual cost with what the same tokens would have cost had every call
gone to the strong model (the RouteLLM paper's accounting: same prompts, strong-model prices).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from .decision import SIDES, Side
from .errors import RoutingInputError
from .tokens import MAX_ENCODE_CHARS, measure_tokens


@dataclass(frozen=True)
class ModelPrice:
    """USD per 1M input tokens and per 1M output tokens: finite numbers >= 0 (NaN or infinity
    would make every cost, and a pool's every choice, meaningless: refused)."""

    input_per_million: float
    output_per_million: float

    def __post_init__(self) -> None:
        for name in ("input_per_million", "output_per_million"):
            value = getattr(self, name)
            if (
                not isinstance(value, int | float)
                or isinstance(value, bool)
                or not math.isfinite(value)
                or value < 0
            ):
                raise RoutingInputError(
                    f"price {name} must be a finite, non-negative number (USD per million tokens), "
                    f"got {value!r}"
                )

    def cost(self, input_tokens: int, output_tokens: int) -> float:
        return (
            input_tokens * self.input_per_million + output_tokens * self.output_per_million
        ) / 1e6


PriceLike = ModelPrice | tuple[float, float] | Mapping[str, float]

# List prices (USD / 1M tokens) of the models the examples use; a user's own prices override them.
DEFAULT_PRICES: dict[str, ModelPrice] = {
    "gpt-4o": ModelPrice(2.50, 10.00),
    "gpt-4o-mini": ModelPrice(0.15, 0.60),
}


def as_price(value: PriceLike) -> ModelPrice:
    """A :class:`ModelPrice` from a ModelPrice, an ``(input, output)`` pair or a mapping with
    ``input``/``output`` (or ``input_per_million``/``output_per_million``) keys."""
    if isinstance(value, ModelPrice):
        return value
    if isinstance(value, Mapping):
        try:
            inp = value.get("input_per_million", value.get("input"))
            out = value.get("output_per_million", value.get("output"))
        except AttributeError as exc:  # pragma: no cover - Mapping always has get
            raise RoutingInputError(f"bad price {value!r}") from exc
        if inp is None or out is None:
            raise RoutingInputError(
                f"a price mapping needs 'input' and 'output' (USD per 1M tokens), got {dict(value)!r}"
            )
        return ModelPrice(float(inp), float(out))
    if isinstance(value, tuple | list) and len(value) == 2:
        return ModelPrice(float(value[0]), float(value[1]))
    raise RoutingInputError(
        f"a price must be a ModelPrice, an (input, output) pair or a mapping, got {value!r}"
    )


def as_prices(prices: Mapping[str, PriceLike] | None) -> dict[str, ModelPrice]:
    """``{model: ModelPrice}`` from ``{model: price}`` as :func:`as_price` takes each; a bad
    price raises :class:`RoutingInputError` naming its model."""
    out = {}
    for name, price in (prices or {}).items():
        try:
            out[name] = as_price(price)
        except (RoutingInputError, TypeError, ValueError) as exc:
            raise RoutingInputError(f"model {name!r}: {exc}") from exc
    return out


def count_tokens(
    input_tokens: int | None,
    output_tokens: int | None,
    input_text: str | None,
    output_text: str | None,
) -> tuple[int, int, bool, bool]:
    """A call's ``(input_tokens, output_tokens, estimated, extrapolated)``: the counts the
    model reported, else counted from the texts with ``cl100k_base`` (``estimated``; and
    ``extrapolated`` when a text was too long to count whole, see
    :func:`routellm_base.tokens.measure_tokens`)."""
    estimated = extrapolated = False
    if input_tokens is None:
        input_tokens, extrapolated = measure_tokens(input_text or "")
        estimated = True
    if output_tokens is None:
        output_tokens, long_output = measure_tokens(output_text or "")
        estimated, extrapolated = True, extrapolated or long_output
    return input_tokens, output_tokens, estimated, extrapolated


@dataclass(frozen=True)
class CallCost:
    """Tokens and estimated cost of one call, as :meth:`CostTracker.record` counted them."""

    input_tokens: int
    output_tokens: int
    estimated: bool
    """The tokens were counted with cl100k (the model reported no usage)."""
    cost: float | None
    """USD; ``None`` when the model has no price."""


@dataclass
class SideTotals:
    """Totals for one side (strong or weak), or for one candidate of a pool."""

    calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost: float = 0.0
    estimated_calls: int = 0
    """Calls whose tokens were counted with cl100k (the model reported no usage)."""
    extrapolated_calls: int = 0
    """Of ``estimated_calls``, those with a text over ``tokens.MAX_ENCODE_CHARS`` characters,
    whose count was extrapolated from the text's head rather than counted whole."""
    models: dict[str, int] = field(default_factory=dict)
    """Calls per model name on this side."""


def _estimates(t: SideTotals) -> str:
    est = f" ({t.estimated_calls} estimated with cl100k" if t.estimated_calls else ""
    if t.extrapolated_calls:
        est += (
            f", {t.extrapolated_calls} extrapolated from the first {MAX_ENCODE_CHARS:,} characters"
        )
    return est + ")" if est else ""


@dataclass
class CostReport:
    """A snapshot of a :class:`CostTracker`."""

    strong: SideTotals
    weak: SideTotals
    always_strong_cost: float | None
    """What the same tokens would have cost on the strong model; ``None`` when no strong-model
    price is known."""
    unpriced_models: list[str]

    @property
    def calls(self) -> int:
        return self.strong.calls + self.weak.calls

    @property
    def strong_share(self) -> float:
        """Share of calls that went to the strong model (0.0 with no calls)."""
        return self.strong.calls / self.calls if self.calls else 0.0

    @property
    def total_cost(self) -> float:
        return self.strong.cost + self.weak.cost

    @property
    def savings(self) -> float | None:
        """``always_strong_cost - total_cost`` (USD)."""
        return (
            None if self.always_strong_cost is None else self.always_strong_cost - self.total_cost
        )

    @property
    def savings_share(self) -> float | None:
        """Savings as a share of the always-strong cost."""
        if self.always_strong_cost is None or self.always_strong_cost == 0:
            return None
        return self.savings / self.always_strong_cost  # type: ignore[operator]

    def to_dict(self) -> dict[str, Any]:
        return {
            "calls": self.calls,
            "strong_share": self.strong_share,
            "strong": asdict(self.strong),
            "weak": asdict(self.weak),
            "total_cost": self.total_cost,
            "always_strong_cost": self.always_strong_cost,
            "savings": self.savings,
            "savings_share": self.savings_share,
            "unpriced_models": list(self.unpriced_models),
        }

    def format(self) -> str:
        """A short human-readable table."""
        lines = [f"calls: {self.calls}  strong share: {self.strong_share:.0%}"]
        for side in SIDES:
            t: SideTotals = getattr(self, side)
            models = ", ".join(f"{m} x{n}" for m, n in sorted(t.models.items())) or "-"
            est = _estimates(t)
            lines.append(
                f"{side:>6}: {t.calls} calls, {t.input_tokens} in / {t.output_tokens} out tokens, "
                f"${t.cost:.6f}{est}  [{models}]"
            )
        lines.append(f" total: ${self.total_cost:.6f}")
        if self.always_strong_cost is None:
            lines.append("always-strong: unknown (no price for the strong model)")
        else:
            share = self.savings_share
            pct = f" ({share:.0%})" if share is not None else ""
            lines.append(
                f"always-strong: ${self.always_strong_cost:.6f}  savings: ${self.savings:.6f}{pct}"
            )
        if self.unpriced_models:
            lines.append(f"no price (counted as $0): {', '.join(self.unpriced_models)}")
        return "\n".join(lines)


@dataclass
class PoolCostReport:
    """A snapshot of a :class:`CostTracker` of a pool of several models.

    ``models``: totals per candidate (keyed by model name, in pool order, every candidate
    listed, also those with no call); ``baseline_model``: the pool's most expensive model,
    whose prices on the same tokens give ``always_baseline_cost`` (USD; ``None`` when that
    model has no price or no baseline model is known). Costs are USD; tokens as the models
    reported them, else counted with cl100k (``estimated_calls``).
    """

    models: dict[str, SideTotals]
    baseline_model: str | None
    always_baseline_cost: float | None
    """What the same tokens would have cost, every call on ``baseline_model``."""
    unpriced_models: list[str]

    @property
    def calls(self) -> int:
        return sum(t.calls for t in self.models.values())

    @property
    def shares(self) -> dict[str, float]:
        """Share of calls each candidate answered (0.0 each with no calls)."""
        calls = self.calls
        return {name: (t.calls / calls if calls else 0.0) for name, t in self.models.items()}

    @property
    def total_cost(self) -> float:
        return sum(t.cost for t in self.models.values())

    @property
    def savings(self) -> float | None:
        """``always_baseline_cost - total_cost`` (USD)."""
        if self.always_baseline_cost is None:
            return None
        return self.always_baseline_cost - self.total_cost

    @property
    def savings_share(self) -> float | None:
        """Savings as a share of the always-baseline cost."""
        if self.always_baseline_cost is None or self.always_baseline_cost == 0:
            return None
        return self.savings / self.always_baseline_cost  # type: ignore[operator]

    def to_dict(self) -> dict[str, Any]:
        return {
            "calls": self.calls,
            "shares": self.shares,
            "models": {name: asdict(t) for name, t in self.models.items()},
            "total_cost": self.total_cost,
            "baseline_model": self.baseline_model,
            "always_baseline_cost": self.always_baseline_cost,
            "savings": self.savings,
            "savings_share": self.savings_share,
            "unpriced_models": list(self.unpriced_models),
        }

    def format(self) -> str:
        """A short human-readable table: one line per candidate, then total and savings."""
        shares = ", ".join(f"{name} {share:.0%}" for name, share in self.shares.items())
        lines = [f"calls: {self.calls}  shares: {shares}"]
        width = max((len(name) for name in self.models), default=0)
        for name, t in self.models.items():
            lines.append(
                f"{name:>{width}}: {t.calls} calls, {t.input_tokens} in / {t.output_tokens} out "
                f"tokens, ${t.cost:.6f}{_estimates(t)}"
            )
        lines.append(f" total: ${self.total_cost:.6f}")
        baseline = f"always-{self.baseline_model}" if self.baseline_model else "always-priciest"
        if self.always_baseline_cost is None:
            lines.append(f"{baseline}: unknown (no price for the pool's most expensive model)")
        else:
            share = self.savings_share
            pct = f" ({share:.0%})" if share is not None else ""
            lines.append(
                f"{baseline}: ${self.always_baseline_cost:.6f}  savings: ${self.savings:.6f}{pct}"
            )
        if self.unpriced_models:
            lines.append(f"no price (counted as $0): {', '.join(self.unpriced_models)}")
        return "\n".join(lines)


class CostTracker:
    """Thread-safe running totals of routed calls.

    ``prices`` maps a model name to its price; it is merged over :data:`DEFAULT_PRICES` unless
    ``use_default_prices=False``. ``strong_model`` names the model whose prices define the
    always-strong baseline; without it the strong model seen most is used.

    A pool of several models: ``candidates`` names its models (the keys :meth:`record` takes,
    in pool order) and ``baseline_model`` the one savings are counted against (the pool's most
    expensive; default: the candidate whose price is highest for a call of 500 input and
    :data:`~routellm_base.pool.DEFAULT_OUTPUT_TOKENS` output tokens, when all are priced);
    :meth:`report` then returns a :class:`PoolCostReport`.
    """

    def __init__(
        self,
        prices: Mapping[str, PriceLike] | None = None,
        *,
        strong_model: str | None = None,
        use_default_prices: bool = True,
        candidates: Sequence[str] | None = None,
        baseline_model: str | None = None,
    ) -> None:
        base: dict[str, ModelPrice] = dict(DEFAULT_PRICES) if use_default_prices else {}
        base.update(as_prices(prices))
        self.prices: dict[str, ModelPrice] = base
        self.strong_model = strong_model
        self.candidates: tuple[str, ...] | None = None
        if candidates is not None:
            self.candidates = tuple(candidates)
            if len(set(self.candidates)) != len(self.candidates) or not self.candidates:
                raise RoutingInputError(
                    f"candidates must be distinct model names, got {list(self.candidates)}"
                )
            if baseline_model is not None and baseline_model not in self.candidates:
                raise RoutingInputError(
                    f"baseline_model {baseline_model!r} is not one of the candidates "
                    f"{list(self.candidates)}"
                )
            if strong_model is not None:
                raise RoutingInputError(
                    "strong_model names the baseline between two models; a pool's is baseline_model"
                )
            baseline_model = baseline_model or self._priciest()
        elif baseline_model is not None:
            raise RoutingInputError("baseline_model is a pool's baseline: give candidates too")
        self.baseline_model = baseline_model
        self._lock = threading.Lock()
        self._totals: dict[str, SideTotals] = self._empty()
        self._unpriced: set[str] = set()

    def _empty(self) -> dict[str, SideTotals]:
        return {key: SideTotals() for key in (self.candidates or SIDES)}

    def _priciest(self) -> str | None:
        """The candidate priced highest for a typical call, ``None`` when one has no price."""
        from .pool.models import DEFAULT_OUTPUT_TOKENS  # the pool package imports this module

        assert self.candidates is not None
        prices = [self.prices.get(name) for name in self.candidates]
        if any(p is None for p in prices):
            return None
        costs = [p.cost(500, DEFAULT_OUTPUT_TOKENS) for p in prices]  # type: ignore[union-attr]
        return self.candidates[costs.index(max(costs))]

    def price_of(self, model: str) -> ModelPrice | None:
        return self.prices.get(model)

    def record(
        self,
        side: Side | str,
        model: str,
        *,
        input_tokens: int | None = None,
        output_tokens: int | None = None,
        input_text: str | None = None,
        output_text: str | None = None,
    ) -> CallCost:
        """Add one call and return its :class:`CallCost`; ``side`` is the candidate's key
        (``"strong"``/``"weak"``, or a pool's model name), ``model`` the name it is priced by.
        :class:`RoutingInputError` for a key the tracker does not count. Token counts the model did not report are counted from the texts with
        ``cl100k_base``; the call is then flagged as estimated (and as extrapolated when a text
        was too long to count whole, see :func:`routellm_base.tokens.measure_tokens`). Text is
        read as plain text: strings like ``<|endoftext|>`` never raise."""
        if side not in self._totals:
            if self.candidates is None:
                raise RoutingInputError(f"side must be 'strong' or 'weak', got {side!r}")
            raise RoutingInputError(
                f"{side!r} is not a candidate of this tracker's pool {list(self.candidates)}"
            )
        input_tokens, output_tokens, estimated, extrapolated = count_tokens(
            input_tokens, output_tokens, input_text, output_text
        )
        price = self.price_of(model)
        cost = price.cost(input_tokens, output_tokens) if price else 0.0
        with self._lock:
            t = self._totals[side]
            t.calls += 1
            t.input_tokens += int(input_tokens)
            t.output_tokens += int(output_tokens)
            t.cost += cost
            t.estimated_calls += int(estimated)
            t.extrapolated_calls += int(extrapolated)
            t.models[model] = t.models.get(model, 0) + 1
            if price is None:
                self._unpriced.add(model)
        return CallCost(int(input_tokens), int(output_tokens), estimated, cost if price else None)

    def reset(self) -> None:
        with self._lock:
            self._totals = self._empty()
            self._unpriced = set()

    def report(self) -> CostReport | PoolCostReport:
        """The totals so far: a :class:`CostReport` between two models, a
        :class:`PoolCostReport` for a tracker of ``candidates``."""
        if self.candidates is not None:
            return self._pool_report()
        with self._lock:
            strong = SideTotals(**{**asdict(self._totals["strong"])})
            weak = SideTotals(**{**asdict(self._totals["weak"])})
            unpriced = sorted(self._unpriced)
        baseline_model = self.strong_model or (
            max(strong.models, key=lambda m: strong.models[m]) if strong.models else None
        )
        baseline = self.price_of(baseline_model) if baseline_model else None
        always_strong = (
            baseline.cost(
                strong.input_tokens + weak.input_tokens, strong.output_tokens + weak.output_tokens
            )
            if baseline
            else None
        )
        return CostReport(
            strong=strong, weak=weak, always_strong_cost=always_strong, unpriced_models=unpriced
        )

    def _pool_report(self) -> PoolCostReport:
        with self._lock:
            models = {key: SideTotals(**asdict(t)) for key, t in self._totals.items()}
            unpriced = sorted(self._unpriced)
        baseline = self.price_of(self.baseline_model) if self.baseline_model else None
        always = (
            baseline.cost(
                sum(t.input_tokens for t in models.values()),
                sum(t.output_tokens for t in models.values()),
            )
            if baseline
            else None
        )
        return PoolCostReport(
            models=models,
            baseline_model=self.baseline_model,
            always_baseline_cost=always,
            unpriced_models=unpriced,
        )
