"""Schema 3: the judge's raw text of an unreadable judgment, one column per answer order.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Nullable columns: existing rows keep NULL (their judges' texts were never kept).
    op.add_column("routellm_comparisons", sa.Column("strong_first_judgment", sa.Text))
    op.add_column("routellm_comparisons", sa.Column("weak_first_judgment", sa.Text))


def downgrade() -> None:
    with op.batch_alter_table("routellm_comparisons") as batch:
        batch.drop_column("weak_first_judgment")
        batch.drop_column("strong_first_judgment")
