"""Turning a target share of strong calls into a win-rate threshold."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .errors import InvalidPolicyError

QUANTILE_LEVELS = 1001


def check_unit_interval(value: Any, what: str) -> float:
    """``value`` as a float in [0, 1], or :class:`InvalidPolicyError` naming ``what``."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
        raise InvalidPolicyError(f"{what} must be a number in [0, 1], got {value!r}")
    value = float(value)
    if math.isnan(value) or not 0.0 <= value <= 1.0:
        raise InvalidPolicyError(f"{what} must be in [0, 1], got {value!r}")
    return value


def end_threshold(strong_share: float) -> float | None:
    """The threshold of a share at either end, which needs no calibration: a share of 1.0 sends
    every call strong (threshold 0.0), and 0.0 none (a threshold just above 1.0, as win rates lie
    in [0, 1]). ``None`` for a share between the ends. Errors: :class:`InvalidPolicyError` for a
    share outside [0, 1]."""
    share = check_unit_interval(strong_share, "strong_share")
    if share == 0.0:
        return float(np.nextafter(1.0, np.inf))
    if share == 1.0:
        return 0.0
    return None


@dataclass(frozen=True)
class Calibration:
    """Quantiles of a router's win rates on a reference prompt set.

    ``quantiles[k]`` is the win rate at level ``k / (len(quantiles) - 1)``; the threshold that
    sends a share ``s`` of such prompts strong is the ``1 - s`` quantile.
    """

    quantiles: tuple[float, ...]
    reference: str
    n_prompts: int

    @classmethod
    def from_win_rates(cls, win_rates: Sequence[float] | np.ndarray, reference: str) -> Calibration:
        rates = np.asarray(win_rates, dtype=np.float64)
        if rates.ndim != 1 or rates.size == 0:
            raise InvalidPolicyError("calibration needs at least one win rate")
        if not np.all(np.isfinite(rates)):
            raise InvalidPolicyError("calibration win rates must be finite")
        levels = np.linspace(0.0, 1.0, QUANTILE_LEVELS)
        values = np.quantile(rates, levels)
        return cls(tuple(float(v) for v in values), reference, int(rates.size))

    def threshold_for_share(self, strong_share: float) -> float:
        """The win-rate threshold that sends ``strong_share`` of reference prompts strong;
        :class:`InvalidPolicyError` for a share between 0 and 1 when every reference prompt has
        the same win rate (a constant router: no threshold can split them)."""
        # The ends mean every call and none, not only the reference prompts' range.
        end = end_threshold(strong_share)
        if end is not None:
            return end
        if self.quantiles[0] == self.quantiles[-1]:  # a constant router: no threshold splits it
            raise InvalidPolicyError(
                f"the router gives every one of the {self.n_prompts} prompts of {self.reference!r} "
                f"the same win rate, {self.quantiles[0]:.6g}, so no threshold sends "
                f"{float(strong_share):.1%} of calls strong: give threshold= instead, or retrain "
                "the router on battles whose outcomes vary from prompt to prompt"
            )
        levels = np.linspace(0.0, 1.0, len(self.quantiles))
        return float(np.interp(1.0 - float(strong_share), levels, self.quantiles))

    def to_dict(self) -> dict[str, Any]:
        return {
            "reference": self.reference,
            "n_prompts": self.n_prompts,
            "quantiles": list(self.quantiles),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Calibration:
        return cls(
            tuple(float(q) for q in data["quantiles"]),
            str(data["reference"]),
            int(data["n_prompts"]),
        )
