"""Helpers of the pool log tests: a pool of three priced models with fixed predictions, a judge
that prefers the priciest model's answer, and one call routed, answered and finished."""

from __future__ import annotations

from typing import Any

import numpy as np

from routellm_base.judging import PairwiseJudge
from routellm_base.log import RoutingLog
from routellm_base.pool import Pool, PoolEngine, PoolRouter
from routellm_base.routed_call import Answer, CallSinks, Candidate, RoutedCall
from routellm_base.shadow import ShadowAnswer, ShadowRunner

# Real model names, longer than the six characters of a strong/weak side.
BIG, MID, SMALL = "openai/gpt-4o-2024-08-06", "meta-llama/Llama-3.1-70B-Instruct", "mistral-small"
PRICES = {BIG: (2.5, 10.0), MID: (0.9, 0.9), SMALL: (0.2, 0.6)}
QUALITY = {BIG: 0.9, MID: 0.8, SMALL: 0.5}


class FixedPoolRouter(PoolRouter):
    """Predicts the same quality for every prompt (``QUALITY``): the choice is then the policy's
    alone, and every figure can be checked by hand."""

    family = "fixed"

    def __init__(self) -> None:
        super().__init__("fixed", models=list(QUALITY))

    def _quality(self, texts: list[str], pool: Pool, columns: list[int] | None) -> np.ndarray:
        return np.array([[QUALITY[name] for name in pool.names]] * len(texts))


def pool_engine() -> PoolEngine:
    return PoolEngine(FixedPoolRouter(), Pool(PRICES))


def pool_judge() -> PairwiseJudge:
    """Prefers the answer that starts with "good" (the priciest model's), else a tie."""

    def chat(messages: list[dict[str, str]]) -> str:
        user = messages[1]["content"]
        a = user.split("[The Start of Assistant A's Answer]\n")[1]
        b = user.split("[The Start of Assistant B's Answer]\n")[1]
        good_a, good_b = a.startswith("good"), b.startswith("good")
        return "[[A]]" if good_a and not good_b else "[[B]]" if good_b and not good_a else "[[C]]"

    return PairwiseJudge(chat, "scripted-judge")


def answer_text(name: str, prompt: str) -> str:
    return f"{'good' if name == BIG else 'plain'} answer of {name} to {prompt}"


def pool_call(
    engine: PoolEngine,
    log: RoutingLog,
    prompt: str,
    *,
    runner: ShadowRunner | None = None,
    failing: tuple[str, ...] = (),
    shadow_error: Exception | None = None,
    **options: Any,
) -> RoutedCall[str]:
    """One routed call through RoutedCall, answered and finished; ``failing`` models raise, and
    so does its shadow call when ``shadow_error`` is given."""
    call: RoutedCall[str] = RoutedCall(
        engine,
        [Candidate(name, name, name) for name in engine.pool.names],
        prompt,
        fallback=True,
        sinks=CallSinks(log=log, shadow=runner),
        **options,
    )
    call.decide()

    def attempt(candidate: Candidate[str]) -> str:
        if candidate.key in failing:
            raise ConnectionError(f"{candidate.key} is down")
        return answer_text(candidate.key, prompt)

    def shadow(candidate: Candidate[str]) -> ShadowAnswer:
        if shadow_error is not None:
            raise shadow_error
        return ShadowAnswer(answer_text(candidate.key, prompt), input_tokens=100, output_tokens=40)

    text = call.run(attempt)
    call.finish(Answer(text, input_tokens=100, output_tokens=50), shadow=shadow)
    return call
