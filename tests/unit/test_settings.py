"""Service settings: deployed environments must not run on local defaults."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from app.settings import Settings, sha256_hex

DEPLOYED_KEY = "k" * 40
CLIENTS = json.dumps([{"client_id": "fleet", "secret_sha256": sha256_hex("s3cret-" * 6), "scopes": ["ingest"]}])


def test_deployed_environment_needs_its_own_signing_key_and_clients() -> None:
    with pytest.raises(ValidationError, match="JWT_SIGNING_KEY must be set"):
        Settings(app_env="sensor-prod", clients=json.loads(CLIENTS))
    with pytest.raises(ValidationError, match="SENSOR_CLIENTS must be set"):
        Settings(app_env="sensor-prod", jwt_signing_key=DEPLOYED_KEY)
    settings = Settings(app_env="sensor-prod", jwt_signing_key=DEPLOYED_KEY, clients=json.loads(CLIENTS))
    assert [c.client_id for c in settings.clients] == ["fleet"]


def test_environment_variables_as_ecs_sets_them(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {
        "APP_ENV": "sensor-dev", "JWT_SIGNING_KEY": DEPLOYED_KEY, "SENSOR_CLIENTS": CLIENTS,
        "DB_HOST": "db.internal", "DB_PORT": "5432", "DB_USERNAME": "sensor_admin", "DB_PASSWORD": "p@ss/word",
        "DB_NAME": "sensors", "SENSOR_DB_SSLMODE": "require", "MSK_CLUSTER_ARN": "arn:aws:kafka:eu-west-1:1:cluster/x/y",
        "KAFKA_TOPIC": "sensor-readings", "DATA_LAKE_BUCKET": "lake", "DEAD_LETTER_PREFIX": "dead-letter/",
    }.items():
        monkeypatch.setenv(name, value)
    settings = Settings()
    assert settings.sqlalchemy_url == "postgresql+asyncpg://sensor_admin:p%40ss%2Fword@db.internal:5432/sensors"
    assert settings.kafka_enabled and settings.data_lake_bucket == "lake" and settings.db_sslmode == "require"


def test_unknown_sensor_variable_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SENSOR_ZSCORE_TRESHOLD", "2.5")
    with pytest.raises(ValidationError, match=r"unknown environment variable\(s\) SENSOR_ZSCORE_TRESHOLD"):
        Settings()


def test_tag_ranges_from_json_and_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SENSOR_TAG_RANGES", json.dumps({"pressure": [0, 10]}))
    assert Settings().tag_ranges == {"pressure": (0.0, 10.0)}
    monkeypatch.setenv("SENSOR_TAG_RANGES", json.dumps({"pressure": [10, 0]}))
    with pytest.raises(ValidationError, match=r"minimum 10\.0 is above maximum 0\.0"):
        Settings()
