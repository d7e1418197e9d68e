"""Alembic environment: run only through :mod:`alerts.migrate`, which hands over a live
connection (there is no alembic.ini and no URL here)."""

from alembic import context

from alerts.schema import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run the alert store's migrations with alerts.migrate.upgrade()")

context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=True,  # SQLite needs batch mode to alter tables
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
