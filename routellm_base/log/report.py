"""``routellm report``: what a routing log says about the traffic it recorded.

* **Traffic**: calls and the strong share per time bin (and the threshold in force, which moves
  when a ``share_window`` holds the share).
* **Cost**: what the calls cost and what the same tokens would have cost had every call gone to
  the strong model (RouteLLM's accounting: same prompts and answers, strong-model prices), at
  :data:`routellm_base.costs.DEFAULT_PRICES` merged with the prices stored in the log and the
  prices given (which win). A call's logged cost is kept unless a price is given for its
  model: then its tokens are re-priced, so that spend and always-strong use one price list.
* **Judged**: of the calls with a judged shadow comparison (``routellm_comparisons``), the strong
  model's judged win rate per bucket of the router's win rate, beside the router's own mean
  estimate, and the rank agreement (AUC) between the two: does the router rank *this* traffic?
* **Drift**: the distribution of the router's win rates on this traffic against its checkpoint's
  calibration set, as the Kolmogorov-Smirnov distance and the population stability index.
* **Pool** (a log of calls routed among a pool of several models, schema 5): each model's share
  of the calls and of the spend, and its judged quality (its score in the judged shadow
  comparisons it took part in, ties half) against what a call to it cost.

Reads any log :class:`~routellm_base.log.RoutingLog` writes (a SQLite file or a SQLAlchemy URL);
it never writes to it. The plot is :mod:`routellm_base.log.report_plot`.
"""

from __future__ import annotations

import functools
import json
import math
import re
import textwrap
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from sqlalchemy import inspect, select
from sqlalchemy.exc import DBAPIError

from ..calibration import Calibration
from ..checkpoints import check_router_spec, stored_calibration
from ..costs import DEFAULT_PRICES, ModelPrice, PriceLike, as_prices
from ..errors import CheckpointError, RoutingInputError, UnknownRouterError
from .schema import comparisons, decisions, feedback, pool_candidates, settings
from .store import create_log_engine, existing_log_url, stored_prices, unreadable_log_error

if TYPE_CHECKING:
    from .routing_log import RoutingLog

BIN_CHOICES_S: tuple[float, ...] = (
    *(0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5),
    *(1, 2, 5, 10, 15, 30),
    *(60, 2 * 60, 5 * 60, 10 * 60, 15 * 60, 30 * 60),
    *(3600, 2 * 3600, 3 * 3600, 6 * 3600, 12 * 3600),
    *(86400, 2 * 86400, 3 * 86400, 7 * 86400, 14 * 86400, 30 * 86400, 91 * 86400, 365 * 86400),
)
"""Time-bin widths the report picks from (seconds): the smallest giving at most
:data:`MAX_AUTO_BINS` bins over the log's span, and no more bins than one per
:data:`MIN_CALLS_PER_BIN` calls, so that a log of one second gets bins of tens of milliseconds
and a log of a month bins of days."""
MAX_AUTO_BINS = 24
MIN_CALLS_PER_BIN = 5
"""A bin's strong share over one or two calls says little: the automatic width leaves about
this many calls per bin on average."""
PSI_BINS = 10
"""PSI compares the shares of traffic in the calibration set's deciles (10% each)."""
MIN_DRIFT_CALLS = 10
"""Fewer scored calls of a router and checkpoint than this measure no drift: the PSI's 10
deciles cannot all hold a call, and the KS distance's 95% noise level nears or passes 1, the
largest distance there is. The report then says so instead of giving the statistics."""
PSI_FLOOR = 1e-4
"""A share of 0 is counted as this in the PSI's logarithm (the usual guard)."""
PSI_NOISE_DRAWS = 2000
"""Random resamples behind :func:`psi_noise_95` (drawn with a fixed seed: the same log gives
the same report)."""
PSI_EXACT_REFERENCE = 20_000
"""A calibration set larger than this counts as exact in :func:`psi_noise_95` (its deciles'
own noise is then small beside the traffic's)."""
CALENDAR_BINS = {30 * 86400: (1, "month"), 91 * 86400: (3, "quarter"), 365 * 86400: (12, "year")}
"""Automatic widths that stand for calendar months, quarters and years: their bins start on the
first of a month (UTC midnight) and last that month, quarter or year."""
MONDAY_EPOCH_S = 4 * 86400
"""1970-01-05, the first Monday of the Unix epoch (a Thursday): bins of whole weeks count from
it, so that they start on Mondays; other widths count from the epoch (days at midnight)."""
_UNITS = {
    "ms": Decimal("0.001"), "s": Decimal(1), "m": Decimal(60), "h": Decimal(3600),
    "d": Decimal(86400), "w": Decimal(7 * 86400),
}  # fmt: skip


@dataclass(frozen=True)
class TimeBin:
    """Calls whose ``created_at`` falls in ``[start, start + seconds)`` (UTC)."""

    start: datetime
    seconds: float
    """The bin's width in seconds (an ``int`` from a given ``every``; under a second for a
    short log)."""
    calls: int
    strong: int
    cost_usd: float | None
    """Sum of the known costs of these calls (USD); ``None`` when none of them has a known cost
    (unknown, not zero)."""
    always_strong_usd: float | None
    """What the bin's compared calls (``compared_calls``: tokens, a known cost and a priced
    strong model, as :class:`CostSummary` counts them) would have cost on their strong model
    (USD); ``None`` when none of the bin's calls compares (unknown, not zero)."""
    threshold_median: float | None
    """Median threshold of the scored (not forced) calls; ``None`` without one."""
    priced_calls: int = 0
    """Calls whose cost is known (those ``cost_usd`` sums)."""
    unit: str | None = None
    """``month``, ``quarter`` or ``year`` for a calendar bin (``seconds`` is then that month's
    length, quarter's or year's); ``None`` for a fixed width."""
    models: dict[str, int] = field(default_factory=dict)
    """Calls routed among a pool, per chosen model (empty without pool calls)."""
    always_baseline_usd: float | None = None
    """What this bin's pool calls would have cost on the pool's most expensive model (the same
    tokens at its price, as :class:`~routellm_base.costs.PoolCostReport` counts it); ``None``
    when unknown (no pool call, no price or no token counts)."""
    compared_calls: int = 0
    """Calls that compare with always-strong (those ``always_strong_usd`` covers)."""
    compared_cost_usd: float | None = None
    """What the compared calls cost (USD), set against ``always_strong_usd`` over the same
    calls; ``None`` when none compares. ``cost_usd`` is every known cost of the bin."""
    first_call: datetime | None = None
    """The bin's first call's time (UTC): the calls may fill only part of the bin."""
    last_call: datetime | None = None
    """The bin's last call's time (UTC)."""

    @property
    def pair_calls(self) -> int:
        """Calls routed between a strong and a weak model (not among a pool)."""
        return self.calls - sum(self.models.values())

    @property
    def strong_share(self) -> float | None:
        """Of the bin's two-model calls; ``None`` for a bin of pool calls alone."""
        if not self.pair_calls:
            return None if self.models else 0.0
        return self.strong / self.pair_calls


@dataclass(frozen=True)
class CostSummary:
    """Spend against always-strong, over the calls whose both figures are known."""

    calls_compared: int
    """Calls with tokens, a known cost and a priced strong model."""
    cost_usd: float | None
    """What those calls cost; ``None`` when no call compares (unknown, not zero)."""
    always_strong_usd: float | None
    """What their tokens would have cost on their strong model; ``None`` when no call
    compares."""
    total_cost_usd: float | None
    """Sum of the known costs of all calls (compared or not); ``None`` when no call's cost is
    known (unknown, not zero)."""
    calls_without_tokens: int
    unpriced_models: tuple[str, ...]
    """Models with no price, whose calls cost or compare as unknown (pass their prices)."""
    priced_calls: int = 0
    """Calls whose cost is known (those ``total_cost_usd`` sums)."""
    pair_calls: int = 0
    """Two-model calls in the log (pool calls have no strong model: the pool section counts
    them); the saving is known only when every one of them compares. ``priced_calls`` and
    ``total_cost_usd`` count every call, pool calls too."""
    prices: dict[str, dict[str, Any]] = field(default_factory=dict)
    """The price used for each model the log's calls name that has one (the answering, strong
    and weak models, a pool's candidates): ``{"input_per_million", "output_per_million",
    "source"}``, USD per 1M tokens; ``source`` is ``"given"`` (the ``prices`` argument,
    ``--price``), ``"log"`` (stored in the log by its writers) or ``"default"``
    (:data:`~routellm_base.costs.DEFAULT_PRICES`)."""
    logged_cost_calls: int = 0
    """Calls counted at the cost their log recorded (no price given for their model, or no token
    counts to re-price); every other known cost is the call's tokens at ``prices``."""
    logged_cost_models: tuple[str, ...] = ()
    """The models of those calls."""
    repriced_calls: int = 0
    """Calls that logged a cost but are counted at the price given for their model instead."""

    @property
    def savings_usd(self) -> float | None:
        """``always_strong_usd - cost_usd``; ``None`` (unknown) unless every call compares: a
        saving over a subset (e.g. only the strong calls, which save nothing) is not the log's."""
        if self.calls_compared < self.pair_calls or self.cost_usd is None:
            return None
        return (self.always_strong_usd or 0.0) - self.cost_usd

    @property
    def savings_share(self) -> float | None:
        saving = self.savings_usd
        return (
            None
            if saving is None or not self.always_strong_usd or self.always_strong_usd <= 0
            else saving / self.always_strong_usd
        )


