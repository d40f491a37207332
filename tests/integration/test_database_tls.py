"""TLS to PostgreSQL is verified (`verify-full`): the local full profile's PostgreSQL serves TLS only,
with a certificate from its own local CA, and the app connects the way it connects to RDS.

A wrong CA bundle fails with an error that says what was checked against what; a client without TLS
is refused by the server (like RDS with rds.force_ssl=1).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import pytest

from app.settings import Settings
from app.storage.database import create_engine, migrate
from app.storage.postgres_reader import PostgresReader
from app.storage.tls import DatabaseTlsError
from devstack.certificates import LocalCertificateAuthority
from devstack.postgres import PostgresServer

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tls_postgres() -> Iterator[PostgresServer]:
    server = PostgresServer(tls=True).start()
    try:
        yield server
    finally:
        server.destroy()


def tls_settings(server: PostgresServer, ca_file: Path, tmp_path: Path, **overrides) -> Settings:
    return Settings(database_url=server.url, db_sslmode="verify-full", db_ssl_root_cert=ca_file,
                    dead_letter_dir=tmp_path / "dl", metrics_flush_seconds=3600, **overrides)


async def _migrate_and_check_tls(settings: Settings) -> bool:
    engine = create_engine(settings)
    try:
        await migrate(engine)
        async with engine.connect() as connection:
            result = await connection.exec_driver_sql("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
            return bool(result.scalar_one())
    finally:
        await engine.dispose()


def test_verify_full_against_the_local_ca_connects_over_tls(tls_postgres: PostgresServer, tmp_path: Path) -> None:
    settings = tls_settings(tls_postgres, tls_postgres.ca_file, tmp_path)
    assert asyncio.run(_migrate_and_check_tls(settings)) is True


def test_the_service_runs_on_verify_full(tls_postgres: PostgresServer, tmp_path: Path, serve) -> None:
    """The whole app (group-commit writer, reader pool, SQLAlchemy engine) on the TLS-only server."""
    settings = tls_settings(tls_postgres, tls_postgres.ca_file, tmp_path)
    with serve(settings) as client:
        reading = {"device_id": "tls-1", "tag": "fermenter_ph", "value": 7.1,
                   "timestamp": datetime.now(UTC).isoformat()}
        assert client.post("/ingest", json=reading).status_code == 201
        rows = client.get("/data", params={"device_id": "tls-1"}).json()
        assert [row["value"] for row in rows] == [7.1]
        assert client.get("/ready").status_code == 200


def test_a_wrong_ca_fails_with_a_clear_error(tls_postgres: PostgresServer, tmp_path: Path) -> None:
    other_ca = LocalCertificateAuthority(tmp_path / "other-ca", name="not the database's CA")
    settings = tls_settings(tls_postgres, other_ca.ca_file, tmp_path)
    with pytest.raises(DatabaseTlsError) as failure:
        asyncio.run(_migrate_and_check_tls(settings))
    message = str(failure.value)
    assert "verify-full" in message and "'127.0.0.1'" in message
    assert "certificate verify failed" in message or "unable to get local issuer certificate" in message
    assert "SENSOR_DB_SSL_ROOT_CERT" in message

    async def read_with_the_pool() -> None:
        reader = PostgresReader(settings, connections=1)
        try:
            await reader.readings(tag=None, device_id=None, since=None, until=None, limit=1)
        finally:
            await reader.close()

    with pytest.raises(DatabaseTlsError, match="TLS verification failed"):
        asyncio.run(read_with_the_pool())


def test_the_server_refuses_plain_connections(tls_postgres: PostgresServer) -> None:
    async def plain() -> None:
        connection = await asyncpg.connect(host="127.0.0.1", port=tls_postgres.port, user="postgres",
                                           database="postgres", ssl=False)
        await connection.close()

    with pytest.raises(asyncpg.exceptions.InvalidAuthorizationSpecificationError, match="no encryption"):
        asyncio.run(plain())
