"""Learning from your own traffic: the replay benchmark of the learning loop (issue 12).

    python benchmarks/own_traffic.py --data-dir ../shared/data [--cache runs/own_traffic] [--quick]

Labelled sets are replayed as a deployment's traffic, with the stored label standing in for the
judge, and the loop runs through the product:

1. Each source is split by prompt (sha256 bucket) into an *earlier stream* (60%) and *later
   traffic* (40%). Later items that duplicate a prompt the bundled router was trained on (exact
   text up to case and spaces, or cosine >= 0.95 on the static embedder) are dropped, and so are
   earlier items that duplicate a later one: later traffic is never judged or trained on.
2. The earlier stream, in a seeded random order, is routed by the bundled default router
   (``task_experts``, through :class:`RoutingEngine`) and every call is written to a real
   :class:`RoutingLog` (a SQLite file, ``store_prompts=True``).
3. The first N calls of the stream get a label: a shadow comparison with a verdict
   (``RoutingLog.record_comparison``) for judge-like sources, a golden label
   (``RoutingLog.feedback(label=...)``) for graded ones. N grows 100, 300, 1,000, 3,000 in
   the same log, as a deployment's would (capped by what the earlier stream holds).
4. After each step ``routellm train task_experts --data log:traffic.db`` (the CLI function,
   in-process) retrains, and the new checkpoint's APGR is measured on the later traffic:
   - *bundled + log*: the bundled recipe's kinds (MMLU and GSM8K folds 1-4, decontaminated as the
     bundled checkpoint's recipe does, fold 0 never used) plus the log as a third kind, as a
     deployment that starts on the bundled router and adds its traffic would retrain;
   - *log alone*: the log as the only kind.
   Every training run is decontaminated against the later traffic (``--exclude``).
5. ``routellm calibrate --prompts log:traffic.db`` recalibrates on the logged prompts; the strong
   share that its threshold realises on the later traffic is printed beside the bundled
   calibration's.

Sources, and how a stored label becomes a verdict:

- ``alpaca``: AlpacaEval, gpt4_1106_preview vs Mixtral-8x7B (its concise-prompted run), GPT-4
  turbo judge (CC BY-NC data). APGR is scored on the judge's preference probability; the verdict
  is the judge's most likely one (preference thresholded at 0.5), as a judge at temperature 0.
- ``rmb``: RMB's chat preference pairs, top tier (claude-3.5-sonnet, gemini-1.5-pro,
  claude-3-opus, gpt-4o-mini) vs mid tier (Mixtral-8x7B, Llama-2-70b, Gemini-pro, claude-2.1,
  Mistral-7B) standing in for strong vs weak (research-only data). APGR is scored on each
  prompt's top-tier win share; the verdict is the winner of *one* of the prompt's top-vs-mid
  battles drawn at random (seeded), which is what a judge comparing one strong and one weak
  answer returns.
- ``mmlu``, ``gsm8k``: RouteLLM's golden labels, GPT-4-1106 vs Mixtral, fold 0 only (the
  bundled router trained on folds 1-4): correct beats wrong, equal is a tie.
- ``llmrouter``: LLMRouter (train and test), llama-3.1-nemotron-51b-instruct vs
  mistral-7b-instruct-v0.3: the strongest of its 9 models on average against the weakest
  general-purpose instruct model (the two ChatQA models are retrieval-QA specialists and
  codegemma a code model); a higher score wins, equal is a tie (golden label).

A deployment's pair other than GPT-4/Mixtral keeps its own names in the log; the bundled kinds'
GPT-4/Mixtral are mapped onto them with ``--model-map``.

For the ``--chat`` sources (default: alpaca, rmb) the same curve is run again with the full
all-MiniLM-L6-v2 encoder (``--embedder sentence_transformer``), beside the static embedder on the
same rows; to keep that affordable on 2 CPU cores the bundled MMLU kind is subsampled (3,000
prompts, seed 0) in those columns, and the encoder's outputs are cached on disk under
``--cache``. ``--bert`` adds an end-to-end fine-tuned encoder (``routellm train bert`` on the log
alone) at the largest N of the first stream order. For those sources a diagnostic line also
refits bundled + log outside the CLI with the log kind centred (as ``chat_task_experts`` does),
to tell whether the labels or the way the log's kind joins the bundled ones hold it back.
Everything else runs on the bundled static embedder. ``--quick`` is a smoke run (one seed, N = 0,
50 and 100, no MiniLM). Results: Markdown tables on stdout and ``<cache>/results.json``. A full
run takes about 11 minutes on 2 shared cores (5 of them embedding with MiniLM the first time),
``--bert`` about 8 more.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import json
import os
import random
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    # One BLAS thread: on 2 shared cores threaded ridge fits run 5-7x slower than one thread.
    os.environ.setdefault(var, "1")

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
from quality_experiments import load_alpaca_mixtral  # noqa: E402

from routellm_base import RoutingEngine, load_router  # noqa: E402
from routellm_base.cli import main as routellm  # noqa: E402
from routellm_base.data import (  # noqa: E402
    GPT4,
    MID_TIER,
    MIXTRAL,
    TOP_TIER,
    crossfit_fold,
    load_gsm8k,
    load_llmrouter,
    load_mmlu,
    load_rmb_pairs,
    load_scored_jsonl,
    tier_outcome,
    write_scored_jsonl,
)
from routellm_base.decision import RoutingDecision  # noqa: E402
from routellm_base.decontaminate import contaminated_mask  # noqa: E402
from routellm_base.embedders import load_embedder  # noqa: E402
from routellm_base.evals import quality_curve, random_baseline  # noqa: E402
from routellm_base.judging import PairVerdict  # noqa: E402
from routellm_base.log import RoutingLog  # noqa: E402
from routellm_base.log.training_data import labelled_calls  # noqa: E402
from routellm_base.routers.base import Router  # noqa: E402
from routellm_base.routers.task_experts import LENGTH_FEATURES, TaskExpertsRouter  # noqa: E402
from routellm_base.shadow import Comparison  # noqa: E402
from routellm_base.train.recipe import FOLDS, load_embeddings_cache, split_fold  # noqa: E402
from routellm_base.train.task_experts import TaskExpertsTrainConfig, train_task_experts  # noqa: E402

STATIC = "minilm-l6-static-256"
MINILM = "sentence_transformer"
SIZES = (0, 100, 300, 1000, 3000)
LATER_PERCENT = 40
LLMROUTER_PAIR = ("llama-3.1-nemotron-51b-instruct", "mistral-7b-instruct-v0.3")
MINILM_MMLU = 3000
"""Bundled MMLU prompts kept in the MiniLM columns (and their static twin), seed 0."""
CALIBRATION_SHARE = 0.3
LOG_NAME = "traffic.db"
"""The log's file; its stem names its task kind in ``routellm train task_experts``."""
LOG_KIND = Path(LOG_NAME).stem


