"""Alembic environment: migrations run on the connection Patron hands over (see patron.store.migrate)."""

from alembic import context

from patron.store import background  # noqa: F401 - its tables join the metadata
from patron.store.tables import metadata

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",  # SQLite alters tables by copying them
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
