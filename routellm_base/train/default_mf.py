"""The recipe of the bundled default MF router, runnable end to end.

    python -m routellm_base.train.default_mf --data-dir ../shared/data --out runs/mf

Training data (all licences allow commercial use):
- RouteLLM MMLU and GSM8K correctness of GPT-4-1106-preview and Mixtral-8x7B (Apache-2.0), the
  held-out 20% (by sha1 of the prompt) excluded and kept for evaluation;
- LLMRouter train split, scores of 9 open models (MIT), all pairs as golden-label battles.
MT Bench, the held-out MMLU/GSM8K items, LLMRouter's test split and the Arena-Hard calibration
prompts are evaluation/calibration only; training prompts that duplicate any of them (exact text,
or cosine >= 0.95 on the router's embedder) are removed.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..calibration import Calibration
from ..checkpoints import save_checkpoint
from ..data import (
    GPT4,
    MIXTRAL,
    ScoredPrompt,
    crossfit_fold,
    load_gsm8k,
    load_llmrouter,
    load_mmlu,
    load_mt_bench,
)
from ..decontaminate import contaminated_mask
from ..embedders import load_embedder
from ..embedders.base import Embedder
from ..metrics import roc_auc
from ..routers.mf import MFRouter
from .battles import battles_from_scores
from .mf import MFTrainConfig, train_mf

SOURCE_WEIGHTS = {"mmlu": 1.0, "gsm8k": 1.0, "llmrouter": 0.5}
"""Each source's total weight in the loss (battles within a source share it equally): the
target pair's sources dominate, LLMRouter's 9-model battles shape the prompt projection."""


def load_arena_prompts(data_dir: str | Path) -> list[str]:
    with open(Path(data_dir) / "arena_hard" / "questions.jsonl", encoding="utf-8") as handle:
        return [json.loads(line)["prompt"] for line in handle if line.strip()]


def pair_auc(rates: np.ndarray, rows: Sequence[ScoredPrompt]) -> dict[str, float]:
    """AUC of win rate against 'GPT-4 scored higher than Mixtral', over rows where they differ."""
    diff = np.array([r.scores[GPT4] - r.scores[MIXTRAL] for r in rows])
    keep = diff != 0
    return {"auc": roc_auc(rates[keep], diff[keep] > 0), "n_decisive": int(keep.sum()), "n": len(rows)}


FOLDS = 5
"""MMLU and GSM8K are split in 5 folds by sha1 of the prompt; the shipped checkpoint holds out
fold 0 (20%), and cross-fitting trains one model per held-out fold."""


def train_fold(
    data_dir: str | Path,
    embedder: Embedder,
    config: MFTrainConfig,
    fold: int = 0,
    embeddings_cache: dict[str, np.ndarray] | None = None,
) -> tuple[MFRouter, dict[str, Any], dict[str, np.ndarray]]:
    """Train the recipe with MMLU/GSM8K fold ``fold`` held out; returns router, record, tensors."""
    started = time.time()
    mmlu, gsm8k = load_mmlu(data_dir), load_gsm8k(data_dir)
    mt_bench = load_mt_bench(data_dir)
    llmrouter_train, llmrouter_test = load_llmrouter(data_dir, "train"), load_llmrouter(data_dir, "test")
    arena = load_arena_prompts(data_dir)
    held_out = {
        "mmlu": [r for r in mmlu if crossfit_fold(r.prompt, FOLDS) == fold],
        "gsm8k": [r for r in gsm8k if crossfit_fold(r.prompt, FOLDS) == fold],
    }
    train_rows = {
        "mmlu": [r for r in mmlu if crossfit_fold(r.prompt, FOLDS) != fold],
        "gsm8k": [r for r in gsm8k if crossfit_fold(r.prompt, FOLDS) != fold],
        "llmrouter": llmrouter_train,
    }

    def embed(texts: list[str]) -> np.ndarray:
        if embeddings_cache is not None and all(t in embeddings_cache for t in texts):
            return np.stack([embeddings_cache[t] for t in texts]) if texts else np.zeros((0, embedder.dim), np.float32)
        return embedder.embed(texts)

    eval_prompts = (
        [r.prompt for rows in held_out.values() for r in rows]
        + [t for r in mt_bench for t in r.extra["turns"]]
        + [r.prompt for r in llmrouter_test]
        + arena
    )
    eval_emb = embed(eval_prompts)
    removed: dict[str, int] = {}
    for source, rows in train_rows.items():
        prompts = [r.prompt for r in rows]
        mask = contaminated_mask(prompts, eval_prompts, embed(prompts), eval_emb)
        removed[source] = int(mask.sum())
        train_rows[source] = [r for r, bad in zip(rows, mask) if not bad]

    models = [GPT4, MIXTRAL, *sorted({m for r in llmrouter_train for m in r.scores})]
    all_rows = [r for rows in train_rows.values() for r in rows]
    battles = battles_from_scores(all_rows, models=models)
    # Per-battle weights so each source carries SOURCE_WEIGHTS of the loss.
    source_of_prompt = {r.prompt: r.source for r in all_rows}
    battle_source = np.array([source_of_prompt[battles.prompts[i]] for i in battles.prompt_index])
    weights = np.zeros(len(battles), dtype=np.float32)
    for source, weight in SOURCE_WEIGHTS.items():
        sel = battle_source == source
        weights[sel] = weight / max(sel.sum(), 1) * len(battles)
    tensors, report = train_mf(embed(battles.prompts), battles, config, battle_weights=weights)

    router = MFRouter("mf", tensors, models, GPT4, MIXTRAL, embedder=embedder)
    metrics = {
        name: pair_auc(router.strong_win_rate([r.prompt for r in rows]), rows)
        for name, rows in {**{f"{k}_holdout": v for k, v in held_out.items()}, "mt_bench": mt_bench}.items()
    }
    router.calibration = Calibration.from_win_rates(
        router.strong_win_rate(arena), "Arena-Hard-Auto v0.1 questions (498 real Chatbot Arena prompts)"
    )
    training = {
        "held_out_fold": fold,
        "sources": {k: len(v) for k, v in train_rows.items()},
        "removed_as_contaminated": removed,
        "battles": len(battles),
        "battle_outcomes": battles.counts,
        "source_weights": SOURCE_WEIGHTS,
        "report": report,
        "metrics": metrics,
        "seconds": round(time.time() - started, 1),
    }
    return router, training, tensors


def build(
    data_dir: str | Path,
    out: str | Path,
    embedder: Embedder,
    config: MFTrainConfig,
    embeddings_cache: dict[str, np.ndarray] | None = None,
) -> dict[str, Any]:
    """Train with fold 0 held out and write the checkpoint folder."""
    router, training, tensors = train_fold(data_dir, embedder, config, 0, embeddings_cache)
    calibration = router.calibration
    assert calibration is not None
    # The evaluation harness reads this to score MMLU/GSM8K on the held-out fold only.
    training["trained_on_benchmarks"] = {
        name: {"held_out_percent": 100 // FOLDS} for name in ("mmlu", "gsm8k")
    }
    save_checkpoint(
        out,
        router_family="mf",
        tensors=tensors,
        models=router.models,
        strong_model=GPT4,
        weak_model=MIXTRAL,
        embedder=embedder,
        calibration=calibration,
        model_card=model_card(embedder, training, calibration),
        params={},
        training={k: v for k, v in training.items() if k != "report"},
    )
    return training


def crossfit(
    data_dir: str | Path,
    embedder: Embedder,
    config: MFTrainConfig,
    embeddings_cache: dict[str, np.ndarray] | None = None,
) -> list[dict[str, Any]]:
    """Cross-fitted APGR/CPT of the recipe on all of MMLU and GSM8K.

    Each item is scored by the fold model that never saw it (nor, after decontamination, any
    near-duplicate of it).
    """
    from ..evals import load_benchmark, quality_curve

    benchmarks = {name: load_benchmark(name, data_dir) for name in ("mmlu", "gsm8k")}
    rates = {name: np.full(len(b.rows), np.nan) for name, b in benchmarks.items()}
    for fold in range(FOLDS):
        router, _, _ = train_fold(data_dir, embedder, config, fold, embeddings_cache)
        for name, bench in benchmarks.items():
            idx = [i for i, r in enumerate(bench.rows) if crossfit_fold(r.prompt, FOLDS) == fold]
            rates[name][idx] = router.strong_win_rate([bench.rows[i].prompt for i in idx])
    results = []
    for name, bench in benchmarks.items():
        assert not np.isnan(rates[name]).any()
        curve = quality_curve(rates[name], bench.strong, bench.weak)
        results.append(
            {
                "router": f"mf recipe, {FOLDS}-fold cross-fitted",
                "benchmark": name,
                "n": len(bench.rows),
                "apgr": curve.apgr(),
                "cpt20": curve.cpt(0.2),
                "cpt50": curve.cpt(0.5),
                "cpt80": curve.cpt(0.8),
            }
        )
    return results


def model_card(embedder: Embedder, training: dict[str, Any], calibration: Calibration) -> str:
    metrics = training["metrics"]
    rows = "\n".join(
        f"| {name} | {m['n']} | {m['n_decisive']} | {m['auc']:.3f} |" for name, m in metrics.items()
    )
    shares = " · ".join(f"{int(s * 100)}% → {calibration.threshold_for_share(s):.4f}" for s in (0.1, 0.2, 0.3, 0.5, 0.7))
    return f"""# Router checkpoint: `mf` (bundled default)