@dataclass(frozen=True)
class JudgedBucket:
    """Judged calls whose router win rate lies in ``[low, high]``."""

    low: float
    high: float
    judged: int
    strong_wins: int
    weak_wins: int
    ties: int
    router_win_rate: float
    """The router's mean win rate over these calls (its own estimate of the strong-win rate)."""

    @property
    def strong_win_rate(self) -> float:
        """Judged strong-win rate, ties counted half (as in Chatbot Arena battles)."""
        return (self.strong_wins + 0.5 * self.ties) / self.judged

    @property
    def interval_95(self) -> tuple[float, float]:
        """Wilson 95% interval of :attr:`strong_win_rate` over ``judged`` calls."""
        return wilson_interval(self.strong_win_rate, self.judged)


@dataclass(frozen=True)
class JudgedSummary:
    """Judged shadow comparisons joined to their calls' win rates."""

    available: bool
    """The log has a comparisons table (schema 0002 or later)."""
    comparisons: int
    """Comparison rows in the log (judged or not)."""
    judged: int
    """Calls with a verdict and a router win rate (the latest verdict per call)."""
    by_source: dict[str, int]
    """Judged calls per ``verdict_source`` (``judge``, ``golden``)."""
    buckets: tuple[JudgedBucket, ...]
    auc: float | None
    """Probability that a call the strong model won has a higher router win rate than one the
    weak model won (ties in verdict left out, ties in win rate counted half): 0.5 is a router
    that ranks this traffic at chance, 1.0 a perfect ranking. ``None`` without both kinds."""
    decisive: int
    """Judged calls with a strong or weak verdict (those the AUC compares)."""
    shadow_failed: int = 0
    """Of ``comparisons``, those whose shadow call failed (``shadow_error``): with no second
    answer they can never be judged."""


@dataclass(frozen=True)
class Drift:
    """The router's win rates on the logged traffic against its checkpoint's calibration set."""

    router: str
    checkpoint_id: str | None
    calls: int
    """Scored calls of this router and checkpoint (forced and rule-routed calls have no win
    rate)."""
    reference: str | None
    """The calibration set's name; ``None`` when no calibration was found (see ``note``). With
    fewer than :data:`MIN_DRIFT_CALLS` calls the statistics below are ``None`` and ``note``
    says there are too few."""
    reference_size: int | None
    ks: float | None
    """Kolmogorov-Smirnov distance: the largest difference, over every threshold, between the
    share of this traffic and the share of the calibration set at or above it, i.e. how far the
    realised strong share can be from a ``strong_share`` that the calibration turned into a
    threshold."""
    ks_critical_95: float | None
    """The KS distance that two samples of these sizes from one distribution exceed 5% of the
    time (``1.358 * sqrt((n + m) / (n m))``); a larger ``ks`` is drift, not noise. ``None``
    when the calibration records no size (e.g. the exact uniform of ``random``)."""
    psi: float | None
    """Population stability index over the calibration set's deciles: below 0.1 stable, 0.1 to
    0.25 a moderate shift, above 0.25 a major one (the usual reading), when it is above
    ``psi_noise_95``."""
    threshold: float | None
    """The median threshold these calls were routed with."""
    expected_share: float | None
    """Share of the calibration set at or above ``threshold``: the share it was chosen for."""
    realised_share: float | None
    """Share of these calls whose win rate is at or above ``threshold``."""
    note: str | None = None
    psi_noise_95: float | None = None
    """The PSI that traffic of this many calls drawn from the calibration set's own distribution
    exceeds 5% of the time (:func:`psi_noise_95`); a ``psi`` not above it could be chance, as
    on a log of a few calls, whatever the usual reading says."""


@dataclass(frozen=True)
class WindowSummary:
    """Calls routed under a ``share_window`` (decisions' ``extra["share_window"]``)."""

    calls: int
    from_window: int
    """Of those, routed with the window's quantile (the rest: calibration, during warm-up)."""
    target_shares: tuple[float, ...]
    realised_share: float
    """Strong share of the scored calls routed with the window's quantile."""
    threshold_range: tuple[float, float] | None
    """Lowest and highest threshold the window gave."""


@dataclass(frozen=True)
class PoolModelSummary:
    """One model of a pool log: its calls, its spend and its judged quality."""

    model: str
    calls: int
    """Pool calls it answered."""
    call_share: float
    """Of the log's pool calls."""
    cost_usd: float | None
    """Known spend of its calls (USD); ``None`` when none has a known cost."""
    priced_calls: int
    spend_share: float | None
    """Of the pool calls' known spend; ``None`` when no spend is known."""
    expected_cost_usd: float | None
    """Mean expected cost per call the policy saw for it, over the calls it answered (USD)."""
    battles: int
    """Judged shadow comparisons it took part in (answered or shadowed)."""
    wins: int
    losses: int
    ties: int

    @property
    def cost_per_call(self) -> float | None:
        """Mean known cost of its calls (USD)."""
        return None if self.cost_usd is None else self.cost_usd / self.priced_calls

    @property
    def judged_score(self) -> float | None:
        """Share of its judged battles won, ties counted half; ``None`` without a battle."""
        return (self.wins + 0.5 * self.ties) / self.battles if self.battles else None

    @property
    def interval_95(self) -> tuple[float, float] | None:
        score = self.judged_score
        return None if score is None else wilson_interval(score, self.battles)


@dataclass(frozen=True)
class PoolSummary:
    """Calls routed among a pool of several models (rows with ``pool_policy``)."""

    calls: int
    models: tuple[PoolModelSummary, ...]
    """Every model a call went to or that a call could have gone to, most calls first."""
    policies: dict[str, int]
    """Calls per policy (``cost_weight``, ``quality_tolerance``, ``budget``, ``forced``)."""
    cost_usd: float | None
    """Known spend of the pool calls (USD)."""
    comparisons: int
    """Shadow comparisons of pool calls."""
    judged: int
    """Of those, judged (the newest verdict per call and pair)."""
    shadow_failed: int = 0
    """Of ``comparisons``, those whose shadow call failed (never judged)."""
    baseline_model: str | None = None
    """The pool's most expensive model (priciest for a typical call of 500 input tokens and
    the default answer length, as :class:`~routellm_base.costs.CostTracker` picks it), which
    savings are counted against; ``None`` when a model of the pool has no price."""
    always_baseline_usd: float | None = None
    """What the pool calls' tokens would have cost, every call on ``baseline_model`` (USD);
    ``None`` when its price or a call's token counts are unknown."""
    unpriced_models: tuple[str, ...] = ()
    """Models of the pool with no price (give ``--price``)."""
    calls_without_tokens: int = 0
    """Pool calls without token counts (they leave ``always_baseline_usd`` unknown)."""

    @property
    def savings_usd(self) -> float | None:
        """``always_baseline_usd - cost_usd``; ``None`` unless both are known for every call."""
        if (
            self.always_baseline_usd is None
            or self.cost_usd is None
            or self.priced_calls < self.calls
        ):
            return None
        return self.always_baseline_usd - self.cost_usd

    @property
    def savings_share(self) -> float | None:
        saving = self.savings_usd
        if saving is None or not self.always_baseline_usd or self.always_baseline_usd <= 0:
            return None
        return saving / self.always_baseline_usd

    @property
    def priced_calls(self) -> int:
        """Pool calls whose cost is known."""
        return sum(m.priced_calls for m in self.models)


