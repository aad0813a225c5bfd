"""sha256 of files, used to verify checkpoints and model weights before use."""

from __future__ import annotations

import hashlib
from pathlib import Path

from .errors import CheckpointError


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify_sha256(path: str | Path, expected: str, what: str) -> None:
    """Raise :class:`CheckpointError` naming ``what`` when the file's sha256 differs."""
    actual = sha256_file(path)
    if actual != expected:
        raise CheckpointError(
            f"{what} failed its sha256 check: {path} has {actual}, expected {expected}. "
            "The file is corrupt or was modified; refusing to load it."
        )
