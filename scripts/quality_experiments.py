"""What predicts that the weak model fails? The measurements behind docs/results.md, rerunnable.

    python scripts/quality_experiments.py --data-dir ../shared/data        # about 2 minutes on 2 cores

Every score is an APGR (GPT-4-1106-preview vs Mixtral-8x7B) on items the scorer never trained
on: MMLU and GSM8K cross-fitted over the recipe's 5 folds (split by sha1 of the prompt), MT Bench
and RouterBench's test split never trained on. Linear scorers are ridge regressions of the
score gap (strong minus weak) on the bundled static embedder, fitted in closed form. RouterBench
(licence unclear) appears only in rows marked research-only; nothing trained on it is shipped.
"""

from __future__ import annotations

import argparse
import ast
import csv
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from routellm_base import load_router
from routellm_base.data import (
    GPT4,
    MIXTRAL,
    ScoredPrompt,
    crossfit_fold,
    load_gsm8k,
    load_llmrouter,
    load_mmlu,
    load_mt_bench,
)
from routellm_base.decontaminate import contaminated_mask
from routellm_base.embedders import load_embedder
from routellm_base.evals import quality_curve
from routellm_base.routers.task_experts import TaskExpertsRouter, length_features
from routellm_base.train.task_experts import fit_ridge, scored_task_rows, train_task_experts

ROUTERBENCH_MIXTRAL = "mistralai/mixtral-8x7b-chat"  # the data README's name for the same model
ALPACA_MIXTRAL = "Mixtral-8x7B-Instruct-v0.1_concise"  # AlpacaEval's (concise-prompted) run of it
EMBEDDER = load_embedder("minilm-l6-static-256")
Scorer = Callable[[list[str]], np.ndarray]


def apgr(scores: np.ndarray, rows: Sequence[ScoredPrompt]) -> float:
    strong = np.array([r.scores[GPT4] for r in rows])
    weak = np.array([r.scores[MIXTRAL] for r in rows])
    return quality_curve(np.asarray(scores, float), strong, weak).apgr()


def features(texts: list[str], with_length: bool = True) -> np.ndarray:
    emb = np.asarray(EMBEDDER.embed(texts), np.float64)
    return np.hstack([emb, length_features(texts)]) if with_length else emb


def ridge_scorer(rows: Sequence[ScoredPrompt], penalty: float = 10.0, with_length: bool = True,
                 weights: Sequence[float] | None = None) -> Scorer:
    x = features([r.prompt for r in rows], with_length)
    y = np.array([r.scores[GPT4] - r.scores[MIXTRAL] for r in rows])
    coef, bias = fit_ridge(x, y, penalty, None if weights is None else np.asarray(weights, float))
    return lambda texts: features(texts, with_length) @ coef + bias


def crossfitted(make: Callable[[dict[str, list[ScoredPrompt]]], Scorer], sources: dict[str, list[ScoredPrompt]]) -> dict[str, float]:
    """APGR of each source's items, each scored by the model fitted without its fold."""
    preds = {name: np.zeros(len(rows)) for name, rows in sources.items()}
    for fold in range(5):
        scorer = make({name: [r for r in rows if crossfit_fold(r.prompt) != fold] for name, rows in sources.items()})
        for name, rows in sources.items():
            idx = [i for i, r in enumerate(rows) if crossfit_fold(r.prompt) == fold]
            preds[name][idx] = scorer([rows[i].prompt for i in idx])
    return {name: apgr(preds[name], rows) for name, rows in sources.items()}


def load_routerbench(data_dir: Path, split: str) -> list[ScoredPrompt]:
    csv.field_size_limit(1 << 30)
    rows = []
    for task in ("arc_challenge", "mbpp", "winograde"):
        with open(data_dir / "routerbench" / f"{task}_{split}.csv", encoding="utf-8") as handle:
            for i, r in enumerate(csv.DictReader(handle)):
                if r[GPT4] == "" or r[ROUTERBENCH_MIXTRAL] == "":
                    continue
                prompt = ast.literal_eval(r["prompt"])
                prompt = prompt[-1] if isinstance(prompt, list) else prompt
                # few-shot examples come first: route on the question actually asked
                rows.append(ScoredPrompt(f"{task}/{i}", prompt.split("\n\n")[-1].strip(),
                                         {GPT4: float(r[GPT4]), MIXTRAL: float(r[ROUTERBENCH_MIXTRAL])}, task))
    return rows


