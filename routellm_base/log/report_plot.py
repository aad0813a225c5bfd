"""The ``routellm report --plot`` PNG: the four parts of a :class:`LogReport` in one figure.

Needs matplotlib (the ``report`` extra), imported when a plot is drawn. The two time panels
share one axis spanning exactly the report's time bins, whatever the log's length (a second or
a year): ticks and their labels come from matplotlib's date locator for that span.
"""

from __future__ import annotations

import textwrap
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import MissingDependencyError
from .report import MIN_DRIFT_CALLS, LogReport, calls_text, share_text, usd_text

DPI = 110
"""Resolution of the PNG (dots per inch); layout is checked at it, since text extents do not
scale exactly with the resolution."""
PANELS = ("traffic", "cost", "judged", "drift")
"""The labels (``Axes.get_label()``) of the figure's four panels, in reading order."""
POOL_PANELS = ("pool_share", "pool_quality")
"""The panels a log with calls routed among a pool adds: each model's share of the calls and of
the spend, and its judged quality against its cost per call. A log of pool calls alone shows
``traffic``, ``cost`` and these (its calls have no win rate to judge or drift)."""
POOL_COLOURS = (
    "tab:blue", "tab:orange", "tab:green", "tab:purple", "tab:brown", "tab:pink", "tab:olive",
    "tab:cyan", "#1f3b73", "#8c6d31",
)  # fmt: skip
"""Pool models' colours, the same in every panel; none is the strong side's red or grey."""


def plot_report(report: LogReport, path: str | Path) -> Path:
    """Write :func:`report_figure` of ``report`` to ``path`` as a PNG; returns the path. Needs
    matplotlib (the ``report`` extra): :class:`MissingDependencyError` names it when missing."""
    fig = report_figure(report)
    import matplotlib.pyplot as plt

    out = Path(path)
    fig.savefig(out, dpi=DPI)
    plt.close(fig)
    return out


def report_figure(report: LogReport) -> Any:
    """A matplotlib figure of the report's four parts, each panel labelled as in
    :data:`PANELS`: calls per time bin (strong and weak) and the strong share; cumulative cost
    against always-strong; judged against estimated win rate per bucket; the win-rate
    distribution against each checkpoint's calibration set. Needs matplotlib (the ``report``
    extra): :class:`MissingDependencyError` names it when missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise MissingDependencyError(
            f"routellm report --plot needs matplotlib ({exc}): "
            "pip install 'langchain-routellm[report]'"
        ) from exc
    labels = list(PANELS)
    if report.pool is not None:
        labels = labels[:2] if not report.pair_calls else labels
        labels += POOL_PANELS
    rows = (len(labels) + 1) // 2
    fig, axes = plt.subplots(rows, 2, figsize=(13, 5 * rows), layout="constrained", dpi=DPI)
    panels = dict(zip(labels, axes.flat))
    for label, ax in panels.items():
        ax.set_label(label)
    traffic, cost = panels["traffic"], panels["cost"]
    _plot_traffic(traffic, report)
    _plot_cost(cost, report)
    if report.bins:
        cost.sharex(traffic)
        _time_axis(traffic, report)
    if "judged" in panels:
        _plot_judged(panels["judged"], report)
        _plot_drift(panels["drift"], report)
    if report.pool is not None:
        _plot_pool_share(panels["pool_share"], report)
        _plot_pool_quality(panels["pool_quality"], report)
    fig.suptitle(f"routellm report: {calls_text(report.calls)}", fontsize=12)
    return fig


def pool_colours(report: LogReport) -> dict[str, str]:
    """Each pool model's colour, in the order of the report's pool section."""
    models = report.pool.models if report.pool is not None else ()
    return {m.model: POOL_COLOURS[i % len(POOL_COLOURS)] for i, m in enumerate(models)}


def time_span(report: LogReport) -> tuple[Any, Any]:
    """The time the report's bins cover: the first bin's start and the last bin's end (UTC)."""
    first, last = report.bins[0], report.bins[-1]
    return first.start, last.start + timedelta(seconds=last.seconds)