@dataclass(frozen=True)
class Item:
    """One prompt of a source: both models' scores (what APGR is measured on)."""

    prompt: str
    strong: float
    weak: float
    battles: tuple[float, ...] = ()
    """RMB: the top tier's outcome (1 won, 0 lost) in each top-vs-mid battle of the prompt."""


@dataclass(frozen=True)
class Source:
    name: str
    title: str
    items: list[Item]
    strong_model: str
    weak_model: str
    via: str
    """How a label reaches the log: ``comparison`` (a shadow comparison with a verdict) or
    ``golden`` (``RoutingLog.feedback(label=...)``)."""
    rule: str
    """How the stored label becomes a verdict, in words."""
    judge: str
    """What stands in for the judge (the comparison's ``judge_model``, or the feedback source)."""


@dataclass(frozen=True)
class Variant:
    key: str
    label: str
    embedder: str
    bundled: tuple[str, ...]
    """Scored JSONL files of the bundled kinds trained beside the log (empty: the log alone)."""
    family: str = "task_experts"
    largest_only: bool = False
    """Trained only at the largest N of the first stream order (too slow for the whole curve)."""


@dataclass
class Replay:
    """One source split into the earlier stream and the later traffic."""

    source: Source
    earlier: list[Item]
    later: list[Item]
    later_near_bundled: int
    earlier_near_later: int
    rows: dict[str, dict[int, list[float]]] = field(default_factory=dict)
    """APGR on the later traffic by variant, judged items, stream seed."""
    log_battles: dict[str, dict[int, list[int]]] = field(default_factory=dict)
    """Battles the training run read from the log, by variant, judged items, stream seed."""


