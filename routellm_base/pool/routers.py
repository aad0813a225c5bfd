"""Routers for a pool: a batch of routing texts in, each candidate's predicted quality out."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..embedders.base import Embedder
from ..errors import PoolError
from ..routers.base import Router, checked_texts
from .models import Pool


class PoolRouter(ABC):
    """Predicts q_m(x), the quality of candidate m's answer to prompt x, in [0, 1].

    ``models`` are the models the router was trained on (``None``: it routes any pool, as
    the zero-shot router does). Subclasses implement :meth:`_quality` for a non-empty list of
    texts and the pool's positions in ``models``; :meth:`quality` validates input and pool.
    A router that can say what its prediction rests on overrides :meth:`_predict` to return
    those facts per text too (:meth:`predict`; the engine puts them in a decision's
    ``pool.extra``).
    """

    family: str
    """``knn``, ``pool_mf``, ``zero_shot``, ..."""

    def __init__(
        self,
        name: str,
        *,
        models: Sequence[str] | None,
        embedder: Embedder | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        self.name = name
        self.models: tuple[str, ...] | None = None if models is None else tuple(models)
        self.embedder = embedder
        self.metadata = dict(metadata or {})

    def check_pool(self, pool: Pool) -> list[int] | None:
        """The position in :attr:`models` of each of the pool's models (``None`` for a router
        that routes any pool); :class:`PoolError` names models the router has never seen and
        the two ways on."""
        if self.models is None:
            return None
        unseen = [name for name in pool.names if name not in self.models]
        if unseen:
            raise PoolError(
                f"router {self.name!r} was trained on {list(self.models)} and has never seen "
                f"{unseen} of the pool {list(pool.names)}: add each unseen model with "
                "routellm_base.pool.add_model (a fit of its parameters alone on at least 100 of "
                "its scored prompts), or route this pool with the zero-shot router "
                "(router='zero_shot')"
            )
        return [self.models.index(name) for name in pool.names]

    def quality(self, texts: Sequence[str], pool: Pool) -> np.ndarray:
        """Predicted quality, float64 array of shape ``(len(texts), len(pool))`` in [0, 1]."""
        return self.predict(texts, pool)[0]

    def predict(
        self, texts: Sequence[str], pool: Pool
    ) -> tuple[np.ndarray, list[dict[str, Any]] | None]:
        """:meth:`quality`, and per text the facts the prediction rests on (JSON-able; ``None``
        when the router reports none), e.g. the zero-shot router's difficulty."""
        texts = checked_texts(texts, "quality()")
        columns = self.check_pool(pool)
        if not texts:
            return np.empty((0, len(pool))), None
        predicted, facts = self._predict(texts, pool, columns)
        out = np.asarray(predicted, dtype=np.float64)
        if out.shape != (len(texts), len(pool)):
            raise RuntimeError(
                f"pool router {self.name} returned shape {out.shape} for {len(texts)} texts and "
                f"{len(pool)} models"
            )
        return np.clip(np.nan_to_num(out, nan=0.5), 0.0, 1.0), facts

    def _predict(
        self, texts: list[str], pool: Pool, columns: list[int] | None
    ) -> tuple[np.ndarray, list[dict[str, Any]] | None]:
        return self._quality(texts, pool, columns), None

    @abstractmethod
    def _quality(self, texts: list[str], pool: Pool, columns: list[int] | None) -> np.ndarray: ...

    def __repr__(self) -> str:
        models = "any" if self.models is None else len(self.models)
        return f"{type(self).__name__}(name={self.name!r}, models={models})"


REFERENCE_PROMPT_TOKENS = 500.0
"""The prompt length (tokens) the zero-shot router prices models at to rank them."""

ZERO_SHOT_SPREAD = 0.5
"""The zero-shot router's predicted quality gap between a pool's cheapest and priciest model on
the hardest prompts (0 on the easiest): about the gap between the cheapest and the best single
model on RouterBench's and LLMRouter's tasks (docs/results.md)."""


class ZeroShotPoolRouter(PoolRouter):
    """A start for a pool nobody has data for: harder prompts go to pricier models.

    A two-model router's strong-model win rate serves as the prompt's difficulty; through the
    router's calibration (its win rates on real chat prompts) it becomes a rank d(x) in [0, 1]
    (the share of reference prompts that score lower). Each model gets a tier t_m in [0, 1]
    from its price: the log of its expected cost per call at 500 prompt tokens, scaled from the
    pool's cheapest (0) to its priciest (1). The predicted quality is
    ``q_m(x) = 1 - s * d(x) * (1 - t_m)`` with ``s`` = :data:`ZERO_SHOT_SPREAD`: every model is
    as good on the easiest prompts, and on harder ones the cheaper the model, the lower. This is
    a documented heuristic (price as a proxy for capability), not a learned prediction; train a
    pool router once the pool has scored data (``routellm train pool``).

    Each decision's ``pool.extra`` says what the choice rests on: ``difficulty``, d(x), and
    ``win_rate``, the two-model router's raw win rate it was ranked from.
    """

    family = "zero_shot"

    def __init__(self, difficulty: Router, *, name: str = "zero_shot") -> None:
        super().__init__(
            name, models=None, embedder=difficulty.embedder, metadata=dict(difficulty.metadata)
        )
        self.difficulty = difficulty
        if difficulty.calibration is not None:
            self._quantiles = np.asarray(difficulty.calibration.quantiles, dtype=np.float64)
        else:
            self._quantiles = None

    def rank(self, texts: list[str]) -> np.ndarray:
        """d(x): each text's difficulty as a rank in [0, 1] among the calibration's prompts
        (the raw win rate when the router has no calibration)."""
        return self._rank(self.difficulty.strong_win_rate(texts))

    def _rank(self, rates: np.ndarray) -> np.ndarray:
        if self._quantiles is None or len(self._quantiles) < 2:
            return np.asarray(rates, dtype=np.float64)
        levels = np.linspace(0.0, 1.0, len(self._quantiles))
        return np.interp(rates, self._quantiles, levels)

    @staticmethod
    def tiers(pool: Pool) -> np.ndarray:
        """t_m: 0 for the pool's cheapest model, 1 for its priciest, log-cost in between."""
        cost = pool.expected_costs([REFERENCE_PROMPT_TOKENS])[0]
        logs = np.log(np.maximum(cost, 1e-12))
        span = logs.max() - logs.min()
        return np.ones(len(pool)) if span <= 0 else (logs - logs.min()) / span

    def _quality(self, texts: list[str], pool: Pool, columns: list[int] | None) -> np.ndarray:
        return self._predict(texts, pool, columns)[0]

    def _predict(
        self, texts: list[str], pool: Pool, columns: list[int] | None
    ) -> tuple[np.ndarray, list[dict[str, Any]]]:
        rates = np.asarray(self.difficulty.strong_win_rate(texts), dtype=np.float64)
        d = self._rank(rates)
        quality = 1.0 - ZERO_SHOT_SPREAD * d.reshape(-1, 1) * (1.0 - self.tiers(pool))
        facts = [
            {"difficulty": float(di), "win_rate": float(ri)}
            for di, ri in zip(d.tolist(), rates.tolist())
        ]
        return quality, facts
