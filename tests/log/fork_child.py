"""Run as a script by the fork tests: a routing log used across ``os.fork()``.

    python fork_child.py URL CHILD_RECORDS

The parent writes 10 decisions, forks, and the child records ``CHILD_RECORDS`` decisions and
exits normally with ``sys.exit(0)`` (its atexit handlers run, the log's exit drain included, as
in a pre-fork server's worker). The parent then writes 10 more. Each process prints one JSON
line: the child whether each database connection it inherited from the parent was closed once
its exit handlers had run; the parent its counters and how many connections it opened.
"""

from __future__ import annotations

import atexit
import json
import os
import sys
from typing import Any

PARENT = os.getpid()
INHERITED: list[Any] = []


def closed(dbapi_connection: Any) -> bool:
    """Whether a DBAPI connection was closed, without using it (psycopg: ``closed``; sqlite3:
    reading a counter raises on a closed handle)."""
    if hasattr(dbapi_connection, "closed"):
        return bool(dbapi_connection.closed)
    try:
        dbapi_connection.total_changes  # noqa: B018 - raises once closed
    except Exception:
        return True
    return False


def child_report() -> None:
    if os.getpid() != PARENT:
        print(json.dumps({"child_closed": [closed(c) for c in INHERITED]}), flush=True)


# Registered before routellm_base.log is imported (which registers the log's exit drain):
# atexit runs handlers last-in first-out, so this one sees what the log's drain did.
atexit.register(child_report)

from log_helpers import decision  # noqa: E402
from sqlalchemy import event  # noqa: E402

from routellm_base.log import RoutingLog  # noqa: E402


def main() -> None:
    url, child_records = sys.argv[1], int(sys.argv[2])
    log = RoutingLog(url)
    opened: list[Any] = []
    event.listen(log._engine, "connect", lambda connection, _record: opened.append(connection))
    for _ in range(10):
        log.record(decision())
    assert log.flush(60)
    INHERITED.extend(opened)
    pid = os.fork()
    if pid == 0:
        for _ in range(child_records):
            log.record(decision())
        sys.exit(0)
    _, status = os.waitpid(pid, 0)
    for _ in range(10):
        log.record(decision())
    log.close(60)
    stats = log.stats()
    print(
        json.dumps(
            {
                "child_status": status,
                "written": stats.written,
                "failed": stats.failed,
                "last_error": stats.last_error,
                "parent_connections": len(opened),
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()