def _time_axis(ax: Any, report: LogReport) -> None:
    import matplotlib.dates as mdates

    # matplotlib's own concise date labels: each tick says only what changes at its level
    # ("Mar", "09:30", "00.25" seconds) and the rest goes in the offset under the axis, so that
    # labels stay short enough not to overlap at any span (long "09:00:00.25" labels did).
    locator = mdates.AutoDateLocator(minticks=3, maxticks=7)
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
    ax.set_xlim(*time_span(report))


def _plot_traffic(ax: Any, report: LogReport) -> None:
    ax.set_title("calls per time bin and strong share (UTC)")
    if not report.bins:
        ax.text(0.5, 0.5, "no calls", ha="center", transform=ax.transAxes)
        return
    starts = [b.start for b in report.bins]
    width = [b.seconds / 86400 * 0.9 for b in report.bins]  # matplotlib dates are in days
    strong = np.array([b.strong for b in report.bins])
    pooled = {m: np.array([b.models.get(m, 0) for b in report.bins]) for m in pool_colours(report)}
    weak = (
        np.array([b.calls for b in report.bins])
        - strong
        - sum(pooled.values(), np.zeros(len(strong)))
    )
    pair = report.pool is None or report.pair_calls > 0
    if pair:
        # An edge in the bar's own colour, a line of 0.8 points, keeps a bin narrower than a
        # pixel (an hour's bin on a months-long axis) drawn: a fill that thin is not drawn at all.
        ax.bar(starts, strong, width=width, color="tab:red", alpha=0.45, align="edge",
               label="strong", edgecolor="tab:red", linewidth=0.8)  # fmt: skip
        ax.bar(starts, weak, width=width, bottom=strong, color="#bbb", align="edge", label="weak",
               edgecolor="#bbb", linewidth=0.8)  # fmt: skip
    bottom = strong + weak
    for model, colour in pool_colours(report).items():
        ax.bar(starts, pooled[model], width=width, bottom=bottom, color=colour, alpha=0.7,
               align="edge", label=_short(model, 34), edgecolor=colour, linewidth=0.8)  # fmt: skip
        bottom = bottom + pooled[model]
    ax.set_ylabel("calls")
    entries = (3 if pair else 0) + len(pooled)
    # Four short entries fit a row; model names are longer: two a row, so the legend stays
    # inside the panel.
    columns = 4 if not pooled else 2
    legend_rows = (entries + columns - 1) // columns
    # room for the legend above the tallest bar
    ax.set_ylim(0, max(b.calls for b in report.bins) * (1.15 + 0.15 * legend_rows))
    if not pair:
        ax.set_title("calls per time bin and model (UTC)")
        ax.legend(fontsize=8, loc="upper left", ncol=min(columns, max(1, entries)))
        return
    share = ax.twinx()
    centres = [b.start + timedelta(seconds=b.seconds / 2) for b in report.bins]
    shares = [np.nan if b.strong_share is None else b.strong_share * 100 for b in report.bins]
    share.plot(centres, shares, "o-", color="tab:red", label="strong share")
    if report.window is not None:
        for target in report.window.target_shares:
            share.axhline(target * 100, ls="--", color="tab:red", lw=1, label="window target")
    share.set_ylabel("strong share (%)", color="tab:red")
    share.set_ylim(0, 130)
    share.set_yticks(range(0, 101, 20))
    handles, labels = ax.get_legend_handles_labels()
    more, more_labels = share.get_legend_handles_labels()
    ax.legend(handles + more, labels + more_labels, fontsize=8, loc="upper left", ncol=columns)


