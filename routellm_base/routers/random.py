"""The random baseline: win rates drawn uniformly, so any strong share is met on average."""

from __future__ import annotations

import threading

import numpy as np

from ..calibration import Calibration
from .base import Router


class RandomRouter(Router):
    """Uniform random win rates; ``seed`` makes the sequence reproducible."""

    family = "random"

    def __init__(self, seed: int | None = None, name: str = "random") -> None:
        uniform = Calibration(tuple(np.linspace(0.0, 1.0, 1001).tolist()), "uniform distribution", 0)
        super().__init__(name, calibration=uniform)
        self.seed = seed
        self._rng = np.random.default_rng(seed)
        self._lock = threading.Lock()

    def _win_rate(self, texts: list[str]) -> np.ndarray:
        with self._lock:  # numpy Generators are not thread-safe
            return self._rng.random(len(texts))
