"""Pool training and evaluation data: many models' scores and battles over one prompt table.

One :class:`PoolData` holds, over ``n`` distinct prompts and ``m`` models:

* ``scores`` (n, m): pointwise quality in [0, 1], NaN where a model has no score for a prompt;
* ``costs`` (n, m) or ``None``: the real cost of each call in USD (RouterBench's
  ``<model>|total_cost``), or an estimate from prices (LLMRouter: characters / 4 input tokens
  and 256 output tokens at ``llmrouter/prices.json``), NaN where unknown;
* ``groups`` (n,) or ``None``: a task or cluster label per prompt;
* battles: ``battle_prompt``, ``battle_a``, ``battle_b`` (indices) and ``battle_outcome``, the
  probability that model a's answer beat model b's (1 win, 0 loss, 0.5 tie; soft values where
  the source grades preferences);
* ``licences``: each source's licence, for a checkpoint's model card.

Sources (the files of ``../shared/data``, see its README): RouterBench 0-shot slices
(research-only), LLMRouter (MIT), RMB pairs (research-only), Arena-Hard battles (Apache-2.0),
AlpacaEval judgments (CC BY-NC 4.0) and a routing log's judged comparisons (the log owner's).
Model names are mapped only through an explicit ``model_map``; a name the map lists that the
source lacks raises :class:`PoolError` (a typo would otherwise silently map nothing).
"""

from __future__ import annotations

import ast
import csv
import hashlib
import json
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from ..data.model_map import refuse_unused_model_map
from ..data.repeats import refuse_repeated_data
from ..errors import PoolError

csv.field_size_limit(sys.maxsize)

ROUTERBENCH_TASKS = ("arc_challenge", "mbpp", "winograde")
"""The RouterBench 0-shot slices in the data folder (file stems; ``winograde`` sic)."""
LICENCES = {
    "routerbench": "research-only (no licence file in the RouterBench or RouterDC repositories)",
    "llmrouter": "MIT (ulab-uiuc/LLMRouter)",
    "rmb": "research-only (no licence file in the RMB repository)",
    "arena_hard": "Apache-2.0 (arena-hard-auto; verdicts by gpt-4-1106-preview)",
    "alpaca": "CC BY-NC 4.0 (non-commercial; tatsu-lab/alpaca_eval)",
    "log": "the routing log owner's own data",
}
"""The licence of each source kind, as ``../shared/data/README.md`` records it."""
COMMERCIAL_SOURCES = ("llmrouter", "arena_hard", "log")
"""Sources a shipped (bundled) checkpoint may be trained on."""
LLMROUTER_OUTPUT_TOKENS = 256.0
"""LLMRouter gives no answer lengths: a call is priced at 256 output tokens (as LLMRouter's
cost-aware baselines assume)."""
CHARS_PER_TOKEN = 4.0


