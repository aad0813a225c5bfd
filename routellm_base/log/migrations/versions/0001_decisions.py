"""Schema 1: the decisions table and the per-log settings (prompt-hash salt).

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import secrets

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "routellm_decisions",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("call_id", sa.String(32), nullable=False, unique=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("router", sa.String(200), nullable=False),
        sa.Column("checkpoint_id", sa.String(64)),
        sa.Column("threshold", sa.Float, nullable=False),
        sa.Column("side", sa.String(6), nullable=False),
        sa.Column("win_rate", sa.Float),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("strong_model", sa.String(200)),
        sa.Column("weak_model", sa.String(200)),
        sa.Column("forced", sa.Boolean, nullable=False),
        sa.Column("fallback_from", sa.String(6)),
        sa.Column("fallback_reason", sa.Text),
        sa.Column("routing_text_source", sa.String(32)),
        sa.Column("routing_text_tokens", sa.Integer),
        sa.Column("no_known_tokens", sa.Boolean, nullable=False),
        sa.Column("routing_seconds", sa.Float, nullable=False),
        sa.Column("latency_seconds", sa.Float),
        sa.Column("input_tokens", sa.Integer),
        sa.Column("output_tokens", sa.Integer),
        sa.Column("tokens_estimated", sa.Boolean),
        sa.Column("cost_usd", sa.Float),
        sa.Column("prompt_hash", sa.String(64)),
        sa.Column("prompt", sa.Text),
        sa.Column("extra", sa.Text),
    )
    op.create_index("ix_routellm_decisions_created_at", "routellm_decisions", ["created_at"])
    settings = op.create_table(
        "routellm_log_settings",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
    )
    # One salt per log, made with the log: equal prompts hash equally within it (every writer
    # reads the same salt), and a hash table built for one log is useless on another.
    op.bulk_insert(settings, [{"key": "prompt_hash_salt", "value": secrets.token_hex(16)}])


def downgrade() -> None:
    op.drop_table("routellm_log_settings")
    op.drop_index("ix_routellm_decisions_created_at", "routellm_decisions")
    op.drop_table("routellm_decisions")
