"""Shadow comparisons: a sampled share of answered calls also goes to the side that did not
answer, off the call's path, and both answers (judged, when a judge is set) go to the log.
In a pool of several models the shadow call goes to a sampled other candidate
(:meth:`ShadowRunner.submit_pool`), and the pair is stored pricier model against cheaper one.

The integrations call :meth:`ShadowRunner.submit` once the user's answer is complete (a stream:
after its last chunk). ``submit`` only draws the sample and queues a job; background threads
make the shadow call, judge the pair and hand a :class:`Comparison` to the log. Nothing a shadow
call or the judge does ever reaches the caller: a failing shadow call is recorded in the
comparison (``shadow_error``), a failing judge in ``judge_error``, and any other failure is
logged (logger ``routellm_base.shadow``) and counted in :meth:`ShadowRunner.stats`.

Worker threads exist only while jobs are queued (a thread that finds the queue empty ends), so
an idle runner holds no thread and a dropped model leaks none. :meth:`ShadowRunner.flush` waits
for the queued jobs; at interpreter exit the queued jobs are waited for (up to
``EXIT_TIMEOUT`` seconds) before the routing logs drain.
"""

from __future__ import annotations

import atexit
import logging
import os
import queue
import random
import threading
import time
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from .decision import RoutingDecision, Side, pair_names
from .errors import RoutingInputError
from .judging import PairVerdict, PairwiseJudge, judge_question
from .routing_text import ChatTurn

logger = logging.getLogger("routellm_base.shadow")

DEFAULT_MAX_PENDING = 256
DEFAULT_WORKERS = 4
EXIT_TIMEOUT = 30.0
"""Seconds the interpreter's exit waits for queued shadow jobs."""


@dataclass(frozen=True)
class ShadowAnswer:
    """The other side's answer, as the integration's shadow call returns it."""

    text: str
    input_tokens: int | None = None
    output_tokens: int | None = None


@dataclass(frozen=True)
class Comparison:
    """One shadow comparison, ready for :meth:`routellm_base.log.RoutingLog.record_comparison`."""

    call_id: str
    answered_side: Side
    strong_model: str | None
    weak_model: str | None
    strong_answer: str | None
    """``None`` only when the strong side was the shadow side and its call failed."""
    weak_answer: str | None
    shadow_error: str | None
    """``"<Type>: <message>"`` of the shadow call's failure; ``None`` when it answered."""
    shadow_latency_seconds: float
    shadow_input_tokens: int | None
    shadow_output_tokens: int | None
    verdict: PairVerdict | None
    """The judge's verdict (``None``: no judge, the shadow call failed, or the judge raised)."""
    judge_error: str | None
    created_at: float
    """Unix time (seconds) the comparison was complete."""

    @property
    def shadow_side(self) -> Side:
        return "weak" if self.answered_side == "strong" else "strong"

    @property
    def shadow_model(self) -> str | None:
        return self.weak_model if self.answered_side == "strong" else self.strong_model


class ComparisonSink(Protocol):
    """Where comparisons go: a :class:`routellm_base.log.RoutingLog` (never raises)."""

    def record_comparison(self, comparison: Comparison) -> None: ...


@dataclass(frozen=True)
class ShadowStats:
    """Counters of a :class:`ShadowRunner` since it was made (a snapshot)."""

    offered: int
    """Calls offered to :meth:`ShadowRunner.submit`."""
    sampled: int
    """Offered calls drawn for a shadow comparison (queued or dropped)."""
    dropped: int
    """Sampled calls not queued: the queue was full, or the runner was closed."""
    pending: int
    """Queued jobs not yet finished."""
    answered: int
    """Shadow calls that answered."""
    shadow_failed: int
    """Shadow calls that raised (recorded with ``shadow_error``)."""
    judged: int
    """Pairs the judge gave a readable verdict."""
    unparseable: int
    """Pairs with at least one unreadable judgment (no verdict recorded, never guessed)."""
    judge_failed: int
    """Pairs whose judge call raised (recorded with ``judge_error``)."""
    failed: int
    """Jobs that failed in our own bookkeeping (logged; nothing recorded)."""
    last_error: str | None


@dataclass(frozen=True)
class _Job:
    decision: RoutingDecision
    conversation: Any
    answer: str
    call_other: Callable[[], ShadowAnswer]
    strong_model: str | None
    weak_model: str | None
    answered_side: Side


