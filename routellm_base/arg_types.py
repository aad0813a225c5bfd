"""``type=`` validators for command-line options, so that an out-of-range value is refused when
the command line is parsed (``routellm train: error: argument --epochs: ...``) instead of
failing later, e.g. after a model has loaded or deep inside training."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable


def int_at_least(low: int) -> Callable[[str], int]:
    """An ``int`` option of at least ``low``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be a whole number, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be at least {low}, got {value}")
        return value

    parse.__name__ = f"int >= {low}"
    return parse


def _float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}")
    return value


def share(text: str) -> float:
    """A share of calls in [0, 1]."""
    value = _float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be a share in [0, 1] (e.g. 0.3), got {text}")
    return value


def win_rate(text: str) -> float:
    """A win-rate threshold in [0, 1]."""
    value = _float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be a win rate in [0, 1] (e.g. 0.5), got {text}")
    return value


def cosine(text: str) -> float:
    """A cosine-similarity threshold in (0, 1]."""
    value = _float(text)
    if not 0.0 < value <= 1.0:
        raise argparse.ArgumentTypeError(
            f"must be a cosine similarity in (0, 1] (e.g. 0.95), got {text}"
        )
    return value


def float_above(low: float) -> Callable[[str], float]:
    """A ``float`` option above ``low`` (e.g. a learning rate above 0)."""

    def parse(text: str) -> float:
        value = _float(text)
        if value <= low:
            raise argparse.ArgumentTypeError(f"must be above {low:g}, got {text}")
        return value

    parse.__name__ = f"float > {low:g}"
    return parse


def float_at_least(low: float) -> Callable[[str], float]:
    """A finite ``float`` option of at least ``low`` (e.g. a cost or a delay of 0 or more)."""

    def parse(text: str) -> float:
        value = _float(text)
        if value < low:
            raise argparse.ArgumentTypeError(f"must be at least {low:g}, got {text}")
        return value

    parse.__name__ = f"float >= {low:g}"
    return parse


def output_file(text: str) -> str:
    """A file to write (e.g. ``--plot``): its folder must exist, checked before any work."""
    from pathlib import Path

    folder = Path(text).expanduser().parent
    if not folder.is_dir():
        raise argparse.ArgumentTypeError(f"folder {folder} does not exist")
    return text


def input_file(text: str) -> str:
    """A file to read, checked at parse time so the message names the option (argparse adds
    it): ``no such file: X`` or ``X is a folder, not a file``; ``log:URL`` passes through."""
    from pathlib import Path

    if text.startswith("log:"):
        return text
    path = Path(text).expanduser()
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{text} is a folder, not a file")
    if not path.exists():
        raise argparse.ArgumentTypeError(f"no such file: {text}")
    return text


def plain_input_file(text: str) -> str:
    """:func:`input_file` for an option that reads files only: ``log:...`` is refused (a routing
    log's prompts are read by ``train --data log:PATH``, ``--calibration-prompts`` and
    ``calibrate --prompts``)."""
    if text.startswith("log:"):
        raise argparse.ArgumentTypeError(
            f"{text}: this option reads a file of prompts, not a routing log (a log's prompts "
            "are read by train --data log:PATH, which --exclude decontaminates, and by "
            "--calibration-prompts / calibrate --prompts)"
        )
    return input_file(text)


PLOT_SUFFIXES = ("png", "svg", "pdf")


def plot_file(text: str) -> str:
    """A plot to write: :func:`output_file`, ending in a suffix matplotlib writes."""
    suffix = text.rpartition(".")[2].lower() if "." in text.rpartition("/")[2] else ""
    if suffix not in PLOT_SUFFIXES:
        raise argparse.ArgumentTypeError(
            f"{text}: a plot is written as {', '.join('.' + s for s in PLOT_SUFFIXES)}"
        )
    return output_file(text)


def router_spec(text: str) -> str:
    """A bundled router name, ``random`` or a checkpoint folder (checked without loading)."""
    from .checkpoints import check_router_spec
    from .errors import UnknownRouterError

    try:
        check_router_spec(text)
    except UnknownRouterError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text
