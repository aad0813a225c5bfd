"""The routing log on a real PostgreSQL server (started on 127.0.0.1 by the fixture)."""

from __future__ import annotations

import threading

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from log_helpers import decision
from sqlalchemy import create_engine, text

from routellm_base.log import VERSION_TABLE, RoutingLog, metadata, read_decisions


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
            == "0002"
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
