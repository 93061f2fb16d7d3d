"""Alembic runs inside `Storage.migrate()`'s write, on its connection (never on its own)."""

from alembic import context

from server.storage.tables import metadata

context.configure(
    connection=context.config.attributes["connection"],
    target_metadata=metadata,
    render_as_batch=True,
)
context.run_migrations()
