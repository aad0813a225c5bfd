"""Routers for the live-operation tests (share window, router swaps) of both integrations."""

from __future__ import annotations

import threading

import numpy as np

from routellm_base import Calibration, Router

UNIFORM = Calibration(tuple(np.linspace(0.0, 1.0, 1001).tolist()), "uniform", 0)


class ConstantRouter(Router):
    """One win rate for every text, a checkpoint id and a calibration of its own, so each
    decision shows which router made it. With ``gate``, a call waits inside the router until
    the gate is set (a call held in flight)."""

    family = "constant"

    def __init__(
        self,
        name: str,
        win_rate: float,
        checkpoint_id: str,
        calibration: Calibration = UNIFORM,
        gate: threading.Event | None = None,
    ) -> None:
        super().__init__(name, calibration=calibration, metadata={"checkpoint_id": checkpoint_id})
        self.win_rate = win_rate
        self.gate = gate
        self.entered = threading.Event()

    def _win_rate(self, texts: list[str]) -> np.ndarray:
        self.entered.set()
        if self.gate is not None:
            self.gate.wait()
        return np.full(len(texts), self.win_rate)


class ShiftedRouter(Router):
    """Win rates uniform on [0.5, 1.0] (seeded) while its calibration is uniform on [0, 1]: the
    traffic scores higher than the calibration set, so a static ``strong_share`` of 0.3 sends
    about 60% of calls strong."""

    family = "shifted"

    def __init__(self, seed: int = 0) -> None:
        super().__init__("shifted", calibration=UNIFORM)
        self._rng = np.random.default_rng(seed)
        self._lock = threading.Lock()

    def _win_rate(self, texts: list[str]) -> np.ndarray:
        with self._lock:
            return 0.5 + 0.5 * self._rng.random(len(texts))


def consistent(decision: dict, routers: list[ConstantRouter], threshold_of: dict) -> bool:
    """Whether a decision's router, checkpoint, win rate, threshold and side all belong to one
    of ``routers`` (``threshold_of``: router name -> its threshold)."""
    for router in routers:
        if decision["router"] == router.name:
            side = "strong" if router.win_rate >= threshold_of[router.name] else "weak"
            return (
                decision["checkpoint_id"] == router.metadata["checkpoint_id"]
                and decision["win_rate"] == router.win_rate
                and decision["threshold"] == threshold_of[router.name]
                and decision["side"] == side
            )
    return False
