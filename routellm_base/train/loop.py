"""The training loop shared by the torch classifiers (``bert``, ``causal_llm``).

Seeded shuffles, a tqdm bar, per-epoch validation loss, the best epoch kept and early stopping
after ``patience`` epochs without improvement.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np


def split_by_prompt(
    prompt_of: np.ndarray, n_prompts: int, fraction: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Indices of training and validation rows, split by prompt so no prompt is on both sides.

    On a set so small that every prompt lands in validation, everything is used for training.
    """
    val_prompts = np.less(rng.random(n_prompts), fraction)
    is_val = val_prompts[prompt_of]
    if is_val.all():
        is_val[:] = False
    return np.flatnonzero(~is_val), np.flatnonzero(is_val)


@dataclass
class FitResult:
    state: dict[str, np.ndarray]
    best_epoch: int
    best_validation_loss: float
    history: list[float]


def fit(
    *,
    model: Any,
    optimiser: Any,
    batch_loss: Callable[[np.ndarray], Any],
    snapshot: Callable[[], dict[str, np.ndarray]],
    train_rows: np.ndarray,
    val_rows: np.ndarray,
    epochs: int,
    batch_size: int,
    patience: int,
    rng: np.random.Generator,
    desc: str,
    progress: bool,
) -> FitResult:
    """Minimise ``batch_loss(rows)`` (a summed loss tensor) with ``optimiser``; keep the best epoch.

    Without validation rows the epoch's mean training loss stands in for the validation loss.
    """
    import torch

    def validation_loss() -> float:
        model.eval()
        total = 0.0
        with torch.no_grad():
            for start in range(0, len(val_rows), batch_size):
                total += float(batch_loss(val_rows[start : start + batch_size]))
        model.train()
        return total / len(val_rows)

    bar: Any = None
    if progress:
        try:
            from tqdm import tqdm

            bar = tqdm(total=epochs * math.ceil(len(train_rows) / batch_size), desc=desc)
        except ImportError:
            bar = None
    best_loss, best_epoch, best_state = math.inf, -1, None
    history: list[float] = []
    model.train()
    try:
        for epoch in range(epochs):
            order = train_rows[rng.permutation(len(train_rows))]
            running = 0.0
            for start in range(0, len(order), batch_size):
                rows = order[start : start + batch_size]
                optimiser.zero_grad()
                loss = batch_loss(rows) / len(rows)
                loss.backward()
                optimiser.step()
                running += float(loss.detach()) * len(rows)
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(loss=f"{float(loss.detach()):.3f}")
            val_loss = validation_loss() if len(val_rows) else running / max(len(order), 1)
            history.append(val_loss)
            if val_loss < best_loss - 1e-5:
                best_loss, best_epoch, best_state = val_loss, epoch, snapshot()
            elif epoch - best_epoch >= patience:
                break
    finally:
        if bar is not None:
            bar.close()
    assert best_state is not None
    return FitResult(best_state, best_epoch, best_loss, history)