@dataclass(frozen=True)
class LogReport:
    """Everything ``routellm report`` shows; :meth:`format` for a terminal, :meth:`to_dict`
    for JSON.

    ``strong``, ``cost``'s always-strong figures and ``judged`` describe the two-model calls
    alone (routed between a strong and a weak model); the pool calls have their own section,
    ``pool``, with spend against always using the pool's most expensive model. In a log of pool
    calls alone the two-model figures do not apply: :meth:`to_dict` gives them as ``null``
    (``strong``, ``strong_share``, ``judged``, and ``cost``'s ``calls_compared``, ``cost_usd``,
    ``always_strong_usd``, ``savings_usd``, ``savings_share``; a bin's ``strong``,
    ``strong_share``, ``always_strong_usd`` and ``threshold_median``).
    """

    log: str
    calls: int
    first: datetime | None
    last: datetime | None
    strong: int
    forced: int
    fallbacks: int
    no_known_tokens: int
    routers: dict[str, int]
    bins: tuple[TimeBin, ...]
    cost: CostSummary
    judged: JudgedSummary
    drift: tuple[Drift, ...]
    window: WindowSummary | None
    win_rates: dict[str, list[float]] = field(repr=False, default_factory=dict)
    """Win rates per drift group (``router@checkpoint``), for the plot; not in :meth:`to_dict`."""
    calibrations: dict[str, Calibration] = field(repr=False, default_factory=dict)
    pool: PoolSummary | None = None
    """The pool calls' section; ``None`` when the log has none."""
    models: tuple[str, ...] = field(repr=False, default=())
    """Every model the log's calls name (answering, strong, weak, pool candidate), sorted;
    not in :meth:`to_dict`."""

    @property
    def pair_calls(self) -> int:
        """Calls routed between a strong and a weak model."""
        return self.calls - (self.pool.calls if self.pool is not None else 0)

    @property
    def pool_only(self) -> bool:
        """Every call was routed among a pool: the two-model figures do not apply."""
        return self.pool is not None and not self.pair_calls

    @property
    def strong_share(self) -> float | None:
        """Of the two-model calls; ``None`` in a log of pool calls alone."""
        if self.pool_only:
            return None
        return self.strong / self.pair_calls if self.pair_calls else 0.0

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict (times as ISO 8601 strings, shares in [0, 1], USD)."""

        def plain(value: Any) -> Any:
            if isinstance(value, datetime):
                return value.isoformat()
            if isinstance(value, dict):
                return {k: plain(v) for k, v in value.items()}
            if isinstance(value, list | tuple):
                return [plain(v) for v in value]
            return value

        data = {
            "log": self.log,
            "calls": self.calls,
            "first": self.first,
            "last": self.last,
            "strong": self.strong,
            "strong_share": self.strong_share,
            "forced": self.forced,
            "fallbacks": self.fallbacks,
            "no_known_tokens": self.no_known_tokens,
            "routers": self.routers,
            "bins": [_bin_dict(b) for b in self.bins],
            "cost": {
                **asdict(self.cost),
                "savings_usd": self.cost.savings_usd,
                "savings_share": self.cost.savings_share,
            },
            "judged": {
                **asdict(self.judged),
                "buckets": [
                    {
                        **asdict(b),
                        "strong_win_rate": b.strong_win_rate,
                        "interval_95": list(b.interval_95),
                    }
                    for b in self.judged.buckets
                ],
            },
            "drift": [asdict(d) for d in self.drift],
            "window": None if self.window is None else asdict(self.window),
        }
        if self.pool_only:  # no strong/weak call: the two-model figures do not apply
            data["strong"] = data["strong_share"] = data["judged"] = None
            for key in ("calls_compared", "cost_usd", "always_strong_usd", "savings_usd",
                        "savings_share"):  # fmt: skip
                data["cost"][key] = None
        if self.pool is not None:
            data["pool"] = {
                **asdict(self.pool),
                "savings_usd": self.pool.savings_usd,
                "savings_share": self.pool.savings_share,
                "models": [
                    {
                        **asdict(m),
                        "cost_per_call": m.cost_per_call,
                        "judged_score": m.judged_score,
                        "interval_95": None if m.interval_95 is None else list(m.interval_95),
                    }
                    for m in self.pool.models
                ],
            }
        return plain(data)

    def format(self) -> str:
        """The report as text for a terminal (80 columns)."""
        return "\n".join(_format(self))


def build_report(
    target: str | Path | RoutingLog,
    *,
    prices: Mapping[str, PriceLike] | None = None,
    every: float | None = None,
    buckets: int = 5,
    routers: Sequence[str | Path] = (),
) -> LogReport:
    """The report of the log at ``target`` (a SQLite path or a SQLAlchemy URL).

    ``prices``: USD per 1M input/output tokens per model, merged over ``DEFAULT_PRICES``;
    ``every``: time-bin width in seconds, at least 0.001 (default: the smallest of :data:`BIN_CHOICES_S` giving
    at most 24 bins over the log's span, and about 5 calls a bin or more, from milliseconds to
    a year, the longest as calendar months, quarters and years); bins align to the calendar
    (UTC): weeks start on Mondays, days at midnight, shorter widths at multiples of themselves;
    ``buckets``: win-rate buckets of the judged calls (equal counts);
    ``routers``: more router names or checkpoint folders in which to look for a logged
    checkpoint's calibration (the logged router name is tried first).

    Raises :class:`RoutingInputError` when there is no log at ``target`` or it is not a routing
    log, or for a bad ``every`` / ``buckets``.
    """
    if every is not None and (
        isinstance(every, bool)
        or not isinstance(every, int | float)
        or not math.isfinite(every)
        or every < 0.001
    ):
        raise RoutingInputError(
            f"report: every must be a number of seconds, at least 0.001 (1 ms), got {every!r}"
        )
    for spec in routers:
        try:
            check_router_spec(spec)
        except UnknownRouterError as exc:
            raise RoutingInputError(f"report: --router {spec}: {exc}") from None
    if isinstance(buckets, bool) or not isinstance(buckets, int) or buckets < 1:
        raise RoutingInputError(f"report: buckets must be a positive int, got {buckets!r}")
    given = as_prices(prices)
    price_table = {**DEFAULT_PRICES, **given}
    logged: dict[str, ModelPrice] = {}
    url = existing_log_url(target, "report")
    engine = create_log_engine(url)
    try:
        with engine.connect() as connection:
            tables = set(inspect(connection).get_table_names())
            if decisions.name not in tables:
                raise RoutingInputError(
                    f"report: {url.render_as_string(hide_password=True)} is not a routing log "
                    f"(no {decisions.name} table)"
                )
            # A log of schema 4 or older has no pool columns (the report never upgrades a log).
            has_pool = "pool_policy" in {
                c["name"] for c in inspect(connection).get_columns(decisions.name)
            }
            rows = [dict(r._mapping) for r in connection.execute(_decision_query(has_pool))]
            if settings.name in tables:
                # The prices the log's writers priced its calls at (a pool's); --price wins.
                logged = as_prices(stored_prices(connection))
                price_table = {**DEFAULT_PRICES, **logged, **given}
            pool_rows = [r for r in rows if r.get("pool_policy") is not None]
            pool_models: list[str] = []
            pool_comparisons: list[dict[str, Any]] = []
            if pool_rows:
                pool_models = list(
                    connection.execute(
                        select(pool_candidates.c.model).distinct().order_by(pool_candidates.c.model)
                    ).scalars()
                )
                pool_comparisons = [
                    dict(r._mapping)
                    for r in connection.execute(
                        select(
                            comparisons.c.call_id,
                            comparisons.c.strong_model,
                            comparisons.c.weak_model,
                            comparisons.c.verdict,
                            comparisons.c.shadow_error,
                        ).order_by(comparisons.c.id)
                    )
                ]
            judged_rows = None
            # A pool call's comparisons are battles between two pool models: the pool
            # section counts them, the two-model section does not.
            pool_ids = {r["call_id"] for r in pool_rows}
            if comparisons.name in tables:
                judged_rows = [
                    dict(r._mapping)
                    for r in connection.execute(
                        select(
                            comparisons.c.id,
                            comparisons.c.call_id,
                            comparisons.c.verdict,
                            comparisons.c.verdict_source,
                            comparisons.c.shadow_error,
                        ).order_by(comparisons.c.id)
                    )
                    if r.call_id not in pool_ids
                ]
            n_comparisons = len(judged_rows or ())
            # A comparison whose shadow call failed has one answer: no judge can give it a verdict.
            n_failed = sum(
                r["verdict"] is None and r["shadow_error"] is not None for r in judged_rows or ()
            )
            if judged_rows is not None and feedback.name in tables:
                # A label given through RoutingLog.feedback (golden or a user's) outranks a
                # judge's verdict, as in training (log.training_data): it comes last and wins.
                judged_rows += [
                    {
                        "id": r.id,
                        "call_id": r.call_id,
                        "verdict": r.label,
                        "verdict_source": f"label:{r.source}",
                    }
                    for r in connection.execute(
                        select(
                            feedback.c.id, feedback.c.call_id, feedback.c.label, feedback.c.source
                        )
                        .where(feedback.c.label.is_not(None))
                        .order_by(feedback.c.id)
                    )
                    if r.call_id not in pool_ids
                ]
    except DBAPIError as exc:  # not a database, or no server to connect to
        raise unreadable_log_error(url, "report", exc) from None
    finally:
        engine.dispose()
    baseline = _pool_baseline(pool_rows, pool_models, price_table) if pool_rows else None
    for row in rows:
        row["created_at"] = _utc(row["created_at"])
        row["extra"] = _extra(row["extra"])
        row["cost"], row["cost_from"] = _call_cost(row, price_table, given)
        row["always_strong"] = _always_strong_cost(row, price_table)
        if row.get("pool_policy") is not None:
            row["always_baseline"] = _tokens_cost(row, price_table.get(baseline or ""))
    times = [r["created_at"] for r in rows]
    models = tuple(
        sorted(
            {r[k] for r in rows for k in ("model", "strong_model", "weak_model") if r[k]}
            | set(pool_models)
        )
    )
    _check_extra_routers(rows, routers)
    drift, win_rates, calibrations = _drift(rows, routers)
    return LogReport(
        log=url.render_as_string(hide_password=True),
        calls=len(rows),
        first=min(times) if times else None,
        last=max(times) if times else None,
        strong=sum(r["side"] == "strong" for r in rows if r.get("pool_policy") is None),
        forced=sum(bool(r["forced"]) for r in rows),
        fallbacks=sum(r["fallback_from"] is not None for r in rows),
        no_known_tokens=sum(bool(r["no_known_tokens"]) for r in rows),
        routers=dict(Counter(r["router"] for r in rows).most_common()),
        bins=_bins(rows, every),
        cost=_priced(_cost(rows), rows, models, price_table, given, logged),
        judged=replace(
            _judged(rows, judged_rows, buckets), comparisons=n_comparisons, shadow_failed=n_failed
        ),
        drift=drift,
        window=_window(rows),
        win_rates=win_rates,
        calibrations=calibrations,
        pool=(
            _pool(pool_rows, pool_models, pool_comparisons, price_table, baseline)
            if pool_rows
            else None
        ),
        models=models,
    )


def parse_every(text: str) -> float:
    """``"50ms"``, ``"0.5s"``, ``"15m"``, ``"1h"``, ``"1d"``, ``"2w"`` or a bare number of
    seconds -> seconds (an ``int`` when whole), at least 1 ms (the finest automatic bin)."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*(ms|s|m|h|d|w)?\s*", text)
    seconds = Decimal(match.group(1)) * _UNITS[match.group(2) or "s"] if match else None
    if seconds is None or seconds < Decimal("0.001"):
        raise RoutingInputError(
            "report: --every must be a number with a unit ms, s, m, h, d or w (e.g. 50ms, 0.5s, "
            f"15m, 1h; a bare number is seconds), at least 1 ms, got {text!r}"
        )
    return int(seconds) if seconds == seconds.to_integral_value() else float(seconds)