# -- sources ---------------------------------------------------------------------------------


def by_score(item: Item, rng: np.random.Generator) -> str:
    return "strong" if item.strong > item.weak else "weak" if item.strong < item.weak else "tie"


def one_battle(item: Item, rng: np.random.Generator) -> str:
    return "strong" if item.battles[int(rng.integers(len(item.battles)))] == 1.0 else "weak"


VERDICT: dict[str, Callable[[Item, np.random.Generator], str]] = {"rmb": one_battle}


def load_source(name: str, data_dir: Path) -> Source:
    if name == "alpaca":
        # scores[MIXTRAL] is P(the judge prefers Mixtral's answer).
        items = [
            Item(r.prompt, 1.0 - r.scores[MIXTRAL], r.scores[MIXTRAL])
            for r in load_alpaca_mixtral(data_dir)
        ]
        return Source(
            name,
            "AlpacaEval, GPT-4-1106 vs Mixtral (GPT-4-turbo judge)",
            items,
            GPT4,
            MIXTRAL,
            "comparison",
            "the judge's most likely verdict (weighted preference thresholded at 0.5)",
            "alpaca_eval:weighted_alpaca_eval_gpt4_turbo",
        )
    if name == "rmb":
        outcomes: dict[str, list[float]] = {}
        for pair in load_rmb_pairs(data_dir):
            outcome = tier_outcome(pair)
            # One conversation ends in an empty user turn: nothing to route on.
            if outcome is not None and pair.prompt.strip():
                outcomes.setdefault(pair.prompt, []).append(outcome)
        items = [
            Item(p, float(np.mean(o)), 1.0 - float(np.mean(o)), tuple(o))
            for p, o in outcomes.items()
        ]
        return Source(
            name,
            "RMB chat pairs, top tier vs mid tier",
            items,
            TOP_TIER,
            MID_TIER,
            "comparison",
            "the winner of one of the prompt's top-vs-mid battles, drawn at random",
            "rmb:stored-pair",
        )
    if name in ("mmlu", "gsm8k"):
        rows = (load_mmlu if name == "mmlu" else load_gsm8k)(data_dir)
        items = [
            Item(r.prompt, r.scores[GPT4], r.scores[MIXTRAL])
            for r in rows
            if crossfit_fold(r.prompt, FOLDS) == 0
        ]
        title = f"{name.upper()} fold 0 (never trained on), GPT-4-1106 vs Mixtral, golden labels"
        return Source(
            name,
            title,
            items,
            GPT4,
            MIXTRAL,
            "golden",
            "correct beats wrong; equal is a tie",
            "golden",
        )
    if name == "llmrouter":
        strong, weak = LLMROUTER_PAIR
        rows = load_llmrouter(data_dir, "train") + load_llmrouter(data_dir, "test")
        items = [Item(r.prompt, r.scores[strong], r.scores[weak]) for r in rows]
        return Source(
            name,
            f"LLMRouter (train + test), {strong} vs {weak}",
            items,
            strong,
            weak,
            "golden",
            "the higher score wins; equal is a tie",
            "golden",
        )
    raise ValueError(f"unknown source {name!r}: use alpaca, rmb, mmlu, gsm8k or llmrouter")


def is_later(prompt: str) -> bool:
    """The later-traffic side of the split: a sha256 bucket (independent of the sha1 folds)."""
    return (
        int(hashlib.sha256(f"own-traffic/{prompt}".encode()).hexdigest(), 16) % 100 < LATER_PERCENT
    )


def split_source(
    source: Source, bundled_prompts: list[str], embed: Callable[[list[str]], np.ndarray]
) -> Replay:
    later = [i for i in source.items if is_later(i.prompt)]
    earlier = [i for i in source.items if not is_later(i.prompt)]
    later_texts = [i.prompt for i in later]
    near_bundled = contaminated_mask(
        later_texts, bundled_prompts, embed(later_texts), embed(bundled_prompts)
    )
    later = [i for i, bad in zip(later, near_bundled, strict=True) if not bad]
    later_texts = [i.prompt for i in later]
    earlier_texts = [i.prompt for i in earlier]
    near_later = contaminated_mask(
        earlier_texts, later_texts, embed(earlier_texts), embed(later_texts)
    )
    earlier = [i for i, bad in zip(earlier, near_later, strict=True) if not bad]
    return Replay(source, earlier, later, int(near_bundled.sum()), int(near_later.sum()))


