"""Cost-quality evaluation of a pool router (RouterBench, Hu et al. 2024, section 4).

Inputs, over ``n`` items and ``m`` models: predicted quality ``pred`` (n, m), true scores
``scores`` (n, m) in [0, 1] and true per-call costs ``costs`` (n, m) in USD. The router chooses,
per item, the argmax of ``pred - lambda * 1000 * decision_costs`` (the :class:`PoolPolicy` rule;
``decision_costs`` are the costs the router may know before the call, by default ``costs``);
each lambda gives one point: the mean true score of the chosen models against their mean true
cost in USD per 1,000 calls. Sweeping lambda traces the router's curve.

Definitions (pure numpy):

* **best single model**: the highest mean score (ties: the cheaper); its mean cost.
* **oracle**: per item the best-scoring model, the cheapest (true cost) among ties.
* **Zero router**: the upper convex hull of the single models' (cost, quality) points, i.e.
  what random mixtures of single models reach (RouterBench's Zero router).
* **AIQ**: the area under a curve's *non-decreasing convex hull* divided by the cost range,
  the cost range being the single models' cheapest to priciest mean cost (RouterBench eq. 2).
  The hull is the upper convex hull of the curve's points (so mixtures of two operating
  points count, as RouterBench allows), flat after its best point and, below its cheapest
  point, flat at that point's quality (the cheapest lambda reaches the cheapest single model
  when decisions use per-model costs, so this rarely matters).
* **cost to match**: the least cost at which the hull reaches a quality (the best single
  model's); ``None`` when it never does.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import PoolError

DEFAULT_COST_WEIGHTS = np.concatenate([[0.0], np.logspace(-4, 4, 241), [np.inf]])
"""lambda values swept (quality per USD per 1,000 calls): 0, 1e-4 ... 1e4 in 241 log steps,
and infinity (the cheapest model by decision cost)."""


def _check(scores: np.ndarray, costs: np.ndarray, pred: np.ndarray | None = None) -> None:
    if scores.ndim != 2 or costs.shape != scores.shape:
        raise PoolError(f"scores {scores.shape} and costs {costs.shape} must be the same (n, m)")
    if pred is not None and pred.shape != scores.shape:
        raise PoolError(f"predictions {pred.shape} do not match scores {scores.shape}")
    if not (np.isfinite(scores).all() and np.isfinite(costs).all()):
        raise PoolError("scores and costs must be finite: evaluate on complete items only")
    if not len(scores):
        raise PoolError("no items to evaluate")


def choose(pred: np.ndarray, decision_costs: np.ndarray, cost_weight: float) -> np.ndarray:
    """Per item the chosen model's index, shape (n,): argmax of ``pred - lambda * 1000 * c``
    (ties: the cheaper by decision cost); ``lambda = inf`` takes the cheapest."""
    c = np.broadcast_to(decision_costs, pred.shape)
    utility = -c if np.isinf(cost_weight) else pred - cost_weight * 1000.0 * c
    best = utility.max(axis=1, keepdims=True)
    tied = utility >= best - 1e-12
    return np.argmin(np.where(tied, c, np.inf), axis=1)


@dataclass
class Curve:
    """A router's operating points: ``cost`` (USD per 1,000 calls) and mean ``quality`` per
    ``cost_weight`` (lambda, quality per USD per 1,000 calls), all shape (k,)."""

    name: str
    cost: np.ndarray
    quality: np.ndarray
    cost_weight: np.ndarray = field(default_factory=lambda: np.zeros(0))

    def hull(self) -> tuple[np.ndarray, np.ndarray]:
        """The non-decreasing upper convex hull: (costs, qualities), increasing in both."""
        return nondecreasing_hull(self.cost, self.quality)

    def quality_at(self, cost: float) -> float:
        """The hull's quality at ``cost`` USD per 1,000 calls."""
        c, q = self.hull()
        return float(np.interp(cost, c, q))

    def aiq(self, cost_range: tuple[float, float]) -> float:
        """Area under the hull over ``cost_range`` divided by its width (RouterBench AIQ)."""
        return hull_area(*self.hull(), *cost_range)

    def cost_to_match(self, quality: float) -> float | None:
        """The least cost (USD per 1,000 calls) at which the hull reaches ``quality``."""
        c, q = self.hull()
        if q[-1] < quality - 1e-12:
            return None
        if q[0] >= quality:
            return float(c[0])
        j = int(np.argmax(q >= quality - 1e-12))
        if q[j] - q[j - 1] <= 0:
            return float(c[j])
        t = (quality - q[j - 1]) / (q[j] - q[j - 1])
        return float(c[j - 1] + t * (c[j] - c[j - 1]))


