"""Chat routing quality: every idea of docs/results.md's chat section, under one protocol.

    python scripts/chat_experiments.py --data-dir ../shared/data [--minilm] [--mf-seeds 4]

Protocol. Training data: MMLU and GSM8K folds 1-4 (GPT-4-1106 vs Mixtral correctness) and RMB's
open-chat pairs in folds 1-4 (split by sha1 of the prompt, :mod:`routellm_base.data.rmb`), every
training prompt decontaminated against every evaluation prompt (exact, or cosine >= 0.95).
Scored, never trained on: MT Bench (72; GPT-4 grades, GPT-4 vs Mixtral), RMB fold 0 (266
prompts; top tier vs mid tier), MMLU fold 0 (2,852), GSM8K fold 0 (238) and AlpacaEval (805;
GPT-4-turbo pairwise judge, GPT-4-1106 vs Mixtral, a source no row trains on). Each column
prints the 200-seed random band first. RMB has no licence (research-only) and AlpacaEval is
CC BY-NC: nothing here is shipped.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from quality_experiments import load_alpaca_mixtral  # noqa: E402

from routellm_base import load_router  # noqa: E402
from routellm_base.data import (  # noqa: E402
    GPT4,
    MID_TIER,
    MIXTRAL,
    TOP_TIER,
    ScoredPrompt,
    load_rmb_pairs,
    rmb_split,
)
from routellm_base.embedders import load_embedder  # noqa: E402
from routellm_base.evals import quality_curve, random_baseline  # noqa: E402
from routellm_base.routers.task_experts import LENGTH_FEATURES, TaskExpertsRouter, length_features  # noqa: E402
from routellm_base.train.chat_task_experts import KINDS  # noqa: E402
from routellm_base.train.recipe import cached_embed, split_fold  # noqa: E402
from routellm_base.train.task_experts import (  # noqa: E402
    TaskExpertsTrainConfig,
    fit_ridge,
    scored_task_rows,
    train_task_experts,
)

Scorer = Callable[[list[str]], np.ndarray]
PAIR = {"mt_bench": (GPT4, MIXTRAL), "rmb": (TOP_TIER, MID_TIER), "mmlu": (GPT4, MIXTRAL), "gsm8k": (GPT4, MIXTRAL),
        "alpaca": (GPT4, MIXTRAL)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default="../shared/data")
    parser.add_argument("--minilm", action="store_true", help="also rerun the recipe on full all-MiniLM-L6-v2 embeddings (torch, slow)")
    parser.add_argument("--mf-seeds", type=int, default=4, help="seeds of the joint many-model MF (torch); 0 skips it")
    args = parser.parse_args()
    data_dir = Path(args.data_dir)
    static = load_embedder("minilm-l6-static-256")
    embed = cached_embed(static, None)
    split = split_fold(data_dir, 0, embed, with_llmrouter=True, with_rmb=True)
    sets: dict[str, list[ScoredPrompt]] = {
        "mt_bench": split.mt_bench, "rmb": split.held_out["rmb"], "mmlu": split.held_out["mmlu"],
        "gsm8k": split.held_out["gsm8k"], "alpaca": load_alpaca_mixtral(data_dir),
    }

    def show(label: str, scorer: Scorer) -> None:
        cells = []
        for name, rows in sets.items():
            strong, weak = PAIR[name]
            curve = quality_curve(scorer([r.prompt for r in rows]), np.array([r.scores[strong] for r in rows]),
                                  np.array([r.scores[weak] for r in rows]))
            cells.append(f"{curve.apgr():.3f}")
        print(f"| {label} | " + " | ".join(cells) + " |", flush=True)

    bands = []
    for name, rows in sets.items():
        strong, weak = PAIR[name]
        mean, std, _ = random_baseline(np.array([r.scores[strong] for r in rows]), np.array([r.scores[weak] for r in rows]))
        bands.append(f"{mean:.3f} ± {std:.3f}")
    print("| scorer | MT Bench (72) | RMB fold 0 (266) | MMLU fold 0 | GSM8K fold 0 | AlpacaEval (805) |")
    print("| --- | --- | --- | --- | --- | --- |")
    print("| random, 200 seeds | " + " | ".join(bands) + " |")
    for name in ("mf", "task_experts"):
        router = load_router(name)
        show(f"`{name}` (bundled, commercial data only)", router.strong_win_rate)
    show("prompt length alone", lambda texts: length_features(texts)[:, 0])

    chat = split.train["rmb"]
    chat_texts = [r.prompt for r in chat]
    chat_gap = np.array([r.scores[TOP_TIER] - r.scores[MID_TIER] for r in chat])
    battles = np.array([r.extra["battles"] for r in chat], dtype=np.float64)

    def feats(texts: list[str], emb: Callable[[list[str]], np.ndarray] = embed) -> np.ndarray:
        return np.hstack([np.asarray(emb(texts), np.float64), length_features(texts)])

    for penalty in (10.0, 30.0):
        w, b = fit_ridge(feats(chat_texts), chat_gap, penalty, weights=battles)
        show(f"RMB only: ridge on the tier gap (penalty {penalty:g})", lambda t, w=w, b=b: feats(t) @ w + b)
    from sklearn.linear_model import LogisticRegression

    cats = sorted({r.extra["category"] for r in chat})
    cat_index = np.array([cats.index(r.extra["category"]) for r in chat])
    rate = np.array([np.average(chat_gap[cat_index == k], weights=battles[cat_index == k]) for k in range(len(cats))])
    gate = LogisticRegression(C=10.0, max_iter=5000).fit(embed(chat_texts), cat_index, sample_weight=battles)
    show("RMB only: gate over its 12 categories, each category's mean gap", lambda t: gate.predict_proba(embed(t)) @ rate[gate.classes_])
    train_emb = np.asarray(embed(chat_texts), np.float64)

    def knn(texts: list[str], k: int = 100) -> np.ndarray:
        near = np.argsort(-(np.asarray(embed(texts), np.float64) @ train_emb.T), axis=1)[:, :k]
        return np.array([np.average(chat_gap[i], weights=battles[i]) for i in near])

    show("RMB only: kNN (k = 100, cosine)", knn)

    if args.mf_seeds:
        for label, pair in (("GPT-4-1106 vs Mixtral", (GPT4, MIXTRAL)), ("claude-3-opus vs Mixtral", ("claude-3-opus-20240229", MIXTRAL))):
            runs = [joint_mf(split, data_dir, embed, seed, pair) for seed in range(args.mf_seeds)]
            show_many(f"joint many-model MF (RMB's 12 models + GPT-4/Mixtral), {label}, seeds 0-{args.mf_seeds - 1}: mean [min, max]", runs, sets)

    kinds = {"mmlu": split.train["mmlu"], "gsm8k": split.train["gsm8k"]}
    texts, kind, gap = scored_task_rows(kinds, GPT4, MIXTRAL)
    all_texts = texts + chat_texts
    all_kind = np.concatenate([kind, np.full(len(chat_texts), 2)])
    all_gap = np.concatenate([gap, chat_gap])

    def joint(config: TaskExpertsTrainConfig, centred: tuple[str, ...], extra: dict | None = None,
              emb: Callable[[list[str]], np.ndarray] = embed, embedder=static) -> Scorer:
        t, k, g, names = all_texts, all_kind, all_gap, list(KINDS)
        if extra:
            for name, (xt, xg) in extra.items():
                t, k, g, names = t + xt, np.concatenate([k, np.full(len(xt), len(names))]), np.concatenate([g, xg]), names + [name]
        tensors, _ = train_task_experts(t, emb(t), k, g, names, config, progress=False, centred=centred)
        router = TaskExpertsRouter("x", tensors, [GPT4, MIXTRAL], GPT4, MIXTRAL, embedder=embedder, kinds=names,
                                   features=list(LENGTH_FEATURES))
        return router.strong_win_rate

    show("task_experts, MMLU + GSM8K + RMB chat, raw chat gaps, frequency gate",
         joint(TaskExpertsTrainConfig(), ()))
    show("task_experts, chat gaps centred, frequency gate", joint(TaskExpertsTrainConfig(), ("chat",)))
    for c in (1.0, 10.0, 100.0):
        show(f"task_experts, chat gaps centred, balanced gate, C = {c:g}",
             joint(TaskExpertsTrainConfig(gate_class_balance=1.0, gate_c=c), ("chat",)))
    show("task_experts, centred, gate balance 0.5, C = 10 (the chat_task_experts recipe)", joint(TaskExpertsTrainConfig(gate_class_balance=0.5, gate_c=10.0), ("chat",)))
    llm = split.train["llmrouter"]
    means = {m: np.mean([r.scores[m] for r in llm]) for m in llm[0].scores}
    order = sorted(means, key=lambda m: -means[m])
    llm_gap = np.array([np.mean([r.scores[m] for m in order[:3]]) - np.mean([r.scores[m] for m in order[-3:]]) for r in llm])
    show("the recipe + an LLMRouter kind (its 3 best minus 3 worst models, centred)",
         joint(TaskExpertsTrainConfig(gate_class_balance=0.5, gate_c=10.0), ("chat", "llmrouter"),
               {"llmrouter": ([r.prompt for r in llm], llm_gap)}))
    if args.minilm:
        # A full transformer pass per prompt on 2 CPU cores: MMLU's training items are subsampled
        # to 3,000 (seed 0), and the static-embedder row is rerun on the same subsample beside it.
        keep = np.zeros(len(all_texts), bool)
        mmlu_rows = np.flatnonzero(all_kind == 0)
        keep[np.random.default_rng(0).choice(mmlu_rows, size=min(3000, len(mmlu_rows)), replace=False)] = True
        keep[all_kind != 0] = True
        all_texts = [t for t, k in zip(all_texts, keep) if k]
        all_kind, all_gap = all_kind[keep], all_gap[keep]
        minilm = load_embedder("sentence_transformer")
        memb = cached_embed(minilm, None)
        config = TaskExpertsTrainConfig(gate_class_balance=0.5, gate_c=10.0)
        show("the recipe, MMLU training subsampled to 3,000, static embedder", joint(config, ("chat",)))
        show("the recipe, MMLU training subsampled to 3,000, full all-MiniLM-L6-v2 (torch at routing)",
             joint(config, ("chat",), emb=memb, embedder=minilm))
        w, b = fit_ridge(feats(chat_texts, memb), chat_gap, 30.0, weights=battles)
        show("RMB only: ridge on the tier gap (penalty 30), full all-MiniLM-L6-v2", lambda t: feats(t, memb) @ w + b)


def joint_mf(split, data_dir: Path, embed, seed: int, pair: tuple[str, str]) -> Scorer:
    """RouteLLM's MF over every model of RMB plus the MMLU/GSM8K pair, one model id per distinct model."""
    import torch

    torch.manual_seed(seed)
    same = {"Mixtral-8x7B-Instruct-v0.1": MIXTRAL}
    train_prompts = {r.prompt for r in split.train["rmb"]}
    battles = [(p.prompt, same.get(p.winner, p.winner), same.get(p.loser, p.loser), 1.0)
               for p in rmb_split(load_rmb_pairs(data_dir), "train") if p.prompt in train_prompts]
    for source in ("mmlu", "gsm8k"):
        battles += [(r.prompt, GPT4, MIXTRAL, 0.5 + 0.5 * (r.scores[GPT4] - r.scores[MIXTRAL])) for r in split.train[source]]
    models = sorted({b[1] for b in battles} | {b[2] for b in battles})
    prompts = sorted({b[0] for b in battles})
    x = torch.tensor(np.asarray(embed(prompts)), dtype=torch.float32)
    p_index = {p: i for i, p in enumerate(prompts)}
    m_index = {m: i for i, m in enumerate(models)}
    pi = torch.tensor([p_index[b[0]] for b in battles])
    a = torch.tensor([m_index[b[1]] for b in battles])
    b_ = torch.tensor([m_index[b[2]] for b in battles])
    y = torch.tensor([b[3] for b in battles], dtype=torch.float32)
    proj = torch.nn.Linear(x.shape[1], 16)
    emb = torch.nn.Embedding(len(models), 16)
    bias = torch.nn.Embedding(len(models), 1)
    torch.nn.init.normal_(emb.weight, std=0.1)
    torch.nn.init.zeros_(bias.weight)
    opt = torch.optim.Adam([*proj.parameters(), *emb.parameters(), *bias.parameters()], lr=3e-3, weight_decay=1e-4)
    for _ in range(30):
        for idx in torch.randperm(len(y)).split(2048):
            h = proj(x[pi[idx]])
            logit = (emb(a[idx]) * h).sum(-1) + bias(a[idx]).squeeze(-1) - (emb(b_[idx]) * h).sum(-1) - bias(b_[idx]).squeeze(-1)
            loss = torch.nn.functional.binary_cross_entropy_with_logits(logit, y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    direction = (emb.weight[m_index[pair[0]]] - emb.weight[m_index[pair[1]]]).detach()

    def score(texts: list[str]) -> np.ndarray:
        with torch.no_grad():
            return (proj(torch.tensor(np.asarray(embed(texts)), dtype=torch.float32)) @ direction).numpy()

    return score


def show_many(label: str, scorers: list[Scorer], sets: dict[str, list[ScoredPrompt]]) -> None:
    cells = []
    for name, rows in sets.items():
        strong, weak = PAIR[name]
        s, w = np.array([r.scores[strong] for r in rows]), np.array([r.scores[weak] for r in rows])
        values = [quality_curve(f([r.prompt for r in rows]), s, w).apgr() for f in scorers]
        cells.append(f"{np.mean(values):.3f} [{min(values):.3f}, {max(values):.3f}]")
    print(f"| {label} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
