"""A pool: the candidate models a call may go to, each with its prices."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from ..costs import ModelPrice, PriceLike, as_price
from ..errors import PoolError, RoutingInputError

DEFAULT_OUTPUT_TOKENS = 256
"""Expected answer length (tokens) when a pool is given none: the figure RouterBench-style cost
estimates use for chat answers (LLMRouter's cost-aware baselines also assume 256). Give
``output_tokens`` per model where you know your traffic's answer lengths (the routing log's
``output_tokens`` column holds them)."""


@dataclass(frozen=True)
class PoolModel:
    """One candidate: its ``name`` (what decisions, ``routellm_force`` and cost reports call
    it), its ``price`` (USD per million input and output tokens) and its expected answer length
    ``output_tokens`` (tokens)."""

    name: str
    price: ModelPrice
    output_tokens: float = DEFAULT_OUTPUT_TOKENS

    def expected_cost(self, prompt_tokens: np.ndarray | float) -> np.ndarray | float:
        """USD per call for prompts of ``prompt_tokens`` input tokens."""
        return (
            np.asarray(prompt_tokens, dtype=np.float64) * self.price.input_per_million
            + self.output_tokens * self.price.output_per_million
        ) / 1e6


class Pool:
    """An ordered set of :class:`PoolModel` with distinct names.

    ``Pool({"gpt-4o": (2.5, 10.0), "gpt-4o-mini": (0.15, 0.6)})`` takes prices as
    :func:`~routellm_base.costs.as_price` does (a :class:`ModelPrice`, an ``(input, output)``
    pair or a mapping with ``input``/``output``), USD per million tokens. ``output_tokens`` is
    one expected answer length for all (tokens) or a mapping by name (missing names get
    :data:`DEFAULT_OUTPUT_TOKENS`).

    Raises :class:`PoolError` for no models, a duplicate or empty name, a missing or bad price,
    or an ``output_tokens`` entry for a model not in the pool.
    """

    def __init__(
        self,
        prices: Mapping[str, PriceLike | None] | Sequence[PoolModel],
        *,
        output_tokens: float | Mapping[str, float] = DEFAULT_OUTPUT_TOKENS,
    ) -> None:
        if isinstance(prices, Mapping):
            models = [self._model(name, price, output_tokens) for name, price in prices.items()]
        else:
            models = list(prices)
            if isinstance(output_tokens, Mapping) or output_tokens != DEFAULT_OUTPUT_TOKENS:
                raise PoolError("give output_tokens on each PoolModel, not beside a list of them")
        if not models:
            raise PoolError("a pool needs at least one model")
        seen: set[str] = set()
        for model in models:
            if model.name in seen:
                raise PoolError(f"pool {self._describe(models)} names {model.name!r} twice")
            seen.add(model.name)
        if isinstance(output_tokens, Mapping):
            unknown = sorted(set(output_tokens) - seen)
            if unknown:
                raise PoolError(
                    f"output_tokens names {unknown}, which are not in the pool "
                    f"{self._describe(models)}"
                )
        self.models: tuple[PoolModel, ...] = tuple(models)
        self.names: tuple[str, ...] = tuple(m.name for m in models)
        self._index = {name: i for i, name in enumerate(self.names)}
        self._input = np.array([m.price.input_per_million for m in models]) / 1e6
        self._output = (
            np.array([m.price.output_per_million * m.output_tokens for m in models]) / 1e6
        )

    @staticmethod
    def _model(
        name: str, price: PriceLike | None, output_tokens: float | Mapping[str, float]
    ) -> PoolModel:
        if not isinstance(name, str) or not name:
            raise PoolError(f"a pool model's name must be a non-empty string, got {name!r}")
        if price is None:
            raise PoolError(
                f"model {name!r} has no price: give USD per million input and output tokens, "
                f"e.g. prices={{{name!r}: (0.15, 0.60)}}"
            )
        try:
            checked = as_price(price)
        except (RoutingInputError, TypeError, ValueError) as exc:
            raise PoolError(f"model {name!r}: {exc}") from exc
        tokens = (
            output_tokens.get(name, DEFAULT_OUTPUT_TOKENS)
            if isinstance(output_tokens, Mapping)
            else output_tokens
        )
        if not isinstance(tokens, int | float) or isinstance(tokens, bool) or tokens < 0:
            raise PoolError(f"output_tokens of {name!r} must be a number >= 0, got {tokens!r}")
        return PoolModel(name, checked, float(tokens))

    @staticmethod
    def _describe(models: Iterable[PoolModel] | Iterable[str]) -> str:
        names = [m if isinstance(m, str) else m.name for m in models]
        return "[" + ", ".join(names) + "]"

    def __len__(self) -> int:
        return len(self.models)

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self.models)

    def __contains__(self, name: object) -> bool:
        return name in self._index

    def __repr__(self) -> str:
        return f"Pool({self._describe(self.names)})"

    def index(self, name: str, what: str = "model") -> int:
        """The position of ``name``; :class:`PoolError` names the pool for an unknown one."""
        try:
            return self._index[name]
        except (KeyError, TypeError):
            raise PoolError(
                f"{what} {name!r} is not in the pool {self._describe(self.names)}"
            ) from None

    def mask(self, allowed: Iterable[str] | None, what: str = "allowed model") -> np.ndarray:
        """Boolean array over the pool: True for the names in ``allowed`` (all for ``None``);
        :class:`PoolError` for an unknown name or an empty ``allowed``."""
        if allowed is None:
            return np.ones(len(self), dtype=bool)
        if isinstance(allowed, str):
            allowed = [allowed]
        out = np.zeros(len(self), dtype=bool)
        for name in allowed:
            out[self.index(name, what)] = True
        if not out.any():
            raise PoolError(f"no {what}s given: name at least one of {self._describe(self.names)}")
        return out

    def expected_costs(self, prompt_tokens: Sequence[float] | np.ndarray) -> np.ndarray:
        """USD per call of each candidate for each prompt, shape ``(len(prompt_tokens),
        len(pool))``: input tokens at the input price plus the expected answer length at the
        output price."""
        tokens = np.asarray(prompt_tokens, dtype=np.float64).reshape(-1, 1)
        return tokens * self._input + self._output

    @property
    def most_expensive(self) -> str:
        """The candidate with the highest cost per call for a typical prompt (500 input
        tokens): what savings are counted against."""
        return self.names[int(np.argmax(self.expected_costs([500.0])[0]))]
