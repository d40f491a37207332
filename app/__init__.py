"""The sensor ingestion service (FastAPI)."""

__version__ = "0.1.0"
