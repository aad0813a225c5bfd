"""``--model-map SOURCE=TARGET``: the check every training and evaluation command shares."""

from __future__ import annotations

from collections.abc import Iterable, Mapping


def refuse_unused_model_map(
    model_map: Mapping[str, str],
    source_names: Iterable[str],
    option: str = "--data",
    error: type[ValueError] = ValueError,
) -> None:
    """Raise ``error`` (a ``ValueError``) when a SOURCE of ``model_map`` is none of
    ``source_names``, the models' names as the data spell them before mapping: a mistyped
    SOURCE would otherwise map nothing, silently. The message names the unused SOURCEs, the
    ``option`` that gave the data, and the data's names."""
    names = set(source_names)
    unused = [source for source in model_map if source not in names]
    if unused:
        raise error(
            f"--model-map names {unused}, which no {option} source has; models: {sorted(names)}"
        )
