"""The routing log on a real SQLite file: rows, privacy, schema, concurrency, crashes, failures."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import multiprocessing
import os
import secrets
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from log_helpers import decision, run_fork_child
from sqlalchemy import create_engine
from stored_values import columns_containing

from routellm_base import RoutingEngine
from routellm_base.errors import RoutingInputError
from routellm_base.log import VERSION_TABLE, RoutingLog, metadata, open_log
from routellm_base.log import read_decisions as rows
from routellm_base.routed_call import Answer, CallSinks, Candidate, RoutedCall
from routellm_base.tokens import measure_tokens


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"


def test_a_recorded_call_becomes_one_row_with_every_field(tmp_path: Path) -> None:
    engine = RoutingEngine("mf", threshold=0.5)
    d = engine.decide(
        "Prove that sqrt(2) is irrational", strong_model="gpt-4o", weak_model="gpt-4o-mini"
    )
    with RoutingLog(tmp_path / "log.db") as log:
        log.record(
            d,
            conversation="Prove that sqrt(2) is irrational",
            strong_model="gpt-4o",
            weak_model="gpt-4o-mini",
            checkpoint_id=engine.checkpoint_id,
            input_tokens=1000,
            output_tokens=2000,
            tokens_estimated=False,
            latency_seconds=0.25,
        )
    assert log.stats().written == 1
    [row] = rows(sqlite_url(tmp_path / "log.db"))
    assert row["router"] == "mf" and row["checkpoint_id"] == engine.checkpoint_id
    assert len(row["checkpoint_id"]) == 64
    assert row["side"] == d.side and row["model"] == d.model
    assert row["win_rate"] == pytest.approx(d.win_rate) and row["threshold"] == 0.5
    assert (row["strong_model"], row["weak_model"]) == ("gpt-4o", "gpt-4o-mini")
    assert (row["input_tokens"], row["output_tokens"], row["tokens_estimated"]) == (
        1000,
        2000,
        False,
    )
    # priced by the log's prices (DEFAULT_PRICES here) since the caller gave no cost
    price = {
        "gpt-4o": 1000 * 2.5 / 1e6 + 2000 * 10 / 1e6,
        "gpt-4o-mini": 1000 * 0.15 / 1e6 + 2000 * 0.6 / 1e6,
    }
    assert row["cost_usd"] == pytest.approx(price[d.model])
    assert row["latency_seconds"] == 0.25 and row["routing_seconds"] == pytest.approx(d.seconds)
    assert row["routing_text_source"] == "user" and row["no_known_tokens"] is False
    assert row["forced"] is False and row["fallback_from"] is None
    assert row["created_at"] is not None and len(row["call_id"]) == 32


def test_forced_fallback_and_unscored_decisions_are_recorded_as_such(tmp_path: Path) -> None:
    engine = RoutingEngine("mf", threshold=0.5)
    forced = engine.decide("hi", force="weak").fell_back("strong", RuntimeError("rate limit"))
    unscored = engine.decide("\U0001f600\U0001f600")  # no token the embedder knows
    assert unscored.no_known_tokens
    with RoutingLog(tmp_path / "log.db") as log:
        log.record(forced, cost_usd=0.5)
        log.record(unscored)
    first, second = rows(sqlite_url(tmp_path / "log.db"))
    assert (
        first["forced"] is True and first["side"] == "strong" and first["fallback_from"] == "weak"
    )
    assert first["fallback_reason"] == "RuntimeError: rate limit" and first["cost_usd"] == 0.5
    assert first["win_rate"] is None and first["prompt_hash"] is None
    assert second["no_known_tokens"] is True and second["win_rate"] is None
    assert second["input_tokens"] is None and second["cost_usd"] is None


@pytest.fixture
def ids_with_the_pins_digits(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every call id and salt contains "4321", as a random hex id sometimes does by chance: a
    privacy check must read what the log stores, not search the file for the digits."""
    calls, salts = itertools.count(), itertools.count()
    monkeypatch.setattr(uuid, "uuid4", lambda: uuid.UUID(f"{next(calls):028x}4321"))
    monkeypatch.setattr(secrets, "token_hex", lambda n=32: f"4321{next(salts):0{2 * n - 4}x}")


