"""Quality against strong-call share, and the paper's summary metrics (PGR, APGR, CPT).

Routing a benchmark of n prompts at every possible threshold is the same as sending the k prompts
with the highest win rates strong, for k = 0..n. The curve below is that, computed exactly:
performance(k) = mean(weak) + sum over the top k of (strong - weak) / n.

Ties in win rate are not broken by index or by chance: a group of prompts with equal win rates is
entered in one linear step, which is the expectation over every order within the group. So a
router that outputs a constant has exactly the straight line from weak to strong (APGR 0.5).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

CPT_TARGETS = (0.2, 0.5, 0.8)


@dataclass(frozen=True)
class QualityCurve:
    """Performance at each strong-call share from 0 to 1 (piecewise linear between points)."""

    shares: np.ndarray
    performance: np.ndarray
    strong_score: float
    weak_score: float

    @property
    def pgr(self) -> np.ndarray:
        """Performance gap recovered: 0 at the weak model's score, 1 at the strong model's."""
        gap = self.strong_score - self.weak_score
        if gap == 0:
            raise ValueError("strong and weak models score the same: PGR is undefined")
        return (self.performance - self.weak_score) / gap

    def apgr(self) -> float:
        """Area under PGR against strong-call share, over shares 0..1 (trapezoidal, exact)."""
        pgr = self.pgr
        return float(np.sum((pgr[1:] + pgr[:-1]) * np.diff(self.shares)) / 2.0)

    def cpt(self, target: float) -> float | None:
        """Call-performance threshold: the smallest strong-call share reaching PGR ``target``.

        Performance is not monotone in the share (a router may send a prompt strong that the
        weak model answered better), so CPT is the *first* share, walking up from 0, at which the
        piecewise-linear curve reaches the target; ``None`` if it never does.
        """
        pgr = self.pgr
        hit = np.flatnonzero(pgr >= target - 1e-12)
        if hit.size == 0:
            return None
        i = int(hit[0])
        if i == 0:
            return 0.0
        x0, x1, y0, y1 = self.shares[i - 1], self.shares[i], pgr[i - 1], pgr[i]
        return float(x0 + (target - y0) * (x1 - x0) / (y1 - y0))


def quality_curve(win_rates: np.ndarray, strong: np.ndarray, weak: np.ndarray) -> QualityCurve:
    """The curve of a router whose strong win rates are ``win_rates`` on prompts scored ``strong``/``weak``."""
    win_rates = np.asarray(win_rates, dtype=np.float64)
    strong = np.asarray(strong, dtype=np.float64)
    weak = np.asarray(weak, dtype=np.float64)
    n = len(win_rates)
    if n == 0 or strong.shape != (n,) or weak.shape != (n,):
        raise ValueError("win_rates, strong and weak must be non-empty arrays of one length")
    gain = strong - weak
    order = np.argsort(-win_rates, kind="mergesort")
    sorted_rates = win_rates[order]
    # One point per group of tied win rates (highest first).
    boundaries = np.flatnonzero(np.diff(sorted_rates) != 0) + 1
    ends = np.concatenate([boundaries, [n]])
    cumulative_gain = np.concatenate([[0.0], np.cumsum(gain[order])[ends - 1]])
    shares = np.concatenate([[0.0], ends / n])
    performance = weak.mean() + cumulative_gain / n
    return QualityCurve(shares, performance, float(strong.mean()), float(weak.mean()))


def oracle_curve(strong: np.ndarray, weak: np.ndarray) -> QualityCurve:
    """The best possible router: strong exactly where, and in the order that, it gains most."""
    gain = np.asarray(strong, dtype=np.float64) - np.asarray(weak, dtype=np.float64)
    return quality_curve(gain, strong, weak)


def random_baseline(
    strong: np.ndarray, weak: np.ndarray, seeds: int = 200, seed: int = 0
) -> tuple[float, float, dict[float, tuple[float | None, float | None]]]:
    """Mean and standard deviation of a random router's APGR over ``seeds`` runs, and CPT means/stds."""
    rng = np.random.default_rng(seed)
    apgrs = []
    cpts: dict[float, list[float]] = {t: [] for t in CPT_TARGETS}
    for _ in range(seeds):
        curve = quality_curve(rng.random(len(strong)), strong, weak)
        apgrs.append(curve.apgr())
        for t in CPT_TARGETS:
            value = curve.cpt(t)
            if value is not None:
                cpts[t].append(value)
    cpt_summary: dict[float, tuple[float | None, float | None]] = {
        t: ((float(np.mean(v)), float(np.std(v))) if v else (None, None)) for t, v in cpts.items()
    }
    return float(np.mean(apgrs)), float(np.std(apgrs)), cpt_summary


def random_band(
    strong: np.ndarray, weak: np.ndarray, seeds: int = 200, seed: int = 0, points: int = 101
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A random router's performance against strong-call share, over the same ``seeds`` runs as
    :func:`random_baseline`: ``(shares, mean, std)``, each of shape ``(points,)``, the shares
    evenly spaced over 0..1 and the performance in the benchmark's score units."""
    rng = np.random.default_rng(seed)
    shares = np.linspace(0.0, 1.0, points)
    runs = np.empty((seeds, points))
    for i in range(seeds):
        curve = quality_curve(rng.random(len(strong)), strong, weak)
        runs[i] = np.interp(shares, curve.shares, curve.performance)
    return shares, runs.mean(axis=0), runs.std(axis=0)
