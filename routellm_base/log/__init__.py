"""The routing log: every routed call in a SQLite file or any SQLAlchemy database.

Needs the ``log`` extra (``pip install 'langchain-routellm[log]'``)::

    from routellm_base.log import RoutingLog
    log = RoutingLog("routellm.db")          # or "postgresql+psycopg://user@host/db"
    log.record(engine.decide("hi"), conversation="hi")
    log.flush(); log.stats()                 # LogStats(recorded=1, written=1, ...)
    log.feedback(call_id, rating=-1)         # a thumbs down on the call with that id

Tables: ``routellm_decisions`` (one row per call), ``routellm_comparisons`` (shadow
comparisons and their judge verdicts, :mod:`routellm_base.shadow`), ``routellm_feedback``
(ratings and golden labels), ``routellm_pool_candidates`` (each candidate's prediction of a
call routed among a pool of several models). :mod:`.judge_log` judges stored comparisons,
:mod:`.training_data` turns a log into battles and calibration prompts.
"""

from __future__ import annotations

from ..errors import MissingDependencyError

try:
    import alembic  # noqa: F401
    import sqlalchemy  # noqa: F401
except ImportError as exc:  # pragma: no cover - depends on the install
    raise MissingDependencyError(
        f"the routing log needs SQLAlchemy and Alembic ({exc}): "
        "pip install 'langchain-routellm[log]'"
    ) from exc

from .routing_log import LogStats, Redactor, RoutingLog, open_log
from .schema import (
    OUTCOMES,
    VERSION_TABLE,
    comparisons,
    decisions,
    feedback,
    metadata,
    pool_candidates,
)
from .store import read_comparisons, read_decisions, read_feedback, read_pool_candidates

__all__ = [
    "OUTCOMES",
    "VERSION_TABLE",
    "LogStats",
    "Redactor",
    "RoutingLog",
    "comparisons",
    "decisions",
    "feedback",
    "metadata",
    "open_log",
    "pool_candidates",
    "read_comparisons",
    "read_decisions",
    "read_feedback",
    "read_pool_candidates",
]
