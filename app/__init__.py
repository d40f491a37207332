"""The sensor service (FastAPI): the ingestion API (`app.main`), the read-only API (`app.read_api`),
and what they run: request validation (`readings`), routers (`api`), services, storage, the outbox
relay, shared state, security and observability. docs/architecture.md shows where it sits."""

__version__ = "0.1.0"
