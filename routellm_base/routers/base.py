"""The router interface: a batch of routing texts in, strong-model win rates out."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..calibration import Calibration
from ..embedders.base import Embedder
from ..errors import RoutingInputError


class Router(ABC):
    """Estimates P(strong model's answer beats the weak model's | prompt).

    Subclasses implement :meth:`_win_rate` for a non-empty list of strings; the public
    :meth:`strong_win_rate` validates input and guarantees a float64 array in [0, 1].
    """

    family: str
    """Router family: ``mf``, ``sw_ranking``, ``random``, ..."""

    def __init__(
        self,
        name: str,
        *,
        embedder: Embedder | None = None,
        calibration: Calibration | None = None,
        strong_model: str | None = None,
        weak_model: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        self.name = name
        self.embedder = embedder
        self.calibration = calibration
        self.strong_model = strong_model
        """The strong model the router was trained to compare (a reference, not a requirement)."""
        self.weak_model = weak_model
        self.metadata = dict(metadata or {})

    def strong_win_rate(self, texts: Sequence[str]) -> np.ndarray:
        """Win rate of the strong model for each text: float64 array in [0, 1]."""
        texts = checked_texts(texts, "strong_win_rate()")
        if not texts:
            return np.empty(0, dtype=np.float64)
        rates = np.asarray(self._win_rate(texts), dtype=np.float64)
        if rates.shape != (len(texts),):
            raise RuntimeError(
                f"router {self.name} returned shape {rates.shape} for {len(texts)} texts"
            )
        return np.clip(np.nan_to_num(rates, nan=0.5), 0.0, 1.0)

    @abstractmethod
    def _win_rate(self, texts: list[str]) -> np.ndarray: ...

    def __repr__(self) -> str:
        embedder = f", embedder={self.embedder.name!r}" if self.embedder else ""
        return f"{type(self).__name__}(name={self.name!r}{embedder})"


def checked_texts(texts: Sequence[str], method: str) -> list[str]:
    """``texts`` as a list of strings; :class:`RoutingInputError` names a bare string given for
    the list, or the first text that is not a string."""
    if isinstance(texts, str):
        raise RoutingInputError(f"{method} takes a list of texts, not a single string")
    texts = list(texts)
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise RoutingInputError(f"routing text #{i} is {type(text).__name__}, not str")
    return texts


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))
