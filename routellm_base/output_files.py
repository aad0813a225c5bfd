"""Checks of the files a command is about to write, made before any paid or long work: no output
may be a file the command reads or another output, and (where the command has ``--force``) an
output that already holds data is kept unless ``--force`` is given."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

OptionPath = tuple[str, str | os.PathLike[str]]
"""An option and the path it names, e.g. ``("--out", "battles.jsonl")``."""


def same_file(a: str | os.PathLike[str], b: str | os.PathLike[str]) -> bool:
    """Whether ``a`` and ``b`` name one file: the same file on disk when both exist (through
    symbolic or hard links too), else the same absolute path once links are resolved."""
    a, b = Path(a).expanduser(), Path(b).expanduser()
    try:
        if a.exists() and b.exists():
            return os.path.samefile(a, b)
    except OSError:
        pass
    return os.path.realpath(a) == os.path.realpath(b)


def _lines(path: Path) -> str:
    with open(path, "rb") as handle:
        n = sum(1 for _ in handle)
    return f"{n} line{'s' * (n != 1)}"


def refuse_overwrites(
    outputs: Sequence[OptionPath],
    inputs: Sequence[OptionPath] = (),
    *,
    force: bool | None = None,
) -> None:
    """Raise ``ValueError`` naming the option and path when an output of ``outputs`` is one of
    ``inputs`` (writing it would destroy what the command reads; ``--force`` does not allow it),
    is the file of another output (the later would overwrite the earlier), or is a folder.

    ``force`` False also refuses an output file that exists and is not empty (an earlier run's
    output: each of its lines may have cost requests), naming ``--force``; ``force`` True or
    None lets it be overwritten (None: the command has no ``--force``, and a re-run replaces its
    own output)."""
    for n, (option, path) in enumerate(outputs):
        for in_option, in_path in inputs:
            if same_file(path, in_path):
                named = "" if str(path) == str(in_path) else f" ({in_path})"
                raise ValueError(
                    f"{option} {path} is the {in_option} file{named}, which this command reads: "
                    f"writing {option} would replace it; give another {option}"
                )
        for other_option, other_path in outputs[:n]:
            if same_file(path, other_path):
                raise ValueError(
                    f"{other_option} {other_path} and {option} {path} are one file: the second "
                    "would overwrite the first; give each its own file"
                )
        target = Path(path).expanduser()
        if target.is_dir():
            raise ValueError(f"{option} {path} is a folder, not a file")
        if force is False and target.is_file() and target.stat().st_size > 0:
            raise ValueError(
                f"{option} {path} already holds {_lines(target)} (an earlier run's "
                f"output?): give a new or empty file, or --force to overwrite it"
            )
