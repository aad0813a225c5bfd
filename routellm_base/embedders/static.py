"""Static (model2vec) embeddings: a token table averaged with numpy, no neural network at run time."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file
from tokenizers import Tokenizer

from ..errors import CheckpointError
from ..hashing import verify_sha256
from .base import DEFAULT_CACHE_SIZE, Embedder, l2_normalise


class StaticEmbedder(Embedder):
    """Loads a folder saved by model2vec (``model.safetensors``, ``tokenizer.json``, ``config.json``).

    Each text is tokenised (no special tokens, unknown tokens removed, at most ``max_length``
    tokens as in model2vec), its token vectors averaged and the mean L2-normalised.
    """

    kind = "static"

    def __init__(
        self,
        path: str | Path,
        name: str | None = None,
        sha256: str | None = None,
        cache_size: int = DEFAULT_CACHE_SIZE,
    ) -> None:
        path = Path(path)
        for required in ("model.safetensors", "tokenizer.json", "config.json"):
            if not (path / required).is_file():
                raise CheckpointError(f"static embedder folder {path} lacks {required}")
        if sha256 is not None:
            verify_sha256(path / "model.safetensors", sha256, f"static embedder {path.name}")
        config = json.loads((path / "config.json").read_text())
        tensors = load_file(str(path / "model.safetensors"))
        if "embeddings" not in tensors:
            raise CheckpointError(f"{path}/model.safetensors has no 'embeddings' tensor")
        # Kept in its stored dtype (float16 for the bundled table: half the memory); rows are
        # upcast when a text is embedded.
        self.table = tensors["embeddings"]
        self.weights = tensors.get("weights")
        self.mapping = tensors.get("mapping")
        self.tokenizer = Tokenizer.from_file(str(path / "tokenizer.json"))
        self.max_length = int(config.get("max_length") or 512)
        self.normalize = bool(config.get("normalize", True))
        unk = self.tokenizer.model.unk_token if hasattr(self.tokenizer.model, "unk_token") else None
        self.unk_id = self.tokenizer.token_to_id(unk) if unk else None
        # Pre-cut very long strings before tokenising, as model2vec does: tokens beyond
        # max_length are dropped anyway and tokenising megabytes would dominate latency.
        self.max_chars = self.max_length * 16
        self.path = path
        super().__init__(name or path.name, int(self.table.shape[1]), cache_size)

    def _known_ids(self, texts: Sequence[str]) -> list[np.ndarray]:
        """The token ids each text is embedded from: unknown tokens removed, at most
        ``max_length``."""
        encodings = self.tokenizer.encode_batch_fast(
            [t[: self.max_chars] for t in texts], add_special_tokens=False
        )
        out = []
        for encoding in encodings:
            ids = np.asarray(encoding.ids, dtype=np.int64)
            if self.unk_id is not None:
                ids = ids[ids != self.unk_id]
            out.append(ids[: self.max_length])
        return out

    def known_token_counts(self, texts: Sequence[str]) -> np.ndarray:
        """Tokens of each text in the table; 0 means the text embeds as the zero vector."""
        return np.asarray([ids.size for ids in self._known_ids(texts)], dtype=np.int64)

    def unreadable(self, texts: Sequence[str]) -> np.ndarray:
        """Texts with no token in the table: exactly those that embed as the zero vector. Read
        from the (cached) embeddings, so the router that scores the same texts next does not
        tokenise them a second time."""
        return ~np.any(self.embed(list(texts)), axis=1)

    def _embed_uncached(self, texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, ids in enumerate(self._known_ids(texts)):
            if ids.size == 0:
                continue
            table_ids = self.mapping[ids] if self.mapping is not None else ids
            vectors = self.table[table_ids].astype(np.float32)
            if self.weights is not None:
                vectors = vectors * self.weights[ids][:, None]
            out[row] = vectors.mean(axis=0)
        return l2_normalise(out) if self.normalize else out