# -- the loop through the product -------------------------------------------------------------


def record_label(
    log: RoutingLog, source: Source, item: Item, decision: RoutingDecision, rng: np.random.Generator
) -> str:
    """Write the stored label of one routed call to the log, as the source's judge would."""
    winner = VERDICT.get(source.name, by_score)(item, rng)
    if source.via == "golden":
        log.feedback(decision.call_id, label=winner, source=source.judge)  # type: ignore[arg-type]
        return winner
    now = time.time()
    # Both orders agree, as a consistent judge's would; the stored label is the judgment text.
    strong_first, weak_first = {"strong": ("A", "B"), "weak": ("B", "A"), "tie": ("C", "C")}[winner]
    text = f"stored label of {source.judge}: {winner}"
    verdict = PairVerdict(winner, strong_first, weak_first, (text, text), source.judge, now)  # type: ignore[arg-type]
    log.record_comparison(
        Comparison(
            call_id=decision.call_id,
            answered_side=decision.side,
            strong_model=source.strong_model,
            weak_model=source.weak_model,
            strong_answer=None,
            weak_answer=None,  # the data keep no answers
            shadow_error=None,
            shadow_latency_seconds=0.0,
            shadow_input_tokens=None,
            shadow_output_tokens=None,
            verdict=verdict,
            judge_error=None,
            created_at=now,
        )
    )
    return winner


def run_cli(argv: list[str]) -> str:
    """``routellm ARGV`` in-process; its stdout, or RuntimeError with its stderr."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = routellm(argv)
    if code != 0:
        raise RuntimeError(
            f"routellm {' '.join(argv[:2])} failed ({code}): {err.getvalue().strip()}"
        )
    return out.getvalue()


def train(variant: Variant, source: Source, log: Path | None, exclude: Path, out: Path) -> Router:
    """``routellm train FAMILY`` on the variant's bundled kinds and the log; the new router."""
    argv = ["train", variant.family]
    for path in variant.bundled:
        argv += ["--data", f"scores:{path}"]
    if log is not None:
        argv += ["--data", f"log:{log}"]
    if variant.bundled and (source.strong_model, source.weak_model) != (GPT4, MIXTRAL):
        argv += [
            "--model-map",
            f"{GPT4}={source.strong_model}",
            "--model-map",
            f"{MIXTRAL}={source.weak_model}",
        ]
    if variant.family == "bert":  # the settings of docs/results.md's bert runs, fixed beforehand
        argv += ["--epochs", "3", "--max-length", "128"]
    argv += [
        "--strong",
        source.strong_model,
        "--weak",
        source.weak_model,
        "--embedder",
        variant.embedder,
        "--exclude",
        str(exclude),
        "--out",
        str(out),
        "--force",  # each N retrains the variant's router in the same folder
        "--no-progress",
        "--data-licence",
        "benchmark only (see benchmarks/own_traffic.py)",
    ]
    run_cli(argv)
    return load_router(out)


def apgr(rates: np.ndarray, items: Sequence[Item]) -> float:
    return quality_curve(
        rates, np.array([i.strong for i in items]), np.array([i.weak for i in items])
    ).apgr()


def log_kind_prompts(router: Router) -> int:
    """Prompts the training run took from the log (its task kind), read from the checkpoint."""
    training = router.metadata["training"]
    if "task_kinds" not in training:  # a family without kinds, trained on the log alone
        return int(training["prompts"])
    return int(training["task_kinds"][LOG_KIND]["prompts"])


def realised_share(rates: np.ndarray, threshold: float) -> float:
    return float((rates >= threshold).mean())


