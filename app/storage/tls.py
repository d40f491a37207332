"""TLS to PostgreSQL: what asyncpg gets as its `ssl` argument, and a readable verification failure.

`verify-full` (every deployed environment): the server's certificate must chain to the CA bundle named
by `SENSOR_DB_SSL_ROOT_CERT` (the RDS CA bundle in AWS, the local stack's own test CA in the full
profile) and name the host connected to. `require` only encrypts and is refused outside `local`
(app/settings.py); `disable` is for the local embedded profile and tests.
"""

from __future__ import annotations

import ssl
from functools import lru_cache
from pathlib import Path

from app.settings import Settings


class DatabaseTlsError(ConnectionError):
    """The database's certificate did not verify: a configuration problem (or an impostor), not an outage."""


def postgres_ssl(settings: Settings) -> ssl.SSLContext | str | None:
    """asyncpg's `ssl=` value for these settings (None: plain TCP)."""
    if settings.db_sslmode == "verify-full":
        assert settings.db_ssl_root_cert is not None  # checked by Settings
        return verified_context(settings.db_ssl_root_cert)
    if settings.db_sslmode == "require":
        return "require"
    return None


def postgres_ssl_args(settings: Settings) -> dict:
    """`{"ssl": ...}` for connect keywords, or nothing for plain TCP."""
    value = postgres_ssl(settings)
    return {} if value is None else {"ssl": value}


@lru_cache(maxsize=8)
def verified_context(ca_bundle: Path) -> ssl.SSLContext:
    """Chain verified against `ca_bundle` only (not the system store) and the host name checked."""
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(ca_bundle))
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.check_hostname = True
    context.verify_mode = ssl.CERT_REQUIRED
    return context


def explain(error: BaseException, host: str | None, ca_bundle: object = None) -> BaseException:
    """A certificate failure becomes a `DatabaseTlsError` that says what was checked against what."""
    cause: BaseException | None = error
    while cause is not None and not isinstance(cause, ssl.SSLCertVerificationError):
        cause = cause.__cause__ or cause.__context__
    if cause is None:
        return error
    return DatabaseTlsError(
        f"PostgreSQL TLS verification failed (sslmode=verify-full) for host {host!r} against the CA bundle "
        f"{ca_bundle or 'named by SENSOR_DB_SSL_ROOT_CERT'}: {cause.verify_message or cause.reason} — check SENSOR_DB_SSL_ROOT_CERT "
        "(the server's CA) and the host name the certificate names"
    )