def _plot_cost(ax: Any, report: LogReport) -> None:
    ax.set_title("cumulative cost (USD)")
    c = report.cost
    if not c.calls_compared and report.pool is not None and report.bins:
        _plot_pool_spend(ax, report)
        return
    if not c.calls_compared:
        why = "no call has both a known cost and a priced strong model"
        if c.unpriced_models:
            why += f"; no price for {', '.join(c.unpriced_models)}: give --price MODEL=IN,OUT"
        ax.text(0.5, 0.5, textwrap.fill(why, 50), ha="center", va="center",
                transform=ax.transAxes, fontsize=9)  # fmt: skip
        return
    # Both lines over the same calls, those that compare (an unpriced strong model leaves a
    # weak call's always-strong unknown: counting its spend alone put "spent" above
    # always-strong). Cumulative from 0 at the first bin's start, rising from a bin's first
    # call to its last and flat elsewhere: calls made within 60 ms of an hour's bin rise there,
    # not evenly across the hour.
    start, end = time_span(report)
    times, spent, always = [start], [0.0], [0.0]
    for b in report.bins:
        times += [b.first_call or b.start, b.last_call or b.start + timedelta(seconds=b.seconds)]
        spent += [spent[-1], spent[-1] + (b.compared_cost_usd or 0.0)]
        always += [always[-1], always[-1] + (b.always_strong_usd or 0.0)]
    times.append(end)
    spent.append(spent[-1])
    always.append(always[-1])
    compared = "" if c.calls_compared == report.calls else f" ({c.calls_compared} compared calls)"
    ax.plot(times, spent, "-", label=f"spent{compared}")
    ax.plot(times, always, "--", color="tab:green", label=f"always strong{compared}")
    # No "$" in matplotlib text: a pair of them starts mathtext.
    ax.text(
        0.02,
        0.95,
        f"{calls_text(c.calls_compared)}: {c.cost_usd:,.4f} spent, {c.always_strong_usd:,.4f} "
        + (
            f"always-strong, saved {share_text(c.savings_share)}"
            if c.savings_usd is not None
            else f"always-strong\nsaving unknown: only {c.calls_compared} of {report.calls} "
            "calls compare"
        ),
        transform=ax.transAxes,
        va="top",
        fontsize=9,
    )
    ax.set_ylim(bottom=0)
    usd_axis(ax)
    ax.legend(fontsize=8, loc="lower right")


def usd_axis(ax: Any) -> None:
    """Label ``ax``'s y ticks in dollars with as many decimals as their step needs (at least 2):
    a spend of $0.00000049 reads "$0.0000004", not a bare "1e-7" offset over 0 to 5."""
    from matplotlib.ticker import Formatter

    class _Usd(Formatter):
        ticks: list[float] = []

        def set_locs(self, locs: Any) -> None:
            self.ticks = sorted(locs)

        def __call__(self, x: float, pos: int | None = None) -> str:
            locs = self.ticks
            steps = [b - a for a, b in zip(locs, locs[1:]) if b > a]
            step = min(steps) if steps else abs(x) or 1.0
            decimals = 2  # the fewest that show every tick step exactly (a 2.5e-7 step: 8)
            while decimals < 12 and abs(step * 10**decimals - round(step * 10**decimals)) > 1e-6:
                decimals += 1
            return f"${x:,.{decimals}f}"

    ax.yaxis.set_major_formatter(_Usd())


def _plot_pool_spend(ax: Any, report: LogReport) -> None:
    """Cumulative known spend of a log of pool calls (always-strong does not apply to them)."""
    c = report.cost
    if c.total_cost_usd is None:
        ax.text(0.5, 0.5, "spend unknown: no call has a known cost", ha="center",
                va="center", transform=ax.transAxes, fontsize=9)  # fmt: skip
        return
    start, _ = time_span(report)
    ends = [start] + [b.start + timedelta(seconds=b.seconds) for b in report.bins]
    spent = np.concatenate([[0.0], np.cumsum([b.cost_usd or 0.0 for b in report.bins])])
    ax.plot(ends, spent, "o-", ms=3, label="spent")
    pool = report.pool
    assert pool is not None
    top = spent[-1]
    if pool.always_baseline_usd is not None and pool.baseline_model is not None:
        always = np.concatenate(
            [[0.0], np.cumsum([b.always_baseline_usd or 0.0 for b in report.bins])]
        )
        ax.plot(ends, always, "s--", ms=3, color="tab:green",
                label=f"always {_short(pool.baseline_model, 34)}")  # fmt: skip
        top = max(top, always[-1])
    known = "" if c.priced_calls == report.calls else f" ({c.priced_calls} calls of known cost)"
    noun = "pool call" if report.calls == 1 else "pool calls"
    text = f"{report.calls} {noun}: {usd_text(c.total_cost_usd)} spent{known}"
    if pool.baseline_model is None:
        text += "\nagainst the priciest model: unknown (a model has no price)"
    elif pool.always_baseline_usd is None:
        text += f"\nagainst always {_short(pool.baseline_model, 34)}: unknown (no token counts)"
    else:
        text += f"\n{usd_text(pool.always_baseline_usd)} always {_short(pool.baseline_model, 34)}"
        if pool.savings_share is not None:
            text += f", saved {share_text(pool.savings_share)}"
    # parse_math=False: two "$" would start mathtext.
    ax.text(0.02, 0.95, text, transform=ax.transAxes, va="top", fontsize=9,
            parse_math=False)  # fmt: skip
    ax.set_ylim(0, max(top, 1e-12) * 1.35)  # room for the text above the lines
    usd_axis(ax)
    ax.legend(fontsize=8, loc="lower right")


