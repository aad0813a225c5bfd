"""Flagging training prompts that duplicate evaluation prompts (exactly or nearly)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

NEAR_DUPLICATE_COSINE = 0.95


def near_duplicate_cosine(given: float | None) -> float:
    """A command's ``--cosine``, or :data:`NEAR_DUPLICATE_COSINE` when it was not given (its
    default is None, so that giving it without evaluation prompts can be refused)."""
    return NEAR_DUPLICATE_COSINE if given is None else given


def _normalise(text: str) -> str:
    return " ".join(text.lower().split())


def contaminated_mask(
    train_prompts: Sequence[str],
    eval_prompts: Sequence[str],
    train_embeddings: np.ndarray | None = None,
    eval_embeddings: np.ndarray | None = None,
    threshold: float = NEAR_DUPLICATE_COSINE,
    chunk: int = 4096,
) -> np.ndarray:
    """True for each training prompt that matches an evaluation prompt.

    A match is the same text up to case and whitespace, or (when embeddings from the router's
    embedder are given, rows L2-normalised) cosine similarity >= ``threshold``.
    """
    eval_texts = {_normalise(p) for p in eval_prompts}
    mask = np.array([_normalise(p) in eval_texts for p in train_prompts], dtype=bool)
    if train_embeddings is not None and eval_embeddings is not None and len(eval_embeddings):
        ev = np.asarray(eval_embeddings, dtype=np.float32)
        for start in range(0, len(train_prompts), chunk):
            block = np.asarray(train_embeddings[start : start + chunk], dtype=np.float32)
            mask[start : start + chunk] |= (block @ ev.T).max(axis=1) >= threshold
    return mask
