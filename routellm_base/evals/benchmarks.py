"""Benchmarks by name (RouteLLM's MT Bench, MMLU, GSM8K; RMB's held-out chat split) or as a generic scored JSONL file."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..data import (
    DATA_DIR_ENV,
    GPT4,
    MID_TIER,
    MIXTRAL,
    TOP_TIER,
    ScoredPrompt,
    data_dir_from_env,
    load_gsm8k,
    load_mmlu,
    load_mt_bench,
    load_rmb,
    load_scored_jsonl,
)
from ..data.scored import iter_jsonl_objects

NAMED_BENCHMARKS = {
    "mt-bench": load_mt_bench,
    "mmlu": load_mmlu,
    "gsm8k": load_gsm8k,
    "rmb": load_rmb,
}
NAMED_PAIRS = {name: (GPT4, MIXTRAL) for name in ("mt-bench", "mmlu", "gsm8k")} | {
    "rmb": (TOP_TIER, MID_TIER)
}
"""Each named benchmark's default (strong, weak) pair."""
NAMED_FILES = {
    name: "routellm/ (RouteLLM's evals; a RouteLLM checkout works too)"
    for name in ("mt-bench", "mmlu", "gsm8k")
} | {"rmb": "rmb/pairs.jsonl"}
"""What each named benchmark reads under the data folder."""
GAP_STANDARD_ERRORS = 2.0
"""PGR and APGR are read as meaningful only when the strong model's mean score is above the weak
model's by at least this many standard errors of the gap (paired: the standard error of the mean
of strong minus weak over the scored items); below that, :meth:`Benchmark.gap_note` says so."""
NAMED_NOTES = {
    name: "RouteLLM contamination filter applied" for name in ("mt-bench", "mmlu", "gsm8k")
} | {
    "rmb": "RMB held-out fold 0 of 5 by prompt: share of top-tier vs mid-tier battles won (research-only data)"
}


@dataclass(frozen=True)
class Benchmark:
    """Prompts scored for one strong and one weak model, ready to route."""

    name: str
    rows: list[ScoredPrompt]
    strong_model: str
    weak_model: str
    skipped: int = 0
    """Rows left out because they lack a score for the strong or the weak model."""
    notes: list[str] = field(default_factory=list)
    path: Path | None = None
    """The scored JSONL file read, or ``None`` for a named benchmark."""

    @property
    def strong(self) -> np.ndarray:
        return np.array([r.scores[self.strong_model] for r in self.rows])

    @property
    def weak(self) -> np.ndarray:
        return np.array([r.scores[self.weak_model] for r in self.rows])

    @property
    def prompts(self) -> list[str]:
        return [r.prompt for r in self.rows]

    def gap_note(self) -> str | None:
        """A note when the strong model does not score clearly above the weak one, else ``None``.

        PGR divides by the gap strong - weak, so with a gap that is negative, or smaller than
        :data:`GAP_STANDARD_ERRORS` standard errors of the paired per-item differences (noise
        on these items), PGR, APGR and CPT are not meaningful. Equal means are refused later
        (:attr:`QualityCurve.pgr` raises)."""
        strong, weak = self.strong.astype(np.float64), self.weak.astype(np.float64)
        gap, n = float(strong.mean() - weak.mean()), len(strong)
        scores = (
            f"{self.strong_model} {strong.mean():.4f} vs {self.weak_model} {weak.mean():.4f} "
            f"over {n} items"
        )
        if gap < 0:
            return (
                f"the strong model scores below the weak one ({scores}): PGR and APGR are not "
                "meaningful (swap --strong and --weak?)"
            )
        se = float(np.std(strong - weak, ddof=1) / np.sqrt(n)) if n > 1 else float("inf")
        if gap > 0 and gap < GAP_STANDARD_ERRORS * se:
            return (
                f"the strong model does not score clearly above the weak one ({scores}: gap "
                f"{gap:.4f}, under {GAP_STANDARD_ERRORS:g} standard errors, {se:.4f} each): the "
                "gap is within sampling noise, so PGR and APGR are not meaningful"
            )
        return None

    def with_gap_note(self) -> Benchmark:
        """This benchmark with :meth:`gap_note` among its notes, when there is one."""
        note = self.gap_note()
        return self if note is None else self.noted(note)

    def noted(self, note: str) -> Benchmark:
        """This benchmark, every item kept, with ``note`` among its notes."""
        return self.restricted([True] * len(self.rows), note)

    def restricted(self, keep: list[bool], note: str) -> Benchmark:
        rows = [r for r, k in zip(self.rows, keep) if k]
        notes = self.notes if note in self.notes else [*self.notes, note]
        return Benchmark(
            self.name, rows, self.strong_model, self.weak_model, self.skipped, notes, self.path
        )


