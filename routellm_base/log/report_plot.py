"""The ``routellm report --plot`` PNG: the four parts of a :class:`LogReport` in one figure.

Needs matplotlib (the ``report`` extra), imported when a plot is drawn.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..errors import MissingDependencyError
from .report import LogReport, share_text


def plot_report(report: LogReport, path: str | Path) -> Path:
    """Write a PNG of the report's four parts (traffic and strong share over time, cumulative
    cost against always-strong, judged against estimated win rate per bucket, the win-rate
    distribution against the calibration set). Needs matplotlib (the ``report`` extra):
    :class:`MissingDependencyError` names it when missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise MissingDependencyError(
            f"routellm report --plot needs matplotlib ({exc}): "
            "pip install 'langchain-routellm[report]'"
        ) from exc
    fig, axes = plt.subplots(2, 2, figsize=(13, 9))
    _plot_traffic(axes[0][0], report)
    _plot_cost(axes[0][1], report)
    _plot_judged(axes[1][0], report)
    _plot_drift(axes[1][1], report)
    fig.suptitle(f"routellm report: {report.calls} calls", fontsize=12)
    fig.tight_layout()
    out = Path(path)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def _plot_traffic(ax: Any, report: LogReport) -> None:
    ax.set_title("calls and strong share")
    if not report.bins:
        ax.text(0.5, 0.5, "no calls", ha="center", transform=ax.transAxes)
        return
    starts = [b.start for b in report.bins]
    width = report.bins[0].seconds / 86400 * 0.8  # matplotlib dates are in days
    ax.bar(starts, [b.calls for b in report.bins], width=width, color="#bbb", align="edge")
    ax.set_ylabel("calls")
    share = ax.twinx()
    share.plot(starts, [b.strong_share * 100 for b in report.bins], "o-", color="tab:red")
    if report.window is not None:
        for target in report.window.target_shares:
            share.axhline(target * 100, ls="--", color="tab:red", lw=1)
    share.set_ylabel("strong share (%)", color="tab:red")
    share.set_ylim(0, 100)
    ax.tick_params(axis="x", labelrotation=30, labelsize=7)


def _plot_cost(ax: Any, report: LogReport) -> None:
    ax.set_title("cumulative cost (USD)")
    starts = [b.start for b in report.bins]
    ax.plot(starts, np.cumsum([b.cost_usd for b in report.bins]), "o-", label="spent")
    always = np.cumsum([b.always_strong_usd for b in report.bins])
    ax.plot(starts, always, "s--", color="tab:green", label="always strong")
    c = report.cost
    # No "$" in matplotlib text: a pair of them starts mathtext.
    ax.text(
        0.02,
        0.95,
        f"{c.calls_compared} calls: {c.cost_usd:,.4f} spent, {c.always_strong_usd:,.4f} "
        f"always-strong, saved {share_text(c.savings_share)}",
        transform=ax.transAxes,
        va="top",
        fontsize=9,
    )
    ax.tick_params(axis="x", labelrotation=30, labelsize=7)
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
    for b in buckets:
        ax.annotate(f"n={b.judged}", (b.router_win_rate, b.strong_win_rate), fontsize=7,
                    xytext=(4, 4), textcoords="offset points")  # fmt: skip
    ax.plot([0, 1], [0, 1], ":", color="grey", label="router's estimate")
    auc = report.judged.auc
    ax.set_xlabel("router win rate (bucket mean)")
    ax.set_ylabel("judged strong-win rate")
    ax.legend(title=None if auc is None else f"AUC {auc:.3f}", fontsize=8)


def _plot_drift(ax: Any, report: LogReport) -> None:
    ax.set_title("win-rate distribution: traffic vs calibration set")
    if not report.win_rates:
        ax.text(0.5, 0.5, "no scored calls", ha="center", transform=ax.transAxes)
        return
    for name, rates in report.win_rates.items():
        values = np.asarray(rates)
        ax.step(values, np.arange(1, len(values) + 1) / len(values), where="post",
                label=f"traffic {name} (n={len(values)})")  # fmt: skip
        calibration = report.calibrations.get(name)
        if calibration is not None:
            ax.plot(calibration.quantiles, np.linspace(0, 1, len(calibration.quantiles)), "--",
                    label=f"calibration: {calibration.reference[:40]}")  # fmt: skip
    ks = [f"KS {d.ks:.3f}, PSI {d.psi:.3f}" for d in report.drift if d.ks is not None]
    if ks:
        ax.text(0.02, 0.95, "; ".join(ks[:2]), transform=ax.transAxes, va="top", fontsize=9)
    ax.set_xlabel("win rate")
    ax.set_ylabel("cumulative share")
    ax.legend(fontsize=7, loc="lower right")
