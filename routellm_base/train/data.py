"""Training data: pairwise battles JSONL (Chatbot Arena's form) and converters into battles.

Battles JSONL, one object a line::

    {"prompt": "...", "model_a": "gpt-4o", "model_b": "gpt-4o-mini", "winner": "model_a"}

``winner`` is ``model_a``, ``model_b``, ``tie`` or ``tie (bothbad)``; ties are kept as half a
win to each side (the paper's treatment in its Bradley-Terry fits) and counted, never dropped.
Model names pass through an explicit mapping (``{"gpt4_1106_preview": "gpt-4-1106-preview"}``);
unmapped names are used as they are.
"""

from __future__ import annotations

import csv
import json
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import replace
from pathlib import Path

import numpy as np

from ..data.scored import ScoredPrompt, iter_jsonl_objects, load_scored_jsonl
from .battles import WINNERS, Battles, battles_from_scores

OUTCOME = {"model_a": 1.0, "model_b": 0.0, "tie": 0.5, "tie (bothbad)": 0.5}


def parse_model_map(pairs: Iterable[str]) -> dict[str, str]:
    """``["source=target", ...]`` into a mapping; a malformed item raises ``ValueError``."""
    mapping: dict[str, str] = {}
    for item in pairs:
        source, sep, target = item.partition("=")
        if not sep or not source or not target:
            raise ValueError(f"model mapping {item!r} is not of the form SOURCE=TARGET")
        mapping[source] = target
    return mapping


def load_battles_jsonl(path: str | Path, model_map: Mapping[str, str] | None = None) -> Battles:
    """Battles from a JSONL file; a malformed line raises ``ValueError`` naming file and line."""
    return battles_from_objects(iter_jsonl_objects(path), str(path), model_map)


def battles_from_objects(
    objects: Iterable[tuple[str, dict]], source: str, model_map: Mapping[str, str] | None = None
) -> Battles:
    """Battles from ``(where, battle dict)`` pairs (the JSONL form; ``where`` names the item in
    errors, ``source`` the whole set). A malformed item raises ``ValueError`` naming it; no item
    at all raises too."""
    model_map = model_map or {}
    prompts: list[str] = []
    prompt_ids: dict[str, int] = {}
    models: list[str] = []
    model_ids: dict[str, int] = {}
    p_idx: list[int] = []
    a_idx: list[int] = []
    b_idx: list[int] = []
    outcomes: list[float] = []
    kinds: Counter[str] = Counter()
    source_names: set[str] = set()

    def model_id(name: str) -> int:
        source_names.add(name)
        name = model_map.get(name, name)
        if name not in model_ids:
            model_ids[name] = len(models)
            models.append(name)
        return model_ids[name]

    for where, obj in objects:
        for key in ("prompt", "model_a", "model_b", "winner"):
            if not isinstance(obj.get(key), str):
                hint = (
                    " (this looks like a scored-prompt line: give the file as --data scores:PATH, "
                    "or read it with battles_from_scored_file)"
                    if isinstance(obj.get("scores"), dict)
                    else ""
                )
                raise ValueError(f"{where}: field {key!r} missing or not a string{hint}")
        if obj["winner"] not in OUTCOME:
            raise ValueError(f"{where}: winner {obj['winner']!r} is not one of {list(WINNERS)}")
        a, b = model_id(obj["model_a"]), model_id(obj["model_b"])
        if a == b:
            raise ValueError(f"{where}: a model battles itself ({obj['model_a']!r})")
        prompt = obj["prompt"]
        if prompt not in prompt_ids:
            prompt_ids[prompt] = len(prompts)
            prompts.append(prompt)
        p_idx.append(prompt_ids[prompt])
        a_idx.append(a)
        b_idx.append(b)
        outcomes.append(OUTCOME[obj["winner"]])
        kinds[obj["winner"]] += 1
    if not outcomes:
        raise ValueError(f"{source} holds no battles")
    return Battles(
        prompts,
        np.asarray(p_idx, dtype=np.int64),
        np.asarray(a_idx, dtype=np.int64),
        np.asarray(b_idx, dtype=np.int64),
        np.asarray(outcomes, dtype=np.float32),
        models,
        dict(kinds),
        frozenset(source_names),
    )