def _plot_pool_share(ax: Any, report: LogReport) -> None:
    """Each pool model's share of the pool calls and of their known spend."""
    pool = report.pool
    assert pool is not None
    ax.set_title("pool: share of calls and of spend per model")
    models = list(pool.models)[::-1]  # the most called on top
    y = np.arange(len(models))
    colours = pool_colours(report)
    calls = [m.call_share * 100 for m in models]
    spend = [(m.spend_share or 0.0) * 100 for m in models]
    ax.barh(y + 0.2, calls, height=0.38, color=[colours[m.model] for m in models], alpha=0.55,
            label="share of calls")  # fmt: skip
    ax.barh(y - 0.2, spend, height=0.38, color=[colours[m.model] for m in models], hatch="//",
            edgecolor="white", label="share of spend")  # fmt: skip
    for i, m in enumerate(models):
        ax.text(calls[i] + 1, y[i] + 0.2, share_text(m.call_share), va="center", fontsize=7)
        ax.text(spend[i] + 1, y[i] - 0.2,
                "spend unknown" if m.spend_share is None else share_text(m.spend_share),
                va="center", fontsize=7)  # fmt: skip
    ax.set_yticks(y, [_short(m.model, 34) for m in models], fontsize=8)
    ax.set_xlim(0, 118)  # room for the labels past a bar of 100%
    ax.set_xticks(range(0, 101, 20))
    ax.set_xlabel("% of the pool's calls (plain) and known spend (hatched)")
    ax.set_ylim(-0.7, len(models) - 0.3)


def _plot_pool_quality(ax: Any, report: LogReport) -> None:
    """Each pool model's judged score (battles won, ties half, with its 95% interval) against
    its cost per call."""
    pool = report.pool
    assert pool is not None
    ax.set_title("pool: judged quality against cost per call")
    colours = pool_colours(report)
    judged = [m for m in pool.models if m.battles]
    if not judged:
        why = f"no judged pool comparison ({pool.comparisons} recorded): run routellm judge --log"
        ax.text(0.5, 0.5, textwrap.fill(why, 50), ha="center", va="center",
                transform=ax.transAxes, fontsize=9)  # fmt: skip
        return
    costs = []
    for m in judged:
        cost = m.cost_per_call if m.cost_per_call is not None else m.expected_cost_usd
        if cost is None:
            continue
        costs.append(cost * 1000)
        low, high = m.interval_95  # type: ignore[misc]
        score = m.judged_score
        ax.errorbar([cost * 1000], [score], yerr=[[score - low], [high - score]], fmt="o",
                    capsize=3, color=colours[m.model],
                    label=f"{_short(m.model, 40)} (n={m.battles})")  # fmt: skip
    unplaced = [m.model for m in judged if m.cost_per_call is None and m.expected_cost_usd is None]
    unjudged = [m.model for m in pool.models if not m.battles]
    if costs and max(costs) > 20 * max(min(costs), 1e-12):
        ax.set_xscale("log")
    if costs:
        low, high = min(costs), max(costs)
        pad = (high / low) ** 0.15 if ax.get_xscale() == "log" else 0.1 * (high - low or high or 1)
        ax.set_xlim(
            *((low / pad, high * pad) if ax.get_xscale() == "log" else (low - pad, high + pad))
        )
    ax.set_ylim(-0.02, 1.02)
    ax.axhline(0.5, ls=":", color="grey", lw=1)
    ax.set_xlabel("cost per 1,000 calls (USD; known cost, else expected)")
    ax.set_ylabel("judged score (won, ties half)")
    notes = []
    if unjudged:
        notes.append("no judged battle: " + ", ".join(_short(n, 28) for n in unjudged))
    if unplaced:
        notes.append("no cost known: " + ", ".join(_short(n, 28) for n in unplaced))
    # Under the panel, across its width: inside it would cover points.
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(0.0, -0.14), borderaxespad=0,
              ncol=2, title=textwrap.fill("; ".join(notes), 90) or None,
              title_fontsize=7)  # fmt: skip


