"""Progress bars that are there when tqdm is (the ``train`` and ``eval`` extras) and absent otherwise."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, TypeVar

_T = TypeVar("_T")


def progress_bar(iterable: Iterable[_T], *, enabled: bool, **tqdm_options: Any) -> Iterable[_T]:
    """``iterable`` wrapped in a tqdm bar when ``enabled`` and tqdm is installed; else as it is."""
    if not enabled:
        return iterable
    try:
        from tqdm import tqdm
    except ImportError:
        return iterable
    return tqdm(iterable, **tqdm_options)