def upper_hull(cost: np.ndarray, quality: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The upper convex hull of points (cost, quality), left to right (Andrew's monotone chain)."""
    pts = sorted(set(zip(np.asarray(cost, float).tolist(), np.asarray(quality, float).tolist())))
    hull: list[tuple[float, float]] = []
    for p in pts:
        while len(hull) >= 2:
            (x1, y1), (x2, y2) = hull[-2], hull[-1]
            # drop the middle point unless it lies strictly above the chord
            if (x2 - x1) * (p[1] - y1) - (y2 - y1) * (p[0] - x1) >= 0:
                hull.pop()
            else:
                break
        if hull and hull[-1][0] == p[0]:  # same cost: keep the better
            hull[-1] = p if p[1] > hull[-1][1] else hull[-1]
            continue
        hull.append(p)
    arr = np.array(hull, dtype=np.float64)
    return arr[:, 0], arr[:, 1]


def nondecreasing_hull(cost: np.ndarray, quality: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The upper convex hull cut after its best point (beyond it, spending more gains nothing)."""
    c, q = upper_hull(cost, quality)
    top = int(np.argmax(q))
    return c[: top + 1], q[: top + 1]


def hull_area(c: np.ndarray, q: np.ndarray, low: float, high: float) -> float:
    """Mean of the piecewise-linear hull (flat beyond its ends) over [low, high]."""
    if high <= low:
        raise PoolError(f"empty cost range [{low}, {high}]")
    xs = np.unique(np.concatenate([[low, high], c[(c > low) & (c < high)]]))
    ys = np.interp(xs, c, q)
    return float(np.sum((ys[1:] + ys[:-1]) * np.diff(xs)) / 2.0 / (high - low))


def router_curve(
    pred: np.ndarray,
    scores: np.ndarray,
    costs: np.ndarray,
    decision_costs: np.ndarray | None = None,
    cost_weights: Sequence[float] | np.ndarray = DEFAULT_COST_WEIGHTS,
    name: str = "router",
) -> Curve:
    """The router's points as lambda sweeps ``cost_weights``; see the module docstring.
    ``decision_costs``: (n, m) or (m,) USD per call (default ``costs``)."""
    pred, scores, costs = (np.asarray(a, dtype=np.float64) for a in (pred, scores, costs))
    _check(scores, costs, pred)
    dc = costs if decision_costs is None else np.asarray(decision_costs, dtype=np.float64)
    rows = np.arange(len(scores))
    lam = np.asarray(cost_weights, dtype=np.float64)
    quality, cost = np.empty(len(lam)), np.empty(len(lam))
    for k, weight in enumerate(lam):
        pick = choose(pred, dc, weight)
        quality[k] = scores[rows, pick].mean()
        cost[k] = 1000.0 * costs[rows, pick].mean()
    return Curve(name, cost, quality, lam)


def single_models(scores: np.ndarray, costs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each model's mean score and mean cost (USD per 1,000 calls), both shape (m,)."""
    _check(scores, costs)
    return scores.mean(axis=0), 1000.0 * costs.mean(axis=0)


def oracle(scores: np.ndarray, costs: np.ndarray) -> tuple[float, float]:
    """(quality, USD per 1,000 calls) of per-item best-scoring model, cheapest among ties."""
    _check(scores, costs)
    pick = choose(scores, costs, 0.0)
    rows = np.arange(len(scores))
    return float(scores[rows, pick].mean()), float(1000.0 * costs[rows, pick].mean())


@dataclass
class PoolReport:
    """Everything ``routellm eval --pool`` prints for one data set: the single models, the best
    of them, the oracle, the Zero router and each router's curve with its AIQ and cost to match
    the best single model. Costs are USD per 1,000 calls."""

    models: list[str]
    items: int
    single_quality: np.ndarray
    single_cost: np.ndarray
    oracle_quality: float
    oracle_cost: float
    curves: list[Curve]

    @property
    def cost_range(self) -> tuple[float, float]:
        return float(self.single_cost.min()), float(self.single_cost.max())

    @property
    def best_single(self) -> int:
        """Index of the best single model (highest mean score; ties: cheaper)."""
        top = self.single_quality >= self.single_quality.max() - 1e-12
        return int(np.argmin(np.where(top, self.single_cost, np.inf)))

    @property
    def zero(self) -> Curve:
        return Curve("Zero router", self.single_cost, self.single_quality)

    def row(self, curve: Curve, at_cost: float | None = None) -> dict[str, Any]:
        """A curve's summary: AIQ, cost to match the best single model, and its quality at
        ``at_cost`` (default the best single model's cost)."""
        best = self.best_single
        cost = float(self.single_cost[best]) if at_cost is None else at_cost
        return {
            "router": curve.name,
            "aiq": curve.aiq(self.cost_range),
            "cost_to_match_best_single": curve.cost_to_match(float(self.single_quality[best])),
            "quality_at_cost": curve.quality_at(cost),
            "at_cost": cost,
            "max_quality": float(curve.hull()[1][-1]),
        }

    def to_dict(self, at_cost: float | None = None) -> dict[str, Any]:
        best = self.best_single
        return {
            "items": self.items,
            "cost_range": list(self.cost_range),
            "single_models": {
                m: {"quality": float(q), "cost": float(c)}
                for m, q, c in zip(self.models, self.single_quality, self.single_cost)
            },
            "best_single": {
                "model": self.models[best],
                "quality": float(self.single_quality[best]),
                "cost": float(self.single_cost[best]),
            },
            "oracle": {"quality": self.oracle_quality, "cost": self.oracle_cost},
            "routers": [self.row(c, at_cost) for c in [self.zero, *self.curves]],
        }


def evaluate_pool(
    predictions: dict[str, np.ndarray],
    scores: np.ndarray,
    costs: np.ndarray,
    models: Sequence[str],
    decision_costs: np.ndarray | None = None,
    cost_weights: Sequence[float] | np.ndarray = DEFAULT_COST_WEIGHTS,
) -> PoolReport:
    """A :class:`PoolReport` of each named prediction (n, m) on complete items ``scores`` /
    ``costs`` (n, m; USD per call). Raises :class:`PoolError` on mismatched shapes or NaNs."""
    scores, costs = np.asarray(scores, float), np.asarray(costs, float)
    _check(scores, costs)
    if len(models) != scores.shape[1]:
        raise PoolError(f"{len(models)} model names for {scores.shape[1]} columns")
    sq, sc = single_models(scores, costs)
    oq, oc = oracle(scores, costs)
    curves = [
        router_curve(p, scores, costs, decision_costs, cost_weights, name)
        for name, p in predictions.items()
    ]
    return PoolReport(list(models), len(scores), sq, sc, oq, oc, curves)


def group_mean_predictions(
    train_scores: np.ndarray,
    train_groups: Sequence[str],
    test_groups: Sequence[str],
) -> np.ndarray:
    """The "one model per task" baseline: each test item's prediction is its group's mean
    training score per model (NaN-skipping; an unseen group gets the overall mean), (n, m)."""
    overall = np.nanmean(train_scores, axis=0)
    groups = np.asarray(train_groups)
    by_group = {
        g: np.where(np.isnan(m := np.nanmean(train_scores[groups == g], axis=0)), overall, m)
        for g in set(train_groups)
    }
    return np.stack([by_group.get(g, overall) for g in test_groups])


def format_report(report: PoolReport, curve_rows: int = 12) -> str:
    """The text ``routellm eval --pool`` prints: single models, best single, oracle, and per
    router a λ-table (quality vs USD per 1,000 calls) and its AIQ / cost to match."""
    lines = [
        f"{report.items} items; cost range ${report.cost_range[0]:.3f} - ${report.cost_range[1]:.3f} per 1,000 calls"
    ]
    lines.append(f"{'model':<40} {'quality':>8} {'$/1k calls':>11}")
    for i in np.argsort(report.single_cost):
        lines.append(
            f"{report.models[i]:<40} {report.single_quality[i]:>8.3f} {report.single_cost[i]:>11.3f}"
        )
    b = report.best_single
    lines.append(
        f"best single: {report.models[b]} {report.single_quality[b]:.3f} at ${report.single_cost[b]:.3f}"
    )
    lines.append(f"oracle: {report.oracle_quality:.3f} at ${report.oracle_cost:.3f}")
    for curve in [report.zero, *report.curves]:
        row = report.row(curve)
        match = row["cost_to_match_best_single"]
        lines.append(
            f"{curve.name}: AIQ {row['aiq']:.3f}; cost to match best single "
            f"{'never' if match is None else f'${match:.3f}'}; quality at the best single's cost "
            f"{row['quality_at_cost']:.3f}; best {row['max_quality']:.3f}"
        )
        if curve.cost_weight.size:
            lines.append(f"  {'lambda':>10} {'quality':>8} {'$/1k calls':>11}")
            picks = _spread(curve, curve_rows)
            for k in picks:
                lines.append(
                    f"  {curve.cost_weight[k]:>10.4g} {curve.quality[k]:>8.3f} {curve.cost[k]:>11.3f}"
                )
    return "\n".join(lines)


def _spread(curve: Curve, rows: int) -> list[int]:
    """About ``rows`` λ indices with distinct operating points, evenly along the cost axis."""
    distinct: list[int] = []
    for k in range(len(curve.cost)):
        if not distinct or (curve.cost[k], curve.quality[k]) != (
            curve.cost[distinct[-1]],
            curve.quality[distinct[-1]],
        ):
            distinct.append(k)
    if len(distinct) <= rows:
        return distinct
    step = (len(distinct) - 1) / (rows - 1)
    return sorted({distinct[round(i * step)] for i in range(rows)})


PLOT_DPI = 120
"""Resolution of ``routellm eval --pool --plot`` (the layout is measured at it)."""

COST_TICKS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50, 100)
"""USD per 1,000 calls: the plot's x ticks that fall in its range (1-2-5 steps)."""

LABEL_OFFSETS = tuple(
    (dx * r, dy * r) for r in (1, 2, 3)
    for dx, dy in ((6, -4), (6, 4), (-6, -4), (-6, 4), (0, -9), (0, 9))
)  # fmt: skip
"""Where a model's label may go, in points from its marker, nearest first: right, then left,
then under and over it, further out each round."""


def _money(value: float) -> str:
    """``$0.1``, ``$2``, ``$0.05``: a tick of USD per 1,000 calls."""
    return f"${value:g}"


def pool_figure(report: PoolReport, title: str = "", at_cost: float | None = None) -> Any:
    """The figure :func:`plot_pool` saves (matplotlib ``Figure``): each single model's point
    with its name, the Zero router's hull, the oracle, each router's hull and its per-lambda
    operating points, and a labelled vertical line at ``at_cost`` (USD per 1,000 calls; one
    outside the costs drawn is an arrow at the axis' edge, the axis staying on the data, and its
    legend entry says which point's quality is reported there). The
    legend sits under the axes, where it covers no point; each name takes the first place
    near its marker that stays inside the axes and covers no other name, marker or curve."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter
    except ImportError as exc:
        from ..errors import MissingDependencyError

        raise MissingDependencyError(
            "--plot needs matplotlib: pip install 'langchain-routellm[eval]'"
        ) from exc
    fig, ax = plt.subplots(figsize=(8, 6.2), dpi=PLOT_DPI)
    ax.scatter(
        report.single_cost, report.single_quality, color="black", s=18, zorder=3,
        label="single models (named)",
    )  # fmt: skip
    zc, zq = report.zero.hull()
    ax.plot(zc, zq, "k--", lw=1, label="Zero router (hull of single models)")
    ax.scatter(
        [report.oracle_cost], [report.oracle_quality], marker="*", s=80, color="gold",
        edgecolor="black", zorder=3, label="oracle (best model per item)",
    )  # fmt: skip
    for curve in report.curves:
        hc, hq = curve.hull()
        name = curve.name.rstrip("/").split("/")[-1] or curve.name
        (line,) = ax.plot(
            hc, hq, lw=1.5, label=f"{name}: hull (AIQ {curve.aiq(report.cost_range):.3f})"
        )
        ax.scatter(curve.cost, curve.quality, s=4, color=line.get_color(), alpha=0.4,
                   label=f"{name}: one point per cost weight λ")  # fmt: skip
    costs = np.concatenate([report.single_cost, [report.oracle_cost]]
                           + [c.cost for c in report.curves])  # fmt: skip
    qualities = np.concatenate([report.single_quality, [report.oracle_quality]]
                               + [c.quality for c in report.curves])  # fmt: skip
    low, high = float(costs.min()), float(costs.max())
    if at_cost is not None and at_cost > 0:
        # The axis stays on the data: an --at-cost outside it is marked at the edge, and the
        # legend says which point's quality is reported there.
        beyond = "above" if at_cost > high else "below" if at_cost < low else ""
        parts = []
        for curve in report.curves:
            text = f"{curve.name.rstrip('/').split('/')[-1]} {curve.quality_at(at_cost):.3f}"
            hull_cost = curve.hull()[0]  # where the quality reported comes from, as the notes
            if at_cost > float(np.max(curve.cost)):
                text += rf" (its best point, at \${hull_cost[-1]:.3g})"  # \$: not mathtext
            elif at_cost < float(np.min(curve.cost)):
                text += rf" (its cheapest point, \${hull_cost[0]:.3g})"
            parts.append(text)
        label = f"--at-cost {_money(at_cost)} per 1,000 calls" + (
            f", {beyond} the costs drawn" if beyond else ""
        )
        label += f": quality {', '.join(parts)}" if parts else ""
        if beyond:
            ax.plot([], [], color="tab:red", ls=":", lw=1.2, label=label)
            ax.annotate(
                f"--at-cost \\{_money(at_cost)} \u2192" if beyond == "above"
                else f"\u2190 --at-cost \\{_money(at_cost)}",
                xy=(0.99 if beyond == "above" else 0.01, 0.02), xycoords="axes fraction",
                ha="right" if beyond == "above" else "left", va="bottom", fontsize=7,
                color="tab:red",
            )  # fmt: skip
        else:
            ax.axvline(at_cost, color="tab:red", ls=":", lw=1.2, label=label)
    ax.set_xscale("log")
    span = np.log10(max(high, 1e-9) / max(low, 1e-9)) or 1.0
    ax.set_xlim(low / 10 ** (0.08 * span), high * 10 ** (0.08 * span))
    q_low, q_high = float(qualities.min()), float(qualities.max())
    pad = 0.06 * ((q_high - q_low) or 1.0)
    ax.set_ylim(q_low - pad, q_high + pad)
    ticks = [t for t in COST_TICKS if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
    if len(ticks) < 3:
        ticks = [float(f"{v:.2g}") for v in np.geomspace(*ax.get_xlim(), 5)[1:-1]]
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: _money(v)))  # one "$" each: no mathtext
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("cost, USD per 1,000 calls (log scale)")
    ax.set_ylabel("mean quality")
    ax.set_title(title or f"{report.items} items", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.11), ncol=2,
              borderaxespad=0)  # fmt: skip
    fig.tight_layout()
    _place_model_labels(ax, report)
    return fig


def _place_model_labels(ax: Any, report: PoolReport) -> None:
    """Name each single model at the first of :data:`LABEL_OFFSETS` where its label lies inside
    the axes and covers no other label, no marker and no curve (measured after a layout pass);
    one that finds no free place takes the first place inside the axes."""
    from matplotlib.transforms import Bbox

    fig = ax.figure
    fig.draw_without_rendering()
    renderer = fig.canvas.get_renderer()
    inside = ax.get_window_extent(renderer)
    radius = 4 * fig.dpi / 72  # a marker and a margin
    points = [(report.oracle_cost, report.oracle_quality)]
    points += list(zip(report.single_cost, report.single_quality))
    for curve in report.curves:
        points += list(zip(curve.cost, curve.quality))
    taken = [
        Bbox([[x - radius, y - radius], [x + radius, y + radius]])
        for x, y in ax.transData.transform(points)
    ]
    lines = [ax.transData.transform(np.column_stack(line.get_data())) for line in ax.lines
             if len(line.get_xdata()) > 1]  # fmt: skip
    samples = np.concatenate(
        [np.linspace(a, b, 24) for line in lines for a, b in zip(line, line[1:])]
        or [np.empty((0, 2))]
    )

    def free(box: Any) -> bool:
        if any(box.overlaps(other) for other in taken):
            return False
        return not (
            (samples[:, 0] >= box.x0) & (samples[:, 0] <= box.x1)
            & (samples[:, 1] >= box.y0) & (samples[:, 1] <= box.y1)
        ).any()  # fmt: skip

    order = np.argsort(-report.single_cost)  # the crowded right edge first
    for i in order:
        name = report.models[i].split("/")[-1]
        x, y = report.single_cost[i], report.single_quality[i]
        fallback = None
        for dx, dy in LABEL_OFFSETS:
            label = ax.annotate(
                name, (x, y), xytext=(dx, dy), textcoords="offset points", fontsize=6,
                ha="left" if dx > 0 else "right" if dx < 0 else "center", va="center",
            )  # fmt: skip
            box = label.get_window_extent(renderer)
            fits = inside.x0 <= box.x0 and box.x1 <= inside.x1
            fits = fits and inside.y0 <= box.y0 and box.y1 <= inside.y1
            if fits and free(box):
                break
            if fits and fallback is None:
                fallback = (dx, dy)
            label.remove()
        else:
            dx, dy = fallback or LABEL_OFFSETS[0]
            label = ax.annotate(
                name, (x, y), xytext=(dx, dy), textcoords="offset points", fontsize=6,
                ha="left" if dx > 0 else "right" if dx < 0 else "center", va="center",
            )  # fmt: skip
            box = label.get_window_extent(renderer)
        taken.append(box)


def plot_pool(
    report: PoolReport, path: str | Path, title: str = "", at_cost: float | None = None
) -> Path:
    """A PNG of quality against USD per 1,000 calls (:func:`pool_figure`; needs matplotlib:
    the ``eval`` extra)."""
    fig = pool_figure(report, title, at_cost)
    import matplotlib.pyplot as plt

    out = Path(path)
    fig.savefig(out, dpi=PLOT_DPI)
    plt.close(fig)
    return out


def pairwise_accuracy(
    pred: np.ndarray,
    battle_prompt: np.ndarray,
    battle_a: np.ndarray,
    battle_b: np.ndarray,
    battle_outcome: np.ndarray,
) -> tuple[float, int]:
    """Share of decisive battles (outcome not 0.5) whose winner the predictions rank higher
    on the battle's prompt (a predicted tie counts half); ``pred`` (n, m). Returns (accuracy,
    decisive battles); NaN accuracy without any."""
    pred = np.asarray(pred, dtype=np.float64)
    outcome = np.asarray(battle_outcome, dtype=np.float64)
    decisive = np.abs(outcome - 0.5) > 1e-9
    if not decisive.any():
        return float("nan"), 0
    p = battle_prompt[decisive]
    diff = pred[p, battle_a[decisive]] - pred[p, battle_b[decisive]]
    a_won = outcome[decisive] > 0.5
    right = np.where(np.abs(diff) < 1e-12, 0.5, ((diff > 0) == a_won).astype(float))
    return float(right.mean()), int(decisive.sum())