@pytest.mark.usefixtures("ids_with_the_pins_digits")
def test_prompts_are_hashed_not_stored_unless_asked_and_redacted_first(tmp_path: Path) -> None:
    secret = [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "my pin is 4321"},
    ]
    with RoutingLog(tmp_path / "hashed.db") as hashed:
        hashed.record(decision(), conversation=secret)
        hashed.record(decision(), conversation=secret)
        hashed.record(decision(), conversation="another prompt")
    a, b, c = rows(sqlite_url(tmp_path / "hashed.db"))
    assert a["prompt"] is None and b["prompt"] is None
    assert a["prompt_hash"] == b["prompt_hash"] != c["prompt_hash"]
    assert "4321" in a["call_id"]  # the ids carry the digits, so only the text is checked below
    # No column of any table holds any message's text (the ids cannot: they have no spaces).
    for text in ("pin is 4321", "be brief", "another prompt"):
        assert columns_containing(tmp_path / "hashed.db", text) == []

    with RoutingLog(tmp_path / "other.db") as other:  # another log, another salt
        other.record(decision(), conversation=secret)
    assert rows(sqlite_url(tmp_path / "other.db"))[0]["prompt_hash"] != a["prompt_hash"]

    redact = lambda text: text.replace("4321", "[pin]")  # noqa: E731
    with RoutingLog(tmp_path / "stored.db", store_prompts=True, redact=redact) as stored:
        stored.record(decision(), conversation=secret)
    [row] = rows(sqlite_url(tmp_path / "stored.db"))
    assert row["prompt"] == (
        '[{"role":"system","content":"be brief"},{"role":"user","content":"my pin is [pin]"}]'
    )
    assert columns_containing(tmp_path / "stored.db", "pin is 4321") == []
    assert columns_containing(tmp_path / "stored.db", "my pin is [pin]") == [
        ("routellm_decisions", "prompt")
    ]


def test_a_failing_redaction_hook_stores_nothing_and_is_counted(tmp_path: Path) -> None:
    def redact(text: str) -> str:
        raise ValueError("cannot redact")

    with RoutingLog(tmp_path / "log.db", store_prompts=True, redact=redact) as log:
        log.record(decision(), conversation="my pin is 4321")
        log.record(decision())  # no conversation: nothing to redact, stored
    stats = log.stats()
    assert (stats.written, stats.failed) == (1, 1)
    assert "cannot redact" in (stats.last_error or "")
    assert len(rows(sqlite_url(tmp_path / "log.db"))) == 1


def test_a_store_that_cannot_be_opened_is_warned_about_without_a_call_count(
    tmp_path: Path, caplog
) -> None:
    # A trial (an unreachable PostgreSQL URL) first warned "0 call(s) not stored: ...".
    path = tmp_path / "log.db"
    path.write_bytes(b"not a database" * 100)
    log = RoutingLog(path)
    with caplog.at_level(logging.WARNING, logger="routellm_base.log"), log:
        log.record(decision())
        log.flush()
    messages = [r.getMessage() for r in caplog.records]
    assert "could not open the store (will retry): DatabaseError" in messages[0], messages
    assert not any("0 call(s)" in m for m in messages), messages
    assert log.stats().failed == 1  # the retry failed too: the call is counted


def test_each_refused_record_is_warned_about_as_one_call(tmp_path: Path, caplog) -> None:
    # The warning counts the record it is about, as the failed counter does (not "0 call(s)").
    def redact(text: str) -> str:
        if "bad" in text:
            raise ValueError("nope")
        return text

    log = RoutingLog(tmp_path / "log.db", store_prompts=True, redact=redact)
    with caplog.at_level(logging.WARNING, logger="routellm_base.log"), log:
        for prompt in ("good 1", "bad 1", "good 2", "bad 2"):
            log.record(decision(), conversation=prompt)
        log.flush()
        twice = decision()
        log.record(twice)
        log.record(twice)  # the same call_id again: refused by the store
    stats = log.stats()
    assert (stats.written, stats.failed) == (3, 3)
    warnings = [r.getMessage() for r in caplog.records if "not stored" in r.getMessage()]
    assert len(warnings) == 3
    assert all(": 1 call(s) not stored: " in w for w in warnings), warnings
    assert sum("ValueError: nope" in w for w in warnings) == 2


