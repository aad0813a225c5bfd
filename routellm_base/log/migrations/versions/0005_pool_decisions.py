"""Schema 5: calls routed among a pool of several models: each candidate's prediction, the
policy and its knob, and model names where a side ("strong"/"weak") was.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A pool's chosen model is named in `side` and `fallback_from` (model names are String(200)
    # everywhere else), and a pool decision has no win-rate threshold. SQLite cannot alter a
    # column: batch mode copies the table (rows, the unique call_id and the created_at index).
    with op.batch_alter_table("routellm_decisions") as batch:
        batch.alter_column(
            "side", existing_type=sa.String(6), type_=sa.String(200), existing_nullable=False
        )
        batch.alter_column("fallback_from", existing_type=sa.String(6), type_=sa.String(200))
        batch.alter_column("threshold", existing_type=sa.Float, nullable=True)
        # Nullable: every existing row is a two-model decision.
        batch.add_column(sa.Column("pool_policy", sa.String(32)))
        batch.add_column(sa.Column("pool_knob", sa.Float))
        batch.add_column(sa.Column("pool_cost_weight", sa.Float))
        batch.add_column(sa.Column("pool_max_cost", sa.Float))
        batch.add_column(sa.Column("expected_cost_usd", sa.Float))
    op.create_table(
        "routellm_pool_candidates",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("call_id", sa.String(32), nullable=False),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("quality", sa.Float),
        sa.Column("expected_cost_usd", sa.Float),
        sa.Column("rank", sa.Integer),
    )
    op.create_index("ix_routellm_pool_candidates_call_id", "routellm_pool_candidates", ["call_id"])


def downgrade() -> None:
    op.drop_index("ix_routellm_pool_candidates_call_id", "routellm_pool_candidates")
    op.drop_table("routellm_pool_candidates")
    # Pool rows name models in `side`: they cannot go back into a String(6) strong/weak column.
    op.execute("DELETE FROM routellm_decisions WHERE pool_policy IS NOT NULL")
    with op.batch_alter_table("routellm_decisions") as batch:
        for name in ("expected_cost_usd", "pool_max_cost", "pool_cost_weight", "pool_knob",
                     "pool_policy"):  # fmt: skip
            batch.drop_column(name)
        batch.alter_column("threshold", existing_type=sa.Float, nullable=False)
        batch.alter_column("fallback_from", existing_type=sa.String(200), type_=sa.String(6))
        batch.alter_column(
            "side", existing_type=sa.String(200), type_=sa.String(6), existing_nullable=False
        )
