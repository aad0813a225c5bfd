"""Training the matrix-factorisation router with torch (the ``train`` extra)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from ..errors import MissingDependencyError
from ..progress import progress_bar
from .battles import Battles


@dataclass
class MFTrainConfig:
    dim: int = 128
    epochs: int = 40
    batch_size: int = 2048
    lr: float = 3e-3
    weight_decay: float = 1e-4
    validation_fraction: float = 0.1
    patience: int = 4
    seed: int = 0


def _torch() -> Any:
    try:
        import torch
    except ImportError as exc:
        raise MissingDependencyError(
            "training needs torch: pip install 'langchain-routellm[train]'"
        ) from exc
    return torch


def pair_mean_loss(
    battles: Battles, weights: np.ndarray, train: np.ndarray, scored: np.ndarray
) -> float:
    """Weighted logistic loss (nats) on the ``scored`` battles (a boolean mask) of a prompt-blind
    predictor: P(model_a wins) is the weighted share of the two models' ``train`` battles that
    model_a won (ties half), smoothed by one win and one loss, so an unseen pair reads 0.5. The
    loss an mf router must beat to have learned anything from prompts."""
    wins: dict[tuple[int, int], float] = {}
    total: dict[tuple[int, int], float] = {}
    for a, b, y, w in zip(
        battles.model_a[train], battles.model_b[train], battles.outcome[train], weights[train]
    ):
        for key, won in (((int(a), int(b)), y), ((int(b), int(a)), 1.0 - y)):
            wins[key] = wins.get(key, 0.0) + float(w) * float(won)
            total[key] = total.get(key, 0.0) + float(w)
    a, b = battles.model_a[scored], battles.model_b[scored]
    p = np.array(
        [
            (wins.get((int(i), int(j)), 0.0) + 1.0) / (total.get((int(i), int(j)), 0.0) + 2.0)
            for i, j in zip(a, b)
        ]
    )
    y, w = battles.outcome[scored].astype(np.float64), weights[scored].astype(np.float64)
    return float(np.sum(w * -(y * np.log(p) + (1.0 - y) * np.log(1.0 - p))) / w.sum())


def train_mf(
    prompt_embeddings: np.ndarray,
    battles: Battles,
    config: MFTrainConfig | None = None,
    battle_weights: np.ndarray | None = None,
    progress: bool = True,
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Fit s(m, q) = w . (normalize(v_m) * (W q + b)) to battles by (soft-label) logistic loss.

    The validation split is by prompt, and training stops after ``patience`` epochs without
    improvement of the validation loss; the best epoch's weights are returned with a report.
    """
    torch = _torch()
    config = config or MFTrainConfig()
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    n_prompts, text_dim = prompt_embeddings.shape
    val_prompts = np.less(rng.random(n_prompts), config.validation_fraction)
    is_val = val_prompts[battles.prompt_index]
    weights = (
        np.ones(len(battles), dtype=np.float32)
        if battle_weights is None
        else battle_weights.astype(np.float32)
    )

    emb = torch.from_numpy(np.asarray(prompt_embeddings, dtype=np.float32))
    tensors = {
        "p": torch.from_numpy(battles.prompt_index),
        "a": torch.from_numpy(battles.model_a),
        "b": torch.from_numpy(battles.model_b),
        "y": torch.from_numpy(battles.outcome.astype(np.float32)),
        "w": torch.from_numpy(weights),
    }
    train_idx = torch.from_numpy(np.flatnonzero(~is_val))
    val_idx = torch.from_numpy(np.flatnonzero(is_val))

    n_models = len(battles.models)
    model_emb = torch.nn.Parameter(torch.randn(n_models, config.dim) * 0.1)
    proj = torch.nn.Linear(text_dim, config.dim)
    classifier = torch.nn.Parameter(torch.randn(config.dim) * 0.1)
    params = [model_emb, classifier, *proj.parameters()]
    optimiser = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)

    def logits(idx: Any) -> Any:
        x = proj(emb[tensors["p"][idx]])
        v = torch.nn.functional.normalize(model_emb, dim=1)
        diff = v[tensors["a"][idx]] - v[tensors["b"][idx]]
        return (x * diff * classifier).sum(dim=1)

    def loss_of(idx: Any) -> Any:
        loss = torch.nn.functional.binary_cross_entropy_with_logits(
            logits(idx), tensors["y"][idx], reduction="none"
        )
        w = tensors["w"][idx]
        return (loss * w).sum() / w.sum()

    iterator = progress_bar(range(config.epochs), enabled=progress, desc="mf epochs")
    best: tuple[float, int, dict[str, np.ndarray] | None] = (math.inf, -1, None)
    history = []
    for epoch in iterator:
        order = train_idx[torch.randperm(len(train_idx))]
        for start in range(0, len(order), config.batch_size):
            batch = order[start : start + config.batch_size]
            optimiser.zero_grad()
            loss = loss_of(batch)
            loss.backward()
            optimiser.step()
        with torch.no_grad():
            # With no validation split, the whole training set's loss (not the last batch's).
            val_loss = float(loss_of(val_idx if len(val_idx) else train_idx))
        history.append(val_loss)
        if val_loss < best[0] - 1e-5:
            state = {
                "model_embeddings": model_emb.detach().clone().numpy(),
                "proj_weight": proj.weight.detach().clone().numpy(),
                "proj_bias": proj.bias.detach().clone().numpy(),
                "classifier_weight": classifier.detach().clone().numpy(),
            }
            best = (val_loss, epoch, state)
        elif epoch - best[1] >= config.patience:
            break
    assert best[2] is not None
    report = {
        "config": asdict(config),
        "best_epoch": best[1],
        "best_validation_loss": best[0],
        "prompt_blind_loss": pair_mean_loss(
            battles, weights, ~is_val, is_val if is_val.any() else ~is_val
        ),
        "validation_loss_history": history,
        "n_battles_train": len(train_idx),
        "n_battles_validation": len(val_idx),
    }
    return best[2], report