def test_a_call_that_did_not_complete_is_recorded_with_its_outcome(tmp_path: Path) -> None:
    with RoutingLog(tmp_path / "log.db") as log:
        log.record(decision())  # the keywords of before: an answer that reached its end
        log.record(
            decision(), outcome="cancelled", input_tokens=12, output_tokens=3, tokens_estimated=True
        )
        log.record(decision(), outcome="broken")
        log.record(decision(), outcome="lost")  # not an outcome: refused, counted and named
    stats = log.stats()
    assert (stats.recorded, stats.written, stats.failed) == (4, 3, 1)
    assert "outcome must be 'complete', 'cancelled' or 'broken', got 'lost'" in (
        stats.last_error or ""
    )
    complete, cancelled, broken = rows(sqlite_url(tmp_path / "log.db"))
    assert complete["outcome"] == "complete" and broken["outcome"] == "broken"
    assert cancelled["outcome"] == "cancelled"
    assert (cancelled["input_tokens"], cancelled["output_tokens"]) == (12, 3)


def test_a_routed_call_finishes_with_its_outcome_and_counts_missing_tokens(
    tmp_path: Path,
) -> None:
    prompt = "Prove that sqrt(2) is irrational"

    def finish(answer: Answer, **options: object) -> None:
        call: RoutedCall[None] = RoutedCall(
            RoutingEngine("mf", threshold=0.5),
            [Candidate("strong", "gpt-4o", None), Candidate("weak", "gpt-4o-mini", None)],
            prompt,
            sinks=CallSinks(log=log),
        )
        call.decide()
        call.finish(answer, **options)  # type: ignore[arg-type]

    with RoutingLog(tmp_path / "log.db") as log:
        finish(Answer("Suppose it were p/q", None, None), outcome="cancelled", estimate_tokens=True)
        finish(Answer("Suppose", 20, 30), estimate_tokens=True)
        finish(Answer("Suppose", None, None))  # no estimate asked, no cost tracker: unknown
    cancelled, reported, unknown = rows(sqlite_url(tmp_path / "log.db"))
    assert cancelled["outcome"] == "cancelled" and cancelled["tokens_estimated"] is True
    assert cancelled["input_tokens"] == measure_tokens(prompt).tokens
    assert cancelled["output_tokens"] == measure_tokens("Suppose it were p/q").tokens
    assert (reported["input_tokens"], reported["output_tokens"]) == (20, 30)
    assert reported["tokens_estimated"] is False and reported["outcome"] == "complete"
    assert unknown["input_tokens"] is None and unknown["tokens_estimated"] is None


def test_a_schema_3_log_gains_the_outcome_column_and_its_rows_read_complete(
    tmp_path: Path,
) -> None:
    # Before schema 4 only answers that reached their end were recorded.
    with _log_at_revision(tmp_path / "log.db", "0003"):
        pass
    with RoutingLog(tmp_path / "log.db") as log:
        log.record(decision(), outcome="cancelled")
    assert [(r["call_id"] == "old", r["outcome"]) for r in rows(tmp_path / "log.db")] == [
        (True, "complete"),
        (False, "cancelled"),
    ]


@contextlib.contextmanager
def _log_at_revision(path: Path, revision: str) -> Iterator[Any]:
    """A SQLite log migrated only to ``revision``, holding one decision row ``'old'``; yields the
    open connection (the transaction commits on exit)."""
    from alembic import command
    from alembic.config import Config

    from routellm_base.log.store import MIGRATIONS

    engine = create_engine(sqlite_url(path))
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    try:
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, revision)
            connection.exec_driver_sql(
                "INSERT INTO routellm_decisions (call_id, created_at, router, threshold, side, "
                "model, forced, no_known_tokens, routing_seconds) VALUES "
                "('old', '2025-01-01 00:00:00', 'mf', 0.5, 'weak', 'w', 0, 0, 0.001)"
            )
            yield connection
    finally:
        engine.dispose()


