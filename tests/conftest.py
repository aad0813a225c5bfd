"""Fixtures shared by every test package."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The benchmark data: $ROUTELLM_DATA_DIR, else ../shared/data beside the repository."""
    path = Path(os.environ.get("ROUTELLM_DATA_DIR", REPO_ROOT.parent / "shared" / "data"))
    if not (path / "routellm").is_dir():
        pytest.fail(f"benchmark data not found at {path}; set ROUTELLM_DATA_DIR (see README: Data)")
    return path
