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

from .battles import Battles, pair_outcomes


def pair_labels(battles: Battles, strong: str, weak: str) -> tuple[np.ndarray, np.ndarray]:
    """(battle indices, class labels) for the battles between ``strong`` and ``weak``.

    The outcome is read from the strong model's side whichever side it sat on: strong wins -> 0,
    tie -> 1, weak wins -> 2.
    """
    idx, strong_score = pair_outcomes(battles, strong, weak)
    labels = np.full(len(idx), 1, dtype=np.int64)
    labels[strong_score == 1.0] = 0
    labels[strong_score == 0.0] = 2
    return idx, labels


@dataclass(frozen=True)
class PairRows:
    """The reference pair's battles as classifier rows (labels and prompts), split by prompt."""

    labels: np.ndarray
    prompt_of: np.ndarray
    train_rows: np.ndarray
    val_rows: np.ndarray


def pair_rows(
    battles: Battles,
    strong: str,
    weak: str,
    family: str,
    validation_fraction: float,
    rng: np.random.Generator,
) -> PairRows:
    """:func:`pair_labels` and :func:`split_by_prompt`; a pair that never battled is an error."""
    idx, labels = pair_labels(battles, strong, weak)
    if len(idx) == 0:
        raise ValueError(
            f"no battle between {strong!r} and {weak!r}: the {family} router learns one pair"
        )
    prompt_of = battles.prompt_index[idx]
    train_rows, val_rows = split_by_prompt(
        prompt_of, len(battles.prompts), validation_fraction, rng
    )
    return PairRows(labels, prompt_of, train_rows, val_rows)


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


def frequency_loss(
    labels: np.ndarray, train_rows: np.ndarray, scored_rows: np.ndarray, n_labels: int
) -> float:
    """Mean cross-entropy (nats) on ``scored_rows`` of a prompt-blind predictor: every battle gets
    the training rows' label frequencies (add-one smoothed, so a label unseen in training is not
    an infinite loss). The loss a classifier must beat to have learned anything from prompts."""
    counts = np.bincount(labels[train_rows], minlength=n_labels) + 1.0
    return float(-np.log(counts / counts.sum())[labels[scored_rows]].mean())


def fit_report(result: FitResult, rows: PairRows, label_names: tuple[str, ...]) -> dict[str, Any]:
    """The report fields every classifier trainer records: label counts, best epoch, split sizes,
    and the prompt-blind loss on the rows the kept epoch was chosen on (validation rows, or the
    training rows when there are none)."""
    scored = rows.val_rows if len(rows.val_rows) else rows.train_rows
    return {
        "label_counts": {name: int((rows.labels == i).sum()) for i, name in enumerate(label_names)},
        "best_epoch": result.best_epoch,
        "best_validation_loss": result.best_validation_loss,
        "prompt_blind_loss": frequency_loss(rows.labels, rows.train_rows, scored, len(label_names)),
        "validation_loss_history": result.history,
        "n_battles_train": len(rows.train_rows),
        "n_battles_validation": len(rows.val_rows),
    }
