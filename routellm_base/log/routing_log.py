"""The routing log: every routed call, written off the call's path by a background thread.

:meth:`RoutingLog.record` (a decision), :meth:`RoutingLog.record_comparison` (a shadow
comparison) and :meth:`RoutingLog.feedback` (a rating or golden label) only put a record on a
bounded queue; a writer thread turns queued records into rows (redaction, prompt hash, cost) and
inserts them in batches. Nothing the store does (locked, full, read-only, gone) ever reaches the
caller: each failure is logged through :mod:`logging` (logger ``routellm_base.log``) and counted
in :meth:`RoutingLog.stats`.
"""

from __future__ import annotations

import atexit
import hashlib
import hmac
import json
import logging
import multiprocessing
import multiprocessing.util
import os
import queue
import threading
import time
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import Table
from sqlalchemy.exc import DBAPIError, IntegrityError, InterfaceError, OperationalError

from ..costs import DEFAULT_PRICES, PriceLike, as_prices
from ..decision import RoutingDecision, pair_names
from ..errors import RoutingInputError
from ..judging import PairVerdict
from ..routing_text import ChatTurn, turn_texts
from ..shadow import Comparison
from .schema import OUTCOMES, comparisons, decisions, feedback, pool_candidates
from .store import create_log_engine, log_url, read_salt, store_prices, upgrade

logger = logging.getLogger("routellm_base.log")

Redactor = Callable[[str], str]
"""A redaction hook: one message's text in, the text to store (and hash) out."""

DEFAULT_MAX_QUEUE = 10_000
EXIT_TIMEOUT = 10.0
"""Seconds the interpreter's exit waits, for every open log together, for queued records to
be written; records still unwritten then are named in a warning."""
BATCH = 500
"""Rows per insert transaction at most."""
RETRY_DELAYS = (0.1, 0.5, 2.0)
"""Seconds to wait before each retry of a batch whose connection was lost or refused: a batch
is tried at most ``1 + len(RETRY_DELAYS)`` times, each on a fresh connection, before its
records are counted failed (a server restart takes a second or two)."""
RATINGS = (1, -1)
LABELS = ("strong", "weak", "tie")


@dataclass(frozen=True)
class LogStats:
    """Counters of a :class:`RoutingLog` since it was made, or in a forked child since the
    fork (a snapshot)."""

    recorded: int
    """Records handed to the log: calls (:meth:`RoutingLog.record`), shadow comparisons and
    feedback."""
    written: int
    """Records committed to the store (a pool call's candidate rows go with its decision's
    row and count with it)."""
    dropped: int
    """Records not queued: the queue was full, or the log was closed."""
    failed: int
    """Records queued but not stored: the store raised (locked, read-only, full, unreachable, a
    duplicate ``call_id``) or the redaction hook raised."""
    pending: int
    """Records queued and not yet written or failed."""
    last_error: str | None
    """``"<Type>: <message>"`` of the newest failure."""


@dataclass(frozen=True)
class _Call:
    """One routed call as the adapter saw it; turned into a row by the writer thread."""

    decision: RoutingDecision
    created_at: float
    conversation: Any
    strong_model: str | None
    weak_model: str | None
    checkpoint_id: str | None
    input_tokens: int | None
    output_tokens: int | None
    tokens_estimated: bool | None
    cost_usd: float | None
    latency_seconds: float | None
    outcome: str = "complete"


@dataclass(frozen=True)
class _Feedback:
    call_id: str
    created_at: float
    rating: int | None
    label: str | None
    source: str


_Record = _Call | Comparison | _Feedback


