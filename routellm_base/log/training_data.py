"""Training data out of a routing log: labelled calls as battles, and logged prompts.

Each call yields at most one battle between its strong model (``model_a``) and its weak model
(``model_b``), on its prompt, from the best evidence the log holds for it:

1. a **golden label** (a feedback row's ``label``): ``strong`` -> ``model_a``, ``weak`` ->
   ``model_b``, ``tie`` -> ``tie``;
2. else a **judge verdict** on a shadow comparison of the call (``strong``/``weak``/``tie``
   alike);
3. else a **rating** of the answer the user got: -1 (thumbs down) on a *weak* answer ->
   ``model_a`` (the strong model should have answered); +1 on a weak answer -> ``tie`` (the weak
   answer was good enough, with no evidence that the strong one would have lost). A rating of a
   *strong* answer says nothing about the weak model and gives no battle (counted).

A log of calls routed among a pool of several models yields battles between named models
from its judged shadow comparisons: :func:`pool_battles`.

A call whose two sides were logged under one model name (two stand-ins of one class, two
``ChatOpenAI(model="default", base_url=...)`` on two local servers) would set that model
against itself: its battle names the sides ``"NAME (strong)"`` and ``"NAME (weak)"`` instead
(the log records which side answered, and a verdict names a side), counted in
:attr:`LabelSummary.same_name_calls`; ``routellm train --model-map`` renames them, and the
integrations' ``strong_model_name`` / ``weak_model_name`` make new calls log the names apart.

Within one kind the newest row wins (older ones are counted as superseded). The battle's prompt
is the call's routing text under the default rule (its last user turn, or its system text when
it has none), read from the stored conversation: training needs a log written with
``store_prompts=True``; calls without a stored prompt are counted and left out, and a log where
no labelled call has one raises :class:`~routellm_base.errors.RouteLLMError`.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select

from ..errors import RouteLLMError
from ..routing_text import routing_text
from .schema import comparisons, decisions, feedback
from .store import open_log_store

if TYPE_CHECKING:
    from .routing_log import RoutingLog

_FROM_LABEL = {"strong": "model_a", "weak": "model_b", "tie": "tie"}
NO_PROMPT_HINT = (
    "the routing log stores prompt text only when opened with store_prompts=True "
    "(RoutingLog(path, store_prompts=True), or serve --log-store-prompts)"
)


def _calls_and_prompts(connection: Any, pool: bool) -> tuple[int, int, int, int, int]:
    """The log's two-model (or pool) calls, how many have their prompt stored, their
    comparisons, how many of those wait for a verdict, and how many had their shadow call fail
    (no second answer: they can never be judged)."""
    policy = decisions.c.pool_policy
    kind = policy.is_not(None) if pool else policy.is_(None)
    calls, prompts = connection.execute(
        select(func.count(), func.count(decisions.c.prompt)).where(kind)
    ).one()
    compared, judged, failed = connection.execute(
        select(
            func.count(), func.count(comparisons.c.verdict), func.count(comparisons.c.shadow_error)
        )
        .select_from(comparisons.join(decisions, decisions.c.call_id == comparisons.c.call_id))
        .where(kind)
    ).one()
    return calls, prompts, compared, compared - judged - failed, failed


def _what_is_missing(
    target: Any, calls: int, prompts: int, compared: int, unjudged: int, failed: int = 0
) -> str:
    """What a log with no battles lacks, and its fix: stored prompts, shadow comparisons, or
    verdicts on them (in that order: a judge needs the prompts, a verdict a comparison). A
    comparison whose shadow call failed has no second answer: no judge can give it a verdict,
    so it is counted apart and sends nobody to ``routellm judge``."""
    if not calls:
        return "it has no such calls: nothing to learn from yet"
    missing = []
    if not prompts:
        missing.append(f"none of its {calls} calls has its prompt stored: {NO_PROMPT_HINT}")
    if not compared:
        missing.append(
            "it has no shadow comparisons: write it with shadow_rate > 0 (the integrations' "
            "shadow_rate=, which also needs store_prompts=True to judge them later)"
        )
    if failed:
        missing.append(
            f"{failed} comparisons whose shadow call failed (no second answer, so nothing to "
            "judge: read_comparisons() gives each one's shadow_error)"
        )
    if unjudged and prompts:
        missing.append(f"{unjudged} comparisons not judged: run routellm judge --log {target}")
    elif unjudged:
        missing.append(f"{unjudged} comparisons not judged, and not judgeable without prompts")
    return "; ".join(missing)


@dataclass(frozen=True)
class LabelledCall:
    """One call's battle: its prompt (routing text), models, winner and where it came from."""

    call_id: str
    prompt: str
    strong_model: str
    """The strong side's logged model name; ``"NAME (strong)"`` when both sides logged
    ``NAME`` (see the module's docstring)."""
    weak_model: str
    """The weak side's, likewise (``"NAME (weak)"``)."""
    winner: str
    """``model_a`` (strong won), ``model_b`` (weak won) or ``tie``."""
    source: str
    """``golden``, ``judge`` or ``rating``."""
    win_rate: float | None
    """The router's win rate when the call was routed (``None``: forced or not scored)."""


