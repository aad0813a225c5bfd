"""Schema 4: how each call's answer ended (``outcome``), so a call cut short is still a row.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Until now only answers that reached their end were recorded: existing rows are complete.
    op.add_column(
        "routellm_decisions",
        sa.Column("outcome", sa.String(16), nullable=False, server_default="complete"),
    )


def downgrade() -> None:
    with op.batch_alter_table("routellm_decisions") as batch:
        batch.drop_column("outcome")