def _plot_judged(ax: Any, report: LogReport) -> None:
    ax.set_title("judged strong-win rate by router win rate")
    buckets = report.judged.buckets
    if not buckets:
        ax.text(0.5, 0.5, "no judged comparisons", ha="center", transform=ax.transAxes)
        return
    x = [b.router_win_rate for b in buckets]
    y = [b.strong_win_rate for b in buckets]
    low = [b.strong_win_rate - b.interval_95[0] for b in buckets]
    high = [b.interval_95[1] - b.strong_win_rate for b in buckets]
    ax.errorbar(x, y, yerr=[low, high], fmt="o", capsize=3)
    ax.plot([0, 1], [0, 1], ":", color="grey", label="router's estimate")
    # The data's range with a margin, not a fixed 0-1: win rates that cluster (a router on
    # chat traffic scoring 0.46-0.56) would put every point, bar and count on one spot.
    span = max(max(x) - min(x), 0.05)
    ax.set_xlim(max(0.0, min(x) - 0.15 * span - 0.01), min(1.0, max(x) + 0.15 * span + 0.01))
    auc = report.judged.auc
    ax.set_xlabel("router win rate (bucket mean)")
    ax.set_ylabel("judged strong-win rate")
    ax.set_ylim(-0.05, 1.12)  # room for a count above a bucket judged 1.0
    title = "AUC: needs strong and weak wins" if auc is None else f"AUC {auc:.3f}"
    # Upper left is where a calibrated router's points are not (low win rate, low judged rate).
    ax.legend(title=title, fontsize=8, title_fontsize=8, loc="upper left")
    _place_counts(ax, [(b.router_win_rate, b.strong_win_rate, f"n={b.judged}") for b in buckets])


COUNT_OFFSETS = tuple(
    (dx, dy) for dy in (3, -11, 13, -21, 23, -31, 33) for dx in (5, -5)
)  # fmt: skip
"""Where a bucket's "n=" label may go, in points from its point, nearest first: right then left
of it, above then below, further out each round."""


def _place_counts(ax: Any, points: list[tuple[float, float, str]]) -> None:
    """Label each point with its text at the first of :data:`COUNT_OFFSETS` where the label
    lies inside the panel and overlaps no other label, no marker and not the legend, measured by
    matplotlib's own extents after a layout pass. Every count is shown: neighbouring buckets at
    close win rates get labels on different sides (hiding one left the reader a bucket short);
    one that finds no free place takes the nearest place inside the panel."""
    fig = ax.figure
    fig.draw_without_rendering()
    renderer = fig.canvas.get_renderer()
    inside = ax.get_window_extent(renderer)
    legend = ax.get_legend()
    taken = [legend.get_window_extent(renderer)] if legend is not None else []
    radius = 4 * fig.dpi / 72  # the marker (6 points across) and a margin
    from matplotlib.transforms import Bbox

    for px, py in ax.transData.transform([(x, y) for x, y, _ in points]):
        taken.append(Bbox([[px - radius, py - radius], [px + radius, py + radius]]))
    for x, y, text in points:
        fallback = None
        for dx, dy in COUNT_OFFSETS:
            label = ax.annotate(text, (x, y), xytext=(dx, dy), textcoords="offset points",
                                fontsize=7, ha="left" if dx > 0 else "right",
                                va="bottom")  # fmt: skip
            box = label.get_window_extent(renderer)
            fits = inside.x0 <= box.x0 and box.x1 <= inside.x1 and inside.y0 <= box.y0
            fits = fits and box.y1 <= inside.y1
            if fits and not any(box.overlaps(other) for other in taken):
                break
            if fits and fallback is None:
                fallback = (dx, dy)
            label.remove()
        else:
            dx, dy = fallback or COUNT_OFFSETS[0]
            label = ax.annotate(text, (x, y), xytext=(dx, dy), textcoords="offset points",
                                fontsize=7, ha="left" if dx > 0 else "right",
                                va="bottom")  # fmt: skip
            box = label.get_window_extent(renderer)
        taken.append(box)


