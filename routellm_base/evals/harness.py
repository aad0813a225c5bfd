"""Scoring routers on benchmarks: one result per router and benchmark."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..data import holdout_split
from ..decontaminate import NEAR_DUPLICATE_COSINE, contaminated_mask
from ..progress import progress_bar
from ..routers.base import Router
from .benchmarks import Benchmark
from .curves import (
    CPT_TARGETS,
    QualityCurve,
    oracle_curve,
    quality_curve,
    random_band,
    random_baseline,
)


@dataclass
class EvalResult:
    router: str
    benchmark: Benchmark
    curve: QualityCurve
    notes: list[str]

    def to_dict(self) -> dict[str, Any]:
        cpts = {f"cpt{int(t * 100)}": self.curve.cpt(t) for t in CPT_TARGETS}
        return {
            "router": self.router,
            "benchmark": self.benchmark.name,
            "n": len(self.benchmark.rows),
            "skipped": self.benchmark.skipped,
            "strong_model": self.benchmark.strong_model,
            "weak_model": self.benchmark.weak_model,
            "strong_score": self.curve.strong_score,
            "weak_score": self.curve.weak_score,
            "apgr": self.curve.apgr(),
            **cpts,
            "notes": self.notes,
        }


def items_not_trained_on(router: Router, benchmark: Benchmark) -> Benchmark:
    """Drop the benchmark items a checkpoint declares it was trained on.

    Checkpoints record ``training.trained_on_benchmarks[name] = {"held_out_percent": p}`` when
    they were trained on that benchmark except its sha1-bucketed held-out part. For a benchmark
    file, the checkpoint's recorded training files (``training.data``: path and sha256) are read
    where they are still there unchanged, and the items whose prompt duplicates one they hold are
    dropped, as ``routellm train --exclude`` finds duplicates: the same text up to case and
    whitespace, or cosine >= the checkpoint's recorded ``near_duplicate_cosine`` (default
    :data:`~routellm_base.decontaminate.NEAR_DUPLICATE_COSINE`) under the router's own embedder.
    The training prompts that its ``--exclude`` files removed from training are found the same
    way and do not count. Training data from a routing log (``log:PATH``) is the prompts of the
    labelled calls the training read, read again from the log as it stood then (the checkpoint
    records where the read stopped and the sha256 of its battles). A note says how many items
    were dropped, and names the training files, or logs, that could not be checked.
    """
    training = router.metadata.get("training") or {}
    if benchmark.path is not None:
        return _items_not_in_training_files(router, benchmark, training)
    trained = training.get("trained_on_benchmarks") or {}
    if benchmark.name not in trained:
        return benchmark
    percent = int(trained[benchmark.name]["held_out_percent"])
    keep = [holdout_split(r.prompt, percent) for r in benchmark.rows]
    return benchmark.restricted(
        keep, f"held-out {percent}% only: {router.name} was trained on the rest"
    )


def _file_prompts(path: str) -> dict[str, None]:
    """The ``prompt`` strings of a JSONL file's lines (battles, scored prompts, AlpacaEval
    prompts), each once, in file order; none for other files."""
    import json

    prompts: dict[str, None] = {}
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            try:
                obj = json.loads(line)
            except ValueError:
                return prompts  # not JSONL (AlpacaEval's judgments CSV): no prompts of its own
            if isinstance(obj, dict) and isinstance(obj.get("prompt"), str):
                prompts[obj["prompt"]] = None
    return prompts


def _items_not_in_training_files(
    router: Router, benchmark: Benchmark, training: dict[str, Any]
) -> Benchmark:
    from ..data.scored import read_prompt_file
    from ..hashing import sha256_file

    if not training:
        return benchmark  # not a checkpoint (random) or one that records no training
    if "data" not in training:
        sources = ", ".join(sorted(training.get("sources") or {})) or "named sources"
        return benchmark.noted(
            f"{router.name} records its training data as {sources}, not files: whether "
            f"{benchmark.name}'s items are among them cannot be checked",
        )
    prompts: dict[str, None] = {}
    unchecked = []
    unread_logs: list[str] = []
    for entry in training["data"]:
        path = str(entry.get("path", ""))
        if path.startswith("log:"):
            logged, why = _log_prompts(entry)
            if logged is None:
                unread_logs.append(f"{path[4:]} ({why})")
            else:
                prompts |= logged
        elif os.path.isfile(path) and sha256_file(path) == entry.get("sha256"):
            prompts |= _file_prompts(path)
        else:
            unchecked.append(path)
    trained = list(prompts)
    exclude_files = [str(p) for p in training.get("decontaminated_against") or []]
    missing_excludes = [p for p in exclude_files if not os.path.isfile(p)]
    excluded = [
        text
        for path in exclude_files
        if path not in missing_excludes
        for _, text in read_prompt_file(path, later_turns=True)
    ]
    cosine = float(training.get("near_duplicate_cosine", NEAR_DUPLICATE_COSINE))
    # The router's embedder is the one `routellm train` decontaminated with.
    embed = router.embedder.embed if router.embedder is not None else None
    trained_emb = embed(trained) if embed is not None and trained else None
    if trained and excluded:  # these were removed from training, so never trained on
        removed = contaminated_mask(
            trained, excluded, trained_emb, embed(excluded) if embed else None, cosine
        )
        trained = [t for t, bad in zip(trained, removed, strict=True) if not bad]
        trained_emb = trained_emb[~removed] if trained_emb is not None else None
    items = [r.prompt for r in benchmark.rows]
    seen = np.zeros(len(items), dtype=bool)
    if trained:
        seen = contaminated_mask(
            items, trained, embed(items) if embed else None, trained_emb, cosine
        )
    keep = (~seen).tolist()
    dropped = keep.count(False)
    from_log = any(str(e.get("path", "")).startswith("log:") for e in training["data"])
    if dropped == len(keep):
        raise ValueError(
            f"every item of {benchmark.name} is in {router.name}'s training data: there is "
            "nothing it was not trained on to score (retrain with --exclude "
            f"{benchmark.path}, or score another file)"
        )
    if dropped:
        benchmark = benchmark.restricted(
            keep,
            f"{dropped} items left out: they are in {router.name}'s training "
            f"{'data' if from_log else 'files'}, so it was trained on them (the same text up to "
            "case and whitespace"
            + (
                f", or cosine >= {cosine:g} under its embedder)"
                if embed is not None
                else f"; near-duplicates not checked: {router.name} has no embedder)"
            ),
        )
    if dropped and missing_excludes:
        benchmark = benchmark.noted(
            f"{router.name}'s --exclude files {', '.join(missing_excludes)} are not there: the "
            "training prompts they removed count as trained on, so items near them may have "
            "been left out though it never saw them",
        )
    if unchecked:
        benchmark = benchmark.noted(
            f"{router.name}'s training files {', '.join(unchecked)} are not there unchanged "
            f"(missing, or their sha256 differs): {benchmark.name}'s items in them, if any, are "
            "scored as unseen",
        )
    if unread_logs:
        benchmark = benchmark.noted(
            f"{router.name} was trained on the labelled calls of the routing log "
            f"{'; '.join(unread_logs)}: which prompts those were cannot be told, so "
            f"{benchmark.name}'s items among them, if any, are scored as unseen",
        )
    return benchmark


def _log_prompts(entry: dict[str, Any]) -> tuple[dict[str, None] | None, str]:
    """The prompts of the labelled calls a checkpoint was trained on from a routing log
    (``entry``: its ``training.data`` entry, ``{"path": "log:TARGET", "sha256", "log_mark"}``),
    read again from the log as the training read them; ``(None, why)`` when they cannot be
    (the log gone or unreadable, or its calls of then no longer the same: rows removed or
    rewritten, which the recorded sha256 of the battles shows)."""
    from ..errors import RouteLLMError
    from ..log.training_data import LogMark, battles_digest, labelled_calls

    target = str(entry["path"])[4:]
    try:
        mark = LogMark.from_dict(entry["log_mark"]) if "log_mark" in entry else None
        calls, _ = labelled_calls(target, as_of=mark)
    except RouteLLMError as exc:
        return None, f"cannot be read: {exc}"
    if battles_digest(calls) != entry.get("sha256"):
        if mark is None:  # trained before checkpoints recorded where the read stopped
            return None, "it has changed since training, and the checkpoint records no mark"
        return None, "its calls of then are not the same: rows were removed or rewritten"
    return dict.fromkeys(c.prompt for c in calls), ""


def common_items(routers: Sequence[Router], benchmark: Benchmark) -> Benchmark:
    """The items none of ``routers`` was trained on, so that all are compared on one set."""
    for router in routers:
        benchmark = items_not_trained_on(router, benchmark)
    return benchmark


def evaluate(
    router: Router, benchmark: Benchmark, batch_size: int = 512, progress: bool = False
) -> EvalResult:
    """Score ``router`` on the items of ``benchmark`` it was not trained on; the notes say when
    the strong model does not score clearly above the weak one (:meth:`Benchmark.gap_note`)."""
    bench = items_not_trained_on(router, benchmark)
    prompts = bench.prompts
    batches = progress_bar(
        range(0, len(prompts), batch_size),
        enabled=progress,
        desc=f"{router.name} on {bench.name}",
        unit="batch",
        leave=False,
    )
    rates = np.concatenate([router.strong_win_rate(prompts[i : i + batch_size]) for i in batches])
    bench = bench.with_gap_note()  # a strong model not clearly above the weak one is noted
    return EvalResult(
        router.name, bench, quality_curve(rates, bench.strong, bench.weak), list(bench.notes)
    )


def reference_rows(benchmark: Benchmark, seeds: int = 200) -> list[dict[str, Any]]:
    """The random baseline (mean and spread over seeds) and the oracle on ``benchmark``."""
    strong, weak = benchmark.strong, benchmark.weak
    mean, std, cpts = random_baseline(strong, weak, seeds=seeds)
    oracle = oracle_curve(strong, weak)
    common = {
        "benchmark": benchmark.name,
        "n": len(benchmark.rows),
        "strong_score": float(strong.mean()),
        "weak_score": float(weak.mean()),
    }
    return [
        {
            "router": f"random ({seeds} seeds)",
            **common,
            "apgr": mean,
            "apgr_std": std,
            **{f"cpt{int(t * 100)}": cpts[t][0] for t in CPT_TARGETS},
        },
        {
            "router": "oracle",
            **common,
            "apgr": oracle.apgr(),
            **{f"cpt{int(t * 100)}": oracle.cpt(t) for t in CPT_TARGETS},
        },
    ]


def curves_figure(results: Sequence[EvalResult], seeds: int = 200) -> Any:
    """A matplotlib figure of performance (the mean score, :func:`score_label`) against
    strong-call share, one panel per benchmark in the order of ``results``:
    one line per router, the random router's mean and its band (±1 standard deviation over
    ``seeds`` runs, as the table's random column), the oracle, and the weak and strong models'
    scores. Needs matplotlib (the ``eval`` extra); ``ImportError`` names it when missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise ImportError("plots need matplotlib: pip install 'langchain-routellm[eval]'") from exc
    names = list(dict.fromkeys(r.benchmark.name for r in results))  # in the order given
    cols = min(len(names), 2)  # two panels a row: four benchmarks read as a 2 x 2 grid
    rows = -(-len(names) // cols)
    # Constrained layout keeps each panel's legend, placed below its data, inside the figure.
    fig, axes = plt.subplots(
        rows, cols, figsize=(6 * cols, 6 * rows), squeeze=False, layout="constrained"
    )
    for ax in axes.flat[len(names) :]:
        ax.remove()
    for ax, name in zip(axes.flat, names):
        group = [r for r in results if r.benchmark.name == name]
        bench = group[0].benchmark
        shares, mean, std = random_band(bench.strong, bench.weak, seeds=seeds)
        apgr_mean, apgr_std, _ = random_baseline(bench.strong, bench.weak, seeds=seeds)
        ax.fill_between(shares * 100, mean - std, mean + std, color="grey", alpha=0.25, lw=0)
        ax.plot(
            shares * 100,
            mean,
            "-",
            color="grey",
            lw=1,
            label=f"random ({seeds} seeds, band ±1 sd; APGR {apgr_mean:.3f}±{apgr_std:.3f})",
        )
        for i, result in enumerate(group):
            ax.plot(
                result.curve.shares * 100,
                result.curve.performance,
                color=ROUTER_COLOURS[i % len(ROUTER_COLOURS)],
                label=f"{result.router} (APGR {result.curve.apgr():.3f})",
            )
        oracle = oracle_curve(bench.strong, bench.weak)
        ax.plot(oracle.shares * 100, oracle.performance, ":", color="grey", label="oracle")
        ax.axhline(
            oracle.strong_score, color="green", ls="--", lw=1, label=f"strong: {bench.strong_model}"
        )
        ax.axhline(oracle.weak_score, color="red", ls="--", lw=1, label=f"weak: {bench.weak_model}")
        ax.set_xlabel("strong-model calls (%)")
        ax.set_ylabel(score_label(name))
        # Below the panel, so it covers neither the curves nor the oracle.
        ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.14), frameon=False)
        ax.set_title(f"{name} (n={len(bench.rows)})")
    fig.draw_without_rendering()  # lay the panels out, so their widths are final
    for ax in fig.axes:
        _fit_title(ax)
    return fig


