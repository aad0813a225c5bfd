"""Schema 2: shadow comparisons (with their judge verdicts) and feedback / golden labels.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "routellm_comparisons",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("call_id", sa.String(32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("answered_side", sa.String(6), nullable=False),
        sa.Column("strong_model", sa.String(200)),
        sa.Column("weak_model", sa.String(200)),
        sa.Column("strong_answer", sa.Text),
        sa.Column("weak_answer", sa.Text),
        sa.Column("shadow_error", sa.Text),
        sa.Column("shadow_latency_seconds", sa.Float),
        sa.Column("shadow_input_tokens", sa.Integer),
        sa.Column("shadow_output_tokens", sa.Integer),
        sa.Column("shadow_cost_usd", sa.Float),
        sa.Column("verdict", sa.String(6)),
        sa.Column("verdict_source", sa.String(16)),
        sa.Column("judge_model", sa.String(200)),
        sa.Column("judged_at", sa.DateTime(timezone=True)),
        sa.Column("strong_first_verdict", sa.String(1)),
        sa.Column("weak_first_verdict", sa.String(1)),
        sa.Column("unparseable", sa.Integer, nullable=False, server_default="0"),
        sa.Column("judge_error", sa.Text),
    )
    op.create_index("ix_routellm_comparisons_call_id", "routellm_comparisons", ["call_id"])
    op.create_index("ix_routellm_comparisons_created_at", "routellm_comparisons", ["created_at"])
    op.create_table(
        "routellm_feedback",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("call_id", sa.String(32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("rating", sa.Integer),
        sa.Column("label", sa.String(6)),
        sa.Column("source", sa.String(64), nullable=False),
    )
    op.create_index("ix_routellm_feedback_call_id", "routellm_feedback", ["call_id"])


def downgrade() -> None:
    op.drop_index("ix_routellm_feedback_call_id", "routellm_feedback")
    op.drop_table("routellm_feedback")
    op.drop_index("ix_routellm_comparisons_created_at", "routellm_comparisons")
    op.drop_index("ix_routellm_comparisons_call_id", "routellm_comparisons")
    op.drop_table("routellm_comparisons")
