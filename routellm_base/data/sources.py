"""Loaders for the public data sets in RouteLLM's and LLMRouter's published file layouts.

``data_dir`` is the folder holding ``routellm/``, ``llmrouter/`` ... (``../shared/data`` in this
repository's development set-up); the RouteLLM loaders also accept a RouteLLM checkout.
"""

from __future__ import annotations

import csv
import hashlib
import json
import sys
from collections import defaultdict
from pathlib import Path

from .scored import ScoredPrompt

GPT4 = "gpt-4-1106-preview"
MIXTRAL = "mistralai/Mixtral-8x7B-Instruct-v0.1"

csv.field_size_limit(sys.maxsize)


def _evals_dir(data_dir: str | Path) -> Path:
    root = Path(data_dir)
    for candidate in (
        root / "routellm" / "routellm" / "evals",
        root / "routellm" / "evals",
        root / "evals",
    ):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(
        f"no RouteLLM evals folder under {root}: expected routellm/routellm/evals (see README: Data)"
    )


def _contaminated(path: Path) -> set[str]:
    if not path.is_file():
        return set()
    with open(path, encoding="utf-8") as handle:
        return {json.loads(line)["eval_prompt"] for line in handle if line.strip()}


def _flag(value: str, where: str) -> float:
    if value == "True":
        return 1.0
    if value == "False":
        return 0.0
    raise ValueError(f"{where}: expected True/False, got {value!r}")


def _correctness_rows(
    path: Path, contaminated: set[str], id_prefix: str, source: str, extra: dict | None = None
) -> list[ScoredPrompt]:
    """Rows of a RouteLLM correctness CSV (prompt, one True/False column per model)."""
    rows: list[ScoredPrompt] = []
    with open(path, encoding="utf-8", newline="") as handle:
        for i, rec in enumerate(csv.DictReader(handle)):
            if rec["prompt"] in contaminated:
                continue
            where = f"{path}:{i}"
            scores = {GPT4: _flag(rec[GPT4], where), MIXTRAL: _flag(rec[MIXTRAL], where)}
            rows.append(
                ScoredPrompt(f"{id_prefix}/{i}", rec["prompt"], scores, source, dict(extra or {}))
            )
    return rows


def load_mmlu(data_dir: str | Path, drop_contaminated: bool = True) -> list[ScoredPrompt]:
    """MMLU (57 subjects), GPT-4 and Mixtral correctness; the paper's contamination filter applied."""
    evals = _evals_dir(data_dir) / "mmlu"
    contaminated = (
        _contaminated(evals / "contaminated_prompts.jsonl") if drop_contaminated else set()
    )
    rows: list[ScoredPrompt] = []
    for path in sorted((evals / "responses").glob("mmlu_*.csv")):
        subject = path.stem.removeprefix("mmlu_")
        rows += _correctness_rows(
            path, contaminated, f"mmlu/{subject}", "mmlu", {"subject": subject}
        )
    if not rows:
        raise FileNotFoundError(f"no MMLU response files in {evals / 'responses'}")
    return rows


def load_gsm8k(data_dir: str | Path, drop_contaminated: bool = True) -> list[ScoredPrompt]:
    """GSM8K, GPT-4 and Mixtral correctness; the paper's contamination filter applied."""
    evals = _evals_dir(data_dir) / "gsm8k"
    contaminated = (
        _contaminated(evals / "contaminated_prompts.jsonl") if drop_contaminated else set()
    )
    return _correctness_rows(evals / "gsm8k_responses.csv", contaminated, "gsm8k", "gsm8k")


def load_mt_bench(data_dir: str | Path, drop_contaminated: bool = True) -> list[ScoredPrompt]:
    """MT Bench: routed on turn 1; a model's score is its mean GPT-4 grade over both turns.

    Questions lacking a grade for either turn of either model are left out (none in the
    published files).
    """
    evals = _evals_dir(data_dir) / "mt_bench"
    contaminated = (
        _contaminated(evals / "contaminated_prompts.jsonl") if drop_contaminated else set()
    )
    grades: dict[int, dict[str, dict[int, float]]] = defaultdict(lambda: defaultdict(dict))
    with open(evals / "judgements.jsonl", encoding="utf-8") as handle:
        for line in handle:
            rec = json.loads(line)
            grades[int(rec["question_id"])][rec["model"]][int(rec["turn"])] = float(rec["score"])
    rows: list[ScoredPrompt] = []
    with open(evals / "question.jsonl", encoding="utf-8") as handle:
        for line in handle:
            q = json.loads(line)
            first_turn = q["turns"][0]
            if first_turn in contaminated:
                continue
            per_model = grades.get(int(q["question_id"]), {})
            scores = {
                model: sum(turns.values()) / len(turns)
                for model, turns in per_model.items()
                if set(turns) == {1, 2}
            }
            if GPT4 not in scores or MIXTRAL not in scores:
                continue
            rows.append(
                ScoredPrompt(
                    f"mt-bench/{q['question_id']}",
                    first_turn,
                    scores,
                    "mt-bench",
                    {"category": q.get("category"), "turns": q["turns"]},
                )
            )
    return rows


def load_llmrouter(data_dir: str | Path, split: str = "train") -> list[ScoredPrompt]:
    """LLMRouter (ulab-uiuc, MIT): per-question scores of 9 open models."""
    path = Path(data_dir) / "llmrouter" / f"{split}.json"
    with open(path, encoding="utf-8") as handle:
        records = json.load(handle)
    return [
        ScoredPrompt(
            f"llmrouter/{split}/{i}",
            rec["question"],
            {m: float(s) for m, s in rec["scores"].items()},
            "llmrouter",
            {"cluster_id": rec.get("cluster_id")},
        )
        for i, rec in enumerate(records)
    ]


def prompt_bucket(prompt: str) -> int:
    """A deterministic bucket 0..99 from the sha1 of the prompt text.

    Splitting by prompt text keeps repeated prompts on one side of a split.
    """
    return int(hashlib.sha1(prompt.encode("utf-8")).hexdigest(), 16) % 100


def holdout_split(prompt: str, holdout_percent: int = 20) -> bool:
    """True when ``prompt`` falls in the held-out part: buckets below ``holdout_percent``."""
    return prompt_bucket(prompt) < holdout_percent


def crossfit_fold(prompt: str, folds: int = 5) -> int:
    """The cross-fitting fold of ``prompt``; fold 0 is exactly ``holdout_split(prompt, 100 // folds)``."""
    return prompt_bucket(prompt) * folds // 100
