"""Fine-tuning the BERT classifier router (all-MiniLM-L6-v2 + a 3-class head) with torch.

Only battles of the reference pair are used (either order). Each becomes a label from the strong
model's point of view: 0 strong wins, 1 tie, 2 weak wins (:data:`routers.bert.BERT_LABELS`).
The defaults are small enough for a CPU; raise ``epochs``/``max_length`` on a GPU.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from ..hashing import sha256_file
from ..routers.bert import BASE_WEIGHTS_FILE, BERT_LABELS, build_classifier, resolve_base_path
from .battles import Battles
from .loop import fit, split_by_prompt
from .mf import _torch


@dataclass
class BertTrainConfig:
    base_model: str = "all-MiniLM-L6-v2"
    """Name recorded in the checkpoint; the packaged copy is used unless ``base_path`` is set."""
    base_path: str | None = None
    epochs: int = 2
    batch_size: int = 16
    lr: float = 3e-5
    weight_decay: float = 0.01
    max_length: int = 128
    validation_fraction: float = 0.1
    patience: int = 1
    seed: int = 0


def pair_labels(battles: Battles, strong: str, weak: str) -> tuple[np.ndarray, np.ndarray]:
    """(battle indices, class labels) for the battles between ``strong`` and ``weak``.

    The outcome is read from the strong model's side whichever side it sat on: strong wins -> 0,
    tie -> 1, weak wins -> 2.
    """
    if strong == weak:
        raise ValueError("strong and weak model are the same")
    for model in (strong, weak):
        if model not in battles.models:
            raise ValueError(f"model {model!r} is in no battle; models: {battles.models}")
    s, w = battles.models.index(strong), battles.models.index(weak)
    strong_first = (battles.model_a == s) & (battles.model_b == w)
    strong_second = (battles.model_a == w) & (battles.model_b == s)
    idx = np.flatnonzero(strong_first | strong_second)
    strong_score = np.where(strong_first[idx], battles.outcome[idx], 1.0 - battles.outcome[idx])
    labels = np.full(len(idx), 1, dtype=np.int64)
    labels[strong_score == 1.0] = 0
    labels[strong_score == 0.0] = 2
    return idx, labels


def train_bert(
    battles: Battles,
    strong: str,
    weak: str,
    config: BertTrainConfig | None = None,
    progress: bool = True,
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Fine-tune encoder and head by cross-entropy on the reference pair's battles.

    The validation split is by prompt; the best epoch by validation loss is kept, and training
    stops after ``patience`` epochs without improvement. Returns the state dict (numpy float32,
    ``encoder.*`` and ``head.*``) and a report.
    """
    torch = _torch()
    config = config or BertTrainConfig()
    idx, labels = pair_labels(battles, strong, weak)
    if len(idx) == 0:
        raise ValueError(f"no battle between {strong!r} and {weak!r}: the bert router learns one pair")
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    prompt_of = battles.prompt_index[idx]
    texts = battles.prompts
    train_rows, val_rows = split_by_prompt(prompt_of, len(texts), config.validation_fraction, rng)

    base_path = resolve_base_path(config.base_model, config.base_path)
    base_sha256 = sha256_file(base_path / BASE_WEIGHTS_FILE) if (base_path / BASE_WEIGHTS_FILE).is_file() else None
    tokenizer, model = build_classifier(base_path, pretrained=True)
    optimiser = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    y = torch.from_numpy(labels)

    def batch_loss(rows: np.ndarray) -> Any:
        enc = tokenizer([texts[p] for p in prompt_of[rows]], padding=True, truncation=True,
                        max_length=config.max_length, return_tensors="pt")
        enc = {k: v for k, v in enc.items() if k in ("input_ids", "attention_mask", "token_type_ids")}
        return torch.nn.functional.cross_entropy(model(**enc), y[torch.from_numpy(rows)], reduction="sum")

    result = fit(
        model=model, optimiser=optimiser, batch_loss=batch_loss,
        snapshot=lambda: {k: v.detach().cpu().float().numpy().copy() for k, v in model.state_dict().items()},
        train_rows=train_rows, val_rows=val_rows, epochs=config.epochs, batch_size=config.batch_size,
        patience=config.patience, rng=rng, desc="bert steps", progress=progress,
    )
    report = {
        "config": asdict(config),
        "base_sha256": base_sha256,
        "labels": list(BERT_LABELS),
        "label_counts": {name: int((labels == i).sum()) for i, name in enumerate(BERT_LABELS)},
        "best_epoch": result.best_epoch,
        "best_validation_loss": result.best_validation_loss,
        "validation_loss_history": result.history,
        "n_battles_train": len(train_rows),
        "n_battles_validation": len(val_rows),
    }
    return result.state, report