@dataclass
class LabelSummary:
    """What :func:`labelled_calls` used and left out, by reason."""

    battles: int = 0
    by_source: dict[str, int] = field(default_factory=dict)
    superseded: int = 0
    """Labels, verdicts or ratings replaced by a newer one of the same kind for the same call."""
    strong_side_ratings: int = 0
    """Calls whose only evidence is a rating of a strong answer (no battle)."""
    no_prompt: int = 0
    """Labelled calls whose prompt was not stored."""
    no_decision: int = 0
    """Labels, verdicts or ratings whose call has no decision row (never written, or another log)."""
    unjudged_comparisons: int = 0
    """Comparisons without a verdict that a judge could still give one (not judged yet, or
    unparseable)."""
    failed_shadow_comparisons: int = 0
    """Comparisons whose shadow call failed (``shadow_error``): no second answer, never judged."""
    same_name_calls: dict[str, int] = field(default_factory=dict)
    """Battles whose call logged one model name on both sides, per name: their sides are named
    ``"NAME (strong)"`` and ``"NAME (weak)"`` (:func:`side_names`)."""
    mark: LogMark | None = None
    """Where the read stopped (:class:`LogMark`): give it as ``as_of`` to read the same calls
    again from the log grown since."""

    def to_dict(self) -> dict[str, Any]:
        data = dict(self.__dict__)
        data["mark"] = None if self.mark is None else self.mark.to_dict()
        return data


