"""A synthetic pool whose answer is known: code prompts, where model ``coder`` is right, and
poetry prompts, where ``poet`` is; ``generalist`` is right half the time on both."""

from __future__ import annotations

import numpy as np

from routellm_base.pool.data import PoolData

CODE = [
    "python",
    "function",
    "compile",
    "bug",
    "variable",
    "loop",
    "class",
    "recursion",
    "array",
    "parser",
]
POEM = [
    "poem",
    "sonnet",
    "rhyme",
    "verse",
    "moonlight",
    "love",
    "autumn",
    "stanza",
    "metaphor",
    "ballad",
]
MODELS = ["coder", "poet", "generalist"]


def prompts(n: int, seed: int) -> tuple[list[str], np.ndarray]:
    """``n`` prompts, alternating code and poetry, and their topic (0 code, 1 poetry)."""
    rng = np.random.default_rng(seed)
    texts, topic = [], []
    for i in range(n):
        words = CODE if i % 2 == 0 else POEM
        texts.append("write " + " ".join(rng.choice(words, size=5)) + f" number {seed}-{i}")
        topic.append(i % 2)
    return texts, np.array(topic)


def scores(topic: np.ndarray, seed: int) -> np.ndarray:
    """(n, 3) 0/1 scores: coder right on code (90%), poet on poetry (90%), generalist 50%."""
    rng = np.random.default_rng(seed)
    n = len(topic)
    out = np.empty((n, 3))
    out[:, 0] = rng.random(n) < np.where(topic == 0, 0.9, 0.1)
    out[:, 1] = rng.random(n) < np.where(topic == 1, 0.9, 0.1)
    out[:, 2] = rng.random(n) < 0.5
    return out


def pool_data(n: int = 300, seed: int = 0) -> PoolData:
    texts, topic = prompts(n, seed)
    return PoolData(texts, list(MODELS), scores(topic, seed + 1), groups=[str(t) for t in topic])