def _plot_drift(ax: Any, report: LogReport) -> None:
    ax.set_title("win-rate distribution: traffic vs calibration set")
    if not report.win_rates:
        ax.text(0.5, 0.5, "no scored calls", ha="center", transform=ax.transAxes)
        return
    figures, too_few = {}, []
    for d in report.drift:
        name = f"{d.router}@{d.checkpoint_id[:12]}" if d.checkpoint_id else d.router
        if d.calls < MIN_DRIFT_CALLS:  # a step or two of a CDF says nothing, and hardly shows
            too_few.append(f"{_short(name)}: {d.note}" if d.note else _short(name))
        if d.ks is not None:
            ks_noise = "" if d.ks_critical_95 is None else f" (chance up to {d.ks_critical_95:.3f})"
            noise = "" if d.psi_noise_95 is None else f" (chance up to {d.psi_noise_95:.3f})"
            # On a line of its own: after a checkpoint path it ran past the figure's edge.
            figures[name] = f"\n  KS {d.ks:.3f}{ks_noise}, PSI {d.psi:.3f}{noise}"
    drawn = 0
    for i, (name, rates) in enumerate(report.win_rates.items()):
        colour = f"C{i % 10}"
        values = np.asarray(rates)
        if len(values) < MIN_DRIFT_CALLS:
            continue
        drawn += 1
        ax.step(values, np.arange(1, len(values) + 1) / len(values), where="post", color=colour,
                label=f"traffic {_short(name)} (n={len(values)}){figures.get(name, '')}")  # fmt: skip
        calibration = report.calibrations.get(name)
        if calibration is not None:
            ax.plot(calibration.quantiles, np.linspace(0, 1, len(calibration.quantiles)), "--",
                    color=colour, label=f"  its calibration: {_wrapped(calibration.reference)}")  # fmt: skip
    ax.set_xlabel("win rate")
    ax.set_ylabel("cumulative share")
    if too_few:  # beside drawn CDFs: in the lower right, which a CDF leaves empty
        x, y, ha, va = (0.97, 0.03, "right", "bottom") if drawn else (0.5, 0.5, "center", "center")
        ax.text(x, y, "\n".join(textwrap.fill(note, 60) for note in too_few), ha=ha, va=va,
                fontsize=8, transform=ax.transAxes)  # fmt: skip
    if drawn:
        # Under the panel, across its width: two routers' labels do not fit inside it.
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(0.0, -0.12), borderaxespad=0)


def _short(text: str, width: int = 48) -> str:
    """``text`` cut in the middle to ``width`` characters (checkpoint paths are long)."""
    if len(text) <= width:
        return text
    keep = (width - 3) // 2
    return f"{text[:keep]}...{text[-(width - 3 - keep) :]}"


def _wrapped(text: str, width: int = 48) -> str:
    """``text`` (a calibration's name) on lines of ``width`` characters under a legend entry,
    at most three (the rest cut at a word with "..."): cut at 60 characters, the bundled
    routers' name lost its end ("... (498 real Chatbot Arena...")."""
    return "\n    ".join(textwrap.wrap(text, width, max_lines=3, placeholder=" ..."))