def test_the_migrations_build_exactly_the_declared_schema(tmp_path: Path) -> None:
    with RoutingLog(tmp_path / "log.db") as log:
        log.record(decision())
    engine = create_engine(sqlite_url(tmp_path / "log.db"))
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE})
        assert context.get_current_revision() == "0005"
        assert compare_metadata(context, metadata) == []
    engine.dispose()


def test_a_schema_1_log_is_upgraded_in_place_keeping_its_rows_and_salt(tmp_path: Path) -> None:
    # A log written by the previous release (schema 0001) gains the comparison and feedback
    # tables when a newer RoutingLog opens it; its decisions and salt are untouched.
    with _log_at_revision(tmp_path / "log.db", "0001") as connection:
        salt = connection.exec_driver_sql("SELECT value FROM routellm_log_settings").scalar()
        tables = {r[0] for r in connection.exec_driver_sql("SELECT name FROM sqlite_master")}
    assert "routellm_comparisons" not in tables
    with RoutingLog(tmp_path / "log.db") as log:
        log.record(decision())
    engine = create_engine(sqlite_url(tmp_path / "log.db"))
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE})
        assert context.get_current_revision() == "0005"
        assert compare_metadata(context, metadata) == []
        assert (
            connection.exec_driver_sql("SELECT value FROM routellm_log_settings").scalar() == salt
        )
    engine.dispose()
    assert [r["call_id"] for r in rows(tmp_path / "log.db")][0] == "old"
    assert len(rows(tmp_path / "log.db")) == 2


def test_reopening_an_existing_log_keeps_its_rows_and_salt(tmp_path: Path) -> None:
    for _ in range(2):
        with RoutingLog(tmp_path / "log.db") as log:
            log.record(decision(), conversation="same")
    first, second = rows(sqlite_url(tmp_path / "log.db"))
    assert first["prompt_hash"] == second["prompt_hash"]


def test_bad_targets_fail_at_construction_with_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(RoutingInputError, match="does not exist"):
        RoutingLog(tmp_path / "missing" / "log.db")
    with pytest.raises(RoutingInputError, match="not a valid SQLAlchemy URL"):
        RoutingLog("nonsense://::")
    with pytest.raises(RoutingInputError, match="max_queue"):
        RoutingLog(tmp_path / "log.db", max_queue=0)
    # a trial: store_prompts="false" (as read from a config file) stored the prompts
    for value in ("false", 0, None):
        with pytest.raises(RoutingInputError, match="store_prompts must be True or False"):
            RoutingLog(tmp_path / "log.db", store_prompts=value)  # type: ignore[arg-type]
    with pytest.raises(RoutingInputError, match="log must be"):
        open_log(42)  # type: ignore[arg-type]


def test_open_log_shares_one_log_per_store(tmp_path: Path) -> None:
    a = open_log(tmp_path / "log.db")
    assert open_log(str(tmp_path / "log.db")) is a
    assert open_log(sqlite_url(tmp_path / "log.db")) is a
    given = RoutingLog(tmp_path / "log.db")
    assert open_log(given) is given
    a.close(), given.close()