def battles_from_scored_file(
    path: str | Path, model_map: Mapping[str, str] | None = None, margin: float = 0.0
) -> Battles:
    """Golden-label augmentation from a scored-prompt JSONL file (correctness or grades)."""
    model_map = model_map or {}
    raw = load_scored_jsonl(path)
    rows = [
        ScoredPrompt(
            r.id, r.prompt, {model_map.get(m, m): s for m, s in r.scores.items()}, r.source
        )
        for r in raw
    ]
    battles = battles_from_scores(rows, margin=margin)
    return replace(battles, source_names=frozenset(m for r in raw for m in r.scores))


def battles_from_alpaca_eval(
    judgments_csv: str | Path,
    prompts_jsonl: str | Path,
    model_map: Mapping[str, str] | None = None,
    tie_band: float = 0.0,
) -> Battles:
    """Judge preferences (AlpacaEval's ``prompt_id, model_1, model_2, preference`` in [1, 2]).

    Preference above 1.5 means model_2's answer was preferred; within ``tie_band`` of 1.5 is a tie.
    """
    with open(prompts_jsonl, encoding="utf-8") as handle:
        prompts = {
            str(json.loads(line)["prompt_id"]): json.loads(line)["prompt"]
            for line in handle
            if line.strip()
        }
    model_map = model_map or {}
    records = []
    with open(judgments_csv, encoding="utf-8", newline="") as handle:
        for i, row in enumerate(csv.DictReader(handle), 2):
            if row["prompt_id"] not in prompts:
                raise ValueError(
                    f"{judgments_csv}:{i}: prompt_id {row['prompt_id']} not in {prompts_jsonl}"
                )
            preference = float(row["preference"]) - 1.5
            winner = (
                "tie"
                if abs(preference) <= tie_band
                else ("model_b" if preference > 0 else "model_a")
            )
            records.append((prompts[row["prompt_id"]], row["model_1"], row["model_2"], winner))
    return _battles_from_records(records, model_map)


def _battles_from_records(
    records: list[tuple[str, str, str, str]], model_map: Mapping[str, str]
) -> Battles:
    objects = (
        (f"judgment {i}", {"prompt": prompt, "model_a": a, "model_b": b, "winner": winner})
        for i, (prompt, a, b, winner) in enumerate(records, 1)
    )
    return battles_from_objects(objects, "the judgments", model_map)


def merge_battles(parts: list[Battles]) -> Battles:
    """One battle set from several, with a shared model list and prompt table."""
    if len(parts) == 1:
        return parts[0]
    models: list[str] = []
    for part in parts:
        models += [m for m in part.models if m not in models]
    prompts: list[str] = []
    prompt_ids: dict[str, int] = {}
    p_idx: list[np.ndarray] = []
    a_idx: list[np.ndarray] = []
    b_idx: list[np.ndarray] = []
    outcomes: list[np.ndarray] = []
    counts: Counter[str] = Counter()
    source_names: frozenset[str] = frozenset()
    for part in parts:
        source_names |= part.source_names
        remap_model = np.array([models.index(m) for m in part.models], dtype=np.int64)
        remap_prompt = []
        for prompt in part.prompts:
            if prompt not in prompt_ids:
                prompt_ids[prompt] = len(prompts)
                prompts.append(prompt)
            remap_prompt.append(prompt_ids[prompt])
        p_idx.append(np.asarray(remap_prompt, dtype=np.int64)[part.prompt_index])
        a_idx.append(remap_model[part.model_a])
        b_idx.append(remap_model[part.model_b])
        outcomes.append(part.outcome)
        counts.update(part.counts)
    return Battles(
        prompts,
        np.concatenate(p_idx),
        np.concatenate(a_idx),
        np.concatenate(b_idx),
        np.concatenate(outcomes),
        models,
        dict(counts),
        source_names,
    )