@dataclass
class PoolData:
    """Scores, costs and battles of ``models`` over ``prompts``; see the module docstring for
    shapes and units. ``sources`` records each file read (``path``, ``sha256``, ``kind``)."""

    prompts: list[str]
    models: list[str]
    scores: np.ndarray
    costs: np.ndarray | None = None
    groups: list[str] | None = None
    battle_prompt: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    battle_a: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    battle_b: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    battle_outcome: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.float64))
    licences: dict[str, str] = field(default_factory=dict)
    sources: list[dict[str, Any]] = field(default_factory=list)
    source_names: set[str] = field(default_factory=set)
    """The models' names as the source files spell them (before ``model_map``)."""

    def __post_init__(self) -> None:
        n, m = len(self.prompts), len(self.models)
        self.scores = np.asarray(self.scores, dtype=np.float64).reshape(n, m)
        if len(set(self.models)) != m:
            raise PoolError(f"pool data names a model twice: {self.models}")
        if self.costs is not None:
            self.costs = np.asarray(self.costs, dtype=np.float64).reshape(n, m)
        if self.groups is not None and len(self.groups) != n:
            raise PoolError(f"{len(self.groups)} group labels for {n} prompts")
        finite = self.scores[np.isfinite(self.scores)]
        if finite.size and (finite.min() < 0 or finite.max() > 1):
            raise PoolError("pool scores must lie in [0, 1]")

    @property
    def n_battles(self) -> int:
        return int(self.battle_outcome.size)

    def column(self, model: str) -> int:
        """The index of ``model``; :class:`PoolError` lists the known ones."""
        try:
            return self.models.index(model)
        except ValueError:
            raise PoolError(f"model {model!r} is not in the data's models {self.models}") from None

    def complete(self) -> np.ndarray:
        """Bool (n,): prompts where every model has a score (and a cost, when costs are known)."""
        ok = np.isfinite(self.scores).all(axis=1)
        if self.costs is not None:
            ok &= np.isfinite(self.costs).all(axis=1)
        return ok

    def subset(self, rows: np.ndarray | Sequence[int]) -> PoolData:
        """The prompts ``rows`` (bool mask or indices), with the battles on them."""
        idx = np.flatnonzero(rows) if np.asarray(rows).dtype == bool else np.asarray(rows, int)
        new_of = np.full(len(self.prompts), -1)
        new_of[idx] = np.arange(len(idx))
        keep = new_of[self.battle_prompt] >= 0
        return replace(
            self,
            prompts=[self.prompts[i] for i in idx],
            scores=self.scores[idx],
            costs=None if self.costs is None else self.costs[idx],
            groups=None if self.groups is None else [self.groups[i] for i in idx],
            battle_prompt=new_of[self.battle_prompt[keep]],
            battle_a=self.battle_a[keep],
            battle_b=self.battle_b[keep],
            battle_outcome=self.battle_outcome[keep],
        )

    def select_models(self, models: Sequence[str]) -> PoolData:
        """The same prompts with only ``models`` (in that order); battles between them kept."""
        cols = [self.column(m) for m in models]
        new_of = np.full(len(self.models), -1)
        new_of[cols] = np.arange(len(cols))
        keep = (new_of[self.battle_a] >= 0) & (new_of[self.battle_b] >= 0)
        return replace(
            self,
            models=list(models),
            scores=self.scores[:, cols],
            costs=None if self.costs is None else self.costs[:, cols],
            battle_prompt=self.battle_prompt[keep],
            battle_a=new_of[self.battle_a[keep]],
            battle_b=new_of[self.battle_b[keep]],
            battle_outcome=self.battle_outcome[keep],
        )

    def summary(self) -> dict[str, Any]:
        """Counts for a model card: prompts, models, scored cells, battles, licences."""
        return {
            "prompts": len(self.prompts),
            "models": list(self.models),
            "scored_cells": int(np.isfinite(self.scores).sum()),
            "battles": self.n_battles,
            "licences": dict(self.licences),
        }


