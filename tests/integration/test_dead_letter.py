"""Zero loss with the database down: stop the real PostgreSQL mid-test, keep ingesting (202, dead
letters), start it again, and find every acknowledged reading in the database exactly once."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
from fastapi.testclient import TestClient

from app.main import create_app
from devstack.postgres import PostgresServer
from tests.support.app import token_headers

START = datetime.now(UTC) - timedelta(hours=1)


def _stored_keys(url: str) -> list[tuple[str, datetime]]:
    async def fetch():
        connection = await asyncpg.connect(url.replace("postgresql+asyncpg", "postgresql"))
        try:
            return await connection.fetch("SELECT device_id, ts FROM readings")
        finally:
            await connection.close()

    return [(row["device_id"], row["ts"]) for row in asyncio.run(fetch())]


class Ledger:
    """The client's record of what the service acknowledged (201/202)."""

    def __init__(self) -> None:
        self.sent = 0
        self.acknowledged: set[tuple[str, datetime]] = set()

    def post_batch(self, client: TestClient, size: int) -> int:
        readings = []
        for _ in range(size):
            moment = START + timedelta(milliseconds=self.sent)
            readings.append((f"dev-{self.sent % 4}", moment))
            self.sent += 1
        body = [{"timestamp": m.isoformat(), "tag": "fermenter_ph", "value": 7.0, "device_id": d} for d, m in readings]
        response = client.post("/ingest/batch", json=body)
        if response.status_code in (201, 202):
            self.acknowledged.update(readings)
        return response.status_code


def test_acknowledged_readings_survive_a_database_outage_exactly_once(
    tmp_path: Path, settings_for, postgres_server: PostgresServer, postgres_url: str
) -> None:
    settings = settings_for(postgres_url, breaker_failure_threshold=2, breaker_reset_seconds=0.5,
                            db_statement_timeout_seconds=2.0)
    dead_letters = tmp_path / "dead-letter"
    ledger = Ledger()
    with TestClient(create_app(settings)) as client:
        client.headers.update(token_headers(client))
        assert {ledger.post_batch(client, 10) for _ in range(5)} == {201}

        postgres_server.stop("immediate")
        try:
            codes = [ledger.post_batch(client, 10) for _ in range(10)]
            assert set(codes) == {202}, codes
            assert list(dead_letters.rglob("*.json")), "no dead letter was written"
        finally:
            postgres_server.start()

        deadline = time.monotonic() + 30
        while list(dead_letters.rglob("*.json")) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not list(dead_letters.rglob("*.json")), "dead letters were not replayed"
        assert ledger.post_batch(client, 10) == 201

    stored = _stored_keys(postgres_url)
    assert len(stored) == len(set(stored)), "a reading was stored twice"
    assert ledger.acknowledged == set(stored)
    assert len(stored) == 160
