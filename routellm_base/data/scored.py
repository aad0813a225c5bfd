"""The generic scored-prompt record: one prompt, each model's score on it."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class ScoredPrompt:
    """``scores`` maps a model name to its score (correctness 0/1 or a judge grade)."""

    id: str
    prompt: str
    scores: dict[str, float]
    source: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def iter_jsonl_objects(path: str | Path) -> Iterator[tuple[str, dict[str, Any]]]:
    """``(where, object)`` for each non-blank line; ``where`` is ``PATH:LINE`` for error messages.

    A line that is not a JSON object raises ``ValueError`` naming the file and line.
    """
    with open(path, encoding="utf-8") as handle:
        for line_no, line in enumerate(handle, 1):
            if not line.strip():
                continue
            where = f"{path}:{line_no}"
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{where}: not valid JSON ({exc.msg})") from exc
            if not isinstance(obj, dict):
                raise ValueError(f"{where}: expected a JSON object")
            yield where, obj


def read_prompt_file(path: str | Path, later_turns: bool = False) -> list[tuple[str, str]]:
    """``(id, prompt)`` pairs from a JSONL file (objects with ``prompt``, optional ``id``) or a
    text file (one prompt a line). ``later_turns`` adds the ``turns[1:]`` of multi-turn objects,
    for decontaminating against every turn of a benchmark.
    """
    path = Path(path)
    if path.suffix != ".jsonl":
        lines = path.read_text(encoding="utf-8").splitlines()
        return [(str(i), line) for i, line in enumerate(lines, 1) if line.strip()]
    pairs: list[tuple[str, str]] = []
    for where, obj in iter_jsonl_objects(path):
        if not isinstance(obj.get("prompt"), str):
            raise ValueError(f"{where}: no string field 'prompt'")
        key = str(obj.get("id", where.rsplit(":", 1)[1]))
        pairs.append((key, obj["prompt"]))
        if later_turns:
            pairs += [
                (f"{key}/turn{k}", t)
                for k, t in enumerate(obj.get("turns", [])[1:], 2)
                if isinstance(t, str)
            ]
    return pairs


def read_prompts(spec: str) -> tuple[list[str], str]:
    """Prompts and a name for them, from ``log:PATH`` (a routing log's scored calls, stored with
    ``store_prompts=True``; see :func:`routellm_base.log.training_data.logged_prompts`) or from
    a prompt file as :func:`read_prompt_file` reads it. Used for calibration prompts."""
    kind, sep, target = spec.partition(":")
    if sep and kind == "log":
        from ..log.training_data import logged_prompts  # the log extra, only when asked for

        prompts = logged_prompts(target)
        return prompts, f"routing log {Path(target).name} ({len(prompts)} prompts)"
    path = Path(spec)
    if path.is_file():
        with open(path, "rb") as handle:
            if handle.read(16) == b"SQLite format 3\x00":
                raise ValueError(
                    f"{spec} is a SQLite database, not a prompt file: a routing log? prefix it "
                    f"with log: (log:{spec})"
                )
    prompts = [text for _, text in read_prompt_file(spec)]
    if path.suffix != ".jsonl":  # read_prompt_file reads it as text, one prompt a line
        return prompts, f"{path.name} (text, one prompt a line: {len(prompts)} prompts)"
    return prompts, f"{path.name} ({len(prompts)} prompts)"


def read_some_prompts(spec: str, option: str, needed: str) -> tuple[list[str], str]:
    """:func:`read_prompts`, refusing a file that holds no prompt with a ``ValueError`` that
    names ``option`` and ``spec`` and ends with ``needed`` (what the prompts are for); a log
    without one is refused by :func:`read_prompts` already."""
    prompts, source = read_prompts(spec)
    if not prompts:
        raise ValueError(
            f"{option} {spec} holds no prompt (an empty file, or only blank lines): {needed}"
        )
    return prompts, source


def load_scored_jsonl(path: str | Path, source: str | None = None) -> list[ScoredPrompt]:
    """Read the generic format: one JSON object a line, ``{"id", "prompt", "scores": {model: number}}``.

    A malformed line raises ``ValueError`` naming the file and line number.
    """
    path = Path(path)
    rows: list[ScoredPrompt] = []
    for where, obj in iter_jsonl_objects(path):
        for key, kind in (("id", (str, int)), ("prompt", str), ("scores", dict)):
            if not isinstance(obj.get(key), kind):
                raise ValueError(f"{where}: field {key!r} missing or of the wrong type")
        scores: dict[str, float] = {}
        for model, value in obj["scores"].items():
            if (
                isinstance(value, bool)
                or not isinstance(value, (int, float))
                or not math.isfinite(value)
            ):
                raise ValueError(f"{where}: score of {model!r} is {value!r}, not a finite number")
            scores[str(model)] = float(value)
        rows.append(ScoredPrompt(str(obj["id"]), obj["prompt"], scores, source or path.stem))
    return rows


def write_scored_jsonl(rows: Iterable[ScoredPrompt], path: str | Path) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(
                json.dumps({"id": row.id, "prompt": row.prompt, "scores": row.scores}) + "\n"
            )
