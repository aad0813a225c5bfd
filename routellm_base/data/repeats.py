"""A repeated ``--data``: the check ``routellm train`` (two-model and pool) makes of its sources."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ..output_files import same_file


def refuse_repeated_data(
    sources: Sequence[tuple[str, Sequence[Mapping[str, Any]]]],
    option: str = "--data",
    error: type[ValueError] = ValueError,
    consequence: str = (
        "its battles would count twice (task_experts would learn two identical task kinds)"
    ),
) -> None:
    """Raise ``error`` (a ``ValueError``) when two sources read the same data.

    ``sources`` holds each ``option`` value as given and the files it read, each a mapping with
    ``path`` and ``sha256`` (for a routing log, the sha256 of the battles read from it). Two
    values repeat when their files have the same sha256s: the same text given twice, two paths
    of one file, or byte-identical copies: their battles would count twice (and ``task_experts``
    would learn two identical task kinds with a gate that cannot tell them apart), as
    ``consequence`` says in the message. A file that
    two sources share while their other files differ (one prompts file under two judgment
    tables, LLMRouter's prices under two splits) is no repeat. The message names both values.
    """
    seen: dict[tuple[str, ...], tuple[str, Sequence[Mapping[str, Any]]]] = {}
    for spec, files in sources:
        key = tuple(sorted(str(f["sha256"]) for f in files))
        if not key:
            continue
        if key not in seen:
            seen[key] = (spec, files)
            continue
        first, first_files = seen[key]
        if first == spec:
            what = f"{option} {spec} is given twice"
        elif len(files) == len(first_files) and all(
            any(same_file(str(f["path"]), str(g["path"])) for g in first_files) for f in files
        ):
            what = f"{option} {first} and {option} {spec} name the same data"
        else:
            digests = ", ".join(f"{d[:12]}…" for d in key)
            what = (
                f"{option} {first} and {option} {spec} hold the same data (sha256 {digests}: "
                "byte-identical copies)"
            )
        raise error(f"{what}: {consequence}; give each source once")