def merge(parts: Sequence[PoolData]) -> PoolData:
    """One table from several: models are united (first seen first); a prompt of one part whose
    text an earlier part holds shares that row (a cell scored by both keeps the later score;
    costs and groups likewise), while repeats within one part stay separate rows (RouterBench
    asks some questions twice, after different few-shot examples, with different results)."""
    if not parts:
        raise PoolError("nothing to merge: no pool data given")
    prompts: list[str] = []
    row_of: dict[str, int] = {}
    models: list[str] = []
    part_rows: list[np.ndarray] = []
    for part in parts:
        rows_here: list[int] = []
        used: set[int] = set()
        for p in part.prompts:
            row = row_of.get(p)
            if row is None or row in used:
                row = len(prompts)
                prompts.append(p)
            rows_here.append(row)
            used.add(row)
        for p, row in zip(part.prompts, rows_here):
            row_of.setdefault(p, row)
        part_rows.append(np.array(rows_here, dtype=np.int64))
        models += [m for m in part.models if m not in models]
    n, m = len(prompts), len(models)
    scores = np.full((n, m), np.nan)
    has_costs = any(p.costs is not None for p in parts)
    costs = np.full((n, m), np.nan) if has_costs else None
    has_groups = any(p.groups is not None for p in parts)
    groups = [""] * n if has_groups else None
    bp, ba, bb, bo = [], [], [], []
    licences: dict[str, str] = {}
    sources: list[dict[str, Any]] = []
    source_names: set[str] = set()
    for part, rows in zip(parts, part_rows):
        cols = np.array([models.index(x) for x in part.models], dtype=np.int64)
        if rows.size and cols.size:
            block = scores[np.ix_(rows, cols)]
            scores[np.ix_(rows, cols)] = np.where(np.isfinite(part.scores), part.scores, block)
            if costs is not None and part.costs is not None:
                cblock = costs[np.ix_(rows, cols)]
                costs[np.ix_(rows, cols)] = np.where(np.isfinite(part.costs), part.costs, cblock)
        if groups is not None and part.groups is not None:
            for r, g in zip(rows, part.groups):
                groups[r] = g
        bp.append(rows[part.battle_prompt] if part.n_battles else np.zeros(0, np.int64))
        ba.append(cols[part.battle_a] if part.n_battles else np.zeros(0, np.int64))
        bb.append(cols[part.battle_b] if part.n_battles else np.zeros(0, np.int64))
        bo.append(part.battle_outcome)
        licences.update(part.licences)
        sources += part.sources
        source_names |= part.source_names
    return PoolData(
        prompts,
        models,
        scores,
        costs,
        groups,
        np.concatenate(bp).astype(np.int64),
        np.concatenate(ba).astype(np.int64),
        np.concatenate(bb).astype(np.int64),
        np.concatenate(bo).astype(np.float64),
        licences,
        sources,
        source_names,
    )


def parse_model_map(items: Iterable[str]) -> dict[str, str]:
    """``SOURCE=TARGET`` strings as a mapping; :class:`PoolError` for a malformed one."""
    out: dict[str, str] = {}
    for item in items:
        source, sep, target = item.partition("=")
        if not sep or not source or not target:
            raise PoolError(f"--model-map {item!r}: expected SOURCE=TARGET")
        out[source] = target
    return out


def _mapped(names: Sequence[str], model_map: Mapping[str, str] | None, where: str) -> list[str]:
    """``names`` renamed through ``model_map`` (names it lacks stay); :class:`PoolError` when
    two names become one. That the map names no model a source lacks is checked over all
    sources by :func:`load_pool_sources`."""
    model_map = model_map or {}
    out = [model_map.get(n, n) for n in names]
    if len(set(out)) != len(out):
        raise PoolError(f"{where}: the model map makes two models one: {out}")
    return out


def _file_entry(path: Path, kind: str) -> dict[str, str]:
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    return {"path": str(path), "sha256": digest, "kind": kind}


def routerbench_text(raw: str) -> str:
    """The routed text of a RouterBench prompt: the question actually asked.

    RouterBench stores each prompt as a Python-list string whose last element holds few-shot
    examples, then the question, separated by blank lines; the few-shot text is the same for
    every item of a task and would drown the question in a prompt embedding. MBPP prompts are a
    single paragraph and stay whole.
    """
    try:
        value = ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        value = raw
    text = value[-1] if isinstance(value, list) and value else str(value)
    return text.strip().split("\n\n")[-1].strip()


