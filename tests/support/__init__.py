"""Test helpers: fixtures that start real local services (PostgreSQL, tansu), the app, and a hand-set clock."""
