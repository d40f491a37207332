"""Fixtures that start real local services (PostgreSQL, tansu) for tests."""
