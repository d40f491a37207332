"""Which database errors mean "not available right now" (down, restarting, locked past the statement
timeout, out of connections) rather than a bug: reads answer them with 503 and Retry-After."""

from __future__ import annotations

import asyncpg
import sqlalchemy.exc

DATABASE_UNAVAILABLE: tuple[type[BaseException], ...] = (
    OSError,  # refused or reset connections (ConnectionError is one)
    TimeoutError,
    asyncpg.exceptions.PostgresConnectionError,  # SQLSTATE class 08
    asyncpg.exceptions.ConnectionDoesNotExistError,
    asyncpg.exceptions.CannotConnectNowError,  # starting up or recovering after a crash
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.CrashShutdownError,
    asyncpg.exceptions.QueryCanceledError,  # statement timeout, e.g. behind a table lock
    asyncpg.exceptions.TooManyConnectionsError,
    sqlalchemy.exc.OperationalError,
    sqlalchemy.exc.InterfaceError,
    sqlalchemy.exc.TimeoutError,  # no pooled connection in time
)
