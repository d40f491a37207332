"""Service settings from the environment (pydantic-settings).

Locally every value has an embedded default (SQLite file under `var/`, dead letters in a local
directory, no broker). On ECS the task definition sets the `DB_*`, `MSK_CLUSTER_ARN`,
`DATA_LAKE_BUCKET`, `JWT_SIGNING_KEY`, ... variables listed in cdk/components/ingest/task.py.
Unknown `SENSOR_*` variables are errors, like unknown keys in cdk.json.
"""

from __future__ import annotations

import hashlib
import json
import os
from functools import cached_property
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import quote

from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

VAR_DIR = Path(os.environ.get("SENSOR_VAR_DIR", "var"))
LOCAL_SIGNING_KEY = "local-development-signing-key-not-for-deployed-environments"

# Per-tag valid ranges from the seed documents (inclusive; None = unbounded).
DEFAULT_TAG_RANGES: dict[str, tuple[float | None, float | None]] = {
    "fermenter_temp": (30.0, 50.0),
    "fermenter_ph": (5.0, 9.0),
    "agitator_rpm": (200.0, 700.0),
    "temperature": (-50.0, 100.0),
    "humidity": (0.0, 100.0),
    "battery_level": (0.0, 100.0),
    "energy_consumption": (0.0, None),
}


