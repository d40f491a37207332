"""The read-only API (app.read_api) behind mangum, as API Gateway and an ALB invoke it in AWS.

Readings are ingested by the full service (`create_app`) into a SQLite database first; the read app
then serves them from the same database. Events follow the payloads AWS documents for Lambda:
- API Gateway HTTP API, payload format 2.0 (API Gateway developer guide, "Lambda proxy integrations
  for HTTP APIs");
- Application Load Balancer, multi-value headers off (ELB user guide, "Lambda functions as targets").
"""

from __future__ import annotations

import base64
import importlib.util
import json
import sys
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import urlencode

import boto3
import pytest
from mangum import Mangum
from moto import mock_aws
from pydantic import SecretStr

from app.read_api import create_read_app
from app.settings import Settings, sha256_hex
from devstack.lambdas import load_handler_module
from tests.conftest import REPO_ROOT
from tests.support.app import SIMULATOR

START = datetime.now(UTC).replace(microsecond=0, tzinfo=None) - timedelta(hours=1)
HANDLER_PATH = REPO_ROOT / "lambda" / "api" / "handler.py"
SIGNING_KEY = "read-api-test-signing-key-0123456789abcdef0123456789abcdef"
READER = {"client_id": "analyst", "client_secret": "analyst-secret-for-tests"}

Event = dict[str, Any]


def http_api_event(
    method: str,
    path: str,
    *,
    query: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
    body: dict[str, Any] | None = None,
) -> Event:
    """An API Gateway HTTP API (payload format 2.0) event."""
    headers = {
        "host": "abc123.execute-api.eu-west-1.amazonaws.com",
        "user-agent": "pytest",
        **(headers or {}),
    }
    encoded = None
    if body is not None:
        headers["content-type"] = "application/json"
        encoded = base64.b64encode(json.dumps(body).encode()).decode()
    route = f"{method} {path}"
    return {
        "version": "2.0",
        "routeKey": route,
        "rawPath": path,
        "rawQueryString": urlencode(query or {}),
        "headers": headers,
        **({"queryStringParameters": query} if query else {}),
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "abc123",
            "domainName": headers["host"],
            "domainPrefix": "abc123",
            "http": {
                "method": method,
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "198.51.100.7",
                "userAgent": "pytest",
            },
            "requestId": uuid.uuid4().hex,
            "routeKey": route,
            "stage": "$default",
            "time": "22/Nov/2026:18:00:00 +0000",
            "timeEpoch": 1_795_370_400_000,
        },
        **({"body": encoded} if encoded is not None else {}),
        "isBase64Encoded": encoded is not None,
    }


def alb_event(
    method: str,
    path: str,
    *,
    query: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
    body: dict[str, Any] | None = None,
) -> Event:
    """An Application Load Balancer event (multi-value headers off)."""
    headers = {
        "host": "read-api.example.com",
        "user-agent": "pytest",
        "x-forwarded-for": "198.51.100.7",
        "x-forwarded-port": "443",
        "x-forwarded-proto": "https",
        **(headers or {}),
    }
    if body is not None:
        headers["content-type"] = "application/json"
    return {
        "requestContext": {
            "elb": {
                "targetGroupArn": (
                    "arn:aws:elasticloadbalancing:eu-west-1:123456789012:targetgroup/read-api/0123456789ab"
                )
            }
        },
        "httpMethod": method,
        "path": path,
        "queryStringParameters": query or {},
        "headers": headers,
        "body": json.dumps(body) if body is not None else "",
        "isBase64Encoded": False,
    }


EVENT_SHAPES = {"http-api": http_api_event, "alb": alb_event}


class LambdaContext:
    """The attributes of the Lambda context object that anything here could read."""

    function_name = "sensor-test-read-api"
    function_version = "7"
    invoked_function_arn = "arn:aws:lambda:eu-west-1:123456789012:function:sensor-test-read-api:live"
    memory_limit_in_mb = 512
    aws_request_id = "c6af9ac6-7b61-11e6-9a41-93e8deadbeef"

    @staticmethod
    def get_remaining_time_in_millis() -> int:
        return 10_000


