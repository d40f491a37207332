"""Persistence: SQLAlchemy models, engine, repository, group commit and the dead-letter store."""
