"""Which database errors mean "not available right now" (down, restarting, locked past the statement
timeout, out of connections) rather than a bug or a misconfiguration: the query service turns them into
`ServiceUnavailable` (503 with Retry-After), everything else stays a 500. (Writes never surface them:
the ingest service falls back to the dead-letter store.)"""

from __future__ import annotations

import asyncpg
import sqlalchemy.exc

# A connection that failed or went away: a read is worth one more try on another pooled connection.
CONNECTION_FAILURES: tuple[type[BaseException], ...] = (
    asyncpg.exceptions.ConnectionDoesNotExistError,
    asyncpg.exceptions.PostgresConnectionError,  # SQLSTATE class 08
    asyncpg.exceptions.CannotConnectNowError,  # starting up or recovering after a crash
    ConnectionError,
)

_UNAVAILABLE: tuple[type[BaseException], ...] = (
    *CONNECTION_FAILURES,
    OSError,  # refused or reset connections
    TimeoutError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.CrashShutdownError,
    asyncpg.exceptions.QueryCanceledError,  # statement timeout, e.g. behind a table lock
    asyncpg.exceptions.TooManyConnectionsError,
    sqlalchemy.exc.TimeoutError,  # no pooled connection in time
)


def is_database_unavailable(error: BaseException) -> bool:
    """True for a transient unavailability, also when SQLAlchemy wraps the driver's error."""
    if isinstance(error, sqlalchemy.exc.DBAPIError):
        if error.connection_invalidated:
            return True
        error = getattr(error.orig, "__cause__", None) or error.orig  # the asyncpg adapter chains the original
    return isinstance(error, _UNAVAILABLE)
