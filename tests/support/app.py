"""Fixtures running the real application (lifespan included) on SQLite or on the session PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from app.settings import Settings

SIMULATOR = {"client_id": "simulator", "client_secret": "simulator-local-secret"}
# The documented load-test client: its limits are high so tests measure behaviour, not the limiter.
LOADTEST = {"client_id": "loadtest", "client_secret": "loadtest-local-secret"}


def token_headers(client: TestClient, credentials: dict[str, str] = SIMULATOR) -> dict[str, str]:
    response = client.post("/auth/token", json=credentials)
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


@pytest.fixture
def settings_for(tmp_path: Path) -> Callable[..., Settings]:
    def make(database_url: str | None = None, **overrides: Any) -> Settings:
        return Settings(
            database_url=database_url or f"sqlite+aiosqlite:///{tmp_path}/sensors.db",
            dead_letter_dir=tmp_path / "dead-letter",
            metrics_flush_seconds=3600,
            replay_interval_seconds=0.2,
            db_retry_base_seconds=0.01,
            **overrides,
        )

    return make


@pytest.fixture
def serve() -> Callable[[Settings], Any]:
    """`with serve(settings) as client:` runs the app's lifespan around the block, with a token."""

    @contextmanager
    def run(settings: Settings, credentials: dict[str, str] = LOADTEST) -> Iterator[TestClient]:
        with TestClient(create_app(settings)) as client:
            client.headers.update(token_headers(client, credentials))
            yield client

    return run


@pytest.fixture(params=["sqlite", "postgres"])
def backend_settings(request: pytest.FixtureRequest, settings_for) -> Settings:
    """Each test using this runs once on SQLite and once on real PostgreSQL."""
    if request.param == "sqlite":
        return settings_for()
    return settings_for(request.getfixturevalue("postgres_url"))