class RoutingLog:
    """A routing log in a SQLite file (``target`` a path) or any SQLAlchemy database (a URL,
    e.g. ``postgresql+psycopg://user@host/db``).

    * ``store_prompts``: store the conversation's text (JSON list of ``{"role", "content"}``).
      Off by default: only ``prompt_hash`` is stored, an HMAC-SHA256 of that JSON keyed with
      a random salt made with the log (so equal prompts match within one log while a table of
      hashes of guessed prompts must be built per log; whoever can read the log can read its
      salt too, so short guessable prompts are not hidden from them).
    * ``redact``: applied to each message's text before anything is stored or hashed. If it
      raises, the call is not stored (counted in ``failed``), never stored unredacted.
    * ``prices``: USD per 1M input/output tokens per model name, merged over
      :data:`routellm_base.costs.DEFAULT_PRICES`; fills ``cost_usd`` when the caller gave
      tokens but no cost.
    * ``max_queue``: calls waiting to be written at most; a call beyond it is dropped and
      counted.

    The schema is created or upgraded (Alembic migrations) by the writer thread when it starts.
    Raises :class:`RoutingInputError` for a malformed URL or a path whose folder is missing,
    and :class:`MissingDependencyError` when the URL's driver is not installed.
    """

    def __init__(
        self,
        target: str | Path,
        *,
        store_prompts: bool = False,
        redact: Redactor | None = None,
        prices: Mapping[str, PriceLike] | None = None,
        max_queue: int = DEFAULT_MAX_QUEUE,
    ) -> None:
        if not isinstance(max_queue, int) or max_queue < 1:
            raise RoutingInputError(f"log: max_queue must be a positive int, got {max_queue!r}")
        if not isinstance(store_prompts, bool):  # "false" from a config file would store them
            raise RoutingInputError(
                f"log: store_prompts must be True or False, got {store_prompts!r}"
            )
        if redact is not None and not callable(redact):
            raise RoutingInputError(f"log: redact must be a callable str -> str, got {redact!r}")
        self.url = log_url(target)
        self.store_prompts = store_prompts
        self.redact = redact
        self._given_prices = as_prices(prices)
        self.prices = {**DEFAULT_PRICES, **self._given_prices}
        self.max_queue = max_queue
        self._engine = create_log_engine(self.url)
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._counts = {"recorded": 0, "written": 0, "dropped": 0, "failed": 0, "pending": 0}
        self._last_error: str | None = None
        self._closed = False
        # Unbounded: max_queue is enforced on the pending count, so close()'s stop marker is
        # never refused by a full queue (a blocking put could hang an exit).
        self._queue: queue.SimpleQueue[_Record | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._salt: bytes | None = None
        # add_prices() bumps the first; the writer stores the prices and copies it to the second
        self._prices_version = 0
        self._stored_prices_version = -1
        _open_logs.add(self)

    def __repr__(self) -> str:
        return f"RoutingLog({self.url.render_as_string(hide_password=True)!r})"

    # Copies of a model share its log: a log is a connection to a store, not a value.
    def __copy__(self) -> RoutingLog:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> RoutingLog:
        return self

    def __reduce__(self) -> tuple[Any, ...]:
        # A pickle (e.g. sent to a worker process) opens the same store with the same settings.
        options = {
            "store_prompts": self.store_prompts,
            "redact": self.redact,
            "prices": self._given_prices,
            "max_queue": self.max_queue,
        }
        return (_reopen, (self.url.render_as_string(hide_password=False), options))

    def add_prices(self, prices: Mapping[str, PriceLike] | None) -> None:
        """Merge a model's prices (an integration's ``prices=``) over this log's: they price its
        calls' and shadow calls' tokens, and are stored with the log (as ``serve`` stores its
        pool's), so that its report prices them without ``--price``. A price that replaces
        another one given for the same model is logged as a warning."""
        new = as_prices(prices)
        with self._lock:
            changed = {n: p for n, p in new.items() if self._given_prices.get(n) != p}
            if not changed:
                return
            for name, price in changed.items():
                if name in self._given_prices:
                    logger.warning(
                        "routing log %r: model %r is priced %s by a model using this log, not "
                        "%s as given before; the log now prices it so",
                        self,
                        name,
                        price,
                        self._given_prices[name],
                    )
            self._given_prices = {**self._given_prices, **changed}
            self.prices = {**DEFAULT_PRICES, **self._given_prices}
            self._prices_version += 1

    # -- the call's side --------------------------------------------------------------------

    def record(
        self,
        decision: RoutingDecision,
        *,
        conversation: str | Sequence[ChatTurn | Mapping[str, Any]] | None = None,
        strong_model: str | None = None,
        weak_model: str | None = None,
        checkpoint_id: str | None = None,
        input_tokens: int | None = None,
        output_tokens: int | None = None,
        tokens_estimated: bool | None = None,
        cost_usd: float | None = None,
        latency_seconds: float | None = None,
        candidates: Mapping[str, str] | None = None,
        outcome: str = "complete",
    ) -> None:
        """Queue one answered call; returns at once and never raises.

        ``decision`` is the decision of the side that answered (after any fallback; its
        ``call_id`` is the row's); ``conversation`` what was routed (a prompt string or turns,
        as for :meth:`RoutingEngine.decide`); ``checkpoint_id`` defaults to the decision's; tokens
        and ``cost_usd`` as known (``None``: unknown); ``latency_seconds`` the whole call, routing
        included; ``candidates`` the pool's model names by key, instead of ``strong_model`` /
        ``weak_model`` (see :func:`routellm_base.decision.pair_names`; a pool decision's
        candidates and predictions come from its ``pool`` field); ``outcome`` how the
        answer ended: ``"complete"``, ``"cancelled"`` (the caller went away mid-answer) or
        ``"broken"`` (the model failed after its first chunk), with the tokens of what was
        answered until then. Any other outcome is not stored: it is counted in ``failed`` and
        named in ``last_error``.
        """
        try:
            if candidates is not None and decision.pool is None:
                strong_model, weak_model = pair_names(candidates)
            self._put(
                _Call(
                    decision,
                    time.time(),
                    conversation,
                    strong_model,
                    weak_model,
                    checkpoint_id,
                    input_tokens,
                    output_tokens,
                    tokens_estimated,
                    cost_usd,
                    latency_seconds,
                    outcome,
                )
            )
        except Exception as error:  # bookkeeping must never fail an answered call
            self._fail(1, error)

    def record_comparison(self, comparison: Comparison) -> None:
        """Queue one shadow comparison (a ``routellm_comparisons`` row); never raises.

        The answers, and the judge's raw text of a judgment with no readable verdict, are
        stored (redacted) only with ``store_prompts``; the shadow call's cost is priced like a
        call's when its tokens are known.
        """
        try:
            self._put(comparison)
        except Exception as error:
            self._fail(1, error)

    def feedback(
        self,
        call_id: str,
        *,
        rating: Literal[1, -1] | None = None,
        label: Literal["strong", "weak", "tie"] | None = None,
        source: str = "user",
    ) -> None:
        """Queue feedback on a call (a ``routellm_feedback`` row); returns at once.

        ``call_id`` is the call's (``response_metadata["routellm"]["call_id"]`` in LangChain,
        ``additional_kwargs["routellm"]["call_id"]`` in LlamaIndex); ``rating`` +1 (thumbs up)
        or -1 (thumbs down) on the answer the user got; ``label`` a golden label, the side whose
        answer is better (``"strong"``, ``"weak"`` or ``"tie"``); give either or both.
        ``source`` says who gave it (at most 64 characters). How feedback becomes training
        battles: :mod:`routellm_base.log.labels`.

        Raises :class:`RoutingInputError` for bad arguments; a failing store never raises (it
        is counted, as for :meth:`record`).
        """
        if not isinstance(call_id, str) or not 0 < len(call_id) <= 32:
            raise RoutingInputError(
                f"feedback: call_id must be a call's id (1-32 characters), got {call_id!r}"
            )
        if rating is not None and (isinstance(rating, bool) or rating not in RATINGS):
            raise RoutingInputError(
                f"feedback: rating must be 1 (thumbs up) or -1 (thumbs down), got {rating!r}"
            )
        if label is not None and label not in LABELS:
            raise RoutingInputError(f"feedback: label must be one of {list(LABELS)}, got {label!r}")
        if rating is None and label is None:
            raise RoutingInputError("feedback: give a rating, a label or both")
        if not isinstance(source, str) or not 0 < len(source) <= 64:
            raise RoutingInputError(f"feedback: source must be 1-64 characters, got {source!r}")
        try:
            self._put(_Feedback(call_id, time.time(), rating, label, source))
        except Exception as error:
            self._fail(1, error)

    def _put(self, record: _Record) -> None:
        with self._lock:
            self._counts["recorded"] += 1
            if self._closed:
                self._drop("the log is closed")
                return
            if self._counts["pending"] >= self.max_queue:
                self._drop(f"the queue is full ({self.max_queue} records waiting)")
                return
            self._ensure_writer()
            self._queue.put(record)
            self._counts["pending"] += 1

    def _drop(self, why: str) -> None:
        # Called under self._lock. Logged on the first drop and then every 1000th, not each.
        self._counts["dropped"] += 1
        if self._counts["dropped"] % 1000 == 1:
            logger.warning(
                "routing log %r: record not logged, %s (%d dropped so far)",
                self,
                why,
                self._counts["dropped"],
            )

    def _ensure_writer(self) -> None:
        # Under self._lock: the writer starts with the first record of this process.
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._run, name="routellm-log-writer", daemon=True
            )
            self._thread.start()
            _drain_at_worker_exit()

    def _forget_parent(self) -> None:
        """In a forked child (run by the at-fork hook): start over with this process's own
        connections, queue, writer and counters, and never touch the parent's connections.

        Closing an inherited connection ends the parent's session too (psycopg sends the
        server a goodbye on the shared socket) and SQLite forbids using a handle across fork,
        so the parent's pool is set aside as SQLAlchemy advises (``dispose(close=False)``) and
        kept referenced for the child's life, so that garbage collection does not close it
        either. The parent's queued records stay the parent's to write.
        """
        _inherited_pools.append(self._engine.pool)
        self._engine.dispose(close=False)
        # A lock held by another of the parent's threads at the fork would never be released.
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._queue = queue.SimpleQueue()
        self._thread = None
        self._counts = dict.fromkeys(self._counts, 0)
        self._last_error = None

    # -- counters, flush, close -------------------------------------------------------------

    def stats(self) -> LogStats:
        """The counters (see :class:`LogStats`)."""
        with self._lock:
            return LogStats(**self._counts, last_error=self._last_error)

    def flush(self, timeout: float | None = None) -> bool:
        """Wait up to ``timeout`` seconds (``None``: no limit) until every queued record is
        written or has failed; ``False`` on timeout."""
        with self._idle:
            return self._idle.wait_for(lambda: not self._counts["pending"], timeout)

    def close(self, timeout: float | None = 10.0) -> bool:
        """Drain the queue, stop the writer and release the store, all within ``timeout``
        seconds (``None``: no limit). Later records are counted as dropped.

        Returns ``False`` when records were still not written at the deadline (a store that
        does not answer): they are named in a warning, and the writer is left to finish them
        (and release the store) should the store answer while the process lives on.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        self.flush(timeout)
        with self._lock:
            already = self._closed
            self._closed = True
            thread = self._thread
        if not already:
            _open_logs.discard(self)
            if thread is None:
                self._engine.dispose()
            else:
                self._queue.put(None)  # the writer releases the store when it stops
                thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
        with self._lock:
            unwritten = self._counts["pending"]
        if unwritten and not already:
            logger.warning(
                "routing log %r: %d record(s) not written at close: the store did not take "
                "them within %s s (last error: %s)",
                self,
                unwritten,
                None if timeout is None else round(timeout, 1),
                self._last_error or "none",
            )
        return not unwritten

    def __enter__(self) -> RoutingLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the writer thread ------------------------------------------------------------------

    def _run(self) -> None:
        try:
            self._open_store()
        except Exception as error:  # the first batch tries again
            message = _describe(error)
            logger.warning(
                "routing log %r: could not open the store (will retry): %s", self, message
            )
            with self._lock:
                self._last_error = message
        try:
            self._drain()
        finally:
            # Reached only after close()'s stop marker: the writer owns the store's connections.
            self._engine.dispose()

    def _drain(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            stop = False
            while len(batch) < BATCH:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stop = True
                    break
                batch.append(item)
            self._write(batch)
            if stop:
                return

    def _open_store(self) -> bytes:
        """Create or upgrade the schema and read the salt; raises what the store raised."""
        upgrade(self._engine)
        self._store_given_prices()
        self._salt = bytes.fromhex(read_salt(self._engine))
        return self._salt

    def _store_given_prices(self) -> None:
        """Store the prices given to this log (a pool's, in serve or an integration) with it, so
        that its report prices the pool's baseline as the calls were priced, without --price."""
        with self._lock:
            version, prices = self._prices_version, self._given_prices
        store_prices(
            self._engine,
            {name: (p.input_per_million, p.output_per_million) for name, p in prices.items()},
        )
        self._stored_prices_version = version

    def _write(self, batch: list[_Record]) -> None:
        rows: list[list[tuple[Table, dict[str, Any]]]] | None = None
        tally = {"written": 0, "failed": 0}
        attempts = 1 + len(RETRY_DELAYS)
        for attempt in range(attempts):
            try:
                salt = self._salt or self._open_store()
                if self._stored_prices_version != self._prices_version:
                    self._store_given_prices()  # add_prices() after the store was opened
                if rows is None:
                    rows = []
                    for record in batch:
                        try:
                            rows.append(self._table_row(record, salt))
                        except Exception as error:  # e.g. the redaction hook raised
                            tally["failed"] += 1
                            self._fail(1, error, counted=True)
                self._store(rows, tally)
                break
            except Exception as error:
                left = len(batch) - tally["failed"] - tally["written"]
                if attempt + 1 < attempts and self._retryable(error):
                    logger.info(
                        "routing log %r: %d record(s) not stored yet (%s), retrying on a fresh "
                        "connection in %.1f s",
                        self,
                        left,
                        _describe(error),
                        RETRY_DELAYS[attempt],
                    )
                    time.sleep(RETRY_DELAYS[attempt])
                    continue
                self._fail(left, error, attempts=attempt + 1)
                break
        with self._idle:
            self._counts["written"] += tally["written"]
            self._counts["failed"] += tally["failed"]
            self._counts["pending"] -= len(batch)
            if not self._counts["pending"]:
                self._idle.notify_all()

    def _retryable(self, error: Exception) -> bool:
        """Whether a fresh connection may store what ``error`` refused: the connection was found
        dead, or a server database could not be reached or dropped the session. (A SQLite
        file's errors, locked or read-only, are not a connection's: a new one fails alike.)"""
        if isinstance(error, DBAPIError) and error.connection_invalidated:
            return True
        server = self.url.get_backend_name() != "sqlite"
        return server and isinstance(error, OperationalError | InterfaceError)

    def _store(self, rows: list[list[tuple[Table, dict[str, Any]]]], tally: dict[str, int]) -> None:
        """Insert ``rows`` (each record's rows: one, or a pool decision's with its candidates)
        in one transaction, or record by record when one is refused; each record stored or
        refused leaves ``rows`` at once (counted in ``tally``), so a retry after a lost
        connection sends only the rest. A commit whose answer was lost with the connection is
        sent again: a decision then counts as a refused duplicate (its candidates with it)."""
        try:
            self._insert(rows)
            tally["written"] += len(rows)
            rows.clear()
        except IntegrityError:
            # One bad row (a call_id recorded twice) must not cost the batch its other rows.
            while rows:
                try:
                    self._insert(rows[:1])
                    tally["written"] += 1
                except IntegrityError as error:
                    tally["failed"] += 1
                    self._fail(1, error, counted=True)
                del rows[0]

    def _insert(self, rows: list[list[tuple[Table, dict[str, Any]]]]) -> None:
        if not rows:
            return
        with self._engine.begin() as connection:
            for table in (decisions, pool_candidates, comparisons, feedback):
                of_table = [row for record in rows for t, row in record if t is table]
                if of_table:
                    connection.execute(table.insert(), of_table)

    def _table_row(self, record: _Record, salt: bytes) -> list[tuple[Table, dict[str, Any]]]:
        if isinstance(record, _Call):
            row = self._row(record, salt)
            return [(decisions, row), *((pool_candidates, c) for c in _candidate_rows(record))]
        if isinstance(record, Comparison):
            return [(comparisons, self._comparison_row(record))]
        return [
            (
                feedback,
                {
                    "call_id": record.call_id,
                    "created_at": _utc(record.created_at),
                    "rating": record.rating,
                    "label": record.label,
                    "source": record.source,
                },
            )
        ]

    def _stored_text(self, text: str | None) -> str | None:
        if text is None or not self.store_prompts:
            return None
        return self.redact(text) if self.redact else text

    def _unreadable_text(self, verdict: PairVerdict, order: int) -> str | None:
        # Only an unreadable judgment's text is kept: a readable one is its parsed verdict.
        parsed = (verdict.strong_first, verdict.weak_first)[order]
        return None if parsed is not None else self._stored_text(verdict.judgments[order])

    def _price(
        self, model: str | None, input_tokens: int | None, output_tokens: int | None
    ) -> float | None:
        if model is None or input_tokens is None or output_tokens is None:
            return None
        price = self.prices.get(model)
        return price.cost(input_tokens, output_tokens) if price else None

    def _comparison_row(self, c: Comparison) -> dict[str, Any]:
        v = c.verdict
        return {
            "call_id": c.call_id,
            "created_at": _utc(c.created_at),
            "answered_side": c.answered_side,
            "strong_model": c.strong_model,
            "weak_model": c.weak_model,
            "strong_answer": self._stored_text(c.strong_answer),
            "weak_answer": self._stored_text(c.weak_answer),
            "shadow_error": c.shadow_error,
            "shadow_latency_seconds": c.shadow_latency_seconds,
            "shadow_input_tokens": c.shadow_input_tokens,
            "shadow_output_tokens": c.shadow_output_tokens,
            "shadow_cost_usd": self._price(
                c.shadow_model, c.shadow_input_tokens, c.shadow_output_tokens
            ),
            "verdict": None if v is None else v.winner,
            "verdict_source": None if v is None or v.winner is None else "judge",
            "judge_model": None if v is None else v.judge_model,
            "judged_at": None if v is None else _utc(v.judged_at),
            "strong_first_verdict": None if v is None else v.strong_first,
            "weak_first_verdict": None if v is None else v.weak_first,
            "strong_first_judgment": None if v is None else self._unreadable_text(v, 0),
            "weak_first_judgment": None if v is None else self._unreadable_text(v, 1),
            "unparseable": 0 if v is None else v.unparseable,
            "judge_error": c.judge_error,
        }

    def _fail(
        self, calls: int, error: BaseException, *, attempts: int = 1, counted: bool = False
    ) -> None:
        """Warn that ``calls`` records were not stored and keep ``error`` as the last one;
        ``counted``: the caller adds them to the failed counter itself (with its batch's)."""
        message = _describe(error)
        tries = f" after {attempts} attempts" if attempts > 1 else ""
        logger.warning("routing log %r: %d call(s) not stored%s: %s", self, calls, tries, message)
        with self._lock:
            if not counted:
                self._counts["failed"] += calls
            self._last_error = message

    def _row(self, call: _Call, salt: bytes) -> dict[str, Any]:
        if call.outcome not in OUTCOMES:
            raise RoutingInputError(
                f"log: outcome must be 'complete', 'cancelled' or 'broken', got {call.outcome!r}"
            )
        d = call.decision
        prompt = prompt_hash = None
        if call.conversation is not None:
            turns = [
                {"role": role, "content": self.redact(text) if self.redact else text}
                for role, text in turn_texts(call.conversation)
            ]
            prompt = json.dumps(turns, ensure_ascii=False, separators=(",", ":"))
            prompt_hash = hmac.new(salt, prompt.encode("utf-8"), hashlib.sha256).hexdigest()
        cost = call.cost_usd
        if cost is None:
            cost = self._price(d.model, call.input_tokens, call.output_tokens)
        pool = d.pool
        return {
            "pool_policy": None if pool is None else pool.policy,
            "pool_knob": None if pool is None else pool.knob,
            "pool_cost_weight": None if pool is None else pool.cost_weight,
            "pool_max_cost": None if pool is None else pool.max_cost,
            "expected_cost_usd": d.expected_cost,
            "call_id": d.call_id,
            "created_at": _utc(call.created_at),
            "router": d.router,
            "checkpoint_id": call.checkpoint_id or d.checkpoint_id,
            "threshold": d.threshold,
            "side": d.side,
            "win_rate": d.win_rate,
            "model": d.model,
            "strong_model": call.strong_model,
            "weak_model": call.weak_model,
            "forced": d.forced,
            "fallback_from": d.fallback_from,
            "fallback_reason": d.fallback_reason,
            "routing_text_source": d.routing_text_source,
            "routing_text_tokens": d.routing_text_tokens,
            "no_known_tokens": d.no_known_tokens,
            "routing_seconds": d.seconds,
            "latency_seconds": call.latency_seconds,
            "input_tokens": call.input_tokens,
            "output_tokens": call.output_tokens,
            "tokens_estimated": call.tokens_estimated,
            "cost_usd": cost,
            "prompt_hash": prompt_hash,
            "prompt": prompt if self.store_prompts else None,
            "outcome": call.outcome,
            "extra": json.dumps(
                {**d.extra, "skipped_parts": list(d.skipped_parts)} if d.skipped_parts else d.extra,
                default=str,
            ),
        }


def _candidate_rows(call: _Call) -> list[dict[str, Any]]:
    """A pool decision's ``routellm_pool_candidates`` rows: every candidate of the pool (a
    forced call's too), with its rank in the fallback order."""
    d = call.decision
    pool = d.pool
    if pool is None:
        return []
    names = list(pool.expected_cost) or list(pool.order)
    names += [n for n in pool.order if n not in names]
    rank = {name: i for i, name in enumerate(pool.order)}
    return [
        {
            "call_id": d.call_id,
            "model": name,
            "quality": pool.quality.get(name),
            "expected_cost_usd": pool.expected_cost.get(name),
            "rank": rank.get(name),
        }
        for name in names
    ]


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"[:1000]


def _utc(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, timezone.utc)


def _reopen(url: str, options: dict[str, Any]) -> RoutingLog:
    return RoutingLog(url, **options)


# -- process-wide registry ----------------------------------------------------------------------

_open_logs: weakref.WeakSet[RoutingLog] = weakref.WeakSet()
_shared: dict[str, RoutingLog] = {}
_shared_lock = threading.Lock()


def open_log(target: RoutingLog | str | Path) -> RoutingLog:
    """The log for an integration's ``log=`` field: a :class:`RoutingLog` as given, or the one
    log of this process for that path or URL (made with default settings on first use), so
    every model and copy naming the same store shares one queue and one writer."""
    if isinstance(target, RoutingLog):
        return target
    if not isinstance(target, str | Path):
        raise RoutingInputError(
            f"log must be a file path, a SQLAlchemy URL or a RoutingLog, got {type(target).__name__}"
        )
    key = log_url(target).render_as_string(hide_password=False)
    with _shared_lock:
        log = _shared.get(key)
        if log is None or log._closed:
            log = _shared[key] = RoutingLog(target)
        return log


_worker_drain_pid: int | None = None


def _drain_at_worker_exit() -> None:
    # A multiprocessing child ends with os._exit() once its target returns: atexit handlers
    # never run there, and the records still queued in it would die with its writer thread.
    # Its own exit finalizers do run (registered after its start, so kept): drain there.
    global _worker_drain_pid
    if multiprocessing.parent_process() is not None and _worker_drain_pid != os.getpid():
        _worker_drain_pid = os.getpid()
        multiprocessing.util.Finalize(None, _close_all, exitpriority=0)


_inherited_pools: list[Any] = []
"""In a forked child: the parent's connection pools, set aside and never closed here."""


def _after_fork_in_child() -> None:
    global _shared_lock
    _shared_lock = threading.Lock()  # another thread may have held it at the fork
    for log in list(_open_logs):
        log._forget_parent()


os.register_at_fork(after_in_child=_after_fork_in_child)


@atexit.register
def _close_all() -> None:
    # Drain what is queued before the interpreter stops the daemon writer threads; the whole
    # exit, every log together, within EXIT_TIMEOUT (the logs' writers drain side by side).
    deadline = time.monotonic() + EXIT_TIMEOUT
    for log in list(_open_logs):
        try:
            log.close(timeout=max(0.0, deadline - time.monotonic()))
        except Exception:  # pragma: no cover - exit must not fail on bookkeeping
            logger.exception("routing log %r: close at exit failed", log)
