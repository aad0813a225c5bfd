"""The routing log on a real PostgreSQL server (started on 127.0.0.1 by the fixture)."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from log_helpers import decision, run_fork_child
from sqlalchemy import create_engine, event, text

from routellm_base.log import VERSION_TABLE, RoutingLog, metadata, read_decisions

if TYPE_CHECKING:
    from conftest import PostgresServer


def test_several_writers_on_one_new_database_lose_no_decision(postgres_url: str) -> None:
    # Two logs on one database stand for two app servers: both create the schema at once
    # (their migrations queue on an advisory lock), then 64 threads write through each.
    logs = [RoutingLog(postgres_url, store_prompts=True) for _ in range(2)]
    barrier = threading.Barrier(64)

    def work(i: int) -> None:
        barrier.wait()
        for j in range(25):
            logs[i % 2].record(
                decision(), conversation=f"thread {i} call {j}", input_tokens=3, output_tokens=4
            )

    threads = [threading.Thread(target=work, args=(i,)) for i in range(64)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for log in logs:
        assert log.close(timeout=60)
        assert log.stats().failed == 0 and log.stats().dropped == 0
    assert sum(log.stats().written for log in logs) == 1600
    rows = read_decisions(postgres_url)
    assert len(rows) == 1600 and len({r["call_id"] for r in rows}) == 1600
    assert len({r["prompt_hash"] for r in rows}) == 1600  # one salt, distinct prompts
    assert rows[0]["prompt"].startswith('[{"role":"user","content":"thread ')
    assert rows[0]["created_at"].tzinfo is not None
    engine = create_engine(postgres_url)
    with engine.connect() as connection:
        assert (
            connection.execute(text("SELECT version_num FROM routellm_log_version")).scalar()
            == "0005"
        )
        context = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE})
        assert compare_metadata(context, metadata) == []  # every table, on PostgreSQL too
    engine.dispose()


def test_an_unreachable_server_never_raises_and_counts_each_call(postgres_url: str) -> None:
    closed = postgres_url.rsplit(":", 1)[0] + ":1/postgres"  # port 1 on loopback: refused
    log = RoutingLog(closed)
    for _ in range(5):
        log.record(decision())
    log.close(timeout=60)
    stats = log.stats()
    assert (stats.written, stats.failed) == (0, 5) and "connect" in (stats.last_error or "").lower()


def test_comparisons_feedback_judging_and_training_data_on_postgres(postgres_url: str) -> None:
    # The whole learning path on a server database: shadow comparisons written by the writer
    # thread, verdicts written back by judge_log, feedback, and the battles read out again.
    from routellm_base.judging import PairwiseJudge
    from routellm_base.log import read_comparisons, read_feedback
    from routellm_base.log.judge_log import judge_log
    from routellm_base.log.training_data import labelled_calls
    from routellm_base.shadow import ShadowAnswer, ShadowRunner

    server = create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    with server.connect() as connection:  # a database of its own: exact counts below
        connection.execute(text("CREATE DATABASE learning"))
    server.dispose()
    postgres_url = postgres_url.rsplit("/", 1)[0] + "/learning"
    log = RoutingLog(postgres_url, store_prompts=True)
    runner = ShadowRunner(log, 1.0)
    ids = []
    for i, side in enumerate(("strong", "weak", "weak")):
        d = decision(side)
        ids.append(d.call_id)
        log.record(d, conversation=f"pg question {i}", strong_model="S", weak_model="W")
        runner.submit(
            d,
            conversation=f"pg question {i}",
            answer=f"{side} answer",
            call_other=lambda side=side: ShadowAnswer(
                ("weak" if side == "strong" else "strong") + " answer"
            ),
            strong_model="S",
            weak_model="W",
        )
    log.feedback(ids[2], label="weak", source="golden")
    assert runner.flush(30) and log.flush(30)

    def chat(messages: list[dict[str, str]]) -> str:
        shown_a = messages[1]["content"].split("[The Start of Assistant A's Answer]\n")[1]
        return "[[A]]" if shown_a.startswith("strong") else "[[B]]"

    counts = judge_log(postgres_url, PairwiseJudge(chat, "pg-judge"))
    assert (counts["items"], counts["strong_wins"]) == (3, 3)
    rows = read_comparisons(postgres_url)
    assert sorted(r["call_id"] for r in rows) == sorted(ids)  # written by parallel workers
    assert [r["verdict"] for r in rows] == ["strong"] * 3
    assert rows[0]["judged_at"].tzinfo is not None
    assert [(r["call_id"], r["label"]) for r in read_feedback(postgres_url)] == [(ids[2], "weak")]
    calls, _ = labelled_calls(postgres_url)
    assert {c.call_id: (c.winner, c.source) for c in calls} == {
        ids[0]: ("model_a", "judge"),
        ids[1]: ("model_a", "judge"),
        ids[2]: ("model_b", "golden"),
    }
    log.close()


def terminate_backends(url: str, pid: int | None = None) -> int:
    """Have the server kill the backend ``pid`` (default: every other backend on ``url``'s
    database) and wait until it is gone; returns how many were killed."""
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            which = "pid = :pid" if pid is not None else "pid <> pg_backend_pid()"
            query = (
                f"SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND {which}"
            )
            pids = connection.execute(text(query), {"pid": pid}).scalars().all()
            for p in pids:
                connection.execute(text("SELECT pg_terminate_backend(:p)"), {"p": p})
            for _ in range(600):  # the backends exit asynchronously: wait for them to be gone
                left = connection.execute(
                    text("SELECT count(*) FROM pg_stat_activity WHERE pid = ANY(:pids)"),
                    {"pids": list(pids)},
                ).scalar()
                if not left:
                    break
                time.sleep(0.05)
            else:
                pytest.fail(f"backends {pids} still alive after pg_terminate_backend")
    finally:
        engine.dispose()
    return len(pids)


def test_a_restart_or_a_killed_backend_between_bursts_loses_no_row(
    postgres_server: PostgresServer, postgres_db: str
) -> None:
    # Between bursts the pooled connection dies (the server restarts, or an admin kills the
    # backend): the next batch once failed on the dead connection and was counted lost.
    log = RoutingLog(postgres_db)

    def burst() -> None:
        for _ in range(10):
            log.record(decision())
        assert log.flush(60)

    burst()
    postgres_server.restart()
    burst()
    assert terminate_backends(postgres_db) == 1  # the log's own pooled connection
    burst()
    assert log.close(60)
    stats = log.stats()
    assert (stats.written, stats.failed) == (30, 0), stats.last_error
    assert len(read_decisions(postgres_db)) == 30


def test_a_batch_whose_connection_dies_mid_insert_is_retried_on_a_fresh_one(
    postgres_db: str,
) -> None:
    # The connection passes its check-out ping, then dies under the INSERT: the batch is sent
    # again on a new connection instead of being counted lost.
    log = RoutingLog(postgres_db)
    log.record(decision())
    assert log.flush(60)  # schema made, salt read, one connection pooled
    killed: list[int] = []

    @event.listens_for(log._engine, "before_cursor_execute")
    def kill_first_insert(connection: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if statement.startswith("INSERT INTO routellm_decisions") and not killed:
            killed.append(connection.connection.dbapi_connection.info.backend_pid)
            terminate_backends(postgres_db, killed[0])

    for _ in range(10):
        log.record(decision())
    assert log.close(60)
    stats = log.stats()
    assert len(killed) == 1
    assert (stats.written, stats.failed) == (11, 0), stats.last_error
    assert len(read_decisions(postgres_db)) == 11


def test_a_batch_that_keeps_failing_is_retried_a_bounded_number_of_times(
    postgres_db: str, caplog: pytest.LogCaptureFixture
) -> None:
    from routellm_base.log.routing_log import RETRY_DELAYS

    log = RoutingLog(postgres_db)
    log.record(decision())
    assert log.flush(60)
    killed: list[int] = []
    opened: list[Any] = []
    event.listen(log._engine, "connect", lambda connection, _record: opened.append(connection))

    @event.listens_for(log._engine, "before_cursor_execute")
    def kill_every_insert(connection: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if statement.startswith("INSERT INTO routellm_decisions"):
            killed.append(connection.connection.dbapi_connection.info.backend_pid)
            terminate_backends(postgres_db, killed[-1])

    with caplog.at_level(logging.WARNING, logger="routellm_base.log"):
        log.record(decision())  # one record: one batch
        log.flush(60)
    stats = log.stats()
    assert len(killed) == 1 + len(RETRY_DELAYS)
    assert len(opened) == len(RETRY_DELAYS)  # each retry on a new connection
    assert (stats.written, stats.failed) == (1, 1)
    assert any(f"after {1 + len(RETRY_DELAYS)} attempts" in r.getMessage() for r in caplog.records)
    log.close()


@pytest.mark.parametrize("child_records", [0, 3])
def test_a_forked_child_that_exits_leaves_the_parents_connection_alone(
    postgres_db: str, child_records: int
) -> None:
    # A pre-fork worker that exits normally once closed the connection it inherited, which
    # ends the parent's server session too: the parent lost its next batch.
    child, parent = run_fork_child(postgres_db, child_records)
    assert child["child_closed"] == [False]
    assert parent["child_status"] == 0
    assert (parent["written"], parent["failed"]) == (20, 0), parent["last_error"]
    assert parent["parent_connections"] == 1  # its session survived the child: no reconnect
    assert len(read_decisions(postgres_db)) == 20 + child_records


def hold_decisions_table(url: str) -> Any:
    """A connection holding an exclusive lock on the decisions table (an unresponsive store:
    every insert waits on it until it is rolled back)."""
    engine = create_engine(url)
    connection = engine.connect()
    connection.execute(text("LOCK TABLE routellm_decisions IN ACCESS EXCLUSIVE MODE"))
    return connection


def test_close_on_an_unresponsive_store_warns_with_the_count_not_written(
    postgres_db: str, caplog: pytest.LogCaptureFixture
) -> None:
    log = RoutingLog(postgres_db)
    log.record(decision())
    assert log.flush(60)
    holder = hold_decisions_table(postgres_db)
    try:
        for _ in range(5):
            log.record(decision())
        with caplog.at_level(logging.WARNING, logger="routellm_base.log"):
            assert log.close(timeout=0.5) is False
        warnings = [r.getMessage() for r in caplog.records if "not written" in r.getMessage()]
        assert len(warnings) == 1 and "5 record(s) not written" in warnings[0], warnings
    finally:
        holder.rollback()
        holder.close()
        holder.engine.dispose()
    # The writer was left to finish: once the store answers, nothing queued is lost.
    writer = log._thread
    assert writer is not None
    writer.join(60)
    assert not writer.is_alive()
    assert (log.stats().written, log.stats().failed) == (6, 0)
    assert len(read_decisions(postgres_db)) == 6


EXITING = """
import sys
from log_helpers import decision
from routellm_base.log import RoutingLog, routing_log
log = RoutingLog(sys.argv[1])
log.record(decision())
assert log.flush(60)
print("ready", flush=True)
sys.stdin.readline()  # the test now holds a lock every insert waits on
for _ in range(5):
    log.record(decision())
routing_log.EXIT_TIMEOUT = 0.5  # the exit drain's bound, short for the test
"""


def test_exit_on_an_unresponsive_store_warns_with_the_count_not_written(
    postgres_db: str,
) -> None:
    here = Path(__file__).parent
    proc = subprocess.Popen(
        [sys.executable, "-c", EXITING, postgres_db],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=here,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(here), *sys.path])},
    )
    holder = None
    try:
        assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
        holder = hold_decisions_table(postgres_db)
        _, stderr = proc.communicate("go\n", timeout=120)
    finally:
        proc.kill()
        if holder is not None:
            holder.rollback()
            holder.close()
            holder.engine.dispose()
    assert proc.returncode == 0, stderr
    assert "5 record(s) not written" in stderr, stderr