def replay(
    rp: Replay,
    variants: list[Variant],
    sizes: list[int],
    seeds: Sequence[int],
    cache: Path,
    bundled: Router,
    engine: RoutingEngine,
    diagnose: bool = False,
) -> dict[str, Any]:
    """Run the loop for one source over every stream seed; fills ``rp.rows``; returns extras."""
    source, later_texts = rp.source, [i.prompt for i in rp.later]
    base = cache / "runs" / source.name
    shutil.rmtree(base, ignore_errors=True)
    base.mkdir(parents=True)
    exclude = base / "later.jsonl"
    exclude.write_text(
        "".join(json.dumps({"prompt": t}) + "\n" for t in later_texts), encoding="utf-8"
    )
    for v in variants:  # N = 0: nothing judged; the bundled kinds alone, retrained by the CLI
        rp.rows[v.key] = {n: [] for n in sizes}
        rp.log_battles[v.key] = {n: [] for n in sizes}
        if v.bundled and 0 in sizes:
            rp.rows[v.key][0].append(
                apgr(
                    train(v, source, None, exclude, base / v.key).strong_win_rate(later_texts),
                    rp.later,
                )
            )
    extras: dict[str, Any] = {"verdicts": {}, "log_stats": []}
    for seed in seeds:
        stream = [rp.earlier[i] for i in np.random.default_rng(seed).permutation(len(rp.earlier))]
        run = base / f"seed{seed}"
        run.mkdir()
        db = run / LOG_NAME
        log = RoutingLog(db, store_prompts=True)
        decisions = engine.decide_many(
            [i.prompt for i in stream],
            strong_model=source.strong_model,
            weak_model=source.weak_model,
        )
        for item, decision in zip(stream, decisions, strict=True):
            log.record(
                decision,
                conversation=item.prompt,
                strong_model=source.strong_model,
                weak_model=source.weak_model,
                checkpoint_id=engine.checkpoint_id,
            )
        log.flush()
        labels = np.random.default_rng(10_000 + seed)
        judged = 0
        for n in sizes:
            if n == 0:
                continue
            for item, decision in zip(stream[judged:n], decisions[judged:n], strict=True):
                winner = record_label(log, source, item, decision, labels)
                extras["verdicts"][winner] = extras["verdicts"].get(winner, 0) + 1
            judged = n
            log.flush()
            stats = log.stats()
            if stats.failed or stats.dropped or stats.written != stats.recorded:
                raise RuntimeError(f"{source.name}: the routing log lost records: {stats}")
            for v in variants:
                if v.largest_only and (n != sizes[-1] or seed != seeds[0]):
                    continue
                router = train(v, source, db, exclude, run / v.key)
                rp.rows[v.key][n].append(apgr(router.strong_win_rate(later_texts), rp.later))
                rp.log_battles[v.key][n].append(log_kind_prompts(router))
        extras["log_stats"].append(log.stats().__dict__)
        log.close()
        if seed == seeds[0] and judged:
            extras["calibration"] = calibration_check(rp, db, run / variants[0].key, bundled)
            if diagnose:
                extras["centring"] = centring_diagnostic(rp, db, variants[0].bundled)
    return extras


def centring_diagnostic(rp: Replay, db: Path, bundled_files: Sequence[str]) -> dict[str, float]:
    """Not the product path: the rows that ``routellm train task_experts`` fits for bundled +
    log (largest N, first stream order, static embedder), refitted with the log kind centred
    and the gate's prior balanced, the two choices of the ``chat_task_experts`` recipe. Tells
    whether the log's labels or the way its kind joins the bundled ones hold bundled + log back.
    The first entry refits the CLI's own choices and must match its figure."""
    static = load_embedder(STATIC)
    source, later_texts = rp.source, [i.prompt for i in rp.later]
    kinds = {
        Path(f).stem: [(r.prompt, r.scores[GPT4] - r.scores[MIXTRAL]) for r in load_scored_jsonl(f)]
        for f in bundled_files
    }
    outcome = {"model_a": 1.0, "model_b": -1.0, "tie": 0.0}
    kinds[LOG_KIND] = [(c.prompt, outcome[c.winner]) for c in labelled_calls(db)[0]]
    texts, kind, gap = [], [], []
    for k, rows in enumerate(kinds.values()):  # one target per prompt, in first-seen order
        by_prompt: dict[str, list[float]] = {}
        for prompt, g in rows:
            by_prompt.setdefault(prompt, []).append(g)
        texts += list(by_prompt)
        kind += [k] * len(by_prompt)
        gap += [float(np.mean(g)) for g in by_prompt.values()]
    emb = static.embed(texts)
    keep = ~contaminated_mask(texts, later_texts, emb, static.embed(later_texts))
    texts = [t for t, ok in zip(texts, keep, strict=True) if ok]
    names, out = list(kinds), {}
    for label, centred, balance in (
        ("as the CLI fits it (uncentred, gate prior at the kinds' frequencies)", (), 0.0),
        ("log kind centred", (LOG_KIND,), 0.0),
        ("log kind centred, gate balance 0.5", (LOG_KIND,), 0.5),
    ):
        config = TaskExpertsTrainConfig(gate_class_balance=balance)
        tensors, _ = train_task_experts(
            texts, emb[keep], np.array(kind)[keep], np.array(gap)[keep], names, config,
            progress=False, centred=centred,
        )  # fmt: skip
        router = TaskExpertsRouter(
            "diagnostic", tensors, [source.strong_model, source.weak_model], source.strong_model,
            source.weak_model, embedder=static, kinds=names, features=list(LENGTH_FEATURES),
        )  # fmt: skip
        out[label] = apgr(router.strong_win_rate(later_texts), rp.later)
    return out


