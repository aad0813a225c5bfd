"""Where the benchmark and training data live when no ``--data-dir`` is given."""

from __future__ import annotations

import os
from pathlib import Path

DATA_DIR_ENV = "ROUTELLM_DATA_DIR"
"""Environment variable naming the data folder (the one holding ``routellm/``, ``rmb/`` ...;
``../shared/data`` in this repository's development set-up)."""


def data_dir_from_env(default: str | None = None) -> str | None:
    """``$ROUTELLM_DATA_DIR`` when it is set and not empty, else ``default``."""
    return os.environ.get(DATA_DIR_ENV) or default


DEV_DATA_DIR = "../shared/data"
"""The data folder of this repository's development set-up, relative to the working folder."""


def default_data_dir() -> str | None:
    """The data folder when none is given, the same for ``routellm eval`` and the training
    recipes: ``$ROUTELLM_DATA_DIR`` when set, else :data:`DEV_DATA_DIR` when that folder exists,
    else ``None``."""
    return data_dir_from_env() or (DEV_DATA_DIR if Path(DEV_DATA_DIR).is_dir() else None)
