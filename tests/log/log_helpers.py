"""Helpers of the routing-log tests: a decision to record and a reader of the stored rows."""

from __future__ import annotations

from routellm_base import RoutingDecision


def decision(side: str = "strong", win_rate: float | None = 0.7) -> RoutingDecision:
    return RoutingDecision(
        side=side,  # type: ignore[arg-type]
        model=f"{side}-model",
        win_rate=win_rate,
        threshold=0.5,
        router="random",
        seconds=0.001,
        routing_text_source="user",
        routing_text_tokens=3,
    )