@dataclass(frozen=True)
class LogMark:
    """Where a read of a routing log stopped: the last row id of each table when it read them,
    and the time of the read, so that the same read can be made again on the log grown since
    (:func:`labelled_calls`'s ``as_of``; a checkpoint trained on the log records it, so that
    ``routellm eval`` can tell which logged prompts it was trained on)."""

    decisions: int
    comparisons: int
    feedback: int
    read_at: str
    """ISO 8601 time (UTC) of the read: verdicts judged later into comparisons that were already
    there (``routellm judge --log`` after training) do not count."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Any) -> LogMark:
        """The mark :meth:`to_dict` gave; a malformed one raises :class:`RouteLLMError`."""
        try:
            mark = cls(
                int(data["decisions"]),
                int(data["comparisons"]),
                int(data["feedback"]),
                str(data["read_at"]),
            )
            mark.read_time()
        except (KeyError, TypeError, ValueError) as exc:
            raise RouteLLMError(f"not a routing log mark: {data!r} ({exc})") from None
        return mark

    def read_time(self) -> datetime:
        return _utc(datetime.fromisoformat(self.read_at))


def _utc(value: datetime) -> datetime:
    # SQLite returns the stored UTC time without its zone; PostgreSQL returns it aware.
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value


def _mark_now(connection: Any) -> LogMark:
    """The last row id of each table the training data is read from, and the time now."""
    last = [
        connection.execute(select(func.max(table.c.id))).scalar() or 0
        for table in (decisions, comparisons, feedback)
    ]
    return LogMark(*last, datetime.now(timezone.utc).isoformat())


def labelled_calls(
    target: str | Path | RoutingLog, *, as_of: LogMark | None = None
) -> tuple[list[LabelledCall], LabelSummary]:
    """Every call of the log at ``target`` with a battle, oldest call first, and the summary.

    The read stops at the log's rows when it starts (``summary.mark``); ``as_of``: read as a
    read that stopped at this mark did (a mark from an earlier summary): rows added after it,
    and verdicts judged after it into comparisons that were there, are left out.

    Raises :class:`RouteLLMError` when no call is labelled, or when labelled calls exist but
    none has a stored prompt (naming ``store_prompts=True``).
    """
    engine = open_log_store(target, "log")
    try:
        with engine.connect() as connection:
            mark = as_of or _mark_now(connection)
            read_at = mark.read_time()
            golden, ratings = _feedback_by_call(
                connection.execute(
                    select(feedback).where(feedback.c.id <= mark.feedback).order_by(feedback.c.id)
                )
            )
            verdicts: dict[str, str] = {}
            summary = LabelSummary(mark=mark)
            for row in connection.execute(
                select(comparisons)
                .where(comparisons.c.id <= mark.comparisons)
                .order_by(comparisons.c.id)
            ):
                verdict = row.verdict
                if row.judged_at is not None and _utc(row.judged_at) > read_at:
                    verdict = None  # judged after the read
                if verdict is None and row.shadow_error is not None:
                    summary.failed_shadow_comparisons += 1
                    continue
                if verdict is None:
                    summary.unjudged_comparisons += 1
                    continue
                summary.superseded += row.call_id in verdicts
                verdicts[row.call_id] = _FROM_LABEL[verdict]
            summary.superseded += golden.superseded + ratings.superseded
            counts = _calls_and_prompts(connection, pool=False)
            wanted = set(golden.values) | set(verdicts) | set(ratings.values)
            found = []
            ids = sorted(wanted)
            for start in range(0, len(ids), 500):  # bounded IN lists
                query = select(decisions).where(
                    decisions.c.call_id.in_(ids[start : start + 500]),
                    decisions.c.id <= mark.decisions,
                )
                found += connection.execute(query).all()
    finally:
        engine.dispose()
    # A pool call's comparisons are battles between named models: pool_battles reads them.
    pool_calls = {r.call_id for r in found if r.pool_policy is not None}
    wanted -= pool_calls
    rows = {r.call_id: r for r in sorted(found, key=lambda r: r.id) if r.pool_policy is None}

    calls: list[LabelledCall] = []
    summary.no_decision = len(wanted - set(rows))
    for call_id, row in rows.items():
        evidence = _evidence(call_id, row.side, golden.values, verdicts, ratings.values)
        if evidence is None:
            summary.strong_side_ratings += 1
            continue
        if row.prompt is None:
            summary.no_prompt += 1
            continue
        winner, source = evidence
        strong, weak = row.strong_model, row.weak_model
        if strong is not None and strong == weak:
            strong, weak = side_names(strong)
            summary.same_name_calls[row.strong_model] = (
                summary.same_name_calls.get(row.strong_model, 0) + 1
            )
        calls.append(
            LabelledCall(
                call_id,
                routing_text(json.loads(row.prompt)).text,
                strong,
                weak,
                winner,
                source,
                row.win_rate,
            )
        )
    summary.battles = len(calls)
    summary.by_source = dict(Counter(c.source for c in calls))
    if not calls:
        if summary.no_prompt:
            raise RouteLLMError(
                f"log {target}: {summary.no_prompt} labelled calls, but none has its prompt "
                f"stored, and training needs the prompt text: {NO_PROMPT_HINT}"
            )
        missing = _what_is_missing(target, *counts)
        raise RouteLLMError(
            f"log {target}: no call has a golden label, a judged comparison or a usable rating "
            f"({counts[0]} two-model calls: {missing}; {summary.strong_side_ratings} calls rated "
            f"only on a strong answer; {summary.no_decision} labels without a decision row)"
        )
    return calls, summary


def side_names(name: str) -> tuple[str, str]:
    """The names a call's strong and weak sides get in its battle when both logged ``name``."""
    return f"{name} (strong)", f"{name} (weak)"


def same_name_note(target: Any, summary: LabelSummary) -> str | None:
    """What :attr:`LabelSummary.same_name_calls` means for the user, and the fixes; ``None``
    when every call logged two names."""
    if not summary.same_name_calls:
        return None
    counts = ", ".join(f"{n} x{k}" for n, k in sorted(summary.same_name_calls.items()))
    name = min(summary.same_name_calls)
    strong, weak = side_names(name)
    return (
        f"log {target}: {sum(summary.same_name_calls.values())} battles come from calls that "
        f"logged one model name on both sides ({counts}): their sides are named "
        f"{strong!r} and {weak!r}; rename them with --model-map '{strong}=STRONG' "
        f"--model-map '{weak}=WEAK' (or train with --strong '{strong}' --weak '{weak}'), and "
        "give the routed model strong_model_name= and weak_model_name= so that new calls are "
        "logged under their own names"
    )