def wilson_interval(share: float, n: int, z: float = 1.959964) -> tuple[float, float]:
    """Wilson score interval of a share observed over ``n`` trials (95% by default); it holds
    ``share`` (rounding alone put the upper end of a share of 1 at 0.9999999999999999)."""
    if n == 0:
        return (0.0, 1.0)
    denominator = 1 + z * z / n
    centre = (share + z * z / (2 * n)) / denominator
    half = z * math.sqrt(share * (1 - share) / n + z * z / (4 * n * n)) / denominator
    return (max(0.0, min(share, centre - half)), min(1.0, max(share, centre + half)))


def rank_auc(positive: np.ndarray, negative: np.ndarray) -> float:
    """Mann-Whitney AUC: P(a positive's score > a negative's), score ties counted half."""
    scores = np.concatenate([positive, negative])
    _, inverse, counts = np.unique(scores, return_inverse=True, return_counts=True)
    # Rank of each distinct value: the mean of the ranks its ties occupy (1-based).
    ends = np.cumsum(counts)
    mean_rank = ends - (counts - 1) / 2.0
    ranks = mean_rank[inverse]
    n_pos, n_neg = len(positive), len(negative)
    u = ranks[:n_pos].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))


# -- reading ------------------------------------------------------------------------------------


def _decision_query(pool: bool = True) -> Any:
    c = decisions.c
    columns = [
        c.call_id, c.created_at, c.router, c.checkpoint_id, c.threshold, c.side, c.win_rate,
        c.model, c.strong_model, c.weak_model, c.forced, c.fallback_from, c.no_known_tokens,
        c.input_tokens, c.output_tokens, c.cost_usd, c.extra,
    ]  # fmt: skip
    if pool:
        columns += [c.pool_policy, c.expected_cost_usd]
    return select(*columns).order_by(c.id)


def _bin_dict(b: TimeBin) -> dict[str, Any]:
    data = {**asdict(b), "strong_share": b.strong_share}
    if not b.models:  # a two-model log's bins read as before pools
        del data["models"], data["always_baseline_usd"]
    elif not b.pair_calls:  # pool calls alone: no strong model, share nor threshold
        data["strong"] = data["always_strong_usd"] = data["threshold_median"] = None
    return data


def _utc(value: datetime) -> datetime:
    # SQLite returns the stored UTC time without its zone; PostgreSQL returns it aware.
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value


def _extra(text: str | None) -> dict[str, Any]:
    try:
        value = json.loads(text) if text else {}
    except json.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


# -- sections -----------------------------------------------------------------------------------