def test_64_threads_lose_no_decision(tmp_path: Path) -> None:
    log = RoutingLog(tmp_path / "log.db")
    barrier = threading.Barrier(64)

    def work(i: int) -> None:
        barrier.wait()
        for j in range(50):
            log.record(decision(), conversation=f"thread {i} call {j}")

    threads = [threading.Thread(target=work, args=(i,)) for i in range(64)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert log.close(timeout=60)
    stats = log.stats()
    assert (stats.recorded, stats.written, stats.dropped, stats.failed) == (3200, 3200, 0, 0)
    assert len(rows(sqlite_url(tmp_path / "log.db"))) == 3200


async def test_64_asyncio_tasks_lose_no_decision(tmp_path: Path) -> None:
    log = RoutingLog(tmp_path / "log.db")

    async def work(i: int) -> None:
        for j in range(50):
            log.record(decision(), conversation=f"task {i} call {j}")
            await asyncio.sleep(0)

    await asyncio.gather(*(work(i) for i in range(64)))
    assert await asyncio.to_thread(log.close, 60)
    stats = log.stats()
    assert (stats.recorded, stats.written, stats.dropped, stats.failed) == (3200, 3200, 0, 0)
    assert len(rows(sqlite_url(tmp_path / "log.db"))) == 3200


def test_a_full_queue_drops_and_counts_but_never_blocks(tmp_path: Path, caplog) -> None:
    # The writer is held inside the redaction hook of the first record, so the queue (one place)
    # stays full: every later record() must return at once, dropping and counting the call.
    writing, release = threading.Event(), threading.Event()

    def redact(text: str) -> str:
        writing.set()
        release.wait()
        return text

    log = RoutingLog(tmp_path / "log.db", max_queue=1, redact=redact)
    log.record(decision(), conversation="first")
    assert writing.wait(60), "the writer never took the first record"

    def flood() -> None:
        for _ in range(2000):
            log.record(decision(), conversation="later")

    with caplog.at_level(logging.WARNING, logger="routellm_base.log"):
        flooding = threading.Thread(target=flood)
        flooding.start()
        flooding.join(60)  # a guard against a blocking record(), not a measurement
        blocked = flooding.is_alive()
        release.set()
        flooding.join()
    assert not blocked, "record() waited on a full queue"
    log.close()
    stats = log.stats()
    # max_queue bounds the records not yet written, the one in the writer included: that one
    # fills the log's single place, so the other 2000 are dropped.
    assert (stats.recorded, stats.written, stats.dropped, stats.failed) == (2001, 1, 2000, 0)
    assert any("queue is full" in r.getMessage() for r in caplog.records)


def test_after_close_calls_are_dropped_and_counted(tmp_path: Path) -> None:
    log = RoutingLog(tmp_path / "log.db")
    log.close()
    log.record(decision())
    assert log.stats().dropped == 1


WRITER = """
import sys, time
from log_helpers import decision, run_fork_child
from routellm_base.log import RoutingLog
log = RoutingLog(sys.argv[1], store_prompts=True)
i = 0
while True:
    for _ in range(200):
        log.record(decision(), conversation="x" * 2000 + str(i)); i += 1
    log.flush()
    print(log.stats().written, flush=True)
"""


def test_a_writer_killed_mid_write_leaves_a_readable_log(tmp_path: Path) -> None:
    path = tmp_path / "log.db"
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(path)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).parent,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parent)},
    )
    try:
        written = [int(proc.stdout.readline()) for _ in range(5)]  # type: ignore[union-attr]
        assert written[-1] >= 1000
        time.sleep(0.05)  # the writer is inside its next batches
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    connection = sqlite3.connect(path)
    assert connection.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    count = connection.execute("SELECT count(*) FROM routellm_decisions").fetchone()[0]
    connection.close()
    assert count >= written[-1]  # every flushed row survived; later ones whole or absent
    # and the log takes new writes
    with RoutingLog(path) as log:
        log.record(decision())
    assert log.stats().written == 1


def test_a_read_only_store_never_raises_and_counts_each_call(tmp_path: Path, caplog) -> None:
    path = tmp_path / "log.db"
    with RoutingLog(path) as log:
        log.record(decision())
    os.chmod(path, 0o444)
    ro = RoutingLog(f"sqlite:///file:{path}?mode=ro&uri=true")
    with caplog.at_level(logging.WARNING, logger="routellm_base.log"):
        for _ in range(10):
            ro.record(decision())
        ro.close()
    stats = ro.stats()
    assert (stats.written, stats.failed) == (0, 10)
    assert "readonly" in (stats.last_error or "").lower()
    assert any("not stored" in r.getMessage() for r in caplog.records)


