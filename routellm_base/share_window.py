"""Holding the strong share on live traffic: the threshold as an online quantile.

A ``strong_share`` becomes a threshold through the checkpoint's calibration, i.e. the win rates
of a reference prompt set. Traffic that scores higher or lower than that set then goes strong
more or less often than asked. :class:`ShareWindow` keeps the win rates of the last ``size``
scored calls sorted, and the threshold that sends ``strong_share`` of *them* strong: the
``1 - strong_share`` quantile of the window, as :class:`~routellm_base.calibration.Calibration`
computes it for the reference set (linear interpolation between order statistics).
"""

from __future__ import annotations

import math
import threading
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from .calibration import check_unit_interval
from .errors import InvalidPolicyError

DEFAULT_SHARE_WINDOW_WARMUP = 100
"""Scored calls a window needs before its quantile replaces the calibration's threshold (or the
whole window, when that is smaller). With 100 calls the quantile's own error is about
``sqrt(s * (1 - s) / 100)`` in share, 0.046 at ``s = 0.3``."""


def check_window(size: Any, warmup: Any = None) -> tuple[int, int]:
    """``(size, warmup)`` validated: whole numbers of calls, ``1 <= warmup <= size``.

    ``warmup=None`` means ``min(size, DEFAULT_SHARE_WINDOW_WARMUP)``. Raises
    :class:`InvalidPolicyError` naming the bad value.
    """
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise InvalidPolicyError(f"share_window must be a whole number of calls >= 1, got {size!r}")
    if warmup is None:
        return size, min(size, DEFAULT_SHARE_WINDOW_WARMUP)
    if isinstance(warmup, bool) or not isinstance(warmup, int) or not 1 <= warmup <= size:
        raise InvalidPolicyError(
            f"share_window_warmup must be a whole number of calls in [1, share_window={size}], "
            f"got {warmup!r}"
        )
    return size, warmup


@dataclass(frozen=True)
class WindowThreshold:
    """The threshold a call was routed with under a share window, and where it came from."""

    threshold: float
    source: Literal["window", "calibration"]
    """``"window"``: the window's quantile; ``"calibration"``: the checkpoint's calibration
    threshold, while the window held fewer than ``warmup`` win rates."""
    size: int
    """The window's capacity (calls)."""
    fill: int
    """Win rates in the window when the threshold was taken (before this call's own)."""
    target_share: float

    def to_dict(self) -> dict[str, Any]:
        """The record stored in a decision's ``extra["share_window"]``."""
        return {
            "threshold_from": self.source,
            "size": self.size,
            "fill": self.fill,
            "target_share": self.target_share,
        }


class ShareWindow:
    """The win rates of the last ``size`` scored calls, sorted; thread-safe.

    :meth:`take` gives the threshold for the next calls and then adds their win rates, in one
    step under a lock, so concurrent callers each route with the window as it stood and every
    win rate enters it exactly once. Cost per call: ``O(log size)`` (a sorted list).
    """

    def __init__(self, size: int, strong_share: float, warmup: int | None = None) -> None:
        from sortedcontainers import SortedList  # only a model that holds its share needs it

        self.size, self.warmup = check_window(size, warmup)
        self.strong_share = check_unit_interval(strong_share, "strong_share")
        self._sorted: SortedList = SortedList()
        self._order: deque[float] = deque()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._order)

    def peek(self, calibrated: float) -> WindowThreshold:
        """The threshold in force now (nothing added). ``calibrated``: the calibration's
        threshold for ``strong_share``, used during warm-up."""
        with self._lock:
            return self._threshold(calibrated)

    def take(self, win_rates: Sequence[float], calibrated: float) -> WindowThreshold:
        """The threshold in force now, then add ``win_rates`` (the calls it routes), oldest
        leaving first once the window is full. Win rates must be finite, in [0, 1]."""
        with self._lock:
            taken = self._threshold(calibrated)
            for rate in win_rates:
                rate = float(rate)
                if len(self._order) == self.size:
                    self._sorted.remove(self._order.popleft())
                self._order.append(rate)
                self._sorted.add(rate)
            return taken

    def _threshold(self, calibrated: float) -> WindowThreshold:
        # Under self._lock.
        fill, share = len(self._order), self.strong_share
        if fill < self.warmup or share in (0.0, 1.0):
            # The ends mean every call and none whatever the traffic; the calibration says so.
            return WindowThreshold(calibrated, "calibration", self.size, fill, share)
        position = (1.0 - share) * (fill - 1)
        low = math.floor(position)
        value = self._sorted[low]
        if low + 1 < fill:
            value += (position - low) * (self._sorted[low + 1] - value)
        return WindowThreshold(float(value), "window", self.size, fill, share)