SCORE_LABELS = {
    "mt-bench": "mean MT Bench grade (GPT-4 judge, 1-10)",
    "mmlu": "accuracy (share of questions right)",
    "gsm8k": "accuracy (share of problems right)",
    "rmb": "share of top-vs-mid-tier battles won",
}
"""What a named benchmark's scores are: the y-axis of its panel."""


def score_label(benchmark: str) -> str:
    """The y-axis label of ``benchmark``'s panel: what its mean score measures."""
    return SCORE_LABELS.get(benchmark, "mean score (the file's 'scores' units)")


ROUTER_COLOURS = ("tab:blue", "tab:orange", "tab:cyan", "tab:pink", "tab:olive", "navy")
"""Colours of the routers' curves: none is the green or red of the strong and weak lines, nor the
grey of the random band and the oracle."""


def _fit_title(ax: Any) -> None:
    """Wrap the panel's title onto more lines until it is no wider than the panel as drawn (a
    benchmark file's long path would otherwise run past the figure's edge)."""
    import textwrap

    renderer = ax.figure.canvas.get_renderer()
    title = ax.get_title()
    width = len(title)
    while width > 10 and ax.title.get_window_extent(renderer).width > ax.bbox.width:
        width -= 5
        ax.set_title(textwrap.fill(title, width, break_on_hyphens=False))


def plot_curves(results: Sequence[EvalResult], path: str) -> None:
    """Write :func:`curves_figure` of ``results`` to ``path`` as a PNG."""
    import matplotlib.pyplot as plt

    fig = curves_figure(results)
    fig.savefig(path, dpi=120)
    plt.close(fig)