Matrix-factorisation router (RouteLLM, Ong et al., ICLR 2025, section 4.2) that estimates the
probability that **gpt-4-1106-preview** (strong) answers better than
**Mixtral-8x7B-Instruct-v0.1** (weak). Embedder: `{embedder.kind}:{embedder.name}` ({embedder.dim}-d),
a model2vec static distillation of sentence-transformers/all-MiniLM-L6-v2 (Apache-2.0) that runs
with numpy alone.

## Training data and licences
| source | licence | prompts used |
| --- | --- | --- |
| RouteLLM MMLU correctness, GPT-4 vs Mixtral (80% by sha1 of the prompt) | Apache-2.0 | {training['sources']['mmlu']} |
| RouteLLM GSM8K correctness, GPT-4 vs Mixtral (80% by sha1 of the prompt) | Apache-2.0 | {training['sources']['gsm8k']} |
| LLMRouter (ulab-uiuc) train split, 9 open models, all pairs | MIT | {training['sources']['llmrouter']} |

All allow commercial use; this checkpoint is released under Apache-2.0. The paper's contamination
filter was applied, and training prompts duplicating any evaluation or calibration prompt (exact
text, or cosine >= 0.95 on this embedder) were removed: {training['removed_as_contaminated']}.
Battles: {training['battles']} golden-label battles (higher score wins, equal scores are ties kept
as half a win each): {training['battle_outcomes']}. Source weights in the loss: {training['source_weights']}.

