"""Persistence: the storage seam (`backends`, the write and read backends chosen from the settings),
PostgreSQL on asyncpg (`postgres_*`) and SQLAlchemy (`database`, `models`, `repository`, SQLite too),
group commit, the circuit breaker, and the dead-letter store with its coalescing writer."""