def respond(adapter: Callable[[Event, Any], dict[str, Any]], event: Event) -> tuple[int, dict[str, str], Any]:
    response = adapter(event, LambdaContext())
    body = response["body"]
    if response.get("isBase64Encoded"):
        body = base64.b64decode(body).decode()
    headers = {name.lower(): value for name, value in (response.get("headers") or {}).items()}
    return response["statusCode"], headers, json.loads(body) if body else None


def ts(seconds: int) -> str:
    return (START + timedelta(seconds=seconds)).isoformat()


@pytest.fixture
def ingested(settings_for, serve) -> tuple[Settings, list[int]]:
    """Twelve steady readings and one spike, ingested through the full service into SQLite."""
    settings = settings_for()
    ids = []
    with serve(settings) as client:
        for second in range(12):
            value = 37.0 + (0.1 if second % 2 else -0.1)
            response = client.post(
                "/ingest",
                json={
                    "timestamp": ts(second),
                    "tag": "fermenter_temp",
                    "value": value,
                    "device_id": "fermenter-1",
                },
            )
            assert response.status_code == 201, response.text
            ids.append(response.json()["id"])
        spike = client.post(
            "/ingest",
            json={"timestamp": ts(12), "tag": "fermenter_temp", "value": 48.5, "device_id": "fermenter-1"},
        )
        assert spike.status_code == 201 and spike.json()["is_anomaly"] is True
        ids.append(spike.json()["id"])
    return settings, ids


@pytest.fixture
def adapter(ingested) -> Mangum:
    settings, _ = ingested
    return Mangum(create_read_app(settings), lifespan="auto")


def bearer(
    adapter: Mangum, make_event: Callable[..., Event], credentials: dict[str, str] = SIMULATOR
) -> dict[str, str]:
    status, headers, body = respond(adapter, make_event("POST", "/auth/token", body=credentials))
    assert status == 200, body
    assert headers["cache-control"] == "no-store"
    return {"authorization": f"Bearer {body['access_token']}"}


@pytest.mark.parametrize("shape", EVENT_SHAPES)
def test_health_answers_200(adapter: Mangum, shape: str) -> None:
    status, headers, body = respond(adapter, EVENT_SHAPES[shape]("GET", "/health"))
    assert status == 200
    assert body["status"] == "ok"
    assert headers["content-type"] == "application/json"
    assert headers["x-request-id"]


@pytest.mark.parametrize("shape", EVENT_SHAPES)
def test_data_without_a_token_is_401(adapter: Mangum, shape: str) -> None:
    status, headers, body = respond(adapter, EVENT_SHAPES[shape]("GET", "/data"))
    assert status == 401
    assert body["error"]["code"] == "missing_token"
    assert headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize("shape", EVENT_SHAPES)
def test_token_from_the_same_handler_reads_what_the_full_app_ingested(
    adapter: Mangum, ingested, shape: str
) -> None:
    _, ids = ingested
    make_event = EVENT_SHAPES[shape]
    auth = bearer(adapter, make_event)

    status, headers, readings = respond(
        adapter, make_event("GET", "/data", query={"tag": "fermenter_temp", "limit": "100"}, headers=auth)
    )
    assert status == 200, readings
    assert sorted(reading["id"] for reading in readings) == sorted(ids)
    assert readings[0]["id"] == ids[-1] and readings[0]["is_anomaly"] is True  # newest first
    assert {"x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset"} <= set(headers)

    status, _, stats = respond(adapter, make_event("GET", "/sensors/stats", headers=auth))
    assert status == 200
    (fermenter,) = [row for row in stats if row["tag"] == "fermenter_temp"]
    assert fermenter["count"] == len(ids)

    status, _, anomalies = respond(adapter, make_event("GET", "/sensors/anomalies/count", headers=auth))
    assert (status, anomalies) == (200, {"total": 1, "by_tag": {"fermenter_temp": 1}})


