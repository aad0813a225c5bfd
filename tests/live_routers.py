"""Routers for the live-operation tests (share window, router swaps) and the pool tests of both
integrations."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from routellm_base import Calibration, Router
from routellm_base.pool import Pool, PoolRouter

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


class FixedPoolRouter(PoolRouter):
    """A pool router with fixed predicted qualities per model name; records the texts it scored.

    ``models=None`` routes any pool (unknown names get 0.5); ``trained_on`` makes it a router
    trained on those models only, so a pool with another model is refused."""

    family = "fixed_pool"

    def __init__(self, quality: dict[str, float], trained_on: Sequence[str] | None = None) -> None:
        super().__init__("fixed_pool", models=trained_on)
        self.fixed = dict(quality)
        self.texts: list[str] = []

    def _quality(self, texts: list[str], pool: Pool, columns: list[int] | None) -> np.ndarray:
        self.texts.extend(texts)
        row = [self.fixed.get(name, 0.5) for name in pool.names]
        return np.array([row] * len(texts), dtype=np.float64)


def uncalibrated_checkpoint(folder: Path) -> Path:
    """A small MF checkpoint with no stored calibration, as ``routellm train`` writes without
    ``--calibration-prompts``: a ``strong_share`` cannot be turned into a threshold for it."""
    from routellm_base import save_checkpoint
    from routellm_base.embedders import load_embedder

    rng = np.random.default_rng(0)
    tensors = {
        "model_embeddings": rng.normal(size=(2, 8)).astype(np.float32),
        "proj_weight": rng.normal(size=(8, 256)).astype(np.float32),
        "proj_bias": rng.normal(size=8).astype(np.float32),
        "classifier_weight": rng.normal(size=8).astype(np.float32),
    }
    return save_checkpoint(
        folder,
        router_family="mf",
        tensors=tensors,
        models=["big", "small"],
        strong_model="big",
        weak_model="small",
        embedder=load_embedder("minilm-l6-static-256"),
        calibration=None,
        model_card="# uncalibrated test checkpoint\n",
    )