def battles_digest(calls: list[LabelledCall]) -> str:
    """The sha256 (hex) of the calls' battles as JSONL (keys sorted): what a checkpoint trained
    on a log records for it, since a log's own file changes with every call."""
    return hashlib.sha256(
        "".join(json.dumps(o, sort_keys=True) + "\n" for _, o in log_battle_objects(calls)).encode()
    ).hexdigest()


def log_battle_objects(calls: list[LabelledCall]) -> list[tuple[str, dict[str, str]]]:
    """The calls as battles JSONL objects, each with where it came from (for error messages)."""
    return [
        (
            f"call {c.call_id} ({c.source})",
            {
                "prompt": c.prompt,
                "model_a": c.strong_model,
                "model_b": c.weak_model,
                "winner": c.winner,
            },
        )
        for c in calls
    ]


@dataclass(frozen=True)
class PoolBattle:
    """One judged shadow comparison of a call routed among a pool: a battle between two named
    pool models on the call's prompt."""

    call_id: str
    prompt: str
    """The call's routing text (its last user turn, or its system text without one)."""
    model_a: str
    """The pricier model of the pair (the comparison's ``strong_model``)."""
    model_b: str
    """The cheaper one (``weak_model``)."""
    winner: str
    """``model_a``, ``model_b`` or ``tie``."""
    source: str
    """Where the verdict came from: ``judge`` (an LLM judge) or ``golden`` (a human's label
    written into the comparison)."""
    answered: str
    """The model whose answer the user got (the other one was the shadow call)."""


@dataclass
class PoolBattleSummary:
    """What :func:`pool_battles` used and left out, by reason."""

    battles: int = 0
    by_pair: dict[str, int] = field(default_factory=dict)
    """Battles per ``"model_a vs model_b"``."""
    superseded: int = 0
    """Verdicts replaced by a newer one for the same pair of the same call."""
    unjudged_comparisons: int = 0
    """Pool comparisons without a verdict that a judge could still give one (not judged yet,
    or unparseable)."""
    failed_shadow_comparisons: int = 0
    """Pool comparisons whose shadow call failed (``shadow_error``): never judged."""
    no_prompt: int = 0
    """Judged pool comparisons whose call's prompt was not stored."""

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def pool_battles(target: str | Path | RoutingLog) -> tuple[list[PoolBattle], PoolBattleSummary]:
    """The battles a pool log holds, oldest call first, and what was left out.

    Each judged shadow comparison of a call routed among a pool (a decision row with
    ``pool_policy``, schema 5) gives one battle ``(prompt, model_a, model_b, winner)`` between
    two named models: ``model_a`` is the pair's pricier model, ``model_b`` the cheaper one,
    ``winner`` ``"model_a"`` / ``"model_b"`` / ``"tie"`` (the battles JSONL format; a
    :class:`PoolBattle` also carries the ``call_id``, the verdict's ``source`` and the model
    that ``answered``). For one call and one pair the newest verdict counts. Two-model calls
    are left to :func:`labelled_calls`. :func:`pool_battle_objects` turns the battles into
    JSONL objects.

    The prompt is read from the stored conversation: only a log written with
    ``store_prompts=True`` has it; judged comparisons without it are counted in ``no_prompt``.
    Raises :class:`RouteLLMError` when the log has no judged pool comparison, or none with a
    stored prompt (naming ``store_prompts=True``).
    """
    engine = open_log_store(target, "log")
    c, d = comparisons, decisions
    try:
        query = (
            select(
                c.c.call_id,
                c.c.strong_model,
                c.c.weak_model,
                c.c.answered_side,
                c.c.verdict,
                c.c.verdict_source,
                c.c.shadow_error,
                d.c.prompt,
                d.c.id.label("decision_id"),
            )  # fmt: skip
            .select_from(c.join(d, d.c.call_id == c.c.call_id))
            .where(d.c.pool_policy.is_not(None))
            .order_by(c.c.id)
        )
        with engine.connect() as connection:
            found = connection.execute(query).all()
            counts = _calls_and_prompts(connection, pool=True)
    finally:
        engine.dispose()
    summary = PoolBattleSummary()
    latest: dict[tuple[str, str, str], Any] = {}
    for row in found:
        if row.verdict is None and row.shadow_error is not None:
            summary.failed_shadow_comparisons += 1
            continue
        if row.verdict is None or row.strong_model is None or row.weak_model is None:
            summary.unjudged_comparisons += 1
            continue
        key = (row.call_id, row.strong_model, row.weak_model)
        summary.superseded += key in latest
        latest[key] = row
    battles: list[PoolBattle] = []
    for row in sorted(latest.values(), key=lambda r: r.decision_id):
        if row.prompt is None:
            summary.no_prompt += 1
            continue
        battles.append(
            PoolBattle(
                call_id=row.call_id,
                prompt=routing_text(json.loads(row.prompt)).text,
                model_a=row.strong_model,
                model_b=row.weak_model,
                winner=_FROM_LABEL[row.verdict],
                source=row.verdict_source or "judge",
                answered=row.strong_model if row.answered_side == "strong" else row.weak_model,
            )
        )
    summary.battles = len(battles)
    summary.by_pair = dict(Counter(f"{b.model_a} vs {b.model_b}" for b in battles))
    if not battles:
        if summary.no_prompt:
            raise RouteLLMError(
                f"log {target}: {summary.no_prompt} judged pool comparisons, but none has its "
                f"prompt stored, and training needs the prompt text: {NO_PROMPT_HINT}"
            )
        raise RouteLLMError(
            f"log {target}: no judged shadow comparison of a pool call ({counts[0]} pool calls, "
            f"{counts[2]} comparisons: {_what_is_missing(target, *counts)})"
        )
    return battles, summary


