"""How long a process takes to exit when its routing log's store does not answer.

    PYTHONPATH=. python benchmarks/log_exit.py --url postgresql+psycopg://user@host/db

The child imports ``routellm_base`` from the environment (``PYTHONPATH``), so pointing that at
an older checkout times the older code.

A child process opens a log at ``--url`` (a PostgreSQL database it may create tables in),
writes one row, and waits; this script then takes an exclusive lock on the decisions table (so
every insert waits on it: an unresponsive store), lets the child record ``--records`` more and
exit normally, and times that exit. The exit drain is bounded by
``routellm_base.log.routing_log.EXIT_TIMEOUT`` (10 s; ``--exit-timeout`` sets it in the child).
Reported: the exit's wall-clock seconds and the child's warning about records not written.
The lock is released afterwards and the tables are left in place.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time

from sqlalchemy import create_engine, text

CHILD = """
import sys
from routellm_base import RoutingDecision
from routellm_base.log import RoutingLog, routing_log

def decision():
    return RoutingDecision(side="weak", model="w", win_rate=0.2, threshold=0.5, router="random",
                           seconds=0.001)

log = RoutingLog(sys.argv[1])
log.record(decision())
assert log.flush(60)
print("ready", flush=True)
sys.stdin.readline()
for _ in range(int(sys.argv[2])):
    log.record(decision())
if sys.argv[3] != "default":
    routing_log.EXIT_TIMEOUT = float(sys.argv[3])
"""


def build_parser() -> argparse.ArgumentParser:
    """The command line (every option with help text; a test checks it)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True, help="a PostgreSQL SQLAlchemy URL")
    parser.add_argument(
        "--records",
        type=int,
        default=5,
        help="records the child process logs before it exits (default %(default)s)",
    )
    parser.add_argument(
        "--exit-timeout", default="default", help="seconds, or 'default' (default %(default)s)"
    )
    return parser


def main() -> None:
    args = build_parser().parse_args()
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, args.url, str(args.records), args.exit_timeout],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None and child.stdout.readline() == "ready\n"
    engine = create_engine(args.url)
    holder = engine.connect()
    try:
        holder.execute(text("LOCK TABLE routellm_decisions IN ACCESS EXCLUSIVE MODE"))
        started = time.perf_counter()
        _, stderr = child.communicate("go\n", timeout=600)
        seconds = time.perf_counter() - started
    finally:
        child.kill()
        holder.rollback()
        holder.close()
        engine.dispose()
    warnings = [line for line in stderr.splitlines() if "not written" in line]
    print(f"exit with an unresponsive store: {seconds:.2f} s (exit code {child.returncode})")
    print("warning:", warnings[0] if warnings else "(none)")


if __name__ == "__main__":
    main()
