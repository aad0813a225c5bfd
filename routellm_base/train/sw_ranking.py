"""Building the battle index of a similarity-weighted ranking router (numpy only, no training)."""

from __future__ import annotations

import numpy as np

from .battles import Battles


def sw_ranking_tensors(battles: Battles, prompt_embeddings: np.ndarray) -> dict[str, np.ndarray]:
    """The tensors of an SW ranking checkpoint: one embedding per distinct prompt, plus battles.

    ``prompt_embeddings[i]`` embeds ``battles.prompts[i]`` with the router's embedder. Stored in
    float16 to halve the index; similarities are computed in float32.
    """
    if len(prompt_embeddings) != len(battles.prompts):
        raise ValueError(
            f"{len(prompt_embeddings)} prompt embeddings for {len(battles.prompts)} battle prompts"
        )
    return {
        "prompt_embeddings": np.asarray(prompt_embeddings, dtype=np.float16),
        "battle_prompt": battles.prompt_index.astype(np.int32),
        "model_a": battles.model_a.astype(np.int16),
        "model_b": battles.model_b.astype(np.int16),
        "outcome": battles.outcome.astype(np.float32),
    }