def calibration_check(rp: Replay, db: Path, retrained: Path, bundled: Router) -> dict[str, float]:
    """Strong share realised on the later traffic at a 30% target: the bundled calibration
    (Arena-Hard prompts) against ``routellm calibrate --prompts log:`` on the logged prompts."""
    later_texts = [i.prompt for i in rp.later]

    def logged_threshold(router: str) -> float:
        out = run_cli(
            [
                "calibrate",
                "--prompts",
                f"log:{db}",
                "--strong-share",
                str(CALIBRATION_SHARE),
                "--router",
                router,
                "--json",
            ]
        )
        return float(json.loads(out)["threshold"])

    bundled_rates = bundled.strong_win_rate(later_texts)
    new_rates = load_router(retrained).strong_win_rate(later_texts)
    return {
        "bundled, its Arena-Hard calibration": realised_share(
            bundled_rates, RoutingEngine(bundled, strong_share=CALIBRATION_SHARE).threshold
        ),
        "bundled, calibrated on the log": realised_share(
            bundled_rates, logged_threshold("task_experts")
        ),
        "retrained (bundled + log, largest N), calibrated on the log": realised_share(
            new_rates, logged_threshold(str(retrained))
        ),
    }


# -- embeddings ------------------------------------------------------------------------------


class DiskCachedEncoder:
    """Wraps a sentence-transformers model's ``encode`` with an on-disk cache by text, so that
    ``routellm train --embedder sentence_transformer`` run in-process reuses earlier runs' work.
    The product's embedder normalises what ``encode`` returns, exactly as without the cache."""

    def __init__(self, model: Any, folder: Path) -> None:
        self.model, self.folder = model, folder
        self.prompts_file, self.vectors_file = folder / "prompts.json", folder / "vectors.npy"
        spec = f"{self.prompts_file},{self.vectors_file}" if self.prompts_file.is_file() else None
        self.memo: dict[str, np.ndarray] = load_embeddings_cache(spec) or {}
        self.computed = 0

    def encode(self, texts: list[str], **kwargs: Any) -> np.ndarray:
        missing = [t for t in dict.fromkeys(texts) if t not in self.memo]
        if missing:
            self.memo.update(
                zip(
                    missing,
                    np.asarray(self.model.encode(missing, **kwargs), np.float32),
                    strict=True,
                )
            )
            self.computed += len(missing)
        return np.stack([self.memo[t] for t in texts])

    def save(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        self.prompts_file.write_text(json.dumps(list(self.memo)), encoding="utf-8")
        np.save(self.vectors_file, np.stack(list(self.memo.values())))


def prepare_minilm(cache: Path, texts: list[str]) -> DiskCachedEncoder:
    """Load the shared all-MiniLM-L6-v2 embedder with the disk cache, and embed ``texts`` once."""
    embedder = load_embedder(MINILM)  # the process-wide instance routellm train loads too
    encoder = DiskCachedEncoder(embedder.model, cache / "embeddings" / "all-MiniLM-L6-v2")  # type: ignore[attr-defined]
    embedder.model = encoder  # type: ignore[attr-defined]
    embedder.cache_size = max(embedder.cache_size, 10 * len(texts))
    started = time.time()
    embedder.embed(texts)
    if encoder.computed:
        encoder.save()
    print(
        f"all-MiniLM-L6-v2: {len(set(texts))} texts, {encoder.computed} computed, "
        f"{len(encoder.memo) - encoder.computed} from the disk cache, {time.time() - started:.0f} s",
        file=sys.stderr,
    )
    return encoder


# -- output ----------------------------------------------------------------------------------


def summary(values: list[float]) -> str:
    if not values:
        return "—"
    if len(values) == 1:
        return f"{values[0]:.3f}"
    return f"{np.mean(values):.3f} [{min(values):.3f}, {max(values):.3f}]"


def print_replay(
    rp: Replay,
    variants: list[Variant],
    sizes: list[int],
    random_band: tuple[float, float],
    bundled_apgr: float,
    extras: dict[str, Any],
    seeds: int,
) -> None:
    s = rp.source
    total = sum(extras["verdicts"].values()) or 1
    verdicts = ", ".join(f"{k} {v / total:.0%}" for k, v in sorted(extras["verdicts"].items()))
    print(f"\n### {s.title}\n")
    print(
        f"Later traffic: {len(rp.later)} prompts ({rp.later_near_bundled} near-duplicates of bundled training "
        f"prompts dropped). Earlier stream: {len(rp.earlier)} prompts ({rp.earlier_near_later} near-duplicates of "
        f"later prompts dropped); it caps N at {len(rp.earlier)}. Labels ({s.via}): {s.rule}; verdicts given: "
        f"{verdicts}. Random: {random_band[0]:.3f} ± {random_band[1]:.3f} (200 seeds); bundled `task_experts`: "
        f"{bundled_apgr:.3f}. Cells: APGR on the later traffic, mean [min, max] over {seeds} stream orders.\n"
    )
    print("| judged items | " + " | ".join(v.label for v in variants) + " |")
    print("| --- | " + " | ".join("---" for _ in variants) + " |")
    for n in sizes:
        cap = " (all)" if n == len(rp.earlier) else ""
        cells = [summary(rp.rows[v.key][n]) for v in variants]
        print(f"| {n:,}{cap} | " + " | ".join(cells) + " |")
    if "centring" in extras:
        fits = "; ".join(f"{k}: {v:.3f}" for k, v in extras["centring"].items())
        print(
            f"\nDiagnostic, not the product path (bundled + log, largest N, stream order 0, refitted "
            f"outside the CLI): {fits}."
        )
    if "calibration" in extras:
        shares = "; ".join(f"{k}: {v:.1%}" for k, v in extras["calibration"].items())
        print(
            f"\nStrong share realised on the later traffic at a {CALIBRATION_SHARE:.0%} target (stream seed 0): {shares}."
        )


# -- main ------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    """The benchmark's command line (built without running it)."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=Path("../shared/data"),
        help="benchmark data folder (default: %(default)s)",
    )
    parser.add_argument(
        "--cache",
        type=Path,
        default=Path("runs/own_traffic"),
        help="folder for the logs, checkpoints, the MiniLM embedding cache and results.json "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--sources",
        default="alpaca,rmb,mmlu,gsm8k,llmrouter",
        help="comma-separated traffic sources to replay (default: %(default)s)",
    )
    parser.add_argument(
        "--chat",
        default="alpaca,rmb",
        help="sources that also get the all-MiniLM-L6-v2 columns and the centring diagnostic "
        "('' for none; default: %(default)s)",
    )
    parser.add_argument(
        "--bert",
        action="store_true",
        help="also fine-tune the encoder (routellm train bert) on the log alone of each --chat "
        "source, at the largest N of the first stream order (about 4 minutes each on 2 cores)",
    )
    parser.add_argument(
        "--seeds",
        type=int,
        default=3,
        help="how many stream orders (seeds 0..N-1) to replay (default: %(default)s)",
    )
    parser.add_argument(
        "--quick", action="store_true", help="smoke run: one seed, N = 0, 50 and 100, no MiniLM"
    )
    return parser


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = build_parser().parse_args(argv)
    started = time.time()
    seeds = list(range(1 if args.quick else args.seeds))
    wanted_sizes = (0, 50, 100) if args.quick else SIZES
    names = [n for n in args.sources.split(",") if n]
    minilm_names = set() if args.quick else {n for n in args.chat.split(",") if n} & set(names)
    cache: Path = args.cache
    cache.mkdir(parents=True, exist_ok=True)

    static = load_embedder(STATIC)
    static.cache_size = max(static.cache_size, 1_000_000)  # every prompt here embedded once per run
    # The bundled checkpoint's training rows: MMLU and GSM8K folds 1-4, decontaminated by its recipe.
    split = split_fold(args.data_dir, 0, static.embed, with_llmrouter=False)
    folder = cache / "bundled"
    folder.mkdir(exist_ok=True)
    files = {}
    for kind in ("mmlu", "gsm8k"):
        files[kind] = folder / f"{kind}.jsonl"
        write_scored_jsonl(split.train[kind], files[kind])
    files["mmlu_small"] = folder / f"mmlu_{MINILM_MMLU}.jsonl"
    mmlu_small = random.Random(0).sample(split.train["mmlu"], MINILM_MMLU)
    write_scored_jsonl(mmlu_small, files["mmlu_small"])
    bundled_prompts = [r.prompt for kind in ("mmlu", "gsm8k") for r in split.train[kind]]

    bundled = load_router()
    engine = RoutingEngine(bundled)  # the default deployment: bundled router, default policy
    full, small = (
        (str(files["mmlu"]), str(files["gsm8k"])),
        (str(files["mmlu_small"]), str(files["gsm8k"])),
    )
    static_variants = [
        Variant("bundled_log", "bundled + log", STATIC, full),
        Variant("log", "log alone", STATIC, ()),
    ]
    minilm_variants = [
        Variant("bundled_small_log", f"bundled (MMLU {MINILM_MMLU:,}) + log", STATIC, small),
        Variant(
            "minilm_bundled_small_log",
            f"MiniLM: bundled (MMLU {MINILM_MMLU:,}) + log",
            MINILM,
            small,
        ),
        Variant("minilm_log", "MiniLM: log alone", MINILM, ()),
    ]
    if args.bert:
        minilm_variants.append(
            Variant("bert_log", "MiniLM fine-tuned (bert): log alone", STATIC, (), "bert", True)
        )

    replays = {
        n: split_source(load_source(n, args.data_dir), bundled_prompts, static.embed) for n in names
    }
    if minilm_names:
        texts = [r.prompt for r in mmlu_small] + [r.prompt for r in split.train["gsm8k"]]
        texts += [
            i.prompt for n in sorted(minilm_names) for i in replays[n].earlier + replays[n].later
        ]
        encoder = prepare_minilm(cache, texts)

    results: dict[str, Any] = {"command": " ".join(sys.argv), "seeds": seeds, "sources": {}}
    print(
        f"# Learning from your own traffic: the replay benchmark ({'quick' if args.quick else 'full'} run)"
    )
    for name, rp in replays.items():
        variants = static_variants + (minilm_variants if name in minilm_names else [])
        cap = len(rp.earlier)
        sizes = sorted({min(n, cap) for n in wanted_sizes})
        later = rp.later
        strong, weak = np.array([i.strong for i in later]), np.array([i.weak for i in later])
        band = random_baseline(strong, weak)[:2]
        bundled_apgr = apgr(bundled.strong_win_rate([i.prompt for i in later]), later)
        extras = replay(
            rp, variants, sizes, seeds, cache, bundled, engine, diagnose=name in minilm_names
        )
        print_replay(rp, variants, sizes, band, bundled_apgr, extras, len(seeds))
        results["sources"][name] = {
            "title": rp.source.title,
            "later": len(later),
            "earlier": cap,
            "later_near_bundled": rp.later_near_bundled,
            "earlier_near_later": rp.earlier_near_later,
            "random": band,
            "bundled": bundled_apgr,
            "apgr": {v.key: {str(n): rp.rows[v.key][n] for n in sizes} for v in variants},
            "log_battles": {
                v.key: {str(n): rp.log_battles[v.key][n] for n in sizes} for v in variants
            },
            **extras,
        }
    if minilm_names:
        encoder.save()  # anything the training runs embedded beyond the texts prepared
    results["seconds"] = round(time.time() - started, 1)
    (cache / "results.json").write_text(json.dumps(results, indent=1), encoding="utf-8")
    print(f"\n({results['seconds']:.0f} s; results in {cache / 'results.json'})")
    return results


if __name__ == "__main__":
    main()
