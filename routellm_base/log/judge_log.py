"""Judge the unjudged shadow comparisons of a routing log (``routellm judge --log PATH``).

A comparison is judged when its shadow call answered, it has no verdict yet and (unless
``retry_unparseable``) no earlier judgment of it was unreadable. The judge needs the question
and both answers, so the log must have been written with ``store_prompts=True``. Each judged row
gets its verdict (``strong``/``weak``/``tie``, or none when unreadable), ``verdict_source``
``judge``, the judge model, the time, both orders' parsed verdicts, the judge's raw text of
each order with no readable verdict (``strong_first_judgment`` / ``weak_first_judgment``), and
its ``unparseable`` count raised by the unreadable judgments of this run.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, select, update

from ..errors import RouteLLMError, RoutingInputError
from ..judging import PairVerdict, PairwiseJudge, judge_question
from .schema import comparisons, decisions
from .store import open_log_store
from .training_data import NO_PROMPT_HINT

if TYPE_CHECKING:
    from .routing_log import RoutingLog

WRITE_EVERY = 50
"""Verdicts per update transaction: a long run keeps what it judged if it is stopped."""


@dataclass(frozen=True)
class _Item:
    comparison_id: int
    question: str
    strong_answer: str
    weak_answer: str


@dataclass(frozen=True)
class _Done:
    """One judged item, ready to be written back."""

    comparison_id: int
    verdict: PairVerdict | None
    error: str | None
    texts: tuple[str | None, str | None] = (None, None)
    """The raw text of each order without a readable verdict (redacted), else ``None``."""


def judge_log(
    target: str | Path | RoutingLog,
    judge: PairwiseJudge | Callable[[], PairwiseJudge],
    *,
    concurrency: int = 4,
    retry_unparseable: bool = False,
    limit: int | None = None,
    redact: Callable[[str], str] | None = None,
) -> dict[str, int]:
    """Judge the log's unjudged comparisons with ``judge`` (at most ``concurrency`` at a time,
    at most ``limit`` items) and write the verdicts into the log.

    ``judge`` may be a zero-argument factory: it is then called only when a comparison waits,
    so a log with nothing to judge needs no judge endpoint or API key.

    The raw text of a judgment with no readable verdict is stored beside the empty verdict
    (such a log stores its prompts and answers already), passed through ``redact`` first when
    given: the log's redaction hook, for a judge that quotes what it was shown.

    Returns the counts: ``items`` (comparisons waiting), ``judged`` (readable verdicts),
    ``strong_wins``, ``weak_wins``, ``ties``, ``unparseable`` (items with an unreadable
    judgment: no verdict written), ``skipped_unparseable_before`` (left alone without
    ``retry_unparseable``), ``skipped_no_text`` (prompt or answers not stored) and
    ``left_by_limit`` (judgeable items past ``limit``, left waiting for a later run).

    Raises :class:`RouteLLMError` when comparisons wait but none has its prompt and answers
    stored (naming ``store_prompts=True``), :class:`RoutingInputError` for a ``redact`` that is
    not callable. An error of the judge stops the run: the verdicts already obtained are
    written, the failing item gets ``judge_error``, and the error is raised; an error of
    ``redact`` is the item's error in the same way (its text is never stored unredacted).
    """
    if concurrency < 1:
        raise ValueError(f"concurrency must be at least 1, got {concurrency}")
    if redact is not None and not callable(redact):
        raise RoutingInputError(f"judge_log: redact must be a callable str -> str, got {redact!r}")
    engine = open_log_store(target, "judge --log")
    try:
        items, counts = _waiting(engine, retry_unparseable, limit)
        if counts["skipped_no_text"] and not items:
            raise RouteLLMError(
                f"log {target}: {counts['skipped_no_text']} comparisons wait for a judge, but their "
                f"prompts or answers are not stored: {NO_PROMPT_HINT}"
            )
        counts.update(
            items=len(items) + counts["skipped_no_text"],
            judged=0,
            strong_wins=0,
            weak_wins=0,
            ties=0,
            unparseable=0,
        )
        if not items:
            return counts
        if not isinstance(judge, PairwiseJudge):
            judge = judge()
        done: list[_Done] = []
        pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="routellm-judge")
        try:
            futures = [(item, pool.submit(_judge_item, judge, item, redact)) for item in items]
            for item, result in _results(futures):
                if isinstance(result, BaseException):
                    error = f"{type(result).__name__}: {result}"[:1000]
                    done.append(_Done(item.comparison_id, None, error))
                    _write(engine, done, judge.model)
                    raise result
                verdict, texts = result
                done.append(_Done(item.comparison_id, verdict, None, texts))
                _count(counts, verdict)
                if len(done) >= WRITE_EVERY:
                    _write(engine, done, judge.model)
                    done = []
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
        _write(engine, done, judge.model)
        return counts
    finally:
        engine.dispose()


def _waiting(
    engine: Engine, retry_unparseable: bool, limit: int | None
) -> tuple[list[_Item], dict[str, int]]:
    c, d = comparisons, decisions
    query = (
        select(c.c.id, c.c.unparseable, c.c.strong_answer, c.c.weak_answer, d.c.prompt)
        .select_from(c.outerjoin(d, d.c.call_id == c.c.call_id))
        .where(c.c.verdict.is_(None), c.c.shadow_error.is_(None))
        .order_by(c.c.id)
    )
    items: list[_Item] = []
    counts = {"skipped_unparseable_before": 0, "skipped_no_text": 0, "left_by_limit": 0}
    with engine.connect() as connection:
        for row in connection.execute(query):
            if row.unparseable and not retry_unparseable:
                counts["skipped_unparseable_before"] += 1
            elif row.prompt is None or row.strong_answer is None or row.weak_answer is None:
                counts["skipped_no_text"] += 1
            elif limit is None or len(items) < limit:
                question = judge_question(json.loads(row.prompt))
                items.append(_Item(row.id, question, row.strong_answer, row.weak_answer))
            else:
                counts["left_by_limit"] += 1
    return items, counts


def _judge_item(
    judge: PairwiseJudge, item: _Item, redact: Callable[[str], str] | None
) -> tuple[PairVerdict, tuple[str | None, str | None]]:
    """The item's verdict and the (redacted) raw text of each order without a readable verdict;
    a readable judgment is its parsed verdict, so its text is not kept."""
    verdict = judge.judge(item.question, item.strong_answer, item.weak_answer)
    texts = tuple(
        None if parsed is not None else (redact(text) if redact else text)
        for parsed, text in zip((verdict.strong_first, verdict.weak_first), verdict.judgments)
    )
    return verdict, (texts[0], texts[1])


def _results(futures: list[tuple[_Item, Future[Any]]]) -> Iterator[tuple[_Item, Any]]:
    for item, future in futures:
        try:
            yield item, future.result()
        except Exception as error:
            yield item, error


def _count(counts: dict[str, int], verdict: PairVerdict) -> None:
    if verdict.winner is None:
        counts["unparseable"] += 1
        return
    counts["judged"] += 1
    counts[{"strong": "strong_wins", "weak": "weak_wins", "tie": "ties"}[verdict.winner]] += 1


def _write(engine: Engine, done: list[_Done], model: str) -> None:
    if not done:
        return
    c = comparisons.c
    with engine.begin() as connection:
        for item in done:
            values: dict[str, Any] = {"judge_model": model, "judge_error": item.error}
            verdict = item.verdict
            if verdict is not None:
                values.update(
                    verdict=verdict.winner,
                    verdict_source=None if verdict.winner is None else "judge",
                    judged_at=datetime.fromtimestamp(verdict.judged_at, timezone.utc),
                    strong_first_verdict=verdict.strong_first,
                    weak_first_verdict=verdict.weak_first,
                    # set on every judging, so a retry that reads a verdict clears the old text
                    strong_first_judgment=item.texts[0],
                    weak_first_judgment=item.texts[1],
                    unparseable=c.unparseable + verdict.unparseable,
                )
            connection.execute(
                update(comparisons).where(c.id == item.comparison_id).values(**values)
            )