class ShadowRunner:
    """Samples answered calls at ``rate`` and runs their shadow comparisons in the background.

    * ``sink``: where each :class:`Comparison` goes (a routing log).
    * ``rate``: the share of calls shadowed, in [0, 1].
    * ``judge``: a :class:`PairwiseJudge` that judges each pair in-process, or ``None`` (judge
      later with ``routellm judge --log``).
    * ``seed``: seeds the sampling (``None``: unseeded); calls offered in the same order draw
      the same samples.
    * ``max_pending``: queued jobs at most; a sampled call beyond it is dropped and counted.
    * ``workers``: shadow calls in flight at most.

    Raises :class:`RoutingInputError` for a rate outside [0, 1] or a bad count.
    """

    def __init__(
        self,
        sink: ComparisonSink,
        rate: float,
        *,
        judge: PairwiseJudge | None = None,
        seed: int | None = None,
        max_pending: int = DEFAULT_MAX_PENDING,
        workers: int = DEFAULT_WORKERS,
    ) -> None:
        check_shadow_rate(rate)
        for name, value in (("max_pending", max_pending), ("workers", workers)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise RoutingInputError(f"shadow: {name} must be a positive int, got {value!r}")
        if judge is not None and not isinstance(judge, PairwiseJudge):
            raise RoutingInputError(f"shadow: judge must be a PairwiseJudge, got {judge!r:.80}")
        self.sink = sink
        self.rate = float(rate)
        self.judge = judge
        self.max_pending = max_pending
        self.workers = workers
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._queue: queue.SimpleQueue[_Job] = queue.SimpleQueue()
        self._running = 0
        self._pid = os.getpid()
        self._closed = False
        self._counts = dict.fromkeys(
            (
                "offered",
                "sampled",
                "dropped",
                "pending",
                "answered",
                "shadow_failed",
                "judged",
                "unparseable",
                "judge_failed",
                "failed",
            ),
            0,
        )
        self._last_error: str | None = None
        _register(self)

    def __repr__(self) -> str:
        return f"ShadowRunner(rate={self.rate}, judge={self.judge!r})"

    # -- the call's side --------------------------------------------------------------------

    def submit(
        self,
        decision: RoutingDecision,
        *,
        conversation: str | Sequence[ChatTurn | Mapping[str, Any]],
        answer: str,
        call_other: Callable[[], ShadowAnswer],
        strong_model: str | None = None,
        weak_model: str | None = None,
        candidates: Mapping[str, str] | None = None,
    ) -> bool:
        """Offer one answered call; ``True`` when it was drawn and queued. Never raises.
        ``candidates``: the pool's model names by key, instead of ``strong_model`` /
        ``weak_model`` (see :func:`routellm_base.decision.pair_names`).

        ``decision`` is the decision of the side that answered; a call that fell back is not
        shadowed (its other side just failed). ``answer`` is the text the user got;
        ``call_other`` makes the same call on the other side (in a background thread) and
        returns its :class:`ShadowAnswer`.
        """
        try:
            if candidates is not None:
                strong_model, weak_model = pair_names(candidates)
            side: Side = "strong" if decision.side == "strong" else "weak"
            return self._offer(
                decision,
                lambda: _Job(
                    decision, conversation, answer, call_other, strong_model, weak_model, side
                ),
            )
        except Exception as error:  # bookkeeping must never fail an answered call
            self._note_failure(error)
            return False

    def submit_pool(
        self,
        decision: RoutingDecision,
        *,
        conversation: str | Sequence[ChatTurn | Mapping[str, Any]],
        answer: str,
        others: Mapping[str, Callable[[], ShadowAnswer]],
        ranking: Sequence[str],
    ) -> bool:
        """Offer one answered call routed among a pool (``decision.side`` names the model that
        answered); ``True`` when it was drawn and queued. Never raises.

        ``others``: the shadow call of each other candidate, by model name; a drawn call goes to
        one of them sampled uniformly with this runner's random generator (so a ``seed`` makes
        the choice reproducible, as it makes the draw). ``ranking``: the pool's model names,
        priciest first: the pair is stored as the pricier model (``strong_model``) against the
        cheaper one (``weak_model``), ``answered_side`` saying which of the two answered.
        """
        try:
            names = list(others)
            if not names:
                with self._lock:
                    self._counts["offered"] += 1
                return False
            order = {name: i for i, name in enumerate(ranking)}
            for name in (decision.side, *names):
                if name not in order:
                    raise RoutingInputError(f"shadow: {name!r} is not in the ranking {ranking}")

            def job(rng: random.Random) -> _Job:
                other = names[0] if len(names) == 1 else rng.choice(names)
                strong, weak = sorted((decision.side, other), key=order.__getitem__)
                side: Side = "strong" if decision.side == strong else "weak"
                return _Job(decision, conversation, answer, others[other], strong, weak, side)

            return self._offer(decision, job)
        except Exception as error:  # bookkeeping must never fail an answered call
            self._note_failure(error)
            return False

    def _offer(self, decision: RoutingDecision, make_job: Callable[..., _Job]) -> bool:
        """Draw the call, then queue ``make_job()`` (a pool's: ``make_job(rng)``, which draws
        the shadow candidate) under the lock, so seeded draws follow the offers' order."""
        with self._lock:
            self._counts["offered"] += 1
            if decision.fallback_from is not None or self._rng.random() >= self.rate:
                return False
            self._counts["sampled"] += 1
            if self._closed or self._counts["pending"] >= self.max_pending:
                self._drop("closed" if self._closed else f"{self.max_pending} jobs queued")
                return False
            self._fork_check()
            job = make_job(self._rng) if decision.pool is not None else make_job()
            self._counts["pending"] += 1
            self._queue.put(job)
            if self._running < self.workers:
                self._running += 1
                threading.Thread(target=self._work, name="routellm-shadow", daemon=True).start()
        return True

    def _drop(self, why: str) -> None:
        # Under self._lock; logged on the first drop and every 1000th.
        self._counts["dropped"] += 1
        if self._counts["dropped"] % 1000 == 1:
            logger.warning(
                "%r: shadow comparison dropped, %s (%d so far)", self, why, self._counts["dropped"]
            )

    def _fork_check(self) -> None:
        # Under self._lock. A forked child inherits the counters but not the worker threads.
        if self._pid != os.getpid():
            self._pid = os.getpid()
            self._queue = queue.SimpleQueue()
            self._running = 0
            self._counts["pending"] = 0

    # -- counters, flush, close -------------------------------------------------------------

    def stats(self) -> ShadowStats:
        with self._lock:
            return ShadowStats(**self._counts, last_error=self._last_error)

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every queued job has finished (its comparison handed to the sink);
        ``False`` on timeout."""
        with self._idle:
            return self._idle.wait_for(lambda: not self._counts["pending"], timeout)

    def close(self, timeout: float | None = EXIT_TIMEOUT) -> bool:
        """Refuse new jobs and wait for the queued ones (``False`` if some were still running)."""
        with self._lock:
            self._closed = True
        return self.flush(timeout)

    # -- the worker threads -----------------------------------------------------------------

    def _work(self) -> None:
        while True:
            with self._lock:
                try:
                    job = self._queue.get_nowait()
                except queue.Empty:
                    self._running -= 1  # under the lock, so a new job always finds a worker
                    return
            try:
                self.sink.record_comparison(self._compare(job))
            except Exception as error:
                self._note_failure(error)
            finally:
                with self._idle:
                    self._counts["pending"] -= 1
                    if not self._counts["pending"]:
                        self._idle.notify_all()

    def _compare(self, job: _Job) -> Comparison:
        decision = job.decision
        started = time.perf_counter()
        other: ShadowAnswer | None = None
        shadow_error = None
        try:
            other = job.call_other()
            if not isinstance(other, ShadowAnswer):
                raise TypeError(
                    f"the shadow call returned {type(other).__name__}, not a ShadowAnswer"
                )
        except Exception as error:
            other, shadow_error = None, _describe(error)
        latency = time.perf_counter() - started
        self._count("answered" if other is not None else "shadow_failed")
        other_text = None if other is None else other.text
        if job.answered_side == "strong":
            strong_answer, weak_answer = job.answer, other_text
        else:
            strong_answer, weak_answer = other_text, job.answer
        verdict = judge_error = None
        if self.judge is not None and strong_answer is not None and weak_answer is not None:
            try:
                question = judge_question(job.conversation)
                verdict = self.judge.judge(question, strong_answer, weak_answer)
            except Exception as error:
                judge_error = _describe(error)
            self._count(
                "judge_failed"
                if verdict is None
                else "unparseable"
                if verdict.winner is None
                else "judged"
            )
        return Comparison(
            call_id=decision.call_id,
            answered_side=job.answered_side,
            strong_model=job.strong_model,
            weak_model=job.weak_model,
            strong_answer=strong_answer,
            weak_answer=weak_answer,
            shadow_error=shadow_error,
            shadow_latency_seconds=latency,
            shadow_input_tokens=None if other is None else other.input_tokens,
            shadow_output_tokens=None if other is None else other.output_tokens,
            verdict=verdict,
            judge_error=judge_error,
            created_at=time.time(),
        )

    def _count(self, name: str) -> None:
        with self._lock:
            self._counts[name] += 1

    def _note_failure(self, error: BaseException) -> None:
        message = _describe(error)
        logger.warning("%r: shadow comparison not recorded: %s", self, message)
        with self._lock:
            self._counts["failed"] += 1
            self._last_error = message


class LazyShadow:
    """The :class:`ShadowRunner` an integration's ``shadow_rate`` / ``shadow_seed`` / ``judge``
    fields describe, made on first use; thread-safe.

    Copies of a model that share this object share the runner (one queue, one sample sequence)
    while their settings agree; a copy with other settings gets its own runner.
    """

    def __init__(self) -> None:
        self._made: tuple[tuple[Any, ...], ShadowRunner] | None = None
        self._lock = threading.Lock()

    def get(
        self,
        sink: ComparisonSink | None,
        rate: float,
        seed: int | None,
        judge: Any,
        make_judge: Callable[[], PairwiseJudge | None],
    ) -> ShadowRunner | None:
        """The runner for these settings; ``None`` without a sink or at rate 0. ``judge`` is the
        integration's judge field (compared by identity); ``make_judge`` adapts it."""
        if sink is None or not rate:
            return None
        made = self._made
        if made is None or not _same(made[0], (sink, rate, seed, judge)):
            with self._lock:
                made = self._made
                if made is None or not _same(made[0], (sink, rate, seed, judge)):
                    runner = ShadowRunner(sink, rate, judge=make_judge(), seed=seed)
                    made = self._made = ((sink, rate, seed, judge), runner)
        return made[1]

    def current(self) -> ShadowRunner | None:
        """The runner made last, if any."""
        made = self._made
        return None if made is None else made[1]


def _same(a: tuple[Any, ...], b: tuple[Any, ...]) -> bool:
    return a[0] is b[0] and a[1] == b[1] and a[2] == b[2] and a[3] is b[3]


def flush_shadow_and_log(
    runner: ShadowRunner | None, log: Any, timeout: float | None = None
) -> bool:
    """Wait for ``runner``'s queued shadow jobs, then for ``log`` (a ``RoutingLog``) to write
    what is queued, within ``timeout`` seconds in all; either may be ``None``. ``False`` on
    timeout. What the integrations' ``flush_log()`` does."""
    deadline = None if timeout is None else time.monotonic() + timeout
    if runner is not None and not runner.flush(timeout):
        return False
    left = None if deadline is None else max(0.0, deadline - time.monotonic())
    return log is None or bool(log.flush(left))


def check_shadow_settings(
    rate: Any, log: Any, judge: Any, judge_type: type, judge_kind: str, seed: Any = None
) -> None:
    """An integration's ``shadow_rate`` / ``log`` / ``judge`` / ``shadow_seed`` fields, checked
    together: a rate in [0, 1], a log when the rate is above 0, a judge (an instance of
    ``judge_type``, named ``judge_kind`` in the error, or a :class:`PairwiseJudge`) and a seed
    only with a rate above 0. Raises :class:`RoutingInputError` naming what is wrong."""
    rate = check_shadow_rate(rate)
    if rate and log is None:
        raise RoutingInputError("shadow_rate needs a log= to record the shadow comparisons in")
    if seed is not None and not rate:
        raise RoutingInputError(
            "shadow_seed seeds the draw of shadow calls: it needs shadow_rate > 0"
        )
    if judge is None:
        return
    if not rate:
        raise RoutingInputError("judge= judges shadow comparisons: it needs shadow_rate > 0")
    if not isinstance(judge, judge_type | PairwiseJudge):
        raise RoutingInputError(
            f"judge must be a {judge_kind} or a PairwiseJudge, got {type(judge).__name__}"
        )


def check_shadow_rate(rate: Any) -> float:
    """``rate`` as a float in [0, 1]; raises :class:`RoutingInputError` otherwise."""
    if isinstance(rate, bool) or not isinstance(rate, int | float) or not 0.0 <= rate <= 1.0:
        raise RoutingInputError(f"shadow_rate must be a number in [0, 1], got {rate!r}")
    return float(rate)


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"[:1000]


# -- process-wide: wait for queued jobs at exit, before the logs drain ---------------------------

_runners: weakref.WeakSet[ShadowRunner] = weakref.WeakSet()
_registered = False
_registry_lock = threading.Lock()


def _register(runner: ShadowRunner) -> None:
    # Registered with the first runner, which is made after its log: atexit runs handlers in
    # reverse order, so queued shadow jobs finish before the logs' own exit drain.
    global _registered
    with _registry_lock:
        _runners.add(runner)
        if not _registered:
            atexit.register(_close_all)
            _registered = True


def _close_all() -> None:
    deadline = time.monotonic() + EXIT_TIMEOUT
    for runner in list(_runners):
        try:
            runner.close(timeout=max(0.0, deadline - time.monotonic()))
        except Exception:  # pragma: no cover - exit must not fail on bookkeeping
            logger.exception("%r: close at exit failed", runner)
