"""The random baseline: win rates drawn uniformly, so any strong share is met on average."""

from __future__ import annotations

import copy
import threading
from typing import Any

import numpy as np

from ..calibration import Calibration
from .base import Router


class RandomRouter(Router):
    """Uniform random win rates; ``seed`` makes the sequence reproducible."""

    family = "random"

    def __init__(self, seed: int | None = None, name: str = "random") -> None:
        uniform = Calibration(
            tuple(np.linspace(0.0, 1.0, 1001).tolist()), "uniform distribution", 0
        )
        super().__init__(name, calibration=uniform)
        self.seed = seed
        self._rng = np.random.default_rng(seed)
        self._lock = threading.Lock()

    def for_pair(self, strong_model: str, weak_model: str) -> RandomRouter:
        """Random routing ignores which models are compared."""
        return self

    def _win_rate(self, texts: list[str]) -> np.ndarray:
        with self._lock:  # numpy Generators are not thread-safe
            return self._rng.random(len(texts))

    # A lock can be neither copied nor pickled: copies and unpickled routers get a fresh one and
    # a snapshot of the generator, so they go on with the same seeded sequence as the original.

    def __getstate__(self) -> dict[str, Any]:
        state = {k: v for k, v in self.__dict__.items() if k != "_lock"}
        with self._lock:
            state["_rng"] = copy.deepcopy(self._rng)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def __deepcopy__(self, memo: dict[int, Any]) -> RandomRouter:
        clone = type(self).__new__(type(self))
        memo[id(self)] = clone
        clone.__setstate__(copy.deepcopy(self.__getstate__(), memo))
        return clone