def load_routerbench(
    data_dir: str | Path,
    split: str,
    tasks: Sequence[str] = ROUTERBENCH_TASKS,
    model_map: Mapping[str, str] | None = None,
) -> PoolData:
    """RouterBench 0-shot slices ``<task>_<split>.csv``: 0/1 correctness of 11 models, the real
    cost of each call (USD), the task as group. Empty cells are NaN. Research-only.

    Raises ``FileNotFoundError`` for a missing slice.
    """
    folder = Path(data_dir) / "routerbench"
    prompts: list[str] = []
    groups: list[str] = []
    score_rows: list[list[float]] = []
    cost_rows: list[list[float]] = []
    models: list[str] | None = None
    sources = []
    for task in tasks:
        path = folder / f"{task}_{split}.csv"
        if not path.is_file():
            raise FileNotFoundError(f"no RouterBench slice {path} (see the data README)")
        sources.append(_file_entry(path, "routerbench"))
        with open(path, encoding="utf-8", newline="") as handle:
            reader = csv.DictReader(handle)
            fields = reader.fieldnames or []
            names = [
                f
                for f in fields
                if "|" not in f
                and f not in ("sample_id", "prompt", "eval_name", "oracle_model_to_route_to")
            ]
            if models is None:
                models = names
            elif sorted(names) != sorted(models):
                raise PoolError(f"{path}: models {names} differ from the other slices' {models}")
            for rec in reader:
                prompts.append(routerbench_text(rec["prompt"]))
                groups.append(task)
                score_rows.append([float(rec[m]) if rec[m] != "" else np.nan for m in models])
                cost_rows.append(
                    [
                        float(rec[f"{m}|total_cost"]) if rec.get(f"{m}|total_cost") else np.nan
                        for m in models
                    ]
                )
    assert models is not None
    data = PoolData(
        prompts,
        _mapped(models, model_map, "routerbench"),
        np.array(score_rows),
        np.array(cost_rows),
        groups,
        licences={"routerbench": LICENCES["routerbench"]},
        sources=sources,
        source_names=set(models),
    )
    return data


def llmrouter_prices(data_dir: str | Path) -> dict[str, tuple[float, float]]:
    """``llmrouter/prices.json``: USD per million (input, output) tokens by model."""
    raw = json.loads((Path(data_dir) / "llmrouter" / "prices.json").read_text())
    return {k: (float(v["input"]), float(v["output"])) for k, v in raw.items() if k[0] != "_"}


def load_llmrouter(
    data_dir: str | Path,
    split: str,
    model_map: Mapping[str, str] | None = None,
    output_tokens: float = LLMROUTER_OUTPUT_TOKENS,
) -> PoolData:
    """LLMRouter ``<split>.json``: scores of 9 open models; cost per call estimated as
    characters / 4 input tokens and ``output_tokens`` output tokens at ``prices.json`` (USD);
    ``cluster_id`` as group where given. MIT.

    Raises :class:`PoolError` for a model without a price.
    """
    path = Path(data_dir) / "llmrouter" / f"{split}.json"
    records = json.loads(path.read_text(encoding="utf-8"))
    prices = llmrouter_prices(data_dir)
    models = list(records[0]["scores"])
    missing = [m for m in models if m not in prices]
    if missing:
        raise PoolError(f"{path}: no price in prices.json for {missing}")
    prompts = [r["question"] for r in records]
    scores = np.array([[float(r["scores"].get(m, np.nan)) for m in models] for r in records])
    tokens = np.array([len(p) / CHARS_PER_TOKEN for p in prompts]).reshape(-1, 1)
    pin = np.array([prices[m][0] for m in models]) / 1e6
    pout = np.array([prices[m][1] for m in models]) / 1e6
    costs = tokens * pin + output_tokens * pout
    has_cluster = all("cluster_id" in r for r in records)
    data = PoolData(
        prompts,
        _mapped(models, model_map, "llmrouter"),
        scores,
        costs,
        [str(r["cluster_id"]) for r in records] if has_cluster else None,
        licences={"llmrouter": LICENCES["llmrouter"]},
        sources=[
            _file_entry(path, "llmrouter"),
            _file_entry(path.parent / "prices.json", "llmrouter"),
        ],
        source_names=set(models),
    )
    return data


