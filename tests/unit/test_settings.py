"""Service settings: deployed environments must not run on local defaults."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from pydantic import ValidationError

from app.settings import Settings, load_settings, sha256_hex
from tests.conftest import REPO_ROOT

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
        "DB_NAME": "sensors", "SENSOR_DB_SSLMODE": "verify-full", "SENSOR_DB_SSL_ROOT_CERT": __file__, "MSK_CLUSTER_ARN": "arn:aws:kafka:eu-west-1:1:cluster/x/y",
        "KAFKA_TOPIC": "sensor-readings", "DATA_LAKE_BUCKET": "lake", "DEAD_LETTER_PREFIX": "dead-letter/service/",
    }.items():
        monkeypatch.setenv(name, value)
    settings = Settings()
    assert settings.sqlalchemy_url == "postgresql+asyncpg://sensor_admin:p%40ss%2Fword@db.internal:5432/sensors"
    assert settings.kafka_enabled and settings.data_lake_bucket == "lake" and settings.db_sslmode == "verify-full"


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


# --- fail closed (docs/security.md) ----------------------------------------------------------------


def test_the_environment_name_has_no_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("APP_ENV", raising=False)
    with pytest.raises(ValidationError, match="APP_ENV"):
        Settings()
    with pytest.raises(SystemExit, match=r"^error: invalid service settings: APP_ENV is not set"):
        load_settings()


def test_starting_the_service_with_an_empty_environment_exits_with_one_line(tmp_path) -> None:
    """`uvicorn app.main:app` with nothing in its environment: exit 1, one line naming APP_ENV."""
    result = subprocess.run(
        [sys.executable, "-m", "uvicorn", "--app-dir", str(REPO_ROOT), "app.main:app", "--port", "0"],
        check=False, env={}, cwd=tmp_path, capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert lines == [lines[0]] and "APP_ENV is not set" in lines[0], result.stderr
    assert result.stdout == ""


def test_published_local_secrets_are_refused_per_client_outside_local() -> None:
    mixed = [*json.loads(CLIENTS), {"client_id": "simulator", "secret_sha256": sha256_hex("simulator-local-secret")}]
    with pytest.raises(ValidationError, match=r"client\(s\) simulator use a published local secret"):
        Settings(app_env="sensor-prod", jwt_signing_key=DEPLOYED_KEY, clients=mixed)
    # The same published secret under another client id is refused too: the digest decides.
    renamed = [{"client_id": "fleet-2", "secret_sha256": sha256_hex("loadtest-local-secret")}]
    with pytest.raises(ValidationError, match=r"client\(s\) fleet-2"):
        Settings(app_env="sensor-dev", jwt_signing_key=DEPLOYED_KEY, clients=renamed)
    assert Settings(app_env="local", clients=mixed).clients[-1].client_id == "simulator"


def test_database_tls_must_verify_outside_local(tmp_path) -> None:
    deployed = {"app_env": "sensor-prod", "jwt_signing_key": DEPLOYED_KEY, "clients": json.loads(CLIENTS)}
    with pytest.raises(ValidationError, match="SENSOR_DB_SSLMODE=require accepts any certificate"):
        Settings(db_sslmode="require", **deployed)
    with pytest.raises(ValidationError, match="SENSOR_DB_SSL_ROOT_CERT must name the CA bundle"):
        Settings(db_sslmode="verify-full", **deployed)
    with pytest.raises(ValidationError, match="is not a readable file"):
        Settings(db_sslmode="verify-full", db_ssl_root_cert=tmp_path / "missing.pem", **deployed)
    bundle = tmp_path / "ca.pem"
    bundle.write_text("-----BEGIN CERTIFICATE-----\n")
    assert Settings(db_sslmode="verify-full", db_ssl_root_cert=bundle, **deployed).db_sslmode == "verify-full"


def test_the_service_dead_letters_under_its_own_prefix() -> None:
    assert Settings().dead_letter_prefix == "dead-letter/service/"
