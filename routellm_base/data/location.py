"""Where the benchmark and training data live when no ``--data-dir`` is given."""

from __future__ import annotations

import os

DATA_DIR_ENV = "ROUTELLM_DATA_DIR"
"""Environment variable naming the data folder (the one holding ``routellm/``, ``rmb/`` ...;
``../shared/data`` in this repository's development set-up)."""


def data_dir_from_env(default: str | None = None) -> str | None:
    """``$ROUTELLM_DATA_DIR`` when it is set and not empty, else ``default``."""
    return os.environ.get(DATA_DIR_ENV) or default
