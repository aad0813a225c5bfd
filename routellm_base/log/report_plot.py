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
from .report import LogReport, share_text

PANELS = ("traffic", "cost", "judged", "drift")
"""The labels (``Axes.get_label()``) of the figure's four panels, in reading order."""


def plot_report(report: LogReport, path: str | Path) -> Path:
    """Write :func:`report_figure` of ``report`` to ``path`` as a PNG; returns the path. Needs
    matplotlib (the ``report`` extra): :class:`MissingDependencyError` names it when missing."""
    fig = report_figure(report)
    import matplotlib.pyplot as plt

    out = Path(path)
    fig.savefig(out, dpi=110)
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
    fig, axes = plt.subplots(2, 2, figsize=(13, 10), layout="constrained")
    for ax, label in zip(axes.flat, PANELS):
        ax.set_label(label)
    traffic, cost, judged, drift = axes.flat
    _plot_traffic(traffic, report)
    _plot_cost(cost, report)
    if report.bins:
        cost.sharex(traffic)
        _time_axis(traffic, report)
    _plot_judged(judged, report)
    _plot_drift(drift, report)
    fig.suptitle(f"routellm report: {report.calls} calls", fontsize=12)
    return fig


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
    weak = np.array([b.calls for b in report.bins]) - strong
    # An edge in the bar's own colour, a line of 0.8 points, keeps a bin narrower than a pixel
    # (an hour's bin on a months-long axis) drawn: a fill that thin is not drawn at all.
    ax.bar(starts, strong, width=width, color="tab:red", alpha=0.45, align="edge", label="strong",
           edgecolor="tab:red", linewidth=0.8)  # fmt: skip
    ax.bar(starts, weak, width=width, bottom=strong, color="#bbb", align="edge", label="weak",
           edgecolor="#bbb", linewidth=0.8)  # fmt: skip
    ax.set_ylabel("calls")
    ax.set_ylim(0, max(b.calls for b in report.bins) * 1.3)  # room for the legend
    share = ax.twinx()
    centres = [b.start + timedelta(seconds=b.seconds / 2) for b in report.bins]
    share.plot(centres, [b.strong_share * 100 for b in report.bins], "o-", color="tab:red",
               label="strong share")  # fmt: skip
    if report.window is not None:
        for target in report.window.target_shares:
            share.axhline(target * 100, ls="--", color="tab:red", lw=1, label="window target")
    share.set_ylabel("strong share (%)", color="tab:red")
    share.set_ylim(0, 130)
    share.set_yticks(range(0, 101, 20))
    handles, labels = ax.get_legend_handles_labels()
    more, more_labels = share.get_legend_handles_labels()
    ax.legend(handles + more, labels + more_labels, fontsize=8, loc="upper left", ncol=4)


def _plot_cost(ax: Any, report: LogReport) -> None:
    ax.set_title("cumulative cost (USD)")
    c = report.cost
    if not c.calls_compared:
        why = "no call has both a known cost and a priced strong model"
        if c.unpriced_models:
            why += f"; no price for {', '.join(c.unpriced_models)}: give --price MODEL=IN,OUT"
        ax.text(0.5, 0.5, textwrap.fill(why, 50), ha="center", va="center",
                transform=ax.transAxes, fontsize=9)  # fmt: skip
        return
    # Cumulative at each bin's end, from 0 at the first bin's start.
    start, _ = time_span(report)
    ends = [start] + [b.start + timedelta(seconds=b.seconds) for b in report.bins]
    spent = np.concatenate([[0.0], np.cumsum([b.cost_usd or 0.0 for b in report.bins])])
    always = np.concatenate([[0.0], np.cumsum([b.always_strong_usd for b in report.bins])])
    ax.plot(ends, spent, "o-", ms=3, label="spent")
    ax.plot(ends, always, "s--", ms=3, color="tab:green", label="always strong")
    # No "$" in matplotlib text: a pair of them starts mathtext.
    ax.text(
        0.02,
        0.95,
        f"{c.calls_compared} calls: {c.cost_usd:,.4f} spent, {c.always_strong_usd:,.4f} "
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
    ax.legend(fontsize=8, loc="lower right")


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
    counts = [
        ax.annotate(
            f"n={b.judged}",
            (b.router_win_rate, b.strong_win_rate),
            fontsize=7,
            xytext=(4, 4),
            textcoords="offset points",
        )  # fmt: skip
        for b in buckets
    ]
    ax.plot([0, 1], [0, 1], ":", color="grey", label="router's estimate")
    auc = report.judged.auc
    ax.set_xlabel("router win rate (bucket mean)")
    ax.set_ylabel("judged strong-win rate")
    title = "AUC: needs strong and weak wins" if auc is None else f"AUC {auc:.3f}"
    ax.legend(title=title, fontsize=8, title_fontsize=8)
    _thin_overlapping(ax.figure, counts)


def _thin_overlapping(fig: Any, texts: list[Any]) -> None:
    """Hide each of ``texts`` that would overlap one shown before it (neighbouring buckets' "n="
    labels at close win rates), measured by matplotlib's own text extents after a layout pass;
    the text report lists every bucket's count."""
    fig.draw_without_rendering()
    renderer = fig.canvas.get_renderer()
    shown: list[Any] = []
    for text in texts:
        box = text.get_window_extent(renderer)
        if any(box.overlaps(other) for other in shown):
            text.set_visible(False)
        else:
            shown.append(box)


def _plot_drift(ax: Any, report: LogReport) -> None:
    ax.set_title("win-rate distribution: traffic vs calibration set")
    if not report.win_rates:
        ax.text(0.5, 0.5, "no scored calls", ha="center", transform=ax.transAxes)
        return
    figures = {}
    for d in report.drift:
        name = f"{d.router}@{d.checkpoint_id[:12]}" if d.checkpoint_id else d.router
        if d.ks is not None:
            ks_noise = "" if d.ks_critical_95 is None else f" (chance up to {d.ks_critical_95:.3f})"
            noise = "" if d.psi_noise_95 is None else f" (chance up to {d.psi_noise_95:.3f})"
            figures[name] = f": KS {d.ks:.3f}{ks_noise}, PSI {d.psi:.3f}{noise}"
    for i, (name, rates) in enumerate(report.win_rates.items()):
        colour = f"C{i % 10}"
        values = np.asarray(rates)
        ax.step(values, np.arange(1, len(values) + 1) / len(values), where="post", color=colour,
                label=f"traffic {_short(name)} (n={len(values)}){figures.get(name, '')}")  # fmt: skip
        calibration = report.calibrations.get(name)
        if calibration is not None:
            ax.plot(calibration.quantiles, np.linspace(0, 1, len(calibration.quantiles)), "--",
                    color=colour, label=f"  its calibration: {_short(calibration.reference, 90)}")  # fmt: skip
    ax.set_xlabel("win rate")
    ax.set_ylabel("cumulative share")
    # Under the panel, across its width: two routers' labels do not fit inside it.
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(0.0, -0.12), borderaxespad=0)


def _short(text: str, width: int = 48) -> str:
    """``text`` cut in the middle to ``width`` characters (checkpoint paths are long)."""
    if len(text) <= width:
        return text
    keep = (width - 3) // 2
    return f"{text[:keep]}...{text[-(width - 3 - keep) :]}"