@pytest.mark.parametrize("shape", EVENT_SHAPES)
def test_write_endpoints_are_absent(adapter: Mangum, shape: str) -> None:
    make_event = EVENT_SHAPES[shape]
    auth = bearer(adapter, make_event)
    reading = {"timestamp": ts(100), "tag": "fermenter_temp", "value": 37.0}
    for path, body in (("/ingest", reading), ("/ingest/batch", [reading])):
        status, _, _ = respond(adapter, make_event("POST", path, headers=auth, body=body))
        assert status in (404, 405), path
    status, _, _ = respond(adapter, make_event("GET", "/dashboard"))
    assert status == 404


def test_read_app_has_no_write_routes() -> None:
    app = create_read_app(Settings(database_url="sqlite+aiosqlite:///:memory:"))
    operations = {(method.upper(), path) for path, item in app.openapi()["paths"].items() for method in item}
    assert operations == {
        ("GET", "/health"),
        ("GET", "/ready"),
        ("POST", "/auth/token"),
        ("GET", "/data"),
        ("GET", "/sensors/stats"),
        ("GET", "/sensors/anomalies/count"),
    }


# --- the Lambda handler module: secrets at cold start ------------------------------------------------


def load_handler() -> ModuleType:
    """A fresh copy of lambda/api/handler.py (`lambda` is a keyword: it cannot be imported by name)."""
    name = f"read_api_handler_{uuid.uuid4().hex}"
    spec = importlib.util.spec_from_file_location(name, HANDLER_PATH)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses resolve their module while the class is created
    spec.loader.exec_module(module)
    return module


def test_settings_are_built_from_the_three_secrets() -> None:
    handler = load_handler()
    secrets = {
        "arn:db": json.dumps(
            {
                "engine": "postgres",
                "host": "sensor-test.abc.eu-west-1.rds.amazonaws.com",
                "port": 5432,
                "username": "sensor_admin",
                "password": "p@ss/word",
                "dbname": "sensors",
            }
        ),
        "arn:jwt": SIGNING_KEY,
        "arn:clients": json.dumps(
            [
                {
                    "client_id": READER["client_id"],
                    "secret_sha256": sha256_hex(READER["client_secret"]),
                    "scopes": ["read"],
                }
            ]
        ),
    }
    environ = {
        "DB_SECRET_ARN": "arn:db",
        "JWT_SIGNING_KEY_SECRET_ARN": "arn:jwt",
        "API_CLIENTS_SECRET_ARN": "arn:clients",
    }
    settings = handler.settings_from_secrets(environ, read_secret=secrets.__getitem__)
    assert settings.sqlalchemy_url == (
        "postgresql+asyncpg://sensor_admin:p%40ss%2Fword"
        "@sensor-test.abc.eu-west-1.rds.amazonaws.com:5432/sensors"
    )
    assert settings.jwt_signing_key == SecretStr(SIGNING_KEY)
    assert [client.client_id for client in settings.clients] == ["analyst"]
    assert handler.settings_from_secrets({}, read_secret=secrets.__getitem__).db_host is None


@pytest.fixture
def deployed_environment(ingested, monkeypatch) -> tuple[ModuleType, Settings]:
    """The handler configured as in AWS (APP_ENV, secret ARNs), with Secrets Manager from moto."""
    settings, _ = ingested
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "eu-west-1",
    }.items():
        monkeypatch.setenv(name, value)
    with mock_aws():
        secrets = boto3.client("secretsmanager", region_name="eu-west-1")
        jwt_arn = secrets.create_secret(Name="sensor-test-jwt", SecretString=SIGNING_KEY)["ARN"]
        clients = [
            {
                "client_id": READER["client_id"],
                "secret_sha256": sha256_hex(READER["client_secret"]),
                "scopes": ["read"],
            }
        ]
        clients_arn = secrets.create_secret(Name="sensor-test-clients", SecretString=json.dumps(clients))[
            "ARN"
        ]
        monkeypatch.setenv("APP_ENV", "sensor-test")
        monkeypatch.setenv("JWT_SIGNING_KEY_SECRET_ARN", jwt_arn)
        monkeypatch.setenv("API_CLIENTS_SECRET_ARN", clients_arn)
        # The local stand-in for DB_SECRET_ARN: the SQLite file the full app wrote.
        monkeypatch.setenv("SENSOR_DATABASE_URL", settings.sqlalchemy_url)
        yield load_handler(), settings


