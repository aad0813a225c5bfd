"""Fixtures of the pool tests: the real data folder, skipped only when it is absent."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def pool_data_dir() -> Path:
    """$ROUTELLM_DATA_DIR, else ../shared/data; skips when that folder does not exist, fails
    when it exists without the pool sources (a broken copy must not pass as a skip)."""
    path = Path(os.environ.get("ROUTELLM_DATA_DIR") or REPO_ROOT.parent / "shared" / "data")
    if not path.is_dir():
        pytest.skip(f"no data folder at {path} (set ROUTELLM_DATA_DIR; see README: Data)")
    for needed in ("routerbench", "llmrouter", "arena_hard", "rmb"):
        if not (path / needed).is_dir():
            pytest.fail(f"data folder {path} lacks {needed}/")
    return path
