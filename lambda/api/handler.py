"""The read-only API Lambda: the app's read endpoints (`app.read_api`) served through mangum.

The service's ALB invokes the `live` alias for `/read` and `/read/*` (the ingest path's edge: WAF, TLS,
HSTS); the `/read` prefix is stripped before mangum sees the path, so `/read/data` is the app's `/data`.
mangum also understands API Gateway events (the pre-traffic hook invokes with one). The bundle holds this file, the `app` package and the app's requirements.

Settings are built at cold start, not at import: the environment names three Secrets Manager secrets
and the function reads them with boto3 (nothing secret is in its environment):

- `DB_SECRET_ARN`: the RDS credentials JSON -> `DB_HOST`, `DB_PORT`, `DB_USERNAME`, `DB_PASSWORD`
- `JWT_SIGNING_KEY_SECRET_ARN`: the token signing key, the same one the ingestion service uses
- `API_CLIENTS_SECRET_ARN`: the JSON list of API clients (`SENSOR_CLIENTS` of the service)

Everything else (`APP_ENV`, `DB_NAME`, `SENSOR_*`) comes from the environment as for the service. A
variable that is absent is simply not fetched, so the handler also runs against a local database.

The settings and the app are rebuilt when they are older than `SETTINGS_MAX_AGE_SECONDS`, and on the
next request after a 5xx answer (at most every `MIN_REBUILD_SECONDS`): after a rotation of the
database password the next request connects with the new one.

mangum runs the app's lifespan around every invocation, so each request opens and closes its own
database connection: a frozen execution environment holds no idle connection to RDS.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from mangum import Mangum

from app.read_api import create_read_app
from app.settings import Settings

# Environment variables naming the secrets (their values are ARNs, not secrets).
DB_CREDENTIALS_VARIABLE = "DB_SECRET_ARN"
SIGNING_KEY_VARIABLE = "JWT_SIGNING_KEY_SECRET_ARN"
API_CLIENTS_VARIABLE = "API_CLIENTS_SECRET_ARN"
SETTINGS_MAX_AGE_SECONDS = 900.0
MIN_REBUILD_SECONDS = 30.0
SERVER_ERROR = 500
READ_PATH_PREFIX = "/read"  # cdk/components/read_api.py routes it here

SecretReader = Callable[[str], str]

# mangum logs every lifespan step at INFO, i.e. four lines per request: keep its warnings only.
logging.getLogger("mangum.lifespan").setLevel(logging.WARNING)


def read_secret_with_boto3(secret_arn: str) -> str:
    """The current value of a Secrets Manager secret (the client is created once per environment)."""
    return _secrets_client().get_secret_value(SecretId=secret_arn)["SecretString"]


_client: Any = None


def _secrets_client() -> Any:
    global _client  # noqa: PLW0603 - one client per execution environment, created on first use
    if _client is None:
        import boto3  # noqa: PLC0415 - only when a secret is actually configured

        _client = boto3.client("secretsmanager")
    return _client


def settings_from_secrets(
    environ: Mapping[str, str] | None = None, read_secret: SecretReader | None = None
) -> Settings:
    """`Settings` from the environment plus the secrets `environ` names (see the module docstring)."""
    environ = os.environ if environ is None else environ
    read_secret = read_secret or read_secret_with_boto3
    values: dict[str, Any] = {}
    if environ.get(DB_CREDENTIALS_VARIABLE):
        credentials = json.loads(read_secret(environ[DB_CREDENTIALS_VARIABLE]))
        values.update(
            db_host=credentials["host"],
            db_port=int(credentials["port"]),
            db_username=credentials["username"],
            db_password=credentials["password"],
        )
    if environ.get(SIGNING_KEY_VARIABLE):
        values["jwt_signing_key"] = read_secret(environ[SIGNING_KEY_VARIABLE])
    if environ.get(API_CLIENTS_VARIABLE):
        values["clients"] = read_secret(environ[API_CLIENTS_VARIABLE])
    return Settings(**values)


@dataclass
class _Served:
    adapter: Mangum
    built_at: float
    rebuild_requested: bool = False

    def stale(self, now: float) -> bool:
        age = now - self.built_at
        return age >= SETTINGS_MAX_AGE_SECONDS or (self.rebuild_requested and age >= MIN_REBUILD_SECONDS)


_served: _Served | None = None


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Lambda entry point: build the app on the first (or a stale) invocation, then let mangum serve."""
    global _served  # noqa: PLW0603 - the app lives as long as the execution environment
    now = time.monotonic()
    if _served is None or _served.stale(now):
        _served = _Served(Mangum(create_read_app(settings_from_secrets()), lifespan="auto"), built_at=now)
    response = _served.adapter(_without_read_prefix(event), context)
    if response.get("statusCode", SERVER_ERROR) >= SERVER_ERROR:
        _served.rebuild_requested = True
    return response


def _without_read_prefix(event: dict[str, Any]) -> dict[str, Any]:
    """An ALB event for `/read/...` as the app's own path (`/read` alone is `/`)."""
    path = event.get("path")
    if "elb" not in (event.get("requestContext") or {}) or not isinstance(path, str):
        return event
    if path == READ_PATH_PREFIX or path.startswith(f"{READ_PATH_PREFIX}/"):
        return {**event, "path": path[len(READ_PATH_PREFIX):] or "/"}
    return event