def _refuse_duplicate_ids(path: Path) -> None:
    """Raise ``ValueError`` naming the ids that more than one line of ``path`` has, with their
    line numbers: an item is one id, so a repeated one is a pasted twice or mislabelled line."""
    lines: dict[str, list[str]] = {}
    for where, obj in iter_jsonl_objects(path):
        lines.setdefault(str(obj["id"]), []).append(where.rpartition(":")[2])
    repeated = [(i, ns) for i, ns in lines.items() if len(ns) > 1]
    if repeated:
        shown = "; ".join(f"id {i!r} on lines {', '.join(ns)}" for i, ns in repeated[:5])
        more = f" (and {len(repeated) - 5} more ids)" if len(repeated) > 5 else ""
        raise ValueError(
            f"benchmark file {path}: {shown}{more}: each item needs its own 'id' (remove the "
            "repeated lines, or give each its own id)"
        )


def _refuse_blank_prompts(path: Path) -> None:
    """Raise ``ValueError`` naming the first line of ``path`` whose prompt is empty or only
    whitespace: routing refuses such a prompt (no text to route on), so no router's win rate for
    it means anything."""
    for where, obj in iter_jsonl_objects(path):
        if not obj["prompt"].strip():
            raise ValueError(
                f"{where}: field 'prompt' is {'empty' if not obj['prompt'] else 'only whitespace'}"
                ": there is no text to route on (routing refuses such a prompt), so the item "
                "cannot be scored; remove the line or give it its prompt"
            )


def load_benchmark(
    name_or_path: str,
    data_dir: str | Path | None = None,
    strong_model: str | None = None,
    weak_model: str | None = None,
) -> Benchmark:
    """``mt-bench``, ``mmlu``, ``gsm8k`` or ``rmb`` from ``data_dir``, or a generic JSONL file.

    ``data_dir`` defaults to ``$ROUTELLM_DATA_DIR``; a named benchmark without either raises
    ``ValueError`` naming both and the files it needs, and one whose files are not in the folder
    from ``$ROUTELLM_DATA_DIR`` raises ``FileNotFoundError`` naming the variable. RouteLLM's three default to the paper's pair (gpt-4-1106-preview vs Mixtral-8x7B) and apply
    the paper's contamination filter. ``rmb`` is the held-out fold of RMB's open-chat pairs
    (:func:`routellm_base.data.load_rmb`), scored as ``top-tier`` vs ``mid-tier``. A JSONL file
    needs ``strong_model`` and ``weak_model``; a malformed line, a blank prompt or an id on two
    lines raises ``ValueError`` naming the line.
    """
    if name_or_path in NAMED_BENCHMARKS:
        from_env = data_dir is None and data_dir_from_env() is not None
        data_dir = data_dir if data_dir is not None else data_dir_from_env()
        if data_dir is None:
            raise ValueError(
                f"benchmark {name_or_path!r} needs the data folder holding "
                f"{NAMED_FILES[name_or_path]}: pass --data-dir (data_dir= in Python) or set "
                f"{DATA_DIR_ENV} (../shared/data in this repository's set-up; README: Data)"
            )
        try:
            rows = NAMED_BENCHMARKS[name_or_path](data_dir)
        except FileNotFoundError as exc:
            if not from_env:
                raise
            # The folder was not given here: say where it came from.
            raise FileNotFoundError(
                f"{exc}; the data folder {data_dir} came from {DATA_DIR_ENV} (set it to the "
                "folder holding the data, or pass --data-dir)"
            ) from exc
        name = name_or_path
        notes = [NAMED_NOTES[name]]
        strong_model, weak_model = (
            strong_model or NAMED_PAIRS[name][0],
            weak_model or NAMED_PAIRS[name][1],
        )
    else:
        path = Path(name_or_path)
        if not path.is_file():
            looks_like_a_file = path.suffix == ".jsonl" or len(path.parts) > 1
            raise FileNotFoundError(
                f"benchmark {name_or_path!r}: no such file (a benchmark is a JSONL file or one "
                f"of {sorted(NAMED_BENCHMARKS)})"
                if looks_like_a_file
                else f"benchmark {name_or_path!r} is neither one of {sorted(NAMED_BENCHMARKS)} "
                "nor a JSONL file"
            )
        if not strong_model or not weak_model:
            raise ValueError(
                f"benchmark file {path} needs --strong and --weak model names (keys of 'scores')"
            )
        rows = load_scored_jsonl(path)
        _refuse_blank_prompts(path)
        _refuse_duplicate_ids(path)
        name, notes = path.name, []
    usable = [r for r in rows if strong_model in r.scores and weak_model in r.scores]
    if not usable:
        seen = sorted({m for r in rows for m in r.scores})
        raise ValueError(
            f"no row of {name} scores both {strong_model!r} and {weak_model!r}; models present: {seen}"
        )
    return Benchmark(
        name,
        usable,
        strong_model,
        weak_model,
        len(rows) - len(usable),
        notes,
        None if name_or_path in NAMED_BENCHMARKS else Path(name_or_path),
    )
