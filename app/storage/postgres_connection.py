"""One PostgreSQL connection configuration for every pool of the service, and the asyncpg pool they use.

`connection_settings` (TLS, connect and command timeouts, the server-side `statement_timeout`, the
application name) is what the SQLAlchemy engine, the group writer and the reader all connect with, so
a statement stuck behind a lock is cancelled by the server alike on every path. `asyncpg_connect_args`
adds the address and credentials for the pools that connect with asyncpg directly.
"""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
from sqlalchemy.engine import make_url

from app.settings import Settings
from app.storage.tls import explain, postgres_ssl_args


def connection_settings(settings: Settings, application_name: str) -> dict[str, Any]:
    """asyncpg connect keywords shared by every connection: TLS, timeouts and session settings."""
    timeout_ms = int(settings.db_statement_timeout_seconds * 1000)
    return {
        # RDS forces SSL (rds.force_ssl=1); verify-full checks its certificate (app/storage/tls.py).
        **postgres_ssl_args(settings),
        "timeout": settings.db_statement_timeout_seconds,
        "command_timeout": settings.db_statement_timeout_seconds,
        "server_settings": {"statement_timeout": str(timeout_ms), "application_name": application_name},
    }


def asyncpg_connect_args(settings: Settings, application_name: str) -> dict[str, Any]:
    """asyncpg.connect() keywords from the service's database settings."""
    url = make_url(settings.sqlalchemy_url)
    return {
        "host": url.host, "port": url.port or 5432, "user": url.username, "password": url.password,
        "database": url.database, **connection_settings(settings, application_name),
    }


class PlainConnection(asyncpg.Connection):
    """A pooled connection released without asyncpg's reset query (advisory unlock, CLOSE ALL, UNLISTEN,
    RESET ALL: one more round trip per checkout). The service's pools never set session state, take
    advisory locks or LISTEN; an open transaction is still rolled back on release."""

    def get_reset_query(self) -> str:
        return ""


async def _connect(*args: Any, **kwargs: Any) -> asyncpg.Connection:
    """asyncpg.connect, with a certificate that does not verify reported as `DatabaseTlsError`."""
    try:
        return await asyncpg.connect(*args, **kwargs)
    except Exception as error:
        explained = explain(error, kwargs.get("host"))
        if explained is error:
            raise
        raise explained from error


class LazyPool:
    """An asyncpg pool of PlainConnections, created on first use (the database may be down when the
    service starts), once even when many callers arrive together."""

    def __init__(self, connect_args: dict[str, Any], *, connections: int) -> None:
        self._connect_args = connect_args
        self._connections = connections
        self._pool: asyncpg.Pool | None = None
        self._lock = asyncio.Lock()

    async def get(self) -> asyncpg.Pool:
        if self._pool is None:
            async with self._lock:
                if self._pool is None:
                    self._pool = await asyncpg.create_pool(min_size=0, max_size=self._connections,
                                                           connection_class=PlainConnection, connect=_connect,
                                                           **self._connect_args)
        return self._pool

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
