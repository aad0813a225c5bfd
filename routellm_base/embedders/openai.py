"""OpenAI embeddings. Sends routing text to OpenAI: used only when the user configures it."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import MissingDependencyError
from .base import DEFAULT_CACHE_SIZE, Embedder, l2_normalise

OPENAI_DIMS = {"text-embedding-3-small": 1536, "text-embedding-3-large": 3072}


class OpenAIEmbedder(Embedder):
    kind = "openai"

    def __init__(
        self,
        model: str = "text-embedding-3-small",
        client: Any | None = None,
        cache_size: int = DEFAULT_CACHE_SIZE,
    ) -> None:
        if model not in OPENAI_DIMS:
            raise ValueError(
                f"unknown OpenAI embedding model {model!r}; known: {sorted(OPENAI_DIMS)}"
            )
        if client is None:
            try:
                from openai import OpenAI
            except ImportError as exc:
                raise MissingDependencyError(
                    "OpenAI embeddings need: pip install 'langchain-routellm[openai]'"
                ) from exc
            client = OpenAI()
        self.client = client
        super().__init__(model, OPENAI_DIMS[model], cache_size)

    def _embed_uncached(self, texts: list[str]) -> np.ndarray:
        response = self.client.embeddings.create(model=self.name, input=texts)
        vectors = np.asarray([item.embedding for item in response.data], dtype=np.float32)
        return l2_normalise(vectors)
