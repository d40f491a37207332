"""Typed, frozen per-environment configuration parsed from `cdk.json` context.

Every environment lives under the context key `environments.<name>` and is chosen with
`-c env=<name>`. Parsing is strict: a wrong type, an unknown key or an impossible combination
raises `ConfigError` with the dotted path of the offending key, and synth stops there.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

ENVIRONMENTS_CONTEXT_KEY = "environments"
# The repository's cdk.json: the CDK app reads it through the CLI's context, the tools read it here.
CDK_JSON = Path(__file__).resolve().parent.parent / "cdk.json"

# Fargate task sizes: CPU units -> allowed memory (MiB).
# https://docs.aws.amazon.com/AmazonECS/latest/developerguide/fargate-tasks-services.html#fargate-tasks-size
FARGATE_MEMORY_BY_CPU: dict[int, tuple[int, ...]] = {
    256: (512, 1024, 2048),
    512: tuple(range(1024, 4096 + 1, 1024)),
    1024: tuple(range(2048, 8192 + 1, 1024)),
    2048: tuple(range(4096, 16384 + 1, 1024)),
    4096: tuple(range(8192, 30720 + 1, 1024)),
}


def _fargate_size_problem(cpu: int, memory_mib: int, prefix: str = "") -> str | None:
    """Why (`<prefix>cpu`, `<prefix>memory_mib`) is not a Fargate task size, or None when it is."""
    if cpu not in FARGATE_MEMORY_BY_CPU:
        return f"{prefix}cpu must be one of {sorted(FARGATE_MEMORY_BY_CPU)} (Fargate task sizes), got {cpu}"
    allowed = FARGATE_MEMORY_BY_CPU[cpu]
    if memory_mib not in allowed:
        return (
            f"{prefix}memory_mib {memory_mib} is not a valid Fargate size for cpu {cpu}; "
            f"allowed: {allowed[0]}..{allowed[-1]} ({', '.join(map(str, allowed))})"
        )
    return None


# Values CloudWatch Logs accepts for a log group's retention.
LOG_RETENTION_DAYS = (
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922,
    3288, 3653,
)

_REGION = re.compile(r"^[a-z]{2}(-gov)?-[a-z]+-\d$")
_ACCOUNT = re.compile(r"^\d{12}$")
_INSTANCE_TYPE = re.compile(r"^[a-z][a-z0-9-]*\.[a-z0-9]+$")
_CERTIFICATE_ARN = re.compile(r"^arn:aws[a-z-]*:acm:[a-z0-9-]+:\d{12}:certificate/[A-Za-z0-9-]+$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
# CodeDeploy's predefined Lambda deployment configurations offered per environment (the names of the
# `aws_codedeploy.LambdaDeploymentConfig` constants).
LambdaDeploymentName = Literal["CANARY_10_PERCENT_5_MINUTES", "LINEAR_10_PERCENT_EVERY_1_MINUTE", "ALL_AT_ONCE"]
_TOPIC = re.compile(r"^[A-Za-z0-9._-]{1,249}$")

PositiveInt = Annotated[int, Field(gt=0)]


def _ipv4_network(cidr: str) -> ipaddress.IPv4Network:
    try:
        return ipaddress.IPv4Network(cidr, strict=True)
    except ValueError as error:
        raise ValueError(f"not an IPv4 CIDR with host bits clear: {error}") from None


def _certificate_arn(value: str | None) -> str | None:
    if value is not None and not _CERTIFICATE_ARN.match(value):
        raise ValueError("must be an ACM certificate ARN (arn:aws:acm:REGION:ACCOUNT:certificate/ID)")
    return value


def _cidr_list(cidrs: tuple[str, ...]) -> tuple[str, ...]:
    for index, cidr in enumerate(cidrs):
        try:
            _ipv4_network(cidr)
        except ValueError as error:
            raise ValueError(f"entry {index} ({cidr!r}): {error}") from None
    return cidrs


def _log_retention(days: int) -> int:
    if days not in LOG_RETENTION_DAYS:
        raise ValueError(f"must be one of the CloudWatch Logs retention values {LOG_RETENTION_DAYS}")
    return days


def _matching(pattern: re.Pattern[str], rule: str) -> Callable[[str | None], str | None]:
    """A validator that accepts None or a string matching `pattern`, else fails saying `rule`."""

    def check(value: str | None) -> str | None:
        if value is not None and not pattern.match(value):
            raise ValueError(rule)
        return value

    return check


# Field types with a rule of their own (the error names the field that broke it).
Region = Annotated[str, AfterValidator(_matching(_REGION, "must be an AWS region such as 'eu-west-1'"))]
AccountId = Annotated[str | None, AfterValidator(_matching(_ACCOUNT, "must be a 12-digit AWS account id"))]
Email = Annotated[str | None, AfterValidator(_matching(_EMAIL, "must be an e-mail address"))]
TopicName = Annotated[str, AfterValidator(
    _matching(_TOPIC, "Kafka topic names use letters, digits, '.', '_' and '-' (max 249)")
)]
DbInstanceClass = Annotated[str, AfterValidator(
    _matching(_INSTANCE_TYPE, "must look like 't4g.medium' (family.size, without the 'db.' prefix)")
)]
LogRetentionDays = Annotated[int, AfterValidator(_log_retention)]
CertificateArn = Annotated[str | None, AfterValidator(_certificate_arn)]
CidrList = Annotated[tuple[str, ...], AfterValidator(_cidr_list)]


class ConfigError(ValueError):
    """A configuration problem, already phrased for the person editing `cdk.json`."""


class _Section(BaseModel):
    # strict: "2" is not 2 and 1 is not true; extra keys are typos, never silently ignored.
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class NetworkConfig(_Section):
    """VPC layout."""

    availability_zones: tuple[str, ...] = Field(min_length=2, max_length=3)
    nat_gateways: int = Field(ge=1)
    vpc_cidr: str = "10.40.0.0/16"
    flow_log_retention_days: LogRetentionDays = 30

    @field_validator("availability_zones")
    @classmethod
    def _distinct(cls, zones: tuple[str, ...]) -> tuple[str, ...]:
        if len(set(zones)) != len(zones):
            raise ValueError("availability zones must be distinct")
        return zones

    @field_validator("vpc_cidr")
    @classmethod
    def _cidr(cls, cidr: str) -> str:
        network = _ipv4_network(cidr)
        if not 16 <= network.prefixlen <= 20:
            raise ValueError("VPC CIDR prefix must be between /16 and /20")
        return cidr


    @model_validator(mode="after")
    def _nat_within_azs(self) -> NetworkConfig:
        if self.nat_gateways > len(self.availability_zones):
            raise ValueError(
                f"nat_gateways ({self.nat_gateways}) cannot exceed the number of "
                f"availability_zones ({len(self.availability_zones)})"
            )
        return self


class ScalingConfig(_Section):
    """Target-tracking autoscaling of the ECS service."""

    min_tasks: int = Field(default=1, ge=1)
    max_tasks: int = Field(default=20, ge=1, le=100)
    cpu_target_percent: int = Field(default=60, ge=10, le=90)
    requests_per_target: int = Field(default=1000, ge=1)
    scale_in_cooldown_seconds: int = Field(default=120, ge=0)
    scale_out_cooldown_seconds: int = Field(default=30, ge=0)

    @model_validator(mode="after")
    def _min_not_above_max(self) -> ScalingConfig:
        if self.min_tasks > self.max_tasks:
            raise ValueError(
                f"min_tasks ({self.min_tasks}) must not exceed max_tasks ({self.max_tasks})"
            )
        return self


_HTTPS_URL = r"^https://[A-Za-z0-9.-]+(:\d{1,5})?(/[^\s]*)?$"


class DashboardCognitoConfig(_Section):
    """An existing Cognito user pool (the organisation's) whose app client the ALB signs viewers in with."""

    user_pool_arn: str = Field(pattern=r"^arn:aws[a-z-]*:cognito-idp:[a-z0-9-]+:\d{12}:userpool/[\w-]+_[0-9A-Za-z]+$")
    user_pool_client_id: str = Field(pattern=r"^[0-9a-z]{1,128}$")
    # The pool's domain prefix (<prefix>.auth.<region>.amazoncognito.com) or a custom domain name.
    user_pool_domain: str = Field(pattern=r"^[a-z0-9.-]{1,253}$")


class DashboardOidcConfig(_Section):
    """Any OpenID Connect provider (Okta, Entra ID, Google, ...); its endpoints from its discovery document."""

    issuer: str = Field(pattern=_HTTPS_URL)
    authorization_endpoint: str = Field(pattern=_HTTPS_URL)
    token_endpoint: str = Field(pattern=_HTTPS_URL)
    user_info_endpoint: str = Field(pattern=_HTTPS_URL)
    client_id: str = Field(min_length=1, max_length=256)
    # Name of the Secrets Manager secret holding the client secret (read by CloudFormation at deploy time).
    client_secret_name: str = Field(pattern=r"^[A-Za-z0-9/_+=.@-]{1,512}$")


class DashboardAuthConfig(_Section):
    """Who may open /dashboard* in AWS. `none`: the app's own sign-in form (API client credentials, session
    cookie). `cognito`/`oidc`: the ALB signs the viewer in first (listener rule on /dashboard*, HTTPS only)
    and the app trusts only the `x-amzn-oidc-data` header that this ALB signed."""

    provider: Literal["none", "cognito", "oidc"] = "none"
    cognito: DashboardCognitoConfig | None = None
    oidc: DashboardOidcConfig | None = None
    session_timeout_minutes: int = Field(default=480, ge=5, le=10_080)

    @model_validator(mode="after")
    def _one_provider(self) -> DashboardAuthConfig:
        for name in ("cognito", "oidc"):
            configured = getattr(self, name) is not None
            if configured and self.provider != name:
                raise ValueError(f"{name} is set but provider is {self.provider!r}: set provider to {name!r} or remove it")
            if self.provider == name and not configured:
                raise ValueError(f"provider {name!r} needs the {name} block")
        return self


class ServiceConfig(_Section):
    """The ingestion service on ECS Fargate behind the ALB."""

    cpu: int = 256
    memory_mib: int = 512
    container_port: int = Field(default=8000, ge=1024, le=65535)
    scaling: ScalingConfig = ScalingConfig()
    deployment_strategy: Literal["BLUE_GREEN", "CANARY", "LINEAR"] = "BLUE_GREEN"
    bake_time_minutes: int = Field(default=5, ge=0, le=1440)
    test_listener_port: int = Field(default=8443, ge=1, le=65535)
    health_check_path: str = "/health"
    # Deployment rollback alarm: p99 target response time (max of blue and green), milliseconds.
    rollback_p99_latency_ms: int = Field(default=1000, ge=10, le=60000)
    # The blue/green smoke-test hook's API client (its digest must be in the ApiClients secret) and
    # how long it waits for the green tasks to answer before failing the deployment.
    smoke_client_id: str = Field(default="deploy-smoke", pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    smoke_test_max_wait_seconds: int = Field(default=600, ge=60, le=3600)
    dashboard_auth: DashboardAuthConfig = DashboardAuthConfig()

    @model_validator(mode="after")
    def _fargate_size(self) -> ServiceConfig:
        if problem := _fargate_size_problem(self.cpu, self.memory_mib):
            raise ValueError(problem)
        return self


class DatabaseConfig(_Section):
    """RDS PostgreSQL."""

    instance_class: DbInstanceClass = "t4g.medium"
    allocated_storage_gib: int = Field(default=50, ge=20, le=65536)
    max_allocated_storage_gib: int = Field(default=200, ge=20, le=65536)
    backup_retention_days: int = Field(default=7, ge=1, le=35)
    multi_az: bool = True
    read_replica: bool = False
    database_name: str = Field(default="sensors", pattern=r"^[a-z][a-z0-9_]{0,62}$")
    secret_rotation_days: int = Field(default=30, ge=1, le=365)

    @model_validator(mode="after")
    def _storage_range(self) -> DatabaseConfig:
        if self.max_allocated_storage_gib < self.allocated_storage_gib:
            raise ValueError(
                "max_allocated_storage_gib must be at least allocated_storage_gib "
                f"({self.max_allocated_storage_gib} < {self.allocated_storage_gib})"
            )
        return self


class StreamingConfig(_Section):
    """Amazon MSK."""

    broker_count: int = Field(ge=2, le=30)
    broker_instance_type: str = "kafka.t3.small"
    broker_volume_gib: int = Field(default=100, ge=1, le=16384)
    topic_name: TopicName = "sensor-readings"
    # Seed 003's topic: 10 partitions, 7 days of retention (docs/seed-compatibility.md).
    partitions: int = Field(default=10, ge=1, le=1000)
    retention_hours: int = Field(default=168, ge=1, le=8760)

    @field_validator("broker_instance_type")
    @classmethod
    def _broker_type(cls, value: str) -> str:
        if not value.startswith("kafka.") or not _INSTANCE_TYPE.match(value.removeprefix("kafka.")):
            raise ValueError("must look like 'kafka.m7g.large'")
        return value


class StateStoreConfig(_Section):
    """ElastiCache Serverless for Valkey: the tasks' shared rate-limit buckets and anomaly windows.

    The usage limits cap what the cache may scale to (and cost); hitting them throttles commands and
    the tasks fall back to per-task state (alarms: state-store-*)."""

    max_data_gib: int = Field(default=1, ge=1, le=5000)
    max_ecpu_per_second: int = Field(default=50_000, ge=1000, le=15_000_000)
    snapshot_retention_days: int = Field(default=0, ge=0, le=35)
    major_engine_version: Literal["7", "8"] = "8"


class DataLakeConfig(_Section):
    """S3 data lake lifecycle."""

    infrequent_access_after_days: int = Field(default=30, ge=30)
    glacier_after_days: int = Field(default=90, ge=1)
    noncurrent_versions_expire_after_days: int = Field(default=90, ge=1)

    @model_validator(mode="after")
    def _ordering(self) -> DataLakeConfig:
        # S3 requires at least 30 days in STANDARD_IA before a transition to GLACIER.
        if self.glacier_after_days < self.infrequent_access_after_days + 30:
            raise ValueError(
                "glacier_after_days must be at least infrequent_access_after_days + 30 "
                f"({self.glacier_after_days} < {self.infrequent_access_after_days + 30})"
            )
        return self


class WafConfig(_Section):
    """WAF web ACL on the ALB."""

    rate_limit_per_5_minutes: int = Field(default=2000, ge=10, le=2_000_000_000)
    allow_listed_cidrs: CidrList = ()



class LoadTestConfig(_Section):
    """The opt-in LoadTest stack: a distributed Locust (one master with the web UI behind an internal,
    Cognito-authenticated ALB; `workers` worker tasks) in the environment's VPC, and its results bucket.

    The workers leave through the VPC's NAT gateways, so enabling it also puts the NAT gateways'
    Elastic IPs on the WAF allow-list (exempt from the per-IP rate limit) of the Service stack.
    """

    enabled: bool = False
    workers: int = Field(default=4, ge=1, le=100)
    worker_cpu: int = 1024
    worker_memory_mib: int = 2048
    master_cpu: int = 1024
    master_memory_mib: int = 2048
    # Workers on FARGATE_SPOT: cheaper, but a reclaimed worker drops its users mid-test.
    spot: bool = False
    # The UI's HTTPS listener (ALB authentication needs HTTPS); defaults to the environment's certificate_arn.
    certificate_arn: CertificateArn = None
    # The name the certificate covers, pointed at the internal ALB (private DNS); the Cognito callback
    # URL uses it. Without it, the ALB's own DNS name is the callback (expect a certificate warning).
    ui_domain_name: str | None = Field(
        default=None, max_length=253, pattern=r"^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$"
    )
    # Who may open the UI besides the VPC itself (VPN, peered networks): HTTPS only.
    ui_allowed_cidrs: CidrList = ()
    # The master's default --load-profile (loadtests/locust/profiles.py; the web UI can pick another per run).
    profile: str = Field(default="benchmark_1000", pattern=r"^[a-z][a-z0-9_]{0,63}$")
    # What the users call: default the Service stack's ALB URL; set the service's own name when its
    # certificate does not cover the ALB's DNS name (HTTPS in production).
    target_url: str | None = Field(default=None, pattern=r"^https?://[A-Za-z0-9.-]+(:\d{1,5})?$")
    # The API client the Locust users log in as; its secret is generated by the stack.
    client_id: str = Field(default="loadtest", pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    results_retention_days: int = Field(default=90, ge=1, le=3650)
    # How often the master uploads the results folder to S3 while a test runs.
    export_interval_seconds: int = Field(default=60, ge=10, le=3600)



    @model_validator(mode="after")
    def _fargate_sizes(self) -> LoadTestConfig:
        for role in ("master", "worker"):
            cpu, memory = getattr(self, f"{role}_cpu"), getattr(self, f"{role}_memory_mib")
            if problem := _fargate_size_problem(cpu, memory, prefix=f"{role}_"):
                raise ValueError(problem)
        return self


class PipelineConfig(_Section):
    """The Pipeline stack: the MSK -> S3 archiver Lambda and the optional read-only API Lambda.

    Both functions log with the environment's `log_retention_days`.
    """

    # pyarrow alone needs ~100 MB once imported; 256 MB leaves room for one batch of Parquet.
    archiver_memory_mb: int = Field(default=512, ge=256, le=10240)
    archiver_timeout_seconds: int = Field(default=120, ge=10, le=900)
    # Records per invocation (the MSK event source mapping allows 1..10000).
    batch_size: int = Field(default=1000, ge=1, le=10_000)
    maximum_batching_window_seconds: int = Field(default=5, ge=0, le=300)
    starting_position: Literal["TRIM_HORIZON", "LATEST"] = "TRIM_HORIZON"
    read_api_enabled: bool = False
    read_api_memory_mb: int = Field(default=512, ge=128, le=10240)
    # Kept below 30 s so a slow read cannot hold an ALB connection long (the ALB's idle timeout is 60 s).
    read_api_timeout_seconds: int = Field(default=10, ge=1, le=29)
    # How CodeDeploy shifts each function's `live` alias to a new version (cdk/components/
    # lambda_deployment.py): canary 10 % for 5 minutes, 10 % a minute, or everything at once.
    lambda_deployment: LambdaDeploymentName = "CANARY_10_PERCENT_5_MINUTES"
    # Rollback alarms: p99 duration of the alias above this (2 of 2 one-minute periods) stops a deployment.
    archiver_p99_duration_alarm_ms: int = Field(default=60_000, ge=100, le=900_000)
    read_api_p99_duration_alarm_ms: int = Field(default=3_000, ge=100, le=29_000)

    @model_validator(mode="after")
    def _duration_alarms_below_timeouts(self) -> PipelineConfig:
        for function in ("archiver", "read_api"):
            threshold = getattr(self, f"{function}_p99_duration_alarm_ms")
            timeout_ms = getattr(self, f"{function}_timeout_seconds") * 1000
            if threshold >= timeout_ms:
                raise _KeyError(
                    f"pipeline.{function}_p99_duration_alarm_ms",
                    f"must be below {function}_timeout_seconds ({threshold} ms >= {timeout_ms} ms): "
                    "invocations that time out report the timeout as their duration, so the alarm could "
                    "never see them as slow",
                )
        return self


class MonitoringConfig(_Section):
    """The Monitoring stack: alarms from `monitoring/catalogue.py`, SNS paging, dashboards."""

    # Adopter value: where the runbooks are browsable. Every alarm description ends with
    # "Runbook: <runbook_base_url><alarm name>.md".
    runbook_base_url: str = Field(
        default="https://github.com/example/sensor-platform/blob/main/runbooks/alarms/",
        pattern=r"^https://\S+/$",
    )


class EnvironmentConfig(_Section):
    """One deployable environment of the platform."""

    name: str = Field(pattern=r"^[a-z][a-z0-9-]{1,15}$")
    production: bool = False
    account: AccountId = None
    region: Region
    certificate_arn: CertificateArn = None
    # The name the certificate covers (DNS points it at the ALB): users and the smoke hook verify the
    # certificate against it (SNI), never with verification off.
    domain_name: str | None = Field(
        default=None, max_length=253, pattern=r"^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$"
    )
    # The explicit, non-production opt-out from HTTPS: without a certificate every listener carrying
    # credentials serves plain HTTP. `cdk synth` warns about it on every run.
    allow_plain_http: bool = False
    alarm_email: Email = None
    log_retention_days: LogRetentionDays = 30
    network: NetworkConfig
    service: ServiceConfig = ServiceConfig()
    database: DatabaseConfig = DatabaseConfig()
    streaming: StreamingConfig
    state_store: StateStoreConfig = StateStoreConfig()
    datalake: DataLakeConfig = DataLakeConfig()
    waf: WafConfig = WafConfig()
    pipeline: PipelineConfig = PipelineConfig()
    monitoring: MonitoringConfig = MonitoringConfig()
    load_test: LoadTestConfig = LoadTestConfig()



    @model_validator(mode="after")
    def _cross_checks(self) -> EnvironmentConfig:
        for zone in self.network.availability_zones:
            if not zone.startswith(self.region) or len(zone) != len(self.region) + 1:
                raise _KeyError(
                    "network.availability_zones",
                    f"{zone!r} is not an availability zone of region {self.region!r}",
                )
        zones = len(self.network.availability_zones)
        if self.streaming.broker_count % zones:
            raise _KeyError(
                "streaming.broker_count",
                f"MSK needs the same number of brokers in every AZ: {self.streaming.broker_count} "
                f"is not a multiple of {zones} availability zones",
            )
        if self.certificate_arn and not self.certificate_arn.split(":")[3] == self.region:
            raise _KeyError("certificate_arn", f"certificate must be in region {self.region!r}")
        self._https_rules()
        if self.load_test.enabled:
            certificate = self.load_test.certificate_arn or self.certificate_arn
            if certificate is None:
                raise _KeyError(
                    "load_test.certificate_arn",
                    "is required when load_test.enabled (and the environment has no certificate_arn): the "
                    "Locust UI sits behind ALB Cognito authentication, which needs an HTTPS listener",
                )
            if certificate.split(":")[3] != self.region:
                raise _KeyError("load_test.certificate_arn", f"certificate must be in region {self.region!r}")
        if self.service.dashboard_auth.provider != "none" and self.certificate_arn is None:
            raise _KeyError(
                "service.dashboard_auth.provider",
                f"{self.service.dashboard_auth.provider!r} needs certificate_arn: the ALB authenticates only on "
                "an HTTPS listener",
            )
        if self.production:
            if not self.database.multi_az:
                raise _KeyError("database.multi_az", "must be true in a production environment")
            if self.certificate_arn is None:
                raise _KeyError(
                    "certificate_arn",
                    "is required in a production environment (plain HTTP is allowed in dev only)",
                )
            if self.alarm_email is None:
                raise _KeyError("alarm_email", "is required in a production environment")
        return self

    def _https_rules(self) -> None:
        """HTTPS on every listener that carries credentials, unless the environment opts out explicitly."""
        if self.allow_plain_http and self.production:
            raise _KeyError("allow_plain_http", "must not be true in a production environment")
        if self.allow_plain_http and self.certificate_arn:
            raise _KeyError("allow_plain_http", "contradicts certificate_arn: remove one of them")
        if self.certificate_arn is None and not self.allow_plain_http and not self.production:
            raise _KeyError(
                "certificate_arn",
                "is required: listeners carry client secrets and tokens. Without a certificate, say so "
                "explicitly with \"allow_plain_http\": true (non-production only; synth warns)",
            )
        if self.certificate_arn and self.domain_name is None:
            raise _KeyError(
                "domain_name",
                "is required with certificate_arn: the name the certificate covers, which the deployment "
                "smoke test and the load generator verify the certificate against",
            )

    @property
    def https(self) -> bool:
        return self.certificate_arn is not None

    @property
    def load_test_certificate_arn(self) -> str | None:
        """The certificate of the load-test UI's listener (its own, else the environment's)."""
        return self.load_test.certificate_arn or self.certificate_arn


class _KeyError(ValueError):
    """A cross-field rule broken by one specific key (dotted path under the environment)."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key = key


def load_environment(context: Any, env_name: Any) -> EnvironmentConfig:
    """Parse `context["environments"][env_name]` into an `EnvironmentConfig`.

    Raises `ConfigError` naming the full key path (e.g. `environments.prod.service.cpu`).
    """
    if not isinstance(context, dict):
        raise ConfigError(f"context key '{ENVIRONMENTS_CONTEXT_KEY}' must be an object")
    if env_name is None:
        raise ConfigError(
            "no environment selected: pass -c env=NAME "
            f"(one of: {', '.join(sorted(context)) or 'none defined'})"
        )
    if not isinstance(env_name, str) or env_name not in context:
        raise ConfigError(
            f"unknown environment {env_name!r}: define it under '{ENVIRONMENTS_CONTEXT_KEY}' in "
            f"cdk.json (defined: {', '.join(sorted(context)) or 'none'})"
        )
    raw = context[env_name]
    prefix = f"{ENVIRONMENTS_CONTEXT_KEY}.{env_name}"
    if not isinstance(raw, dict):
        raise ConfigError(f"{prefix}: must be an object")
    if "name" in raw:
        raise ConfigError(f"invalid configuration:\n  {prefix}.name: unknown key (an environment is named by its key)")
    try:
        # JSON mode: strict types, and JSON arrays are accepted where tuples are declared.
        return EnvironmentConfig.model_validate_json(json.dumps({"name": env_name, **raw}))
    except ValidationError as error:
        raise ConfigError(_describe(prefix, error)) from None


def load_from_cdk_json(env_name: str, cdk_json: Path = CDK_JSON) -> EnvironmentConfig:
    """The environment's configuration from a cdk.json file (what tools use outside `cdk synth`)."""
    context = json.loads(cdk_json.read_text())["context"]
    return load_environment(context.get(ENVIRONMENTS_CONTEXT_KEY), env_name)


def _describe(prefix: str, error: ValidationError) -> str:
    lines = []
    for problem in error.errors():
        path = ".".join(str(part) for part in problem["loc"])
        message = problem["msg"].removeprefix("Value error, ")
        cause = problem.get("ctx", {}).get("error")
        if isinstance(cause, _KeyError):
            path = cause.key
        if problem["type"].endswith("_type") or problem["type"].endswith("_parsing"):
            message = f"{message} (got {problem['input']!r})"
        if problem["type"] == "extra_forbidden":
            message = "unknown key (check the spelling; see the config reference in README.md)"
        lines.append(f"{prefix}.{path}: {message}" if path else f"{prefix}: {message}")
    return "invalid configuration:\n  " + "\n  ".join(lines)
