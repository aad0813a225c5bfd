"""Pairwise battles, and golden-label augmentation from scored prompts (RouteLLM, section 4.1)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import combinations

import numpy as np

from ..data.scored import ScoredPrompt

WINNERS = ("model_a", "model_b", "tie", "tie (bothbad)")


@dataclass(frozen=True)
class Battles:
    """Battles over a table of distinct prompts.

    ``prompt_index[i]`` points into ``prompts``; ``outcome[i]`` is 1 when model_a won, 0 when
    model_b won and 0.5 for a tie (ties are kept as half a win each, not dropped).
    """

    prompts: list[str]
    prompt_index: np.ndarray
    model_a: np.ndarray
    model_b: np.ndarray
    outcome: np.ndarray
    models: list[str]
    counts: dict[str, int]
    source_names: frozenset[str] = frozenset()
    """The models' names as the data spell them, before any model map (``--model-map`` is
    checked against them)."""

    def __len__(self) -> int:
        return len(self.outcome)

    def subset(self, mask: np.ndarray) -> Battles:
        return Battles(
            self.prompts,
            self.prompt_index[mask],
            self.model_a[mask],
            self.model_b[mask],
            self.outcome[mask],
            self.models,
            dict(Counter(_outcome_name(o) for o in self.outcome[mask])),
            self.source_names,
        )


def pair_outcomes(battles: Battles, strong: str, weak: str) -> tuple[np.ndarray, np.ndarray]:
    """(battle indices, strong model's outcome) for the battles between ``strong`` and ``weak``.

    The outcome is read from the strong model's side whichever side it sat on: 1 win, 0.5 tie,
    0 loss. Battles of other pairs are left out.
    """
    if strong == weak:
        raise ValueError("strong and weak model are the same")
    for model in (strong, weak):
        if model not in battles.models:
            raise ValueError(f"model {model!r} is in no battle; models: {battles.models}")
    s, w = battles.models.index(strong), battles.models.index(weak)
    strong_first = (battles.model_a == s) & (battles.model_b == w)
    weak_first = (battles.model_a == w) & (battles.model_b == s)
    idx = np.flatnonzero(strong_first | weak_first)
    return idx, np.where(strong_first[idx], battles.outcome[idx], 1.0 - battles.outcome[idx])


def _outcome_name(value: float) -> str:
    return "model_a" if value == 1.0 else "model_b" if value == 0.0 else "tie"


def battles_from_scores(
    rows: Iterable[ScoredPrompt],
    models: Sequence[str] | None = None,
    pairs: Sequence[tuple[str, str]] | None = None,
    margin: float = 0.0,
) -> Battles:
    """Golden-label augmentation: for each prompt and pair of scored models, the higher score wins.

    Scores within ``margin`` of each other are a tie. ``pairs`` restricts which pairs battle
    (default: every pair of models scored on the prompt).
    """
    rows = list(rows)
    model_list = list(models) if models is not None else sorted({m for r in rows for m in r.scores})
    index = {m: i for i, m in enumerate(model_list)}
    prompts: list[str] = []
    prompt_ids: dict[str, int] = {}
    p_idx: list[int] = []
    a_idx: list[int] = []
    b_idx: list[int] = []
    outcomes: list[float] = []
    for row in rows:
        scored = [m for m in model_list if m in row.scores]
        candidate_pairs = pairs if pairs is not None else list(combinations(scored, 2))
        for a, b in candidate_pairs:
            if a not in row.scores or b not in row.scores:
                continue
            pid = prompt_ids.setdefault(row.prompt, len(prompts))
            if pid == len(prompts):
                prompts.append(row.prompt)
            diff = row.scores[a] - row.scores[b]
            p_idx.append(pid)
            a_idx.append(index[a])
            b_idx.append(index[b])
            outcomes.append(1.0 if diff > margin else 0.0 if diff < -margin else 0.5)
    outcome = np.asarray(outcomes, dtype=np.float32)
    return Battles(
        prompts,
        np.asarray(p_idx, dtype=np.int64),
        np.asarray(a_idx, dtype=np.int64),
        np.asarray(b_idx, dtype=np.int64),
        outcome,
        model_list,
        dict(Counter(_outcome_name(o) for o in outcome)),
        frozenset(model_list),
    )