## Metrics (items never trained on)
AUC of the win rate against "GPT-4 scored higher than Mixtral" on items where they differ.

| set | items | decisive | AUC |
| --- | --- | --- | --- |
{rows}

MT Bench is entirely out of training. These figures describe ranking quality only; see
`docs/results.md` for APGR/CPT once the evaluation harness computes them.

## Calibration
Reference prompts: {calibration.reference}, {calibration.n_prompts} prompts (Apache-2.0).
strong share → threshold: {shares}.

## Reproduce
    pip install torch==2.13.0 && pip install -e '.[train]'
    python -m routellm_base.train.default_mf --data-dir ../shared/data --out runs/mf
"""


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default="../shared/data")
    parser.add_argument("--out", help="write the checkpoint (fold 0 held out) here")
    parser.add_argument("--crossfit", action="store_true", help="print cross-fitted MMLU/GSM8K metrics of the recipe")
    parser.add_argument("--embedder", default="minilm-l6-static-256")
    parser.add_argument("--embeddings-cache", help="(prompts.json, embeddings.npy) pair, comma separated")
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--weight-decay", type=float, default=1e-4)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    cache = None
    if args.embeddings_cache:
        prompts_path, emb_path = args.embeddings_cache.split(",")
        prompts = json.loads(Path(prompts_path).read_text())
        cache = dict(zip(prompts, np.load(emb_path)))
    config = MFTrainConfig(dim=args.dim, epochs=args.epochs, lr=args.lr, weight_decay=args.weight_decay, seed=args.seed)
    embedder = load_embedder(args.embedder)
    if args.out:
        training = build(args.data_dir, args.out, embedder, config, cache)
        print(json.dumps({k: training[k] for k in ("sources", "removed_as_contaminated", "battles", "metrics", "seconds")}, indent=1))
    if args.crossfit:
        print(json.dumps(crossfit(args.data_dir, embedder, config, cache), indent=1))
    if not args.out and not args.crossfit:
        parser.error("give --out, --crossfit or both")


if __name__ == "__main__":
    main()
