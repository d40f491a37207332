"""Session-wide PostgreSQL and tansu, plus a fresh database per test.

Use the fixtures `postgres_url` (fresh database, migrated to head), `postgres_server` (the running
cluster, e.g. to stop it mid-test), `kafka_bootstrap` (a running tansu broker) and `moto_server` (a moto
server for one test module).
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterator

import asyncpg
import pytest

from app.settings import Settings
from app.storage.database import create_engine, migrate
from devstack.moto_s3 import MotoServer
from devstack.postgres import PostgresServer
from devstack.tansu import TansuBroker

_database_numbers = itertools.count(1)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    server = PostgresServer().start()
    try:
        yield server
    finally:
        server.destroy()


def create_migrated_database(port: int, name: str) -> str:
    """Create database `name` on the cluster at `port`, migrate it to head; its SQLAlchemy asyncpg URL."""
    url = f"postgresql+asyncpg://postgres@127.0.0.1:{port}/{name}"

    async def create() -> None:
        connection = await asyncpg.connect(host="127.0.0.1", port=port, user="postgres", database="postgres")
        try:
            await connection.execute(f"CREATE DATABASE {name}")
        finally:
            await connection.close()
        await migrate_to_head(url)

    asyncio.run(create())
    return url


async def migrate_to_head(url: str) -> None:
    """Run the app's migrations on the database at `url` (what a starting task does)."""
    engine = create_engine(Settings(database_url=url))
    try:
        await migrate(engine)
    finally:
        await engine.dispose()


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> str:
    """A new, migrated database on the session cluster (SQLAlchemy asyncpg URL)."""
    return create_migrated_database(postgres_server.port, f"test_{next(_database_numbers)}")


@pytest.fixture(scope="module")
def moto_server() -> Iterator[MotoServer]:
    """A moto server (S3 and the other AWS APIs the tests fake) shared by one test module."""
    server = MotoServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def tansu_broker() -> Iterator[TansuBroker]:
    broker = TansuBroker().start()
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture
def kafka_bootstrap(tansu_broker: TansuBroker) -> str:
    return tansu_broker.bootstrap