def pool_battle_objects(battles: list[PoolBattle]) -> list[tuple[str, dict[str, str]]]:
    """The battles as battles JSONL objects (``prompt``, ``model_a``, ``model_b``,
    ``winner``), each with where it came from (for error messages), as
    :func:`log_battle_objects` gives a two-model log's."""
    return [
        (
            f"call {b.call_id} ({b.source}, {b.model_a} vs {b.model_b})",
            {"prompt": b.prompt, "model_a": b.model_a, "model_b": b.model_b, "winner": b.winner},
        )
        for b in battles
    ]


def logged_prompts(target: str | Path | RoutingLog) -> list[str]:
    """The routing texts of the calls the router scored (not forced, not routed by the
    no-known-tokens rule), oldest first, repeats kept (they are part of the traffic).

    Raises :class:`RouteLLMError` when the log has no such call with a stored prompt.
    """
    engine = open_log_store(target, "log")
    try:
        with engine.connect() as connection:
            query = (
                select(decisions.c.prompt)
                .where(decisions.c.win_rate.is_not(None))
                .order_by(decisions.c.id)
            )
            stored = list(connection.execute(query).scalars())
    finally:
        engine.dispose()
    prompts = [routing_text(json.loads(p)).text for p in stored if p is not None]
    if not prompts:
        if stored:
            raise RouteLLMError(
                f"log {target}: {len(stored)} routed calls, but no prompt text is stored: {NO_PROMPT_HINT}"
            )
        raise RouteLLMError(
            f"log {target}: no call the router scored (forced calls are not counted)"
        )
    return prompts


@dataclass
class _Latest:
    values: dict[str, Any] = field(default_factory=dict)
    superseded: int = 0

    def put(self, call_id: str, value: Any) -> None:
        self.superseded += call_id in self.values
        self.values[call_id] = value


def _feedback_by_call(rows: Any) -> tuple[_Latest, _Latest]:
    golden, ratings = _Latest(), _Latest()
    for row in rows:
        if row.label is not None:
            golden.put(row.call_id, _FROM_LABEL[row.label])
        if row.rating is not None:
            ratings.put(row.call_id, row.rating)
    return golden, ratings


def _evidence(
    call_id: str,
    side: str,
    golden: dict[str, str],
    verdicts: dict[str, str],
    ratings: dict[str, int],
) -> tuple[str, str] | None:
    if call_id in golden:
        return golden[call_id], "golden"
    if call_id in verdicts:
        return verdicts[call_id], "judge"
    if side == "weak":
        return ("model_a" if ratings[call_id] < 0 else "tie"), "rating"
    return None