def test_an_unwritable_folder_never_raises_and_counts_each_call(tmp_path: Path) -> None:
    folder = tmp_path / "ro"
    folder.mkdir()
    # a file where the database should be opened as a folder: cannot be created by anyone,
    # root included (a chmod'ed folder does not stop root)
    (folder / "log.db").mkdir()
    log = RoutingLog(folder / "log.db")
    for _ in range(7):
        log.record(decision())
    log.close()
    stats = log.stats()
    assert (stats.written, stats.failed) == (0, 7) and stats.last_error


def test_logs_created_at_once_in_one_process_each_get_their_schema(tmp_path: Path) -> None:
    # Alembic's migration context is a module global: concurrent upgrades once ran each
    # other's migrations and left some new logs without tables.
    logs = [RoutingLog(tmp_path / f"log{i}.db") for i in range(8)]
    for log in logs:
        log.record(decision())
    for log in logs:
        log.close(timeout=60)
    assert [log.stats().written for log in logs] == [1] * 8, [log.stats() for log in logs]


@pytest.mark.parametrize("child_records", [0, 3])
def test_a_forked_child_that_exits_never_closes_the_parents_sqlite_handle(
    tmp_path: Path, child_records: int
) -> None:
    # A pre-fork worker inherits the parent's pooled sqlite3 handle; its exit drain once
    # disposed the engine and closed that handle, which SQLite forbids across fork.
    path = tmp_path / "log.db"
    child, parent = run_fork_child(sqlite_url(path), child_records)
    assert child["child_closed"] == [False]
    assert parent["child_status"] == 0
    assert (parent["written"], parent["failed"]) == (20, 0), parent["last_error"]
    assert parent["parent_connections"] == 1  # the parent never had to reopen its store
    assert len(rows(sqlite_url(path))) == 20 + child_records


def _record_in_worker(log: RoutingLog, n: int) -> None:
    for _ in range(n):
        log.record(decision())


def test_a_multiprocessing_worker_writes_its_records_before_it_exits(tmp_path: Path) -> None:
    # A multiprocessing child ends with os._exit(), skipping atexit: its queued records died
    # with its writer thread. They are drained by the child's exit finalizers.
    path = tmp_path / "log.db"
    log = RoutingLog(path)
    log.record(decision())
    assert log.flush(30)
    worker = multiprocessing.get_context("fork").Process(target=_record_in_worker, args=(log, 3))
    worker.start()
    worker.join(120)
    assert worker.exitcode == 0
    log.record(decision())
    assert log.close(30)
    assert (log.stats().written, log.stats().failed) == (2, 0)
    assert len(rows(sqlite_url(path))) == 5


def test_the_readers_never_create_a_log_and_name_what_is_wrong(tmp_path: Path) -> None:
    """A trial: ``read_decisions("typo.db")`` left an empty ``typo.db`` behind and raised
    SQLAlchemy's "no such table" with the whole SELECT."""
    from routellm_base.log import read_comparisons, read_feedback, read_pool_candidates

    typo = tmp_path / "typo.db"
    with pytest.raises(RoutingInputError, match=f"read_decisions: no routing log at {typo}$"):
        rows(typo)
    assert not typo.exists()
    text = tmp_path / "notes.db"
    text.write_text("not a database, " * 500)
    with pytest.raises(
        RoutingInputError, match="read_feedback: .* is not a routing log .not a SQLite"
    ):
        read_feedback(text)
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as connection:
        connection.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY)")
    with pytest.raises(
        RoutingInputError,
        match=f"read_comparisons: {other} is not a routing log .no routellm_decisions table",
    ):
        read_comparisons(other)
    with sqlite3.connect(other) as connection:  # another app's database is left as it was
        names = connection.execute("SELECT name FROM sqlite_master WHERE type='table'").fetchall()
    assert names == [("notes",)]
    fresh = RoutingLog(tmp_path / "fresh.db")  # nothing written yet: no rows, not an error
    try:
        assert rows(fresh) == [] and read_pool_candidates(fresh) == []
    finally:
        fresh.close()