class ClientConfig(BaseModel):
    """A machine client allowed to obtain tokens. The secret is stored as its SHA-256 hex digest."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    client_id: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    secret_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    scopes: tuple[Literal["ingest", "read"], ...] = ("ingest", "read")
    rate_per_second: float = Field(default=5.0, gt=0)
    burst: int = Field(default=20, ge=1)


def sha256_hex(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


# Local clients with documented, non-secret secrets (see README). Deployed environments replace
# the whole list through SENSOR_CLIENTS. The load-test client has its own, larger limits so the
# 1000-user benchmark measures the service, not the rate limiter.
LOCAL_CLIENTS: tuple[ClientConfig, ...] = (
    ClientConfig(client_id="simulator", secret_sha256=sha256_hex("simulator-local-secret")),
    ClientConfig(client_id="dashboard", secret_sha256=sha256_hex("dashboard-local-secret"), scopes=("read",)),
    # `make up` writes this client's token to var/dev-token for the README's curl examples: its own bucket,
    # so the simulator (which keeps its own bucket full) and a curl loop at 50 req/s never meet.
    ClientConfig(client_id="dev", secret_sha256=sha256_hex("dev-local-secret"), rate_per_second=100.0, burst=200),
    ClientConfig(
        client_id="loadtest",
        secret_sha256=sha256_hex("loadtest-local-secret"),
        rate_per_second=100_000.0,
        burst=100_000,
    ),
)


LOCAL_ENV = "local"
# Digests of every secret published in this repository (README, tests, load tests): refused per client
# anywhere but `local`, so a deployed client list cannot carry one of them by copy-paste.
PUBLISHED_SECRET_DIGESTS = frozenset(
    [c.secret_sha256 for c in LOCAL_CLIENTS] + [sha256_hex(f"{name}-local-secret") for name in ("deploy-smoke",)]
)


class Settings(BaseSettings):
    """Everything the service reads from its environment."""

    model_config = SettingsConfigDict(
        env_prefix="SENSOR_", extra="forbid", frozen=True, populate_by_name=True
    )

    # No default on purpose (fail closed): a task that lost its environment must not start as `local`,
    # whose client list carries published secrets.
    app_env: str = Field(
        min_length=1, pattern=r"^[a-z][a-z0-9-]{0,63}$", validation_alias=AliasChoices("SENSOR_APP_ENV", "APP_ENV")
    )

    # --- database -------------------------------------------------------------------------
    database_url: str | None = None
    db_host: str | None = Field(default=None, validation_alias=AliasChoices("SENSOR_DB_HOST", "DB_HOST"))
    db_port: int = Field(default=5432, validation_alias=AliasChoices("SENSOR_DB_PORT", "DB_PORT"))
    db_name: str = Field(default="sensors", validation_alias=AliasChoices("SENSOR_DB_NAME", "DB_NAME"))
    db_username: str | None = Field(
        default=None, validation_alias=AliasChoices("SENSOR_DB_USERNAME", "DB_USERNAME")
    )
    db_password: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("SENSOR_DB_PASSWORD", "DB_PASSWORD")
    )
    # verify-full: TLS with the server certificate checked against `db_ssl_root_cert` and the host name
    # (RDS: the RDS CA bundle shipped in the image / Lambda bundle). `require` (encrypt, accept any
    # certificate) is refused outside `local`.
    db_sslmode: Literal["disable", "require", "verify-full"] = "disable"
    db_ssl_root_cert: Path | None = Field(
        default=None, validation_alias=AliasChoices("SENSOR_DB_SSL_ROOT_CERT", "DB_SSL_ROOT_CERT")
    )
    db_pool_size: int = Field(default=10, ge=1, le=100)
    db_statement_timeout_seconds: float = Field(default=5.0, gt=0)
    # /sensors/stats and /sensors/anomalies/count answers are reused for up to this long (0: never).
    query_cache_seconds: float = Field(default=1.0, ge=0, le=60)

    # --- group commit, retries, circuit breaker -------------------------------------------
    # Readings per group commit. Groups of ~1,000 keep both writers busy: under `make bench-ingest` one
    # 3,000-row group left the other writer idle (46k readings/s at 5,000, 49-51k at 1,000).
    commit_max_rows: int = Field(default=1000, ge=1)
    db_retry_attempts: int = Field(default=3, ge=1, le=10)
    db_retry_base_seconds: float = Field(default=0.05, ge=0)
    breaker_failure_threshold: int = Field(default=5, ge=1)
    breaker_reset_seconds: float = Field(default=5.0, gt=0)

    # --- dead-letter store ----------------------------------------------------------------
    dead_letter_dir: Path = VAR_DIR / "dead-letter"
    data_lake_bucket: str | None = Field(
        default=None, validation_alias=AliasChoices("SENSOR_DATA_LAKE_BUCKET", "DATA_LAKE_BUCKET")
    )
    dead_letter_prefix: str = Field(
        # The service's own prefix: its IAM role may write only here (the archiver has dead-letter/archiver/).
        default="dead-letter/service/",
        validation_alias=AliasChoices("SENSOR_DEAD_LETTER_PREFIX", "DEAD_LETTER_PREFIX"),
    )
    # Letters spread over this many sub-prefixes (S3 scales requests per prefix).
    dead_letter_shards: int = Field(default=8, ge=1, le=100)
    # A task's failed groups within this window share one letter: at most 1/window PUTs/s per task.
    dead_letter_window_seconds: float = Field(default=0.05, gt=0, le=1.0)
    dead_letter_max_readings: int = Field(default=20_000, ge=1)
    s3_endpoint_url: str | None = None
    replay_interval_seconds: float = Field(default=5.0, gt=0)
    replay_fetch_concurrency: int = Field(default=32, ge=1, le=256)
    replay_batch_readings: int = Field(default=5000, ge=1)

    # --- Kafka (outbox relay) -------------------------------------------------------------
    kafka_bootstrap: str | None = None
    msk_cluster_arn: str | None = Field(
        default=None, validation_alias=AliasChoices("SENSOR_MSK_CLUSTER_ARN", "MSK_CLUSTER_ARN")
    )
    kafka_topic: str = Field(default="sensor-readings", validation_alias=AliasChoices("SENSOR_KAFKA_TOPIC", "KAFKA_TOPIC"))
    relay_batch_size: int = Field(default=500, ge=1, le=10_000)
    relay_idle_seconds: float = Field(default=0.2, gt=0)
    # false: the app workers do not relay; `python -m app.outbox.standalone` does (its own process/container).
    relay_in_process: bool = True
    aws_region: str = Field(default="eu-west-1", validation_alias=AliasChoices("SENSOR_AWS_REGION", "AWS_REGION"))

    # --- auth and limits ------------------------------------------------------------------
    jwt_signing_key: SecretStr = Field(
        default=SecretStr(LOCAL_SIGNING_KEY),
        validation_alias=AliasChoices("SENSOR_JWT_SIGNING_KEY", "JWT_SIGNING_KEY"),
    )
    token_ttl_seconds: int = Field(default=3600, ge=60, le=86_400)
    clients: Annotated[tuple[ClientConfig, ...], NoDecode] = LOCAL_CLIENTS

    # --- shared state store (Valkey/Redis): per-client buckets and anomaly windows ------------
    # Unset: both stay in process memory (the embedded profile, one process). Set (redis:// or
    # rediss:// for TLS), every task shares them; while the store is unreachable each task falls back
    # to its own bucket (the client's full rate per task) and its own windows, and retries the store.
    state_store_url: str | None = Field(
        default=None, validation_alias=AliasChoices("SENSOR_STATE_STORE_URL", "STATE_STORE_URL")
    )
    # ElastiCache IAM authentication: the user id (= user name) and the cache name the token is for.
    state_store_iam_user: str | None = Field(
        default=None, validation_alias=AliasChoices("SENSOR_STATE_STORE_IAM_USER", "STATE_STORE_IAM_USER")
    )
    state_store_cache_name: str | None = Field(
        default=None, validation_alias=AliasChoices("SENSOR_STATE_STORE_CACHE_NAME", "STATE_STORE_CACHE_NAME")
    )
    state_store_timeout_seconds: float = Field(default=0.25, gt=0, le=5)
    state_store_retry_seconds: float = Field(default=1.0, gt=0, le=60)
    state_store_window_ttl_seconds: int = Field(default=7 * 86_400, ge=60)
    # --- dashboard sign-in (app/api/dashboard.py) ------------------------------------------
    # session: the local sign-in form sets an HttpOnly session cookie. alb: the ALB authenticated the viewer
    # (Cognito/OIDC listener rule on /dashboard*) and signs `x-amzn-oidc-data`, verified against alb_arn.
    dashboard_auth: Literal["session", "alb"] = "session"
    alb_arn: str | None = Field(default=None, pattern=r"^arn:aws[a-z-]*:elasticloadbalancing:[a-z0-9-]+:\d{12}:loadbalancer/app/.+$")
    # Where the ALB's public keys are published ({region}, {kid} filled in); tests point it at a local server.
    alb_public_key_url: str = "https://public-keys.auth.elb.{region}.amazonaws.com/{kid}"
    # Each dashboard viewer (session or OIDC user) has its own bucket: one viewer cannot starve another.
    dashboard_rate_per_second: float = Field(default=2.0, gt=0)
    dashboard_burst: int = Field(default=10, ge=1)
    dashboard_streams_per_viewer: int = Field(default=4, ge=1, le=100)

    # --- ingestion rules ------------------------------------------------------------------
    tag_ranges: Annotated[dict[str, tuple[float | None, float | None]], NoDecode] = DEFAULT_TAG_RANGES
    zscore_window: int = Field(default=50, ge=2, le=10_000)
    zscore_threshold: float = Field(default=3.0, gt=0)
    zscore_min_samples: int = Field(default=10, ge=2)
    max_body_bytes: int = Field(default=1_048_576, ge=1024)
    max_batch_readings: int = Field(default=1000, ge=1)
    max_clock_skew_seconds: int = Field(default=86_400, ge=0)
    max_reading_age_days: int = Field(default=3650, ge=1)

    # --- observability --------------------------------------------------------------------
    metrics_namespace: str = "SensorPlatform"
    metrics_flush_seconds: float = Field(default=60.0, gt=0)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    @model_validator(mode="before")
    @classmethod
    def _no_unknown_variables(cls, data: object) -> object:
        """A misspelt SENSOR_* variable would otherwise be ignored silently."""
        known = {f"SENSOR_{name.upper()}" for name in cls.model_fields} | {"SENSOR_VAR_DIR"}
        unknown = sorted(name for name in os.environ if name.upper().startswith("SENSOR_") and name.upper() not in known)
        if unknown:
            raise ValueError(f"unknown environment variable(s) {', '.join(unknown)} (see README: service settings)")
        return data

    @field_validator("clients", mode="before")
    @classmethod
    def _clients_json(cls, value: object) -> object:
        return _json_or_value(value)

    @field_validator("tag_ranges", mode="before")
    @classmethod
    def _ranges_json(cls, value: object) -> object:
        return _json_or_value(value)

    @field_validator("tag_ranges")
    @classmethod
    def _ranges_ordered(cls, ranges: dict[str, tuple[float | None, float | None]]) -> dict:
        for tag, (low, high) in ranges.items():
            if low is not None and high is not None and low > high:
                raise ValueError(f"range of tag {tag!r}: minimum {low} is above maximum {high}")
        return ranges

    @model_validator(mode="after")
    def _deployed_needs_real_key(self) -> Settings:
        key = self.jwt_signing_key.get_secret_value()
        if self.app_env != LOCAL_ENV and key == LOCAL_SIGNING_KEY:
            raise ValueError("JWT_SIGNING_KEY must be set outside the local environment")
        if self.app_env != LOCAL_ENV and self.clients == LOCAL_CLIENTS:
            raise ValueError("SENSOR_CLIENTS must be set outside the local environment (the built-in "
                             "clients have published secrets)")
        if self.app_env != LOCAL_ENV:
            # Per client: one published secret mixed into a real list is as bad as the whole list.
            published = [c.client_id for c in self.clients if c.secret_sha256 in PUBLISHED_SECRET_DIGESTS]
            if published:
                raise ValueError(f"SENSOR_CLIENTS: client(s) {', '.join(published)} use a published local secret; "
                                 f"refused outside the local environment (APP_ENV={self.app_env})")
            if self.db_sslmode == "require":
                raise ValueError("SENSOR_DB_SSLMODE=require accepts any certificate; use verify-full outside the "
                                 "local environment")
        if self.db_sslmode == "verify-full":
            if self.db_ssl_root_cert is None:
                raise ValueError("SENSOR_DB_SSL_ROOT_CERT must name the CA bundle when SENSOR_DB_SSLMODE=verify-full")
            if not self.db_ssl_root_cert.is_file():
                raise ValueError(f"SENSOR_DB_SSL_ROOT_CERT: CA bundle {self.db_ssl_root_cert} is not a readable file")
        if len(key.encode()) < 32:
            raise ValueError("JWT_SIGNING_KEY must be at least 32 bytes (HS256 key strength)")
        return self

    @model_validator(mode="after")
    def _consistent_components(self) -> Settings:
        if self.state_store_url and not self.state_store_url.startswith(("redis://", "rediss://")):
            raise ValueError("SENSOR_STATE_STORE_URL must start with redis:// or rediss:// (TLS)")
        if self.state_store_iam_user and not (self.state_store_url and self.state_store_cache_name):
            raise ValueError("SENSOR_STATE_STORE_IAM_USER needs SENSOR_STATE_STORE_URL (rediss://) and "
                             "SENSOR_STATE_STORE_CACHE_NAME")
        if self.state_store_iam_user and not self.state_store_url.startswith("rediss://"):
            raise ValueError("SENSOR_STATE_STORE_IAM_USER needs TLS: SENSOR_STATE_STORE_URL must be rediss://")
        if self.dashboard_auth == "alb" and not self.alb_arn:
            raise ValueError("SENSOR_ALB_ARN must be set when SENSOR_DASHBOARD_AUTH=alb (the only signer of "
                             "x-amzn-oidc-data the dashboard trusts)")
        if self.zscore_min_samples > self.zscore_window:
            raise ValueError("zscore_min_samples must not exceed zscore_window")
        return self

    @cached_property
    def sqlalchemy_url(self) -> str:
        """The async SQLAlchemy URL: explicit, assembled from DB_* parts, or the local SQLite file."""
        if self.database_url:
            return self.database_url
        if self.db_host:
            password = self.db_password.get_secret_value() if self.db_password else ""
            user = quote(self.db_username or "", safe="")
            return (
                f"postgresql+asyncpg://{user}:{quote(password, safe='')}@{self.db_host}:{self.db_port}/{self.db_name}"
            )
        return f"sqlite+aiosqlite:///{VAR_DIR / 'sensors.db'}"

    @property
    def is_postgres(self) -> bool:
        return self.sqlalchemy_url.startswith("postgresql")

    @property
    def kafka_enabled(self) -> bool:
        return bool(self.kafka_bootstrap or self.msk_cluster_arn)


def load_settings() -> Settings:
    """Settings for a process entry point: a configuration error ends the process with one line
    naming the variable(s), instead of a traceback (fail closed, readable in CloudWatch)."""
    try:
        return Settings()
    except ValidationError as error:
        problems = []
        for problem in error.errors():
            location = ".".join(str(part) for part in problem["loc"])
            if problem["type"] == "missing" and location in ("APP_ENV", "SENSOR_APP_ENV", "app_env"):
                problems.append("APP_ENV is not set (the environment name: local, or the deployed "
                                "environment's name); refusing to start")
            else:
                message = problem["msg"].removeprefix("Value error, ")
                problems.append(f"{location}: {message}" if location else message)
        raise SystemExit("error: invalid service settings: " + "; ".join(problems)) from None


def _json_or_value(value: object) -> object:
    if isinstance(value, str):
        return json.loads(value)
    return value