def load_alpaca_mixtral(data_dir: Path) -> list[ScoredPrompt]:
    """AlpacaEval prompts; GPT-4-turbo scores 0.5, Mixtral P(judge prefers Mixtral's answer)."""
    import json

    with open(data_dir / "alpaca_eval" / "prompts.jsonl", encoding="utf-8") as handle:
        prompts = {int(o["prompt_id"]): o["prompt"] for o in map(json.loads, handle)}
    with open(data_dir / "alpaca_eval" / "judgments.csv", encoding="utf-8") as handle:
        prefs = {int(r["prompt_id"]): float(r["preference"]) - 1.0 for r in csv.DictReader(handle) if r["model_2"] == ALPACA_MIXTRAL}
    return [ScoredPrompt(f"alpaca/{p}", prompts[p], {GPT4: 0.5, MIXTRAL: v}, "alpaca") for p, v in sorted(prefs.items())]


def task_experts_without(kinds: dict[str, list[ScoredPrompt]], evaluation: list[str]) -> TaskExpertsRouter:
    """The task_experts trainer on these kinds, every prompt duplicating an evaluation prompt removed."""
    eval_emb = EMBEDDER.embed(evaluation)
    clean = {}
    for name, rows in kinds.items():
        bad = contaminated_mask([r.prompt for r in rows], evaluation, EMBEDDER.embed([r.prompt for r in rows]), eval_emb)
        clean[name] = [r for r, b in zip(rows, bad, strict=True) if not b]
    texts, kind, gap = scored_task_rows(clean, GPT4, MIXTRAL)
    tensors, _ = train_task_experts(texts, EMBEDDER.embed(texts), kind, gap, list(kinds), progress=False)
    return TaskExpertsRouter("research", tensors, [GPT4, MIXTRAL], GPT4, MIXTRAL, kinds=list(kinds),
                             features=["log_chars", "log_words"], embedder=EMBEDDER)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, default=Path("../shared/data"))
    data_dir = parser.parse_args().data_dir
    mmlu, gsm8k, mt = load_mmlu(data_dir), load_gsm8k(data_dir), load_mt_bench(data_dir)
    rb_train, rb_test = load_routerbench(data_dir, "train"), load_routerbench(data_dir, "test")
    both = {"mmlu": mmlu, "gsm8k": gsm8k}

    print("## 1. Prompt length alone (no training)")
    for name, rows in {**both, "mt_bench": mt}.items():
        print(f"  {name:<9} log(1+chars): {apgr(length_features([r.prompt for r in rows])[:, 0], rows):.3f}")

    print("## 2. One linear scorer for both sources, or one per source (cross-fitted)")
    for label, make in {
        "pooled, embedding only": lambda s: ridge_scorer(s["mmlu"] + s["gsm8k"], with_length=False),
        "pooled, + length": lambda s: ridge_scorer(s["mmlu"] + s["gsm8k"]),
        "pooled, + length, sources weighted equally": lambda s: ridge_scorer(
            s["mmlu"] + s["gsm8k"], weights=[0.5 / len(s["mmlu"])] * len(s["mmlu"]) + [0.5 / len(s["gsm8k"])] * len(s["gsm8k"])),
    }.items():
        r = crossfitted(make, both)
        print(f"  {label:<44} MMLU {r['mmlu']:.3f}  GSM8K {r['gsm8k']:.3f}")
    own = {name: crossfitted(lambda s, n=name: ridge_scorer(s[n]), {name: rows})[name] for name, rows in both.items()}
    print(f"  {'each source its own scorer, + length':<44} MMLU {own['mmlu']:.3f}  GSM8K {own['gsm8k']:.3f}")

    print("## 3. MT Bench: how far can recognising the task kind go?")
    gaps: dict[str, list[float]] = defaultdict(list)
    for r in mt:
        gaps[r.extra["category"]].append(r.scores[GPT4] - r.scores[MIXTRAL])
    cat = [r.extra["category"] for r in mt]
    own_gap = np.array([r.scores[GPT4] - r.scores[MIXTRAL] for r in mt])
    in_sample = np.array([np.mean(gaps[c]) for c in cat])
    loo = np.array([(np.sum(gaps[c]) - g) / (len(gaps[c]) - 1) for c, g in zip(cat, own_gap, strict=True)])
    print(f"  category's mean gap, in-sample (upper bound of kind-only routing): {apgr(in_sample, mt):.3f}")
    print(f"  category's mean gap, leave-one-out:                              {apgr(loo, mt):.3f}")
    print(f"  rule coding/math/extraction -> strong:                            "
          f"{apgr(np.isin(cat, ['coding', 'math', 'extraction']).astype(float), mt):.3f}")
    print(f"  oracle (each item's own gap):                                     {apgr(own_gap, mt):.3f}")

    print("## 4. Which labels transfer to MT Bench and RouterBench test? (trained on all of each source)")
    for label, rows in {"MMLU": mmlu, "GSM8K": gsm8k, "RouterBench train (research-only)": rb_train}.items():
        scorer = ridge_scorer(rows)
        print(f"  {label:<36} MT Bench {apgr(scorer([r.prompt for r in mt]), mt):.3f}  "
              f"RouterBench test {apgr(scorer([r.prompt for r in rb_test]), rb_test):.3f}")

    print("## 5. Proxy pairs from LLMRouter (9 open models, no GPT-4/Mixtral): mean of the others minus one 'weak' model")
    llm = load_llmrouter(data_dir, "train")
    models = sorted({m for r in llm for m in r.scores})
    for weak in models:
        rows = [ScoredPrompt(r.id, r.prompt, {GPT4: float(np.mean([v for m, v in r.scores.items() if m != weak])),
                                              MIXTRAL: r.scores[weak]}, "llmrouter") for r in llm if weak in r.scores]
        scorer = ridge_scorer(rows)
        held = {"MT Bench": mt, "MMLU f0": [r for r in mmlu if crossfit_fold(r.prompt) == 0],
                "GSM8K f0": [r for r in gsm8k if crossfit_fold(r.prompt) == 0]}
        print(f"  weak = {weak:<34}" + "  ".join(f"{k} {apgr(scorer([r.prompt for r in v]), v):.3f}" for k, v in held.items()))

    alpaca = load_alpaca_mixtral(data_dir)
    print("## 6. AlpacaEval judge labels (Mixtral vs GPT-4-turbo) as training data, near-duplicates of MT Bench removed")
    mt_turns = [t for r in mt for t in r.extra["turns"]]
    bad = contaminated_mask([r.prompt for r in alpaca], mt_turns, EMBEDDER.embed([r.prompt for r in alpaca]), EMBEDDER.embed(mt_turns))
    scorer = ridge_scorer([r for r, b in zip(alpaca, bad, strict=True) if not b])
    print(f"  ridge on {int((~bad).sum())} prompts: MT Bench {apgr(scorer([r.prompt for r in mt]), mt):.3f}")

    print("## 7. The shipped routers on sources they never saw")
    for name in ("mf", "task_experts"):
        router = load_router(name)
        print(f"  {name:<13} RouterBench test {apgr(router.strong_win_rate([r.prompt for r in rb_test]), rb_test):.3f}  "
              f"AlpacaEval {apgr(router.strong_win_rate([r.prompt for r in alpaca]), alpaca):.3f}")

    print("## 8. task_experts with RouterBench's ARC, MBPP and Winogrande as three more kinds (research-only)")
    held = {"MT Bench": mt, "MMLU f0": [r for r in mmlu if crossfit_fold(r.prompt) == 0],
            "GSM8K f0": [r for r in gsm8k if crossfit_fold(r.prompt) == 0]}
    evaluation = [r.prompt for rows in held.values() for r in rows] + mt_turns + [r.prompt for r in rb_test]
    kinds = {"mmlu": [r for r in mmlu if crossfit_fold(r.prompt) != 0], "gsm8k": [r for r in gsm8k if crossfit_fold(r.prompt) != 0]}
    for label, extra in (("MMLU + GSM8K", {}), ("+ RouterBench kinds", {t: [r for r in rb_train if r.source == t] for t in ("arc_challenge", "mbpp", "winograde")})):
        router = task_experts_without({**kinds, **extra}, evaluation)
        print(f"  {label:<20}" + "  ".join(f"{k} {apgr(router.strong_win_rate([r.prompt for r in v]), v):.3f}" for k, v in held.items()))


if __name__ == "__main__":
    main()
