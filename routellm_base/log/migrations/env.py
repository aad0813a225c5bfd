"""Alembic environment: runs on the connection :func:`routellm_base.log.store.upgrade` passes."""

from __future__ import annotations

from alembic import context

from routellm_base.log.schema import VERSION_TABLE, metadata

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=metadata,
    version_table=VERSION_TABLE,
    render_as_batch=True,  # SQLite alters tables by copying them
)
with context.begin_transaction():
    context.run_migrations()
