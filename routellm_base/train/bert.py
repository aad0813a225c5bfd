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
from ..routers.bert import (
    BASE_WEIGHTS_FILE,
    BERT_LABELS,
    build_classifier,
    encode_prompts,
    resolve_base_path,
)
from .battles import Battles
from .loop import fit, fit_report, pair_rows
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
    truncation: str = "head"
    """How prompts over ``max_length`` tokens are cut (:data:`routers.bert.TRUNCATIONS`)."""
    validation_fraction: float = 0.1
    patience: int = 1
    seed: int = 0


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
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    rows = pair_rows(battles, strong, weak, "bert", config.validation_fraction, rng)
    texts = battles.prompts

    base_path = resolve_base_path(config.base_model, config.base_path)
    base_sha256 = (
        sha256_file(base_path / BASE_WEIGHTS_FILE)
        if (base_path / BASE_WEIGHTS_FILE).is_file()
        else None
    )
    tokenizer, model = build_classifier(base_path, pretrained=True, progress=progress)
    optimiser = torch.optim.AdamW(
        model.parameters(), lr=config.lr, weight_decay=config.weight_decay
    )
    y = torch.from_numpy(rows.labels)

    def batch_loss(batch: np.ndarray) -> Any:
        enc = encode_prompts(
            tokenizer,
            [texts[p] for p in rows.prompt_of[batch]],
            config.max_length,
            config.truncation,
        )
        return torch.nn.functional.cross_entropy(
            model(**enc), y[torch.from_numpy(batch)], reduction="sum"
        )

    result = fit(
        model=model,
        optimiser=optimiser,
        batch_loss=batch_loss,
        snapshot=lambda: {
            k: v.detach().cpu().float().numpy().copy() for k, v in model.state_dict().items()
        },
        train_rows=rows.train_rows,
        val_rows=rows.val_rows,
        epochs=config.epochs,
        batch_size=config.batch_size,
        patience=config.patience,
        rng=rng,
        desc="bert steps",
        progress=progress,
    )
    report = {
        "config": asdict(config),
        "base_sha256": base_sha256,
        "labels": list(BERT_LABELS),
        **fit_report(result, rows, BERT_LABELS),
    }
    return result.state, report