def _battle_table(
    records: list[tuple[str, str, str, float, str | None]],
    kind: str,
    sources: list[dict[str, str]],
    model_map: Mapping[str, str] | None,
) -> PoolData:
    """Battles ``(prompt, model_a, model_b, P(a won), group)`` as a :class:`PoolData` without
    scores."""
    prompts: list[str] = []
    row_of: dict[str, int] = {}
    groups: list[str] = []
    raw_models: list[str] = []
    for prompt, a, b, _, group in records:
        if prompt not in row_of:
            row_of[prompt] = len(prompts)
            prompts.append(prompt)
            groups.append(group or "")
        for name in (a, b):
            if name not in raw_models:
                raw_models.append(name)
    models = _mapped(raw_models, model_map, kind)
    col = {name: i for i, name in enumerate(raw_models)}
    return PoolData(
        prompts,
        models,
        np.full((len(prompts), len(models)), np.nan),
        None,
        groups,
        np.array([row_of[r[0]] for r in records], dtype=np.int64),
        np.array([col[r[1]] for r in records], dtype=np.int64),
        np.array([col[r[2]] for r in records], dtype=np.int64),
        np.array([r[3] for r in records], dtype=np.float64),
        {kind: LICENCES[kind]},
        sources,
        set(raw_models),
    )


def load_rmb_battles(path: str | Path, model_map: Mapping[str, str] | None = None) -> PoolData:
    """RMB ``pairs.jsonl``: winner beat loser on the conversation's last user turn (no ties);
    the top-level category as group. Research-only."""
    path = Path(path)
    if path.is_dir():
        path = path / "rmb" / "pairs.jsonl" if (path / "rmb").is_dir() else path / "pairs.jsonl"
    records = []
    with open(path, encoding="utf-8") as handle:
        for i, line in enumerate(handle):
            if not line.strip():
                continue
            obj = json.loads(line)
            try:
                turns = obj["conversation"]
                prompt = next(t["content"] for t in reversed(turns) if t["role"] == "user")
                records.append(
                    (prompt, obj["winner"], obj["loser"], 1.0, obj["category"].split("/")[0])
                )
            except (KeyError, StopIteration, TypeError) as exc:
                raise PoolError(f"{path}:{i + 1}: not an RMB pair ({exc!r})") from None
    return _battle_table(records, "rmb", [_file_entry(path, "rmb")], model_map)


def arena_outcome(a_points: float, b_points: float) -> float:
    """An Arena-Hard prompt's verdict for model a: 1 ahead on points, 0 behind, 0.5 even."""
    return 1.0 if a_points > b_points else 0.0 if a_points < b_points else 0.5


