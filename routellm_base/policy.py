"""The routing policy: a fixed threshold, or a target share of strong calls."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from .calibration import Calibration, check_unit_interval, end_threshold
from .decision import SIDES, Side
from .errors import InvalidPolicyError
from .share_window import check_window

if TYPE_CHECKING:
    from .routers.base import Router

DEFAULT_STRONG_SHARE = 0.5
DEFAULT_NO_KNOWN_TOKENS_SIDE: Side = "strong"
"""Where a call goes when the embedder knows no token of its routing text (a script or emoji
outside its vocabulary): the router has nothing to score, and text the router cannot read is
text a weak model is likeliest to handle badly."""


@dataclass(frozen=True)
class RoutingPolicy:
    """Route strong when ``win_rate >= threshold``.

    Give either ``threshold`` directly or ``strong_share``, the share of calls that should go to
    the strong model; the share becomes a threshold through the router's stored calibration
    (quantiles of its win rates on a reference prompt set). With neither, ``strong_share`` is 0.5.
    ``strong_share=0.0`` sends no call strong and ``1.0`` every call, whatever the win rates
    and the no-known-tokens rule, and neither needs a calibration.

    ``no_known_tokens_side`` is the side of a call whose routing text has no token the
    router's embedder knows (default ``"strong"``, see :data:`DEFAULT_NO_KNOWN_TOKENS_SIDE`);
    ``None`` scores such text anyway, which gives every such call the same win rate.

    ``share_window`` (opt-in, a number of calls) holds ``strong_share`` on the traffic itself:
    the threshold becomes the ``1 - strong_share`` quantile of the win rates of the last
    ``share_window`` scored calls (:class:`~routellm_base.share_window.ShareWindow`), and the
    calibration's threshold serves until ``share_window_warmup`` calls (default
    ``min(share_window, 100)``) have been scored. It needs a share, not a fixed ``threshold``.
    """

    threshold: float | None = None
    strong_share: float | None = None
    no_known_tokens_side: Side | None = DEFAULT_NO_KNOWN_TOKENS_SIDE
    share_window: int | None = None
    share_window_warmup: int | None = None

    def __post_init__(self) -> None:
        if self.threshold is not None and self.strong_share is not None:
            raise InvalidPolicyError("give either threshold or strong_share, not both")
        if self.share_window is not None:
            if self.threshold is not None:
                raise InvalidPolicyError(
                    "share_window holds a strong_share on live traffic; it does not apply to a "
                    "fixed threshold: give strong_share instead of threshold"
                )
            check_window(self.share_window, self.share_window_warmup)
        elif self.share_window_warmup is not None:
            raise InvalidPolicyError("share_window_warmup needs a share_window")
        if self.threshold is not None:
            object.__setattr__(self, "threshold", check_unit_interval(self.threshold, "threshold"))
        if self.strong_share is not None:
            object.__setattr__(
                self, "strong_share", check_unit_interval(self.strong_share, "strong_share")
            )
        if self.no_known_tokens_side is not None and self.no_known_tokens_side not in SIDES:
            raise InvalidPolicyError(
                "no_known_tokens_side must be 'strong', 'weak' or None, "
                f"got {self.no_known_tokens_side!r}"
            )

    @property
    def end_side(self) -> Side | None:
        """``"weak"`` for a strong share of 0 and ``"strong"`` for 1 (every call goes there,
        calls the no-known-tokens rule routes included); ``None`` otherwise, and for a fixed
        threshold."""
        if self.threshold is not None or self.target_share not in (0.0, 1.0):
            return None
        return "strong" if self.target_share == 1.0 else "weak"

    @property
    def target_share(self) -> float:
        """The share of calls meant to go strong (``strong_share``, else the default)."""
        return DEFAULT_STRONG_SHARE if self.strong_share is None else self.strong_share

    @property
    def needs_calibration(self) -> bool:
        """Whether this policy becomes a threshold only through a router's calibration (a
        ``strong_share`` strictly between 0 and 1 and no fixed ``threshold``)."""
        return self.threshold is None and end_threshold(self.target_share) is None

    def threshold_for(self, router: Router) -> float:
        """The threshold this policy means for ``router`` (with a ``share_window``: the
        calibration's threshold, which the window starts from)."""
        if self.threshold is not None:
            return self.threshold
        share = self.target_share
        end = end_threshold(share)  # none or every call strong: no calibration needed
        if end is not None:
            return end
        if router.calibration is None:
            raise missing_calibration_error(
                router.name, router.strong_model, router.weak_model, self.share_window
            )
        return router.calibration.threshold_for_share(share)


def missing_calibration_error(
    name: str, strong_model: str | None, weak_model: str | None, share_window: int | None
) -> InvalidPolicyError:
    """The error for a ``strong_share`` asked of a router with no stored calibration, with the
    two ways out (a threshold, or a retrain that stores a calibration)."""
    window = " (a share_window starts from it too)" if share_window is not None else ""
    return InvalidPolicyError(
        f"router {name!r} has no stored calibration for {strong_model!r} vs "
        f"{weak_model!r} (trained without --calibration-prompts, or loaded for "
        "another pair than the one it was calibrated on), so a strong_share between 0 and "
        f"1 cannot be turned into a threshold{window}. Give a threshold: "
        "routellm_base.calibrate_threshold(router, prompts, strong_share) finds one on your "
        "prompts for this router and pair (`routellm calibrate --router DIR --prompts FILE "
        "--strong-share S` for a checkpoint's own pair); or retrain with "
        "--calibration-prompts FILE to store a calibration"
    )


RANDOM_NEEDS_NO_CALIBRATION = (
    "the random router draws its win rates uniformly at random, anew on every call: they say "
    "nothing about the prompts, so a threshold fitted on one draw does not hold on the next "
    "(the share it sends strong changes from run to run). It needs no calibration: strong_share "
    "S sends each call strong with probability S (its stored calibration is the uniform "
    "distribution, threshold 1 - S)"
)


def calibrate_threshold(router: Router, prompts: Sequence[str], strong_share: float) -> float:
    """The threshold that sends ``strong_share`` (in [0, 1]) of *your* prompts to the strong
    model, from ``router``'s win rates on ``prompts``.

    Raises :class:`InvalidPolicyError` for a share outside [0, 1], no prompt, or the random
    router (family ``random``), whose win rates are fresh uniform draws: give it
    ``strong_share`` directly instead."""
    share = check_unit_interval(strong_share, "strong_share")
    if router.family == "random":
        raise InvalidPolicyError(f"cannot calibrate {router.name!r}: {RANDOM_NEEDS_NO_CALIBRATION}")
    if len(prompts) == 0:
        raise InvalidPolicyError("calibrate_threshold needs at least one prompt")
    calibration = Calibration.from_win_rates(router.strong_win_rate(list(prompts)), "user prompts")
    return calibration.threshold_for_share(share)


def decide_sides(win_rates: np.ndarray, threshold: float) -> np.ndarray:
    """Boolean array: True where the call goes strong."""
    return np.asarray(win_rates) >= threshold
