"""Every configuration rule rejects bad input with a message naming the key."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from pydantic import ValidationError

from cdk.components.retention import _BY_DAYS
from environments.config import LOG_RETENTION_DAYS, ConfigError, load_environment
from tests.infra.conftest import committed_context, committed_environment


def load(name: str, raw: dict[str, Any]):
    return load_environment({name: raw}, name)


def rejected(name: str, mutate: Callable[[dict[str, Any]], None]) -> str:
    raw = committed_environment(name)
    mutate(raw)
    with pytest.raises(ConfigError) as caught:
        load(name, raw)
    return str(caught.value)


def test_committed_environments_parse_with_documented_defaults() -> None:
    environments = committed_context()["environments"]
    dev = load_environment(environments, "dev")
    prod = load_environment(environments, "prod")

    assert dev.service.scaling.min_tasks == 1 and dev.service.scaling.max_tasks == 20
    assert prod.service.scaling.min_tasks == 1 and prod.service.scaling.max_tasks == 20
    assert dev.production is False and prod.production is True
    assert len(dev.network.availability_zones) == 2
    assert len(prod.network.availability_zones) == 3
    assert (dev.streaming.broker_count, prod.streaming.broker_count) == (2, 3)
    # HTTPS everywhere: dev has a (placeholder) certificate too, and names what it covers.
    assert dev.https and prod.https and not dev.allow_plain_http
    assert (dev.domain_name, prod.domain_name) == ("sensor-dev.example.com", "sensor.example.com")
    assert prod.database.multi_az and prod.database.read_replica
    assert prod.datalake.infrequent_access_after_days == 30
    assert prod.datalake.glacier_after_days == 90


def test_pipeline_settings_come_from_cdk_json_with_documented_defaults() -> None:
    environments = committed_context()["environments"]
    dev = load_environment(environments, "dev").pipeline
    prod = load_environment(environments, "prod").pipeline
    assert dev.read_api_enabled and prod.read_api_enabled
    assert (dev.batch_size, dev.maximum_batching_window_seconds, dev.starting_position) == (1000, 5, "TRIM_HORIZON")
    assert (prod.batch_size, prod.maximum_batching_window_seconds) == (5000, 30)
    assert (prod.archiver_memory_mb, prod.archiver_timeout_seconds) == (1024, 300)
    assert (dev.lambda_deployment, prod.lambda_deployment) == ("ALL_AT_ONCE", "CANARY_10_PERCENT_5_MINUTES")
    assert (prod.archiver_p99_duration_alarm_ms, prod.read_api_p99_duration_alarm_ms) == (120_000, 3_000)

    raw = committed_environment("dev")
    del raw["pipeline"]
    defaults = load("dev", raw).pipeline
    assert defaults.read_api_enabled is False  # opt-in: the read API is an extra public endpoint
    assert (defaults.archiver_memory_mb, defaults.archiver_timeout_seconds) == (512, 120)
    assert (defaults.batch_size, defaults.maximum_batching_window_seconds) == (1000, 5)
    assert defaults.starting_position == "TRIM_HORIZON"
    assert (defaults.read_api_memory_mb, defaults.read_api_timeout_seconds) == (512, 10)
    assert defaults.lambda_deployment == "CANARY_10_PERCENT_5_MINUTES"  # the safe choice unless told otherwise
    assert (defaults.archiver_p99_duration_alarm_ms, defaults.read_api_p99_duration_alarm_ms) == (60_000, 3_000)


def test_deployment_hook_and_rollback_settings_come_from_cdk_json_with_documented_defaults() -> None:
    environments = committed_context()["environments"]
    prod = load_environment(environments, "prod").service
    assert (prod.rollback_p99_latency_ms, prod.smoke_client_id, prod.smoke_test_max_wait_seconds) == (
        1000, "deploy-smoke", 900
    )
    defaults = load_environment(environments, "dev").service  # dev relies on the defaults
    assert (defaults.rollback_p99_latency_ms, defaults.smoke_client_id) == (1000, "deploy-smoke")
    assert defaults.smoke_test_max_wait_seconds == 600


@pytest.mark.parametrize(
    ("key", "value", "rule"),
    [
        ("rollback_p99_latency_ms", 5, "greater than or equal to 10"),
        ("rollback_p99_latency_ms", "1000", "valid integer"),
        ("smoke_client_id", "deploy smoke", "should match pattern"),
        ("smoke_test_max_wait_seconds", 30, "greater than or equal to 60"),
        ("smoke_test_max_wait_seconds", 7200, "less than or equal to 3600"),
    ],
)
def test_deployment_hook_settings_are_validated(key: str, value: Any, rule: str) -> None:
    message = rejected("dev", lambda raw: raw["service"].update({key: value}))
    assert f"environments.dev.service.{key}" in message and rule in message


def test_config_is_frozen() -> None:
    config = load("dev", committed_environment("dev"))
    with pytest.raises(ValidationError, match="frozen"):
        config.service.cpu = 4096  # type: ignore[misc]


@pytest.mark.parametrize(
    ("mutate", "key", "rule"),
    [
        pytest.param(lambda r: r.update(colour="blue"), "environments.dev.colour", "unknown key",
                     id="unknown top-level key"),
        pytest.param(lambda r: r["service"].update(cpus=512), "environments.dev.service.cpus",
                     "unknown key", id="unknown nested key"),
        pytest.param(lambda r: r["service"].update(cpu="256"), "environments.dev.service.cpu",
                     "valid integer (got '256')", id="string where a number belongs"),
        pytest.param(lambda r: r["database"].update(multi_az=1), "environments.dev.database.multi_az",
                     "valid boolean", id="number where a boolean belongs"),
        pytest.param(lambda r: r["service"]["scaling"].update(min_tasks=5, max_tasks=3),
                     "environments.dev.service.scaling", "min_tasks (5) must not exceed max_tasks (3)",
                     id="min tasks above max"),
        pytest.param(lambda r: r["service"]["scaling"].update(min_tasks=0),
                     "environments.dev.service.scaling.min_tasks", "greater than or equal to 1",
                     id="zero tasks"),
        pytest.param(lambda r: r["service"].update(cpu=300), "environments.dev.service",
                     "cpu must be one of [256, 512, 1024, 2048, 4096]", id="cpu not a Fargate size"),
        pytest.param(lambda r: r["service"].update(cpu=256, memory_mib=4096), "environments.dev.service",
                     "memory_mib 4096 is not a valid Fargate size for cpu 256", id="invalid Fargate pair"),
        pytest.param(lambda r: r["network"].update(availability_zones=["us-east-1a", "us-east-1b"]),
                     "environments.dev.network.availability_zones", "not an availability zone of region",
                     id="zones outside the region"),
        pytest.param(lambda r: r["network"].update(availability_zones=["eu-west-1a", "eu-west-1a"]),
                     "environments.dev.network.availability_zones", "distinct", id="duplicate zones"),
        pytest.param(lambda r: r["network"].update(nat_gateways=3), "environments.dev.network",
                     "nat_gateways (3) cannot exceed", id="more NAT gateways than zones"),
        pytest.param(lambda r: r["network"].update(vpc_cidr="10.40.0.1/16"),
                     "environments.dev.network.vpc_cidr", "host bits", id="CIDR with host bits"),
        pytest.param(lambda r: r["streaming"].update(broker_count=3), "environments.dev.streaming.broker_count",
                     "not a multiple of 2 availability zones", id="brokers not spread evenly"),
        pytest.param(lambda r: r["streaming"].update(broker_instance_type="m5.large"),
                     "environments.dev.streaming.broker_instance_type", "kafka.", id="broker type"),
        pytest.param(lambda r: r["waf"].update(allow_listed_cidrs=["10.0.0.0/8", "not-a-cidr"]),
                     "environments.dev.waf.allow_listed_cidrs", "entry 1 ('not-a-cidr')", id="bad allow-list CIDR"),
        pytest.param(lambda r: r.update(log_retention_days=10), "environments.dev.log_retention_days",
                     "retention values", id="unsupported log retention"),
        pytest.param(lambda r: r.update(datalake={"infrequent_access_after_days": 30, "glacier_after_days": 45}),
                     "environments.dev.datalake", "glacier_after_days must be at least", id="glacier too early"),
        pytest.param(lambda r: r["database"].update(max_allocated_storage_gib=10, allocated_storage_gib=20),
                     "environments.dev.database.max_allocated_storage_gib", "greater than or equal to 20",
                     id="storage ceiling under the minimum"),
        pytest.param(lambda r: r["database"].update(instance_class="db.t4g.medium"),
                     "environments.dev.database.instance_class", "without the 'db.' prefix", id="db. prefix"),
        pytest.param(lambda r: r.update(region="Ireland"), "environments.dev.region", "AWS region",
                     id="bad region"),
        pytest.param(lambda r: r.update(certificate_arn="arn:aws:acm:us-east-1:123456789012:certificate/abc"),
                     "environments.dev.certificate_arn", "must be in region 'eu-west-1'",
                     id="certificate in another region"),
        pytest.param(lambda r: r.update(alarm_email="oncall"), "environments.dev.alarm_email",
                     "e-mail", id="bad e-mail"),
        pytest.param(lambda r: r.update(account="1234"), "environments.dev.account", "12-digit",
                     id="bad account"),
        pytest.param(lambda r: r.pop("streaming"), "environments.dev.streaming", "Field required",
                     id="missing required section"),
        pytest.param(lambda r: r["pipeline"].update(batchsize=10), "environments.dev.pipeline.batchsize",
                     "unknown key", id="unknown pipeline key"),
        pytest.param(lambda r: r["pipeline"].update(batch_size=10_001), "environments.dev.pipeline.batch_size",
                     "less than or equal to 10000", id="batch larger than the MSK event source allows"),
        pytest.param(lambda r: r["pipeline"].update(batch_size=0), "environments.dev.pipeline.batch_size",
                     "greater than or equal to 1", id="empty batch"),
        pytest.param(lambda r: r["pipeline"].update(maximum_batching_window_seconds=301),
                     "environments.dev.pipeline.maximum_batching_window_seconds", "less than or equal to 300",
                     id="batching window over five minutes"),
        pytest.param(lambda r: r["pipeline"].update(maximum_batching_window_seconds=-1),
                     "environments.dev.pipeline.maximum_batching_window_seconds", "greater than or equal to 0",
                     id="negative batching window"),
        pytest.param(lambda r: r["pipeline"].update(starting_position="EARLIEST"),
                     "environments.dev.pipeline.starting_position", "'TRIM_HORIZON' or 'LATEST'",
                     id="unknown starting position"),
        pytest.param(lambda r: r["pipeline"].update(archiver_memory_mb=128),
                     "environments.dev.pipeline.archiver_memory_mb", "greater than or equal to 256",
                     id="archiver memory too small for pyarrow"),
        pytest.param(lambda r: r["pipeline"].update(archiver_memory_mb=10_241),
                     "environments.dev.pipeline.archiver_memory_mb", "less than or equal to 10240",
                     id="archiver memory above the Lambda maximum"),
        pytest.param(lambda r: r["pipeline"].update(archiver_timeout_seconds=901),
                     "environments.dev.pipeline.archiver_timeout_seconds", "less than or equal to 900",
                     id="archiver timeout above the Lambda maximum"),
        pytest.param(lambda r: r["pipeline"].update(read_api_enabled="yes"),
                     "environments.dev.pipeline.read_api_enabled", "valid boolean", id="read API flag as text"),
        pytest.param(lambda r: r["pipeline"].update(read_api_timeout_seconds=30),
                     "environments.dev.pipeline.read_api_timeout_seconds", "less than or equal to 29",
                     id="read API timeout at the HTTP API limit"),
        pytest.param(lambda r: r["pipeline"].update(read_api_memory_mb=64),
                     "environments.dev.pipeline.read_api_memory_mb", "greater than or equal to 128",
                     id="read API memory below the Lambda minimum"),
        pytest.param(lambda r: r["pipeline"].update(read_api_throttle_burst=100),
                     "environments.dev.pipeline.read_api_throttle_burst", "unknown key",
                     id="the HTTP API's throttle is gone: reads share the ALB's WAF"),
        # HTTPS on every listener carrying credentials, unless the environment says otherwise explicitly.
        pytest.param(lambda r: r.pop("certificate_arn"), "environments.dev.certificate_arn",
                     'say so explicitly with "allow_plain_http": true', id="no certificate, no opt-out"),
        pytest.param(lambda r: r.update(allow_plain_http=True), "environments.dev.allow_plain_http",
                     "contradicts certificate_arn", id="opt-out with a certificate"),
        pytest.param(lambda r: r.pop("domain_name"), "environments.dev.domain_name",
                     "is required with certificate_arn", id="certificate without its name"),
        pytest.param(lambda r: r.update(allow_plain_http="true"), "environments.dev.allow_plain_http",
                     "valid boolean", id="opt-out as text"),
        pytest.param(lambda r: r["pipeline"].update(lambda_deployment="CANARY_50_PERCENT"),
                     "environments.dev.pipeline.lambda_deployment", "'CANARY_10_PERCENT_5_MINUTES'",
                     id="unknown Lambda deployment configuration"),
        pytest.param(lambda r: r["pipeline"].update(archiver_p99_duration_alarm_ms=120_000),
                     "environments.dev.pipeline.archiver_p99_duration_alarm_ms",
                     "must be below archiver_timeout_seconds (120000 ms >= 120000 ms)",
                     id="archiver duration alarm at the timeout"),
        pytest.param(lambda r: r["pipeline"].update(read_api_p99_duration_alarm_ms=50),
                     "environments.dev.pipeline.read_api_p99_duration_alarm_ms", "greater than or equal to 100",
                     id="read API duration alarm too low"),
    ],
)
def test_dev_rules(mutate: Callable[[dict[str, Any]], None], key: str, rule: str) -> None:
    message = rejected("dev", mutate)
    assert f"{key}: " in message, message
    assert rule in message, message


@pytest.mark.parametrize(
    ("mutate", "key", "rule"),
    [
        pytest.param(lambda r: r["database"].update(multi_az=False), "environments.prod.database.multi_az",
                     "must be true in a production environment", id="prod without Multi-AZ"),
        pytest.param(lambda r: r.pop("certificate_arn"), "environments.prod.certificate_arn",
                     "is required in a production environment", id="prod without certificate"),
        pytest.param(lambda r: r.pop("alarm_email"), "environments.prod.alarm_email",
                     "is required in a production environment", id="prod without alarm e-mail"),
        pytest.param(lambda r: (r.pop("certificate_arn"), r.update(allow_plain_http=True)),
                     "environments.prod.allow_plain_http", "must not be true in a production environment",
                     id="prod opting out of HTTPS"),
    ],
)
def test_production_rules(mutate: Callable[[dict[str, Any]], None], key: str, rule: str) -> None:
    message = rejected("prod", mutate)
    assert f"{key}: " in message, message
    assert rule in message, message


def test_several_problems_are_reported_together() -> None:
    def break_twice(raw: dict[str, Any]) -> None:
        raw["service"]["cpu"] = "big"
        raw["waf"]["rate_limit"] = 100

    message = rejected("dev", break_twice)
    assert "environments.dev.service.cpu" in message
    assert "environments.dev.waf.rate_limit: unknown key" in message


def test_environment_must_be_selected_and_defined() -> None:
    environments = committed_context()["environments"]
    with pytest.raises(ConfigError, match=r"no environment selected: pass -c env=NAME \(one of: dev, prod\)"):
        load_environment(environments, None)
    with pytest.raises(ConfigError, match=r"unknown environment 'staging'.*\(defined: dev, prod\)"):
        load_environment(environments, "staging")
    with pytest.raises(ConfigError, match=r"environments\.dev\.name: unknown key"):
        load_environment({"dev": {**committed_environment("dev"), "name": "prod"}}, "dev")
    with pytest.raises(ConfigError, match=r"environments\.dev: must be an object"):
        load_environment({"dev": ["not", "an", "object"]}, "dev")


def test_every_allowed_log_retention_maps_to_a_cdk_value() -> None:
    assert sorted(_BY_DAYS) == sorted(LOG_RETENTION_DAYS)