def load_arena_hard_battles(
    data_dir: str | Path, model_map: Mapping[str, str] | None = None
) -> PoolData:
    """Arena-Hard ``battles.jsonl`` (gpt-4-0314 against 8 models; each prompt judged twice with
    the answers swapped, points summed as the data README says) on ``questions.jsonl`` prompts,
    one battle per prompt and pair, the topic cluster as group. Apache-2.0."""
    folder = Path(data_dir)
    folder = folder / "arena_hard" if (folder / "arena_hard").is_dir() else folder
    questions = {}
    with open(folder / "questions.jsonl", encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                q = json.loads(line)
                questions[q["id"]] = (q["prompt"], q.get("cluster"))
    records = []
    with open(folder / "battles.jsonl", encoding="utf-8") as handle:
        for i, line in enumerate(handle):
            if not line.strip():
                continue
            b = json.loads(line)
            if b["id"] not in questions:
                raise PoolError(f"{folder}/battles.jsonl:{i + 1}: unknown question id {b['id']}")
            prompt, cluster = questions[b["id"]]
            outcome = arena_outcome(float(b["a_points"]), float(b["b_points"]))
            records.append((prompt, b["model_a"], b["model_b"], outcome, cluster))
    sources = [
        _file_entry(folder / "battles.jsonl", "arena_hard"),
        _file_entry(folder / "questions.jsonl", "arena_hard"),
    ]
    return _battle_table(records, "arena_hard", sources, model_map)


def load_alpaca_battles(
    judgments: str | Path, prompts: str | Path, model_map: Mapping[str, str] | None = None
) -> PoolData:
    """AlpacaEval judgments: ``model_1`` (gpt4_1106_preview) against ``model_2``; the outcome
    for model_1 is ``2 - preference`` (the judge's probability that model_1's answer is better;
    preference in [1, 2]). CC BY-NC 4.0: never for a shipped checkpoint."""
    texts = {}
    with open(prompts, encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                o = json.loads(line)
                texts[str(o["prompt_id"])] = o["prompt"]
    records = []
    with open(judgments, encoding="utf-8", newline="") as handle:
        for i, r in enumerate(csv.DictReader(handle)):
            pid = str(r["prompt_id"])
            if pid not in texts:
                raise PoolError(f"{judgments}:{i + 2}: prompt_id {pid} not in {prompts}")
            pref = float(r["preference"])
            if not 1.0 <= pref <= 2.0:
                raise PoolError(f"{judgments}:{i + 2}: preference {pref} outside [1, 2]")
            records.append((texts[pid], r["model_1"], r["model_2"], 2.0 - pref, None))
    sources = [_file_entry(Path(judgments), "alpaca"), _file_entry(Path(prompts), "alpaca")]
    return _battle_table(records, "alpaca", sources, model_map)


def load_log_battles(target: str, model_map: Mapping[str, str] | None = None) -> PoolData:
    """A routing log's battles by model name: each two-model call's label (golden label,
    judged comparison or rating, :func:`~routellm_base.log.training_data.labelled_calls`)
    between its strong and weak model, and each pool call's judged shadow comparison between
    the two pool models it compared (:func:`~routellm_base.log.training_data.pool_battles`).
    Raises :class:`PoolError` naming both readers' reasons when the log holds neither."""
    from ..errors import RouteLLMError
    from ..log.training_data import labelled_calls, pool_battles

    outcome = {"model_a": 1.0, "model_b": 0.0, "tie": 0.5}
    records: list[tuple[str, str, str, float, str | None]] = []
    reasons = []
    try:
        calls, _ = labelled_calls(target)
        records += [
            (c.prompt, c.strong_model, c.weak_model, outcome[c.winner], None) for c in calls
        ]
    except RouteLLMError as exc:
        reasons.append(f"two-model calls: {exc}")
    try:
        battles, _ = pool_battles(target)
        records += [(b.prompt, b.model_a, b.model_b, outcome[b.winner], None) for b in battles]
    except RouteLLMError as exc:
        reasons.append(f"pool calls: {exc}")
    if not records:
        raise PoolError(f"log {target}: no battles to learn from ({'; '.join(reasons)})")
    digest = hashlib.sha256(
        "".join(json.dumps(r) + "\n" for r in records).encode("utf-8")
    ).hexdigest()
    return _battle_table(
        records, "log", [{"path": target, "sha256": digest, "kind": "log"}], model_map
    )


SOURCE_FORMS = (
    "routerbench:DIR[,SPLIT] (RouterBench CSVs; SPLIT train by default), "
    "llmrouter:DIR[,SPLIT] (LLMRouter JSON; SPLIT train by default), rmb:FILE (pairs.jsonl), "
    "arena_hard:DIR (battles.jsonl + questions.jsonl), alpaca:JUDGMENTS.csv,PROMPTS.jsonl, "
    "log:URL (a routing log)"
)


def load_pool_source(
    spec: str, model_map: Mapping[str, str] | None = None, option: str = "--data"
) -> PoolData:
    """One ``--data`` of ``routellm train pool`` (or ``option`` of another command); forms in
    :data:`SOURCE_FORMS`. ``DIR`` is the data folder or the source's own folder. Raises
    :class:`PoolError` for an unknown form, or a split the folder does not hold (naming the
    splits it holds)."""
    kind, sep, rest = spec.partition(":")
    if not sep or not rest:
        raise PoolError(f"{option} {spec!r}: expected one of {SOURCE_FORMS}")
    first, _, second = rest.partition(",")
    if kind in ("routerbench", "llmrouter"):
        root = Path(first)
        if root.name == kind:
            root = root.parent
        split = second or "train"
        _check_split(root / kind, kind, split, f"{option} {spec!r}")
        if kind == "routerbench":
            return load_routerbench(root, split, model_map=model_map)
        return load_llmrouter(root, split, model_map=model_map)
    if kind == "rmb":
        return load_rmb_battles(first, model_map)
    if kind == "arena_hard":
        return load_arena_hard_battles(first, model_map)
    if kind == "alpaca":
        if not second:
            raise PoolError(f"{option} {spec!r}: expected alpaca:JUDGMENTS.csv,PROMPTS.jsonl")
        return load_alpaca_battles(first, second, model_map)
    if kind == "log":
        return load_log_battles(rest, model_map)
    raise PoolError(f"{option} {spec!r}: unknown source {kind!r}; expected one of {SOURCE_FORMS}")


def _check_split(folder: Path, kind: str, split: str, what: str) -> None:
    """Refuse a RouterBench or LLMRouter ``split`` with no file in ``folder``, naming the splits
    it holds (instead of the OS error of a missing file)."""
    if kind == "llmrouter":
        splits = {p.stem for p in folder.glob("*.json") if p.stem != "prices"}
    else:
        splits = {p.stem.rpartition("_")[2] for p in folder.glob("*_*.csv")}
    if split not in splits:
        raise PoolError(
            f"{what}: no split {split!r} in {folder}; "
            + (
                f"its splits: {', '.join(sorted(splits))}"
                if splits
                else "it holds none (see the data README for where to get it)"
            )
        )


def load_pool_sources(
    specs: Sequence[str], model_map: Mapping[str, str] | None = None, option: str = "--data"
) -> PoolData:
    """Several ``--data`` sources merged (:func:`merge`). Raises :class:`PoolError` when
    ``model_map`` names a model that no source has (naming ``option``, the sources' flag), or
    when two sources read the same files (see :func:`~routellm_base.data.repeats.refuse_repeated_data`)."""
    parts = [load_pool_source(spec, model_map, option) for spec in specs]
    refuse_repeated_data(
        [(spec, part.sources) for spec, part in zip(specs, parts)],
        option,
        PoolError,
        "it would be read twice, each of its battles counted twice",
    )
    merged = merge(parts)
    if model_map:
        refuse_unused_model_map(model_map, merged.source_names, option, PoolError)
    return merged


def relative_sources(data: PoolData, root: str | Path) -> list[dict[str, Any]]:
    """``data.sources`` with paths under ``root`` (the data folder) written relative to it, as
    a shipped checkpoint's record should (no machine's absolute paths)."""
    base = Path(root).resolve()
    out = []
    for source in data.sources:
        path = Path(str(source["path"]))
        try:
            rel = str(path.resolve().relative_to(base))
        except (ValueError, OSError):
            rel = str(source["path"])
        out.append({**source, "path": rel})
    return out


def split_by_prompt(data: PoolData, percent: int, salt: str = "") -> tuple[PoolData, PoolData]:
    """(rest, held) where ``held`` holds the prompts whose sha1 bucket (0-99, of ``salt`` +
    text) is below ``percent``: a deterministic split by prompt, repeats on one side."""
    buckets = np.array(
        [int(hashlib.sha1((salt + p).encode("utf-8")).hexdigest(), 16) % 100 for p in data.prompts]
    )
    held = buckets < percent
    return data.subset(~held), data.subset(held)
