"""Helpers of the routing-log tests: a decision to record, calls re-dated, and a log used across
a fork."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, select, update

from routellm_base import RoutingDecision
from routellm_base.log import decisions


def decision(side: str = "strong", win_rate: float | None = 0.7) -> RoutingDecision:
    return RoutingDecision(
        side=side,  # type: ignore[arg-type]
        model=f"{side}-model",
        win_rate=win_rate,
        threshold=0.5,
        router="random",
        seconds=0.001,
        routing_text_source="user",
        routing_text_tokens=3,
    )


def run_fork_child(url: str, child_records: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """Run ``fork_child.py`` on the log at ``url``: the child's and the parent's JSON reports."""
    here = Path(__file__).parent
    done = subprocess.run(
        [sys.executable, str(here / "fork_child.py"), url, str(child_records)],
        capture_output=True,
        text=True,
        cwd=here,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(here), *sys.path])},
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    reports = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    child = next(r for r in reports if "child_closed" in r)
    parent = next(r for r in reports if "written" in r)
    return child, parent


def redate_calls(connection: Connection, when: Callable[[int], datetime]) -> list[str]:
    """Give the log's ``i``-th recorded call the time ``when(i)`` (a log writes the clock's
    time; reports are tested on chosen spans); returns the call ids in recording order."""
    ids = list(connection.execute(select(decisions.c.call_id).order_by(decisions.c.id)).scalars())
    for i, call_id in enumerate(ids):
        connection.execute(
            update(decisions).where(decisions.c.call_id == call_id).values(created_at=when(i))
        )
    return ids
