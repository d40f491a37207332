"""Alembic environment: runs on the connection handed over by app.storage.database.migrate."""

from __future__ import annotations

from alembic import context

from app.storage.models import Base

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through app.storage.database (python -m app.storage.database)")

# One transaction per migration: each is committed on its own, so one that must run outside a transaction
# (an autocommit block) does not commit its predecessors half-way.
context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True,
                  transaction_per_migration=True)
with context.begin_transaction():
    context.run_migrations()