def test_handler_serves_with_secrets_fetched_once_at_cold_start(deployed_environment, monkeypatch) -> None:
    handler, _ = deployed_environment
    status, _, _ = respond(handler.handler, http_api_event("GET", "/data"))
    assert status == 401
    cold_start = handler._served

    status, _, body = respond(handler.handler, http_api_event("POST", "/auth/token", body=SIMULATOR))
    assert status == 401 and body["error"]["code"] == "invalid_client"  # the local clients are not configured
    auth = bearer(handler.handler, http_api_event, READER)
    status, _, readings = respond(handler.handler, http_api_event("GET", "/data", headers=auth))
    assert status == 200 and len(readings) == 13
    assert handler._served is cold_start  # no secret was fetched again

    def no_more_secrets(_arn: str) -> str:
        raise AssertionError("secrets were fetched again")

    monkeypatch.setattr(handler, "read_secret_with_boto3", no_more_secrets)
    assert respond(handler.handler, http_api_event("GET", "/health"))[0] == 200


def test_handler_rebuilds_after_a_server_error_or_when_old(deployed_environment) -> None:
    handler, _ = deployed_environment
    respond(handler.handler, http_api_event("GET", "/health"))
    served = handler._served
    assert not served.stale(served.built_at + 1)
    served.rebuild_requested = True  # as after a 5xx, e.g. a rotated database password
    assert not served.stale(served.built_at + handler.MIN_REBUILD_SECONDS - 1)
    assert served.stale(served.built_at + handler.MIN_REBUILD_SECONDS + 1)
    served.rebuild_requested = False
    assert served.stale(served.built_at + handler.SETTINGS_MAX_AGE_SECONDS + 1)

    served.built_at -= handler.SETTINGS_MAX_AGE_SECONDS + 1
    assert respond(handler.handler, http_api_event("GET", "/health"))[0] == 200
    assert handler._served is not served


def test_handler_marks_the_app_for_rebuild_after_a_5xx(
    deployed_environment, tmp_path: Path, monkeypatch
) -> None:
    handler, _ = deployed_environment
    # A database without the schema (as after a failed login, the query fails): the service answers 500.
    monkeypatch.setenv("SENSOR_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path}/empty.db")
    auth = bearer(handler.handler, http_api_event, READER)
    status, _, body = respond(handler.handler, http_api_event("GET", "/data", headers=auth))
    assert status == 500, body
    assert handler._served.rebuild_requested is True


def test_handler_serves_the_alb_read_prefix_as_the_apps_paths(deployed_environment) -> None:
    """The service's ALB forwards /read and /read/* (cdk/components/read_api.py): /read/data is /data."""
    handler, _ = deployed_environment
    assert respond(handler.handler, alb_event("GET", "/read/health"))[0] == 200
    # The CodeDeploy pre-traffic hook's probe is that same ALB event.
    assert respond(handler.handler, load_handler_module("pre_traffic").health_event())[0] == 200
    auth = bearer(handler.handler, lambda method, path, **kw: alb_event(method, f"/read{path}", **kw), READER)
    status, _, readings = respond(handler.handler, alb_event("GET", "/read/data", headers=auth))
    assert status == 200 and len(readings) == 13
    assert respond(handler.handler, alb_event("GET", "/reading"))[0] == 404  # only the exact prefix is stripped
