"""The routing log's tables (SQLAlchemy Core), at the newest schema version.

Migrations in ``migrations/versions`` build exactly these tables; a test checks that the two
agree, so a change here needs a new migration.
"""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)

VERSION_TABLE = "routellm_log_version"
"""Alembic's version table, named for this log so a shared database keeps its own."""

metadata = MetaData()

decisions = Table(
    "routellm_decisions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("call_id", String(32), nullable=False, unique=True),
    Column("created_at", DateTime(timezone=True), nullable=False, index=True),
    Column("router", String(200), nullable=False),
    Column("checkpoint_id", String(64)),
    Column("threshold", Float, nullable=False),
    Column("side", String(6), nullable=False),
    Column("win_rate", Float),
    Column("model", String(200), nullable=False),
    Column("strong_model", String(200)),
    Column("weak_model", String(200)),
    Column("forced", Boolean, nullable=False),
    Column("fallback_from", String(6)),
    Column("fallback_reason", Text),
    Column("routing_text_source", String(32)),
    Column("routing_text_tokens", Integer),
    Column("no_known_tokens", Boolean, nullable=False),
    Column("routing_seconds", Float, nullable=False),
    Column("latency_seconds", Float),
    Column("input_tokens", Integer),
    Column("output_tokens", Integer),
    Column("tokens_estimated", Boolean),
    Column("cost_usd", Float),
    Column("prompt_hash", String(64)),
    Column("prompt", Text),
    Column("extra", Text),
)
"""One row per routed call, written after the answer."""

settings = Table(
    "routellm_log_settings",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)
"""Per-log settings; ``prompt_hash_salt`` is the salt of every ``prompt_hash`` in this log."""
