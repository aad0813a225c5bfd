"""Embedders behind one interface, and loading them from a checkpoint's record."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from ..errors import CheckpointError
from .base import Embedder
from .static import StaticEmbedder

__all__ = [
    "Embedder",
    "StaticEmbedder",
    "load_embedder",
    "BUNDLED_EMBEDDERS_DIR",
    "DEFAULT_EMBEDDER",
]

BUNDLED_EMBEDDERS_DIR = Path(__file__).resolve().parent.parent / "checkpoints" / "embedders"
# sha256 of each bundled static table, checked on load.
BUNDLED_STATIC_SHA256: dict[str, str] = {
    "minilm-l6-static-256": "3ad0f737a50e1eb792dad270e26461f7eb9f1b9d0ff47bd699b4e2d67af01611",
}

DEFAULT_EMBEDDER = "minilm-l6-static-256"
"""The embedder ``routellm train`` reads prompts (and decontaminates) with unless ``--embedder``
names another: the bundled checkpoints'."""

_shared: dict[tuple[str, str], Embedder] = {}
_shared_lock = threading.Lock()


def load_embedder(spec: dict[str, Any] | str) -> Embedder:
    """The embedder a checkpoint records, shared process-wide so routers reuse one copy.

    ``spec`` is a checkpoint's ``embedder`` record (``{"type", "name", "dim", "path"?}``) or a
    string: a bundled static name, ``static:PATH``, ``sentence_transformer[:PATH]`` or
    ``openai:MODEL``.
    """
    if isinstance(spec, str):
        spec = _parse(spec)
    kind, name = str(spec.get("type")), str(spec.get("name"))
    key = (kind, str(spec.get("path") or name))
    with _shared_lock:
        if key not in _shared:
            _shared[key] = _build(kind, name, spec)
        return _shared[key]


def _parse(text: str) -> dict[str, Any]:
    kind, _, rest = text.partition(":")
    if kind in BUNDLED_STATIC_SHA256 and not rest:
        return {"type": "static", "name": kind}
    if kind == "static" and rest:
        return {"type": "static", "name": Path(rest).name, "path": rest}
    if kind == "sentence_transformer":
        from .sentence_transformer import MINILM_NAME

        return {"type": kind, "name": MINILM_NAME, "path": rest or None}
    if kind == "openai":
        return {"type": "openai", "name": rest or "text-embedding-3-small"}
    raise CheckpointError(
        f"unknown embedder {text!r}: use a bundled name {sorted(BUNDLED_STATIC_SHA256)}, "
        "'static:PATH', 'sentence_transformer[:PATH]' or 'openai:MODEL'"
    )


def _build(kind: str, name: str, spec: dict[str, Any]) -> Embedder:
    if kind == "static":
        if spec.get("path"):
            return StaticEmbedder(spec["path"], name=name, sha256=spec.get("sha256"))
        if name not in BUNDLED_STATIC_SHA256:
            raise CheckpointError(f"no bundled static embedder named {name!r}")
        return StaticEmbedder(
            BUNDLED_EMBEDDERS_DIR / name, name=name, sha256=BUNDLED_STATIC_SHA256[name]
        )
    if kind == "sentence_transformer":
        from .sentence_transformer import MINILM_NAME, SentenceTransformerEmbedder

        return SentenceTransformerEmbedder(spec.get("path") or MINILM_NAME, name=name)
    if kind == "openai":
        from .openai import OpenAIEmbedder

        return OpenAIEmbedder(name)
    raise CheckpointError(f"unknown embedder type {kind!r}")