def _bins(rows: list[dict[str, Any]], every: float | None) -> tuple[TimeBin, ...]:
    if not rows:
        return ()
    stamps = [r["created_at"].timestamp() for r in rows]
    if every is None:
        span = max(stamps) - min(stamps)
        if span == 0:  # one call, or all at one instant: one bin of a minute
            every = 60
        else:
            most = max(1, min(MAX_AUTO_BINS, len(rows) // MIN_CALLS_PER_BIN))
            every = next((s for s in BIN_CHOICES_S if span / s < most), BIN_CHOICES_S[-1])
        calendar = CALENDAR_BINS.get(every)
    else:
        calendar = None
    offset = MONDAY_EPOCH_S if every % (7 * 86400) == 0 else 0
    groups: dict[int, list[dict[str, Any]]] = {}
    for stamp, row in zip(stamps, rows):
        if calendar:
            when = row["created_at"]
            index = (when.year * 12 + when.month - 1) // calendar[0]
        else:
            index = math.floor((stamp - offset) / every)
        groups.setdefault(index, []).append(row)
    bins = []
    for index in sorted(groups):
        group = groups[index]
        thresholds = [
            r["threshold"] for r in group if not r["forced"] and r["threshold"] is not None
        ]
        compared = [r for r in group if _compares(r)]
        if calendar:
            start, end = (_month_start(k * calendar[0]) for k in (index, index + 1))
            seconds: float = (end - start).total_seconds()
        else:
            start, seconds = _bin_start(index, every, offset), every
        bins.append(
            TimeBin(
                start=start,
                seconds=seconds,
                unit=calendar[1] if calendar else None,
                calls=len(group),
                strong=sum(r["side"] == "strong" for r in group if r.get("pool_policy") is None),
                cost_usd=_known_sum(r["cost"] for r in group),
                always_strong_usd=_known_sum(r["always_strong"] for r in compared),
                threshold_median=float(np.median(thresholds)) if thresholds else None,
                priced_calls=sum(r["cost"] is not None for r in group),
                models=dict(Counter(r["side"] for r in group if r.get("pool_policy") is not None)),
                always_baseline_usd=_known_sum(r.get("always_baseline") for r in group),
                compared_calls=len(compared),
                compared_cost_usd=_known_sum(r["cost"] for r in compared),
                first_call=min(r["created_at"] for r in group),
                last_call=max(r["created_at"] for r in group),
            )
        )
    return tuple(bins)


def _bin_start(index: int, every: float, offset: float = 0) -> datetime:
    """The start of bin ``index`` of width ``every`` seconds counted from ``offset`` seconds
    after the Unix epoch, to the microsecond (exact for every width of :data:`BIN_CHOICES_S`
    and whole seconds)."""
    microseconds = round((offset + index * every) * 1_000_000)
    return datetime(1970, 1, 1, tzinfo=timezone.utc) + timedelta(microseconds=microseconds)


def _month_start(months: int) -> datetime:
    """The first of month ``months`` counted from January of year 0 (UTC midnight)."""
    return datetime(months // 12, months % 12 + 1, 1, tzinfo=timezone.utc)


def _known_sum(values: Any) -> float | None:
    """The sum of the values that are not ``None``; ``None`` when all are (unknown, not 0)."""
    known = [v for v in values if v is not None]
    return sum(known) if known else None


def _call_cost(
    row: dict[str, Any], prices: Mapping[str, ModelPrice], given: Mapping[str, ModelPrice]
) -> tuple[float | None, str | None]:
    """The call's cost and where it came from: its tokens at the price ``given`` for its model
    (``"given"``: a logged cost is replaced, so that spend and always-strong use one price
    list), else its logged cost (``"logged"``), else its tokens at its model's price in
    ``prices`` (``"priced"``); ``(None, None)``: unknown."""
    tokens = row["input_tokens"], row["output_tokens"]
    known_tokens = tokens[0] is not None and tokens[1] is not None
    if known_tokens and row["model"] in given:
        return given[row["model"]].cost(*tokens), "given"
    if row["cost_usd"] is not None:
        return float(row["cost_usd"]), "logged"
    price = prices.get(row["model"])
    if not known_tokens or price is None:
        return None, None
    return price.cost(*tokens), "priced"


def _tokens_cost(row: dict[str, Any], price: ModelPrice | None) -> float | None:
    """The call's tokens at ``price``; ``None`` without a price or token counts."""
    if price is None or row["input_tokens"] is None or row["output_tokens"] is None:
        return None
    return price.cost(row["input_tokens"], row["output_tokens"])


def _pool_baseline(
    rows: list[dict[str, Any]], candidates: list[str], prices: Mapping[str, ModelPrice]
) -> str | None:
    """The pool's most expensive model for a typical call (500 input tokens, the default answer
    length), as :class:`~routellm_base.costs.CostTracker` picks a pool's baseline; ``None``
    when a model of the pool has no price (the priciest is then unknown)."""
    from ..pool.models import DEFAULT_OUTPUT_TOKENS  # the pool package imports the log's

    names = sorted(set(candidates) | {r["side"] for r in rows})
    if not names or any(n not in prices for n in names):
        return None
    return max(names, key=lambda n: (prices[n].cost(500, DEFAULT_OUTPUT_TOKENS), n))


def _compares(row: dict[str, Any]) -> bool:
    """Whether a call compares with always-strong: a two-model call with tokens, a known cost
    and a priced strong model (what :func:`_cost` counts in ``calls_compared``)."""
    return (
        row.get("pool_policy") is None
        and row["input_tokens"] is not None
        and row["output_tokens"] is not None
        and row["cost"] is not None
        and row["always_strong"] is not None
    )


def _always_strong_cost(row: dict[str, Any], prices: Mapping[str, ModelPrice]) -> float | None:
    """The call's tokens on its strong model: its own cost when it went strong; ``None``:
    unknown (no tokens, or no price for the strong model)."""
    if row["input_tokens"] is None or row["output_tokens"] is None:
        return None
    if row["side"] == "strong":
        return row["cost"]  # the same call on the same model
    price = prices.get(row["strong_model"] or "")
    return price.cost(row["input_tokens"], row["output_tokens"]) if price else None


def _cost(rows: list[dict[str, Any]]) -> CostSummary:
    compared = priced = 0
    cost = always = total = 0.0
    without_tokens = 0
    unpriced: set[str] = set()
    for row in rows:
        tokens = row["input_tokens"], row["output_tokens"]
        known_tokens = tokens[0] is not None and tokens[1] is not None
        actual = row["cost"]
        if actual is None and known_tokens:
            unpriced.add(row["model"])
        if actual is not None:
            total += actual
            priced += 1
        if not known_tokens:
            without_tokens += 1
            continue
        if row.get("pool_policy") is not None:
            continue  # a pool call has no strong model to compare with: see the pool section
        counterfactual = row["always_strong"]
        if counterfactual is None and row["side"] != "strong":
            unpriced.add(row["strong_model"] or "(strong model not logged)")
        if actual is None or counterfactual is None:
            continue
        compared += 1
        cost += actual
        always += counterfactual
    return CostSummary(
        compared,
        cost if compared else None,
        always if compared else None,
        total if priced else None,
        without_tokens,
        tuple(sorted(unpriced)),
        priced,
        sum(r.get("pool_policy") is None for r in rows),
    )


def _priced(
    cost: CostSummary,
    rows: list[dict[str, Any]],
    models: Sequence[str],
    prices: Mapping[str, ModelPrice],
    given: Mapping[str, ModelPrice],
    logged: Mapping[str, ModelPrice],
) -> CostSummary:
    """``cost`` with the prices it used and the calls it counted at their logged cost."""
    used = {}
    for name in models:
        if name in prices:
            source = "given" if name in given else "log" if name in logged else "default"
            price = prices[name]
            used[name] = {
                "input_per_million": price.input_per_million,
                "output_per_million": price.output_per_million,
                "source": source,
            }
    kept = [r for r in rows if r["cost_from"] == "logged"]
    return replace(
        cost,
        prices=used,
        logged_cost_calls=len(kept),
        logged_cost_models=tuple(sorted({r["model"] for r in kept})),
        repriced_calls=sum(r["cost_from"] == "given" and r["cost_usd"] is not None for r in rows),
    )


def _judged(
    rows: list[dict[str, Any]], judged_rows: list[dict[str, Any]] | None, n_buckets: int
) -> JudgedSummary:
    if judged_rows is None:
        return JudgedSummary(False, 0, 0, {}, (), None, 0)
    latest: dict[str, dict[str, Any]] = {}
    for row in judged_rows:  # oldest first: a later verdict on the same call wins
        if row["verdict"] in ("strong", "weak", "tie"):
            latest[row["call_id"]] = row
    rates = {r["call_id"]: r["win_rate"] for r in rows if r["win_rate"] is not None}
    pairs = [(rates[c], row["verdict"]) for c, row in latest.items() if c in rates]
    by_source = dict(
        Counter(latest[c]["verdict_source"] or "unknown" for c in latest if c in rates)
    )
    if not pairs:
        return JudgedSummary(True, len(judged_rows), 0, by_source, (), None, 0)
    win_rate = np.array([p[0] for p in pairs])
    verdict = np.array([p[1] for p in pairs])
    edges = np.unique(np.quantile(win_rate, np.linspace(0, 1, min(n_buckets, len(pairs)) + 1)))
    # Bucket k holds edges[k] <= w < edges[k + 1]; the last one includes its upper edge.
    index = np.clip(np.searchsorted(edges, win_rate, side="right") - 1, 0, max(len(edges) - 2, 0))
    buckets = []
    for k in range(max(len(edges) - 1, 1)):
        member = index == k
        if not member.any():
            continue
        v = verdict[member]
        buckets.append(
            JudgedBucket(
                low=float(win_rate[member].min()),
                high=float(win_rate[member].max()),
                judged=int(member.sum()),
                strong_wins=int((v == "strong").sum()),
                weak_wins=int((v == "weak").sum()),
                ties=int((v == "tie").sum()),
                router_win_rate=float(win_rate[member].mean()),
            )
        )
    positive, negative = win_rate[verdict == "strong"], win_rate[verdict == "weak"]
    auc = rank_auc(positive, negative) if len(positive) and len(negative) else None
    return JudgedSummary(
        True,
        len(judged_rows),
        len(pairs),
        by_source,
        tuple(buckets),
        auc,
        len(positive) + len(negative),
    )


def _drift(
    rows: list[dict[str, Any]], extra_routers: Sequence[str | Path]
) -> tuple[tuple[Drift, ...], dict[str, list[float]], dict[str, Calibration]]:
    groups: dict[tuple[str, str | None], list[dict[str, Any]]] = {}
    for row in rows:
        if row["win_rate"] is not None:
            groups.setdefault((row["router"], row["checkpoint_id"]), []).append(row)
    results, win_rates, calibrations = [], {}, {}
    for (router, checkpoint_id), group in sorted(groups.items(), key=lambda g: -len(g[1])):
        rates = np.sort(np.array([r["win_rate"] for r in group], dtype=np.float64))
        threshold = float(np.median([r["threshold"] for r in group]))
        name = f"{router}@{checkpoint_id[:12]}" if checkpoint_id else router
        win_rates[name] = rates.tolist()
        calibration, note = _find_calibration(router, checkpoint_id, extra_routers)
        realised = float((rates >= threshold).mean())
        # No statistics without a calibration, nor from too few calls: the note says which.
        unmeasured = functools.partial(
            Drift, router, checkpoint_id, len(rates), ks=None, ks_critical_95=None, psi=None,
            threshold=threshold, expected_share=None, realised_share=realised,
        )  # fmt: skip
        if calibration is None:
            results.append(unmeasured(reference=None, reference_size=None, note=note))
            continue
        if len(rates) < MIN_DRIFT_CALLS:
            results.append(
                unmeasured(
                    reference=calibration.reference,
                    reference_size=calibration.n_prompts or None,
                    note=f"too few scored calls ({len(rates)}) to measure drift: it takes "
                    f"{MIN_DRIFT_CALLS} or more",
                )
            )
            continue
        calibrations[name] = calibration
        ks = _ks_distance(rates, calibration)
        m = calibration.n_prompts
        critical = 1.358 * math.sqrt((len(rates) + m) / (len(rates) * m)) if m else None
        results.append(
            Drift(
                router=router,
                checkpoint_id=checkpoint_id,
                calls=len(rates),
                reference=calibration.reference,
                reference_size=m or None,
                ks=ks,
                ks_critical_95=critical,
                psi=_psi(rates, calibration),
                psi_noise_95=psi_noise_95(len(rates), m or None),
                threshold=threshold,
                expected_share=1.0 - _calibration_cdf(calibration, np.array([threshold]))[0],
                realised_share=realised,
                note=note,
            )
        )
    return tuple(results), win_rates, calibrations


def _check_extra_routers(rows: list[dict[str, Any]], extra_routers: Sequence[str | Path]) -> None:
    """Each ``--router`` must hold the checkpoint of some of the log's scored calls: one that
    routed none of them calibrates nothing here (and is not a filter), so it is an error that
    names the routers and checkpoints the log does hold."""
    held: Counter[tuple[str, str | None]] = Counter(
        (r["router"], r["checkpoint_id"]) for r in rows if r["win_rate"] is not None
    )
    logged_ids = {checkpoint_id for _, checkpoint_id in held}
    for spec in extra_routers:
        try:
            found_id, _ = stored_calibration(spec)
        except (UnknownRouterError, CheckpointError) as exc:
            raise RoutingInputError(f"report: --router {spec}: {exc}") from None
        if found_id in logged_ids:
            continue
        holds = (
            "its scored calls are from "
            + ", ".join(
                (f"{router}@{checkpoint_id[:12]}" if checkpoint_id else router) + f" ({n} calls)"
                for (router, checkpoint_id), n in held.most_common()
            )
            if held
            else "it has no call scored by a router"
        )
        raise RoutingInputError(
            f"report: --router {spec}: its checkpoint ({(found_id or 'none')[:12]}) routed none of "
            f"this log's calls, so it calibrates nothing here (--router names where a logged "
            f"checkpoint's calibration is stored; it does not select calls); {holds}"
        )


def _find_calibration(
    router: str, checkpoint_id: str | None, extra_routers: Sequence[str | Path]
) -> tuple[Calibration | None, str | None]:
    """The calibration of the checkpoint that routed (matched by checkpoint id), looked for
    under the logged router name and then ``extra_routers``; else ``None`` and why."""
    tried = []
    for spec in [router, *extra_routers]:
        try:
            found_id, calibration = stored_calibration(spec)
        except (UnknownRouterError, CheckpointError) as exc:
            tried.append(f"{spec}: {exc}")
            continue
        if found_id != checkpoint_id:
            tried.append(f"{spec}: another checkpoint ({(found_id or 'none')[:12]})")
            continue
        if calibration is None:
            return None, f"{spec} has no stored calibration"
        return calibration, None
    return (
        None,
        "no calibration found for this checkpoint (pass --router PATH); tried " + "; ".join(tried),
    )


def _calibration_cdf(calibration: Calibration, x: np.ndarray) -> np.ndarray:
    """Share of the calibration set below ``x``: its stored quantile function inverted (linear
    between stored quantiles)."""
    quantiles = np.asarray(calibration.quantiles)
    levels = np.linspace(0.0, 1.0, len(quantiles))
    # Equal quantiles (a flat stretch) would make interp ambiguous: keep each value's last level.
    values, last = np.unique(quantiles[::-1], return_index=True)
    return np.interp(x, values, levels[::-1][last], left=0.0, right=1.0)


def _ks_distance(sorted_rates: np.ndarray, calibration: Calibration) -> float:
    n = len(sorted_rates)
    cdf = _calibration_cdf(calibration, sorted_rates)
    above = np.arange(1, n + 1) / n - cdf
    below = cdf - np.arange(0, n) / n
    return float(max(above.max(), below.max()))


def _psi(rates: np.ndarray, calibration: Calibration) -> float:
    edges = np.interp(
        np.linspace(0, 1, PSI_BINS + 1)[1:-1],
        np.linspace(0, 1, len(calibration.quantiles)),
        calibration.quantiles,
    )
    counts = np.bincount(np.searchsorted(edges, rates, side="right"), minlength=PSI_BINS)
    return float(_psi_of_shares(counts / len(rates)))


def psi_noise_95(n: int, reference_size: int | None, draws: int = PSI_NOISE_DRAWS) -> float:
    """The 95th percentile of the PSI between ``n`` calls and a calibration set of
    ``reference_size`` prompts (``None``: exact) drawn from one distribution: the PSI's
    sampling-noise level, as ``ks_critical_95`` is the KS distance's.

    The PSI compares shares of traffic between the calibration set's deciles, so under "no
    drift" it depends on the sizes alone, not on the distribution (for a continuous one): the
    resamples are uniform. Each draws the reference's deciles from ``reference_size`` uniform
    values (the deciles of a finite set are themselves noisy; exact above
    :data:`PSI_EXACT_REFERENCE` or when ``None``), then the traffic's counts between them as a
    multinomial of ``n`` calls, and takes :func:`_psi_of_shares`. Seeded: deterministic.
    """
    rng = np.random.default_rng(0)
    levels = np.linspace(0, 1, PSI_BINS + 1)[1:-1]
    if reference_size is None or reference_size > PSI_EXACT_REFERENCE:
        edges = np.broadcast_to(levels, (draws, len(levels)))
    else:
        edges = np.quantile(rng.random((draws, reference_size)), levels, axis=1).T
    probabilities = np.diff(edges, prepend=0.0, append=1.0, axis=1)
    counts = rng.multinomial(n, probabilities)
    return float(np.quantile(_psi_of_shares(counts / n), 0.95))


def _psi_of_shares(shares: np.ndarray) -> np.ndarray:
    """PSI of the traffic's shares per calibration decile (last axis) against 10% each."""
    actual = np.maximum(shares, PSI_FLOOR)
    expected = 1.0 / PSI_BINS
    return np.sum((actual - expected) * np.log(actual / expected), axis=-1)


def _pool(
    rows: list[dict[str, Any]],
    candidates: list[str],
    comparison_rows: list[dict[str, Any]],
    prices: Mapping[str, ModelPrice],
    baseline: str | None,
) -> PoolSummary:
    """The pool section: per model, its calls and spend (from its rows) and its judged battles
    (the pool calls' comparisons, the newest verdict per call and pair)."""
    calls = Counter(r["side"] for r in rows)
    ids = {r["call_id"] for r in rows}
    latest: dict[tuple[str, str, str], str | None] = {}
    n_comparisons = n_failed = 0
    for c in comparison_rows:
        if c["call_id"] in ids and c["strong_model"] and c["weak_model"]:
            n_comparisons += 1
            n_failed += c["verdict"] is None and c["shadow_error"] is not None
            key = (c["call_id"], c["strong_model"], c["weak_model"])
            if c["verdict"] in ("strong", "weak", "tie") or key not in latest:
                latest[key] = c["verdict"]
    record: dict[str, Counter[str]] = {}
    for (_, a, b), verdict in latest.items():
        if verdict not in ("strong", "weak", "tie"):
            continue
        for model, won, lost in ((a, "strong", "weak"), (b, "weak", "strong")):
            tally = record.setdefault(model, Counter())
            tally["wins" if verdict == won else "losses" if verdict == lost else "ties"] += 1
    spend = _known_sum(r["cost"] for r in rows)
    names = sorted(set(candidates) | set(calls) | set(record), key=lambda m: (-calls[m], m))
    models = []
    for name in names:
        mine = [r for r in rows if r["side"] == name]
        cost = _known_sum(r["cost"] for r in mine)
        expected = [r["expected_cost_usd"] for r in mine if r["expected_cost_usd"] is not None]
        tally = record.get(name, Counter())
        models.append(
            PoolModelSummary(
                model=name,
                calls=calls[name],
                call_share=calls[name] / len(rows),
                cost_usd=cost,
                priced_calls=sum(r["cost"] is not None for r in mine),
                spend_share=None if not spend else (cost or 0.0) / spend,
                expected_cost_usd=float(np.mean(expected)) if expected else None,
                battles=sum(tally.values()),
                wins=tally["wins"],
                losses=tally["losses"],
                ties=tally["ties"],
            )
        )
    return PoolSummary(
        calls=len(rows),
        models=tuple(models),
        policies=dict(Counter(r["pool_policy"] for r in rows).most_common()),
        cost_usd=spend,
        comparisons=n_comparisons,
        judged=sum(v in ("strong", "weak", "tie") for v in latest.values()),
        shadow_failed=n_failed,
        baseline_model=baseline,
        always_baseline_usd=(
            None
            if baseline is None or any(r["always_baseline"] is None for r in rows)
            else sum(r["always_baseline"] for r in rows)
        ),
        unpriced_models=tuple(n for n in names if n not in prices),
        calls_without_tokens=sum(
            r["input_tokens"] is None or r["output_tokens"] is None for r in rows
        ),
    )


def _window(rows: list[dict[str, Any]]) -> WindowSummary | None:
    held = [r for r in rows if isinstance(r["extra"].get("share_window"), dict)]
    if not held:
        return None
    scored = [r for r in held if r["extra"]["share_window"].get("threshold_from") == "window"]
    routed = [r for r in scored if r["win_rate"] is not None and not r["forced"]]
    thresholds = [r["threshold"] for r in routed]
    return WindowSummary(
        calls=len(held),
        from_window=len(scored),
        target_shares=tuple(
            sorted({float(r["extra"]["share_window"].get("target_share", math.nan)) for r in held})
        ),
        realised_share=(
            sum(r["side"] == "strong" for r in routed) / len(routed) if routed else 0.0
        ),
        threshold_range=(min(thresholds), max(thresholds)) if thresholds else None,
    )


# -- text ---------------------------------------------------------------------------------------


def calls_text(n: int) -> str:
    """``"1 call"``, ``"20 calls"``."""
    return f"{n} call" if n == 1 else f"{n} calls"


def share_text(value: float | None) -> str:
    """A share as a percentage for the report's text (``-``: unknown)."""
    return "-" if value is None else f"{value:.1%}"


def usd_text(value: float | None) -> str:
    """US dollars for the report's text: 4 decimals under $100, else 2; under a tenth of a cent,
    two significant digits (``$0.0000045``, not ``$0.0000``); ``unknown``: ``None``."""
    if value is None:
        return "unknown"
    if 0 < abs(value) < 0.001:
        decimals = 1 - math.floor(math.log10(abs(value)))
        return f"${value:.{decimals}f}"
    return f"${value:,.4f}" if abs(value) < 100 else f"${value:,.2f}"


def _format(report: LogReport) -> list[str]:
    lines = [f"routing log {report.log}"]
    if not report.calls:
        return [*lines, "no calls recorded yet"]
    span = (report.last - report.first).total_seconds()
    pool = report.pool
    when = (
        f"{calls_text(report.calls)} from {_stamp(report.first, span / MAX_AUTO_BINS)} to "
        f"{_stamp(report.last, span / MAX_AUTO_BINS)} UTC"
    )
    if pool is None:
        lines.append(f"{when}, strong share {share_text(report.strong_share)}")
    elif not report.pair_calls:
        lines += [when, f"routed among a pool of {len(pool.models)} models"]
    else:
        lines.append(
            f"{when}: {report.pair_calls} between strong and weak (strong share "
            f"{share_text(report.strong / report.pair_calls)}), {pool.calls} among a pool"
        )
    lines.append(
        f"forced {report.forced}, fallbacks {report.fallbacks}, "
        f"no known tokens {report.no_known_tokens}"
    )
    lines.append("routers: " + ", ".join(f"{r} x{n}" for r, n in report.routers.items()))

    width = report.bins[0].seconds if report.bins else 0
    unit = report.bins[0].unit if report.bins else None
    lines += ["", f"Traffic per {unit or _duration(width)} (UTC)"]
    starts = [_stamp(b.start, width) for b in report.bins]
    column = max(16, *(len(s) for s in starts))
    # A "priced" column (calls of known cost) only when some call's cost is unknown.
    mixed = any(b.priced_calls < b.calls for b in report.bins)
    priced_head = f" {'priced':>7}" if mixed else ""
    # A log of pool calls alone has no strong share nor threshold: no columns for them.
    pair = pool is None or report.pair_calls > 0
    lines.append(
        f"  {'from':<{column}} {'calls':>7}"
        + (f" {'strong':>7}" if pair else "")
        + f" {'cost':>12}{priced_head}"
        + (f" {'threshold':>10}" if pair else "")
    )
    if pool is not None and pair:
        lines.append("  (calls: all, pool calls too; strong: the share of the two-model calls)")
    for b, start in zip(report.bins, starts):
        threshold = "-" if b.threshold_median is None else f"{b.threshold_median:.4f}"
        priced = f" {b.priced_calls:>7}" if mixed else ""
        pair_calls = b.calls - sum(b.models.values())
        strong = share_text(b.strong / pair_calls) if pair_calls else "-"
        lines.append(
            f"  {start:<{column}} {b.calls:>7}"
            + (f" {strong:>7}" if pair else "")
            + f" {usd_text(b.cost_usd):>12}{priced}"
            + (f" {threshold:>10}" if pair else "")
        )
    if report.window is not None:
        w = report.window
        span = (
            f", threshold {w.threshold_range[0]:.4f}-{w.threshold_range[1]:.4f}"
            if w.threshold_range
            else ""
        )
        targets = ", ".join(f"{t:.1%}" for t in w.target_shares)
        lines.append(
            f"  share window: {calls_text(w.calls)}, {w.from_window} routed with the window's quantile"
        )
        lines.append(f"    target {targets}, realised {share_text(w.realised_share)}{span}")

    c = report.cost
    if pool is not None and not report.pair_calls:
        lines += ["", "Cost"]
        _spend_lines(lines, report)
        lines += _pool_lines(pool)
        return lines
    lines += ["", "Cost against always-strong (same tokens at the strong model's price)"]
    if c.calls_compared:
        lines.append(
            f"  {calls_text(c.calls_compared)}: {usd_text(c.cost_usd)} spent, {usd_text(c.always_strong_usd)} "
            + (
                f"always-strong, saved {usd_text(c.savings_usd)} ({share_text(c.savings_share)})"
                if c.savings_usd is not None
                else "always-strong"
            )
        )
        # Pool calls have no strong model: the pool section below counts their saving.
        if c.calls_compared < report.pair_calls:
            lines.append(
                f"  saving: unknown (only these {c.calls_compared} of {report.pair_calls} two-model "
                "calls can be compared; the others lack a price or token counts)"
            )
    else:
        lines.append("  no call has both a known cost and a priced strong model")
    _spend_lines(lines, report)

    j = report.judged
    lines += ["", "Judged strong-win rate by router win rate (shadow comparisons)"]
    if not j.available:
        lines.append("  this log has no comparisons table (schema older than 0002)")
    elif not j.judged:
        lines.append(f"  {_no_verdict_text(j.comparisons, j.shadow_failed)}")
    else:
        sources = ", ".join(f"{s} {n}" for s, n in sorted(j.by_source.items()))
        lines.append(
            f"  {j.judged} judged calls ({sources}) of {j.comparisons} comparisons"
            + _failed_text(j.shadow_failed)
        )
        lines.append(
            f"  {'win rate':<15} {'n':>5} {'strong':>7} {'weak':>6} {'tie':>5} "
            f"{'router says':>11} {'judged':>7} {'95% interval':>15}"
        )
        for b in j.buckets:
            low, high = b.interval_95
            lines.append(
                f"  {b.low:.3f}-{b.high:.3f}     {b.judged:>5} {b.strong_wins:>7} {b.weak_wins:>6} "
                f"{b.ties:>5} {b.router_win_rate:>11.3f} {b.strong_win_rate:>7.3f} "
                f"{f'{low:.2f}-{high:.2f}':>15}"
            )
        if j.auc is None:
            lines.append("  AUC: needs both strong and weak wins")
        else:
            lines.append(
                f"  AUC {j.auc:.3f} over {j.decisive} decisive verdicts: the chance that a call the "
                "strong model won"
            )
            lines.append("    scored higher than one it lost (0.5: the router ranks at chance)")

    lines += ["", "Drift of the win rates against the checkpoint's calibration set"]
    if not report.drift:
        lines.append("  no scored call")
    for d in report.drift:
        label = f"{d.router}@{d.checkpoint_id[:12]}" if d.checkpoint_id else d.router
        lines.append(f"  {label}: {d.calls} scored calls")
        if d.ks is None:
            lines.append(f"    {d.note}")
            continue
        # The size only when the calibration's name does not already say it ("... (40 prompts)").
        said = d.reference_size and re.search(rf"\b{d.reference_size}\b", d.reference or "")
        size = f", {d.reference_size} prompts" if d.reference_size and not said else ""
        noise = ""
        if d.ks_critical_95:
            noise = (
                f" (above {d.ks_critical_95:.3f}: more than sampling noise, 95%)"
                if d.ks > d.ks_critical_95
                else f" (not above {d.ks_critical_95:.3f}, its 95% sampling-noise level: could be chance)"
            )
        lines.append(f"    calibration: {d.reference}{size}")
        lines.append(f"    KS distance {d.ks:.3f}{noise}:")
        lines.append(
            "      the strong share can differ by up to this from the share that a calibrated "
            "threshold"
        )
        lines.append("      was chosen for")
        lines.append(f"    PSI {d.psi:.3f} ({_psi_reading(d.psi, d.psi_noise_95)})")
        lines.append(
            f"    at threshold {d.threshold:.4f}: calibration set {share_text(d.expected_share)} "
            f"strong, this traffic {share_text(d.realised_share)}"
        )
    if pool is not None:
        lines += _pool_lines(pool)
    return lines


def _no_verdict_text(comparisons: int, failed: int) -> str:
    """The judged section's line when no comparison has a verdict: those whose shadow call
    failed can never have one, so only the others are waiting ("yet")."""
    if failed and failed == comparisons:
        return (
            f"no judged comparison: the {comparisons} comparisons recorded all had their shadow "
            "call fail (no second answer to judge)"
        )
    if failed:
        return (
            f"no judged comparison yet ({comparisons} comparisons recorded; {failed} of them "
            "had their shadow call fail and cannot be judged)"
        )
    return f"no judged comparison yet ({comparisons} comparisons recorded)"


def _failed_text(failed: int) -> str:
    return f" ({failed} with a failed shadow call: not judgeable)" if failed else ""


def _spend_lines(lines: list[str], report: LogReport) -> None:
    c = report.cost
    if c.priced_calls == report.calls:
        lines.append(f"  known spend over all calls: {usd_text(c.total_cost_usd)}")
    elif c.priced_calls:
        lines.append(
            f"  known spend over the {c.priced_calls} of {report.calls} calls with a known cost: "
            f"{usd_text(c.total_cost_usd)} (the rest unknown)"
        )
    else:
        lines.append("  spend: unknown (no call has a known cost)")
    if c.calls_without_tokens:
        lines.append(f"  {calls_text(c.calls_without_tokens)} without token counts (not compared)")
    if c.unpriced_models:
        lines.append(
            f"  no price for: {', '.join(c.unpriced_models)} (give --price MODEL=IN,OUT, "
            "USD per 1M tokens)"
        )
    lines += _price_lines(c)


_SOURCE_TEXT = {"given": "--price", "log": "stored in the log", "default": "default"}


def _price_lines(c: CostSummary) -> list[str]:
    """The prices the cost figures used, and which calls kept the cost logged with them (80
    columns)."""
    wrap = functools.partial(
        textwrap.wrap,
        width=78,
        initial_indent="  ",
        subsequent_indent="    ",
        break_on_hyphens=False,
    )
    lines = []
    if c.prices:
        listed = ", ".join(
            f"{name} {p['input_per_million']:g}/{p['output_per_million']:g} "
            f"({_SOURCE_TEXT[p['source']]})"
            for name, p in c.prices.items()
        )
        lines += wrap(f"prices, USD per 1M input/output tokens: {listed}")
    if c.logged_cost_calls:
        lines += wrap(
            f"{calls_text(c.logged_cost_calls)} of {', '.join(c.logged_cost_models)} counted at "
            "the cost logged with them (--price MODEL=IN,OUT re-prices a model's calls)"
        )
    if c.repriced_calls:
        lines += wrap(
            f"{calls_text(c.repriced_calls)} re-priced at --price: their logged cost is not used"
        )
    return lines


def _pool_lines(pool: PoolSummary) -> list[str]:
    """The pool section: calls and spend per model, then judged quality against spend (80
    columns: model names longer than 33 characters are cut in the middle)."""
    width = max(5, min(33, max(len(m.model) for m in pool.models)))
    policies = ", ".join(f"{p} x{n}" for p, n in pool.policies.items())
    lines = ["", f"Pool: {calls_text(pool.calls)} among {len(pool.models)} models ({policies})"]
    lines.append(f"  {'model':<{width}} {'calls':>6} {'share':>7} {'spend':>12} {'share':>7}")
    for m in pool.models:
        lines.append(
            f"  {_cut(m.model, width):<{width}} {m.calls:>6} {share_text(m.call_share):>7} "
            f"{usd_text(m.cost_usd) if m.calls else '-':>12} {share_text(m.spend_share):>7}"
        )
    lines += _pool_savings_lines(pool)
    lines += ["", "Judged quality against spend (pool shadow comparisons)"]
    if not pool.judged:
        lines.append(f"  {_no_verdict_text(pool.comparisons, pool.shadow_failed)}")
        return lines
    lines.append(
        f"  {pool.judged} judged of {pool.comparisons} comparisons"
        + _failed_text(pool.shadow_failed)
    )
    lines.append(
        f"  {'model':<{width}} {'per 1k':>8} {'n':>5} {'won/lost/tie':>12} {'score':>6} {'95%':>9}"
    )

    def per_call(m: PoolModelSummary) -> float | None:
        return m.cost_per_call if m.cost_per_call is not None else m.expected_cost_usd

    for m in sorted(pool.models, key=lambda m: -(per_call(m) or 0.0)):
        interval = m.interval_95
        cost = per_call(m)
        lines.append(
            f"  {_cut(m.model, width):<{width}} "
            f"{'-' if cost is None else usd_text(cost * 1000):>8} {m.battles:>5} "
            f"{f'{m.wins}/{m.losses}/{m.ties}':>12} "
            f"{'-' if m.judged_score is None else f'{m.judged_score:.3f}':>6} "
            f"{'-' if interval is None else f'{interval[0]:.2f}-{interval[1]:.2f}':>9}"
        )
    lines.append("  per 1k: USD per 1,000 calls (its calls' known cost, else the expected one)")
    lines.append("  score: its judged battles won, ties half (0.5: as good as those it met)")
    return lines


def _pool_savings_lines(pool: PoolSummary) -> list[str]:
    """Spend against always using the pool's most expensive model (80 columns)."""
    if pool.baseline_model is None:
        names = ", ".join(pool.unpriced_models)
        return [
            "  against always the priciest model: unknown (give --price MODEL=IN,OUT, USD per",
            *textwrap.wrap(f"1M tokens, for {names})", 76, initial_indent="    ",
                           subsequent_indent="    ", break_on_hyphens=False),
        ]  # fmt: skip
    head = f"  against always {_cut(pool.baseline_model, 40)} (same tokens at its price): "
    if pool.always_baseline_usd is None:
        return [
            f"{head}unknown",
            f"    ({calls_text(pool.calls_without_tokens)} without token counts)",
        ]
    if pool.savings_usd is None:
        return [
            f"{head}{usd_text(pool.always_baseline_usd)}",
            f"    saving unknown: only {pool.priced_calls} of {calls_text(pool.calls)} have a known cost",
        ]
    return [
        f"{head}{usd_text(pool.always_baseline_usd)},",
        f"    saved {usd_text(pool.savings_usd)} ({share_text(pool.savings_share)})",
    ]


def _cut(text: str, width: int) -> str:
    """``text`` cut in the middle to ``width`` characters (model names can be long)."""
    if len(text) <= width:
        return text
    keep = (width - 3) // 2
    return f"{text[:keep]}...{text[-(width - 3 - keep) :]}"


def _psi_reading(psi: float | None, noise: float | None) -> str:
    """The usual reading of a PSI (<0.1 stable, 0.1-0.25 moderate, >0.25 major), given only
    when it is above its sampling-noise level ``noise``; else that it could be chance."""
    if psi is None:
        return "-"
    if noise is not None and psi <= noise:
        return f"not above {noise:.3f}, its 95% sampling-noise level: could be chance"
    reading = "stable" if psi < 0.1 else "moderate shift" if psi <= 0.25 else "major shift"
    above = "" if noise is None else f", above noise {noise:.3f} (95%)"
    return f"{reading}{above}; <0.1 stable, 0.1-0.25 moderate, >0.25 major"


def _duration(seconds: float) -> str:
    """A bin width in words: ``minute``, ``15 minutes``, ``2 days``, ``second``, ``50 ms``."""
    units = (("week", 7 * 86400), ("day", 86400), ("hour", 3600), ("minute", 60), ("second", 1))
    for unit, size in units:
        if seconds >= size and seconds % size == 0:
            count = int(seconds // size)
            return f"{count} {unit}s" if count > 1 else unit
    return f"{seconds * 1000:g} ms"


def _stamp(when: datetime, resolution: float) -> str:
    """``when`` to the minute, or to the second or millisecond when ``resolution`` (seconds)
    is finer, so that times a bin (or a short log) apart print apart."""
    if resolution >= 60:
        return f"{when:%Y-%m-%d %H:%M}"
    if resolution >= 1:
        return f"{when:%Y-%m-%d %H:%M:%S}"
    return f"{when:%Y-%m-%d %H:%M:%S}.{when.microsecond // 1000:03d}"
