"""The alarm catalogue: one frozen `AlarmSpec` per alarm, severity `critical` (pages) or `warning`.

Metrics are functions of `Deployed` (the names of the deployed resources), so the same catalogue
serves the CDK stack (where some names are CloudFormation tokens) and tests (placeholder strings).

Rules enforced by tests/infra/test_monitoring_consistency.py:

- every critical alarm detects within two minutes: period x datapoints_to_alarm <= 120 s;
- every custom metric (namespace `SensorPlatform`) is declared by its emitter:
  `app/observability/metrics.py` (REGISTRY, dimensions Service/Environment) or the archiver
  (`lambda/archiver/handler.py` ARCHIVER_METRICS, dimension service);
- every alarm has `runbooks/alarms/<name>.md`, and every runbook there belongs to an alarm.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Literal

from environments.naming import LIVE_ALIAS, EnvironmentNames

Severity = Literal["critical", "warning"]
Comparison = Literal[
    "GreaterThanThreshold",
    "GreaterThanOrEqualToThreshold",
    "LessThanThreshold",
    "LessThanOrEqualToThreshold",
]
MissingData = Literal["breaching", "notBreaching", "ignore", "missing"]

SEVERITIES: tuple[Severity, ...] = ("critical", "warning")
# A critical alarm must fire within this many seconds of the condition starting.
CRITICAL_DETECTION_SECONDS = 120

CUSTOM_NAMESPACE = "SensorPlatform"
SERVICE_DIMENSION_VALUE = "ingest"  # app.observability.metrics.SERVICE_NAME
ARCHIVER_SERVICE = "archiver"  # lambda/archiver/handler.py SERVICE (Powertools dimension `service`)
GIB = 1024**3


@dataclass(frozen=True)
class Deployed:
    """Names (or CloudFormation tokens) of the deployed resources an alarm's metric points at."""

    env_name: str
    region: str
    load_balancer: str  # ALB "full name" (app/<name>/<id>), the LoadBalancer dimension
    blue_target_group: str  # target group full names (targetgroup/<name>/<id>)
    green_target_group: str
    cluster_name: str
    service_name: str
    db_instance: str
    db_replica: str | None
    msk_cluster: str
    msk_broker_ids: tuple[int, ...]
    archiver_function: str
    archiver_alias: str
    web_acl: str  # the web ACL's CloudWatch metric name
    max_tasks: int
    state_cache: str  # the ElastiCache serverless cache name (dimension clusterId)
    state_cache_max_gib: int  # its data-storage usage limit

    @property
    def name_prefix(self) -> str:
        return EnvironmentNames(self.env_name).prefix

    @property
    def app_env(self) -> str:
        """APP_ENV of the ECS task, the `Environment` dimension of the service's metrics."""
        return self.name_prefix

    @property
    def target_groups(self) -> dict[str, str]:
        return {"blue": self.blue_target_group, "green": self.green_target_group}


def deployed_by_name(
    env_name: str,
    *,
    region: str,
    load_balancer: str,
    blue_target_group: str,
    green_target_group: str,
    replica: bool,
    brokers: int,
    max_tasks: int,
    state_cache_max_gib: int,
) -> Deployed:
    """A `Deployed` whose fixed names (README: fixed names) come from `environments.naming`; only the
    load balancer and target-group full names, which CloudFormation generates, are passed in."""
    names = EnvironmentNames(env_name)
    return Deployed(
        env_name=env_name,
        region=region,
        load_balancer=load_balancer,
        blue_target_group=blue_target_group,
        green_target_group=green_target_group,
        cluster_name=names.ecs_cluster,
        service_name=names.ingest_service,
        db_instance=names.db_instance,
        db_replica=names.db_replica if replica else None,
        # MSK numbers brokers from 1.
        msk_cluster=names.msk_cluster,
        msk_broker_ids=tuple(range(1, brokers + 1)),
        archiver_function=names.archiver_function,
        archiver_alias=LIVE_ALIAS,
        web_acl=names.web_acl,
        max_tasks=max_tasks,
        state_cache=names.state_cache,
        state_cache_max_gib=state_cache_max_gib,
    )


def sample_deployed(env_name: str = "test", *, replica: bool = True, brokers: int = 3) -> Deployed:
    """Placeholder names, for checks that need a `Deployed` without synthesizing."""
    return deployed_by_name(
        env_name, region="eu-west-1", load_balancer="app/alb/0", blue_target_group="targetgroup/blue/0",
        green_target_group="targetgroup/green/0", replica=replica, brokers=brokers, max_tasks=20,
        state_cache_max_gib=1,
    )


@dataclass(frozen=True)
class Metric:
    """One CloudWatch metric with a statistic; `id` names it inside a metric-math expression."""

    namespace: str
    name: str
    dimensions: Mapping[str, str]
    statistic: str
    label: str = ""


@dataclass(frozen=True)
class MathExpression:
    expression: str
    metrics: Mapping[str, Metric]
    label: str


Source = Metric | MathExpression


def metrics_of(source: Source) -> tuple[Metric, ...]:
    return tuple(source.metrics.values()) if isinstance(source, MathExpression) else (source,)


# --- metric builders (shared with monitoring.dashboards) ----------------------------------------


def alb(d: Deployed, name: str, statistic: str, label: str = "") -> Metric:
    return Metric("AWS/ApplicationELB", name, {"LoadBalancer": d.load_balancer}, statistic, label)


def target_group(d: Deployed, colour: str, name: str, statistic: str) -> Metric:
    return Metric(
        "AWS/ApplicationELB",
        name,
        {"LoadBalancer": d.load_balancer, "TargetGroup": d.target_groups[colour]},
        statistic,
        f"{name} {statistic} ({colour})",
    )


def both_colours(d: Deployed, name: str, statistic: str, combine: str, label: str) -> MathExpression:
    """`combine` is "sum" (FILL(blue,0) + FILL(green,0)) or "max" (MAX of both)."""
    blue, green = (_metric_id(colour, name, statistic) for colour in ("blue", "green"))
    metrics = {blue: target_group(d, "blue", name, statistic), green: target_group(d, "green", name, statistic)}
    expression = (
        f"FILL({blue}, 0) + FILL({green}, 0)"
        if combine == "sum"
        else f"MAX([FILL({blue}, 0), FILL({green}, 0)])"
    )
    return MathExpression(expression, metrics, label)


def _metric_id(*parts: str) -> str:
    """A metric-math id unique per metric and statistic: one graph may show several expressions,
    and CloudWatch refuses two different metrics under one id."""
    return "_".join("".join(ch for ch in part.lower() if ch.isalnum()) for part in parts)


def target_latency(d: Deployed, percentile: str) -> MathExpression:
    return both_colours(
        d, "TargetResponseTime", percentile, "max", f"{percentile} target response time, s (slower colour)"
    )


def target_5xx_rate(d: Deployed) -> MathExpression:
    metrics = {
        f"{colour}_{kind}": target_group(d, colour, name, "Sum")
        for colour in ("blue", "green")
        for kind, name in (("errors", "HTTPCode_Target_5XX_Count"), ("requests", "RequestCount"))
    }
    errors = "(FILL(blue_errors, 0) + FILL(green_errors, 0))"
    requests = "(FILL(blue_requests, 0) + FILL(green_requests, 0))"
    return MathExpression(
        f"IF({requests} > 0, 100 * {errors} / {requests}, 0)",
        metrics,
        "Target 5xx, % of requests (blue + green)",
    )


def ecs(d: Deployed, name: str, statistic: str, namespace: str = "AWS/ECS") -> Metric:
    return Metric(namespace, name, {"ClusterName": d.cluster_name, "ServiceName": d.service_name}, statistic, name)


def rds(instance: str, name: str, statistic: str) -> Metric:
    return Metric("AWS/RDS", name, {"DBInstanceIdentifier": instance}, statistic, f"{name} ({instance})")


def per_broker(d: Deployed, name: str, statistic: str, combine: str, label: str) -> MathExpression:
    metrics = {
        _metric_id(f"broker{broker}", name, statistic): Metric(
            "AWS/Kafka", name, {"Cluster Name": d.msk_cluster, "Broker ID": str(broker)}, statistic
        )
        for broker in d.msk_broker_ids
    }
    filled = ", ".join(f"FILL({metric_id}, 0)" for metric_id in metrics)
    return MathExpression(f"{combine}([{filled}])", metrics, label)


def service_metric(d: Deployed, name: str, statistic: str = "Maximum") -> Metric:
    """A custom metric of the ingestion service (app/observability/metrics.py)."""
    return Metric(
        CUSTOM_NAMESPACE,
        name,
        {"Service": SERVICE_DIMENSION_VALUE, "Environment": d.app_env},
        statistic,
        f"{name} ({statistic})",
    )


def archiver_metric(name: str, statistic: str = "Maximum") -> Metric:
    """A custom metric of the archiver Lambda (Powertools EMF, dimension `service`)."""
    return Metric(CUSTOM_NAMESPACE, name, {"service": ARCHIVER_SERVICE}, statistic, f"archiver {name}")


def lambda_alias(d: Deployed, name: str, statistic: str = "Sum") -> Metric:
    return Metric(
        "AWS/Lambda",
        name,
        {"FunctionName": d.archiver_function, "Resource": f"{d.archiver_function}:{d.archiver_alias}"},
        statistic,
        f"archiver:{d.archiver_alias} {name}",
    )


def lambda_function(d: Deployed, name: str, statistic: str) -> Metric:
    return Metric("AWS/Lambda", name, {"FunctionName": d.archiver_function}, statistic, f"archiver {name}")


def state_cache(d: Deployed, name: str, statistic: str) -> Metric:
    """A metric of the shared state store (ElastiCache Serverless: dimension clusterId = cache name)."""
    return Metric("AWS/ElastiCache", name, {"clusterId": d.state_cache}, statistic, f"{name} ({d.state_cache})")


def waf_blocked(d: Deployed) -> Metric:
    return Metric(
        "AWS/WAFV2",
        "BlockedRequests",
        {"WebACL": d.web_acl, "Region": d.region, "Rule": "ALL"},
        "Sum",
        "WAF blocked requests",
    )


# --- the catalogue ----------------------------------------------------------------------------------


def _always(_: Deployed) -> bool:
    return True


@dataclass(frozen=True)
class AlarmSpec:
    name: str
    severity: Severity
    description: str
    source: Callable[[Deployed], Source]
    threshold: float | Callable[[Deployed], float]
    comparison: Comparison
    period_seconds: int = 60
    evaluation_periods: int = 2
    datapoints_to_alarm: int = 2
    treat_missing_data: MissingData = "notBreaching"
    applies: Callable[[Deployed], bool] = field(default=_always)

    @property
    def runbook(self) -> str:
        return f"{self.name}.md"

    @property
    def detection_seconds(self) -> int:
        return self.period_seconds * self.datapoints_to_alarm

    def alarm_name(self, name_prefix: str) -> str:
        return f"{name_prefix}-{self.severity}-{self.name}"

    def alarm_description(self, runbook_base_url: str) -> str:
        return f"{self.description} Runbook: {runbook_base_url}{self.runbook}"

    def threshold_for(self, d: Deployed) -> float:
        return float(self.threshold(d) if callable(self.threshold) else self.threshold)


_GT = "GreaterThanThreshold"
_GE = "GreaterThanOrEqualToThreshold"
_LT = "LessThanThreshold"

CRITICAL: tuple[AlarmSpec, ...] = (
    AlarmSpec(
        "alb-target-5xx-rate", "critical",
        "More than 5 % of the requests the tasks answered (blue + green) were 5xx, two minutes running.",
        target_5xx_rate, 5, _GT,
    ),
    AlarmSpec(
        "alb-target-p99-latency", "critical",
        "p99 target response time of the slower colour above 1 s, two minutes running.",
        lambda d: target_latency(d, "p99"), 1, _GT,
    ),
    AlarmSpec(
        "alb-unhealthy-hosts", "critical",
        "At least one target fails the ALB health check (max of blue and green), two minutes running.",
        lambda d: both_colours(d, "UnHealthyHostCount", "Maximum", "max", "Unhealthy targets (max of colours)"),
        1, _GE,
    ),
    AlarmSpec(
        "alb-elb-5xx", "critical",
        "The load balancer itself answered 5xx (no healthy target, timeouts) at least 10 times a minute.",
        lambda d: alb(d, "HTTPCode_ELB_5XX_Count", "Sum", "ELB 5xx"), 10, _GE,
    ),
    AlarmSpec(
        "rds-free-storage-low", "critical",
        "The PostgreSQL primary has less than 10 GiB of free storage.",
        lambda d: rds(d.db_instance, "FreeStorageSpace", "Minimum"), 10 * GIB, _LT,
        treat_missing_data="missing",
    ),
    AlarmSpec(
        "msk-offline-partitions", "critical",
        "At least one Kafka partition has no leader: producers and the archiver stall on it.",
        lambda d: Metric("AWS/Kafka", "OfflinePartitionsCount", {"Cluster Name": d.msk_cluster}, "Maximum",
                         "Offline partitions"),
        1, _GE,
    ),
    AlarmSpec(
        "outbox-oldest-age", "critical",
        "The oldest unpublished outbox row is older than 5 minutes: readings are not reaching Kafka.",
        lambda d: service_metric(d, "OutboxOldestAge"), 300, _GT,
    ),
    AlarmSpec(
        "dead-letter-backlog", "critical",
        "Readings (not letters: one letter holds a task's failed groups of 50 ms) are waiting in the "
        "dead-letter store (the database refused or was unreachable).",
        lambda d: service_metric(d, "DeadLetterBacklog"), 0, _GT,
    ),
    AlarmSpec(
        "db-circuit-open", "critical",
        "A task's database circuit breaker is open: ingestion is dead-lettering instead of committing.",
        lambda d: service_metric(d, "DbCircuitOpen"), 1, _GE,
    ),
)

WARNING: tuple[AlarmSpec, ...] = (
    AlarmSpec(
        "ecs-tasks-at-max", "warning",
        "The service runs the configured maximum number of tasks for 5 minutes: autoscaling has no headroom.",
        lambda d: ecs(d, "RunningTaskCount", "Maximum", "ECS/ContainerInsights"),
        lambda d: d.max_tasks, _GE, evaluation_periods=5, datapoints_to_alarm=5,
    ),
    AlarmSpec(
        "ecs-cpu-high", "warning",
        "Average CPU of the service's tasks above 85 % for 5 minutes.",
        lambda d: ecs(d, "CPUUtilization", "Average"), 85, _GT, evaluation_periods=5, datapoints_to_alarm=5,
    ),
    AlarmSpec(
        "ecs-memory-high", "warning",
        "Average memory of the service's tasks above 85 % for 5 minutes.",
        lambda d: ecs(d, "MemoryUtilization", "Average"), 85, _GT, evaluation_periods=5, datapoints_to_alarm=5,
    ),
    AlarmSpec(
        "rds-cpu-high", "warning",
        "PostgreSQL primary CPU above 80 % for 10 minutes.",
        lambda d: rds(d.db_instance, "CPUUtilization", "Average"), 80, _GT,
        period_seconds=300, evaluation_periods=2, datapoints_to_alarm=2,
    ),
    AlarmSpec(
        "rds-connections-high", "warning",
        "More than 80 connections to the PostgreSQL primary for 5 minutes.",
        lambda d: rds(d.db_instance, "DatabaseConnections", "Maximum"), 80, _GT,
        evaluation_periods=5, datapoints_to_alarm=5,
    ),
    AlarmSpec(
        "rds-replica-lag", "warning",
        "The read replica is more than 30 s behind the primary for 5 minutes.",
        lambda d: rds(d.db_replica or "", "ReplicaLag", "Maximum"), 30, _GT,
        evaluation_periods=5, datapoints_to_alarm=5, applies=lambda d: d.db_replica is not None,
    ),
    AlarmSpec(
        "msk-disk-used", "warning",
        "A broker's data-log volume is more than 80 % full.",
        lambda d: per_broker(d, "KafkaDataLogsDiskUsed", "Maximum", "MAX", "Data log disk used, % (fullest broker)"),
        80, _GT, period_seconds=300, evaluation_periods=1, datapoints_to_alarm=1,
    ),
    AlarmSpec(
        "msk-under-replicated-partitions", "warning",
        "Partitions are under-replicated for 5 minutes: a broker is down or falling behind.",
        lambda d: per_broker(d, "UnderReplicatedPartitions", "Maximum", "SUM", "Under-replicated partitions"),
        0, _GT, evaluation_periods=5, datapoints_to_alarm=5,
    ),
    AlarmSpec(
        "archiver-errors", "warning",
        "The archiver's live alias returned errors: batches go to the failed-batch queue.",
        lambda d: lambda_alias(d, "Errors"), 1, _GE, period_seconds=300, evaluation_periods=1,
        datapoints_to_alarm=1,
    ),
    AlarmSpec(
        "archiver-throttles", "warning",
        "The archiver's live alias was throttled (account or reserved concurrency exhausted).",
        lambda d: lambda_alias(d, "Throttles"), 1, _GE, period_seconds=300, evaluation_periods=1,
        datapoints_to_alarm=1,
    ),
    AlarmSpec(
        "archiver-offset-lag", "warning",
        "The archiver's consumer group is more than 10000 records behind the topic for 10 minutes.",
        lambda d: lambda_function(d, "OffsetLag", "Maximum"), 10_000, _GT, period_seconds=300,
        evaluation_periods=2, datapoints_to_alarm=2,
    ),
    AlarmSpec(
        "state-store-fallback", "warning",
        "Tasks decide rate limits and anomaly verdicts on their own: the shared state store (Valkey) is "
        "unreachable or slow, two minutes running. Ingest still works; limits are per task meanwhile.",
        lambda d: service_metric(d, "StateStoreFallbacks", "Sum"), 0, _GT,
    ),
    AlarmSpec(
        "state-store-throttled", "warning",
        "The shared state store throttled commands for 5 minutes (its ECPU usage limit is reached).",
        lambda d: state_cache(d, "ThrottledCmds", "Sum"), 0, _GT, evaluation_periods=5, datapoints_to_alarm=5,
    ),
    AlarmSpec(
        "state-store-memory-high", "warning",
        "The shared state store holds more than 80 % of its data-storage limit: at the limit it evicts "
        "windows (rebuilt from PostgreSQL at a cost).",
        lambda d: state_cache(d, "BytesUsedForCache", "Maximum"), lambda d: 0.8 * d.state_cache_max_gib * GIB, _GT,
        period_seconds=300, evaluation_periods=1, datapoints_to_alarm=1,
    ),
    AlarmSpec(
        "anomaly-rate", "warning",
        "More than 10 % of the readings committed in 5 minutes were flagged anomalous (z-score): a "
        "process or sensor fault (seed 001 alerts on anomalies; the simulator injects 5 %).",
        lambda d: MathExpression(
            "IF(readings > 0, 100 * anomalies / readings, 0)",
            {"anomalies": service_metric(d, "AnomaliesDetected", "Sum"),
             "readings": service_metric(d, "ReadingsIngested", "Sum")},
            "Anomalous readings, % of committed",
        ),
        10, _GT, period_seconds=300, evaluation_periods=1, datapoints_to_alarm=1,
    ),
    AlarmSpec(
        "waf-blocked-spike", "warning",
        "The web ACL blocked more than 1000 requests in 5 minutes (attack or misbehaving devices).",
        waf_blocked, 1000, _GT, period_seconds=300, evaluation_periods=1, datapoints_to_alarm=1,
    ),
)

ALARMS: tuple[AlarmSpec, ...] = CRITICAL + WARNING


@dataclass(frozen=True)
class DeploymentAlarmSpec:
    """An alarm that rolls back a deployment in progress (ECS blue/green or CodeDeploy for a Lambda).

    Its metric and threshold live with the deployment it guards (cdk/components/ingest/rollback_alarms.py,
    cdk/components/lambda_deployment.py); its name suffix, severity and runbook live here, and
    cdk/components/deployment_alarms.py writes them into the alarm's description.
    """

    suffix: str  # the alarm name ends with it: `sensor-<env>-deployment-target-5xx`, `<function>-deploy-errors`
    severity: Severity
    description: str
    runbook: str  # under runbooks/alarms/, with an anchor per alarm

    def alarm_description(self, runbook_base_url: str, detail: str) -> str:
        return f"[{self.severity}] {self.description} {detail} Runbook: {runbook_base_url}{self.runbook}"


_ECS_ROLLBACK = "ecs-deployment-rollback.md"
_LAMBDA_ROLLBACK = "lambda-deployment-rollback.md"
DEPLOYMENT_ALARMS: tuple[DeploymentAlarmSpec, ...] = (
    DeploymentAlarmSpec("-deployment-target-5xx", "warning",
                        "ECS deployment guard: the tasks answer 5xx; ECS rolls the deployment back.",
                        f"{_ECS_ROLLBACK}#deployment-target-5xx"),
    DeploymentAlarmSpec("-deployment-unhealthy-targets", "warning",
                        "ECS deployment guard: targets fail ALB health checks; ECS rolls the deployment back.",
                        f"{_ECS_ROLLBACK}#deployment-unhealthy-targets"),
    DeploymentAlarmSpec("-deployment-p99-latency", "warning",
                        "ECS deployment guard: p99 target response time too high; ECS rolls the deployment back.",
                        f"{_ECS_ROLLBACK}#deployment-p99-latency"),
    DeploymentAlarmSpec("-deploy-errors", "warning",
                        "Lambda deployment guard: invocations through the alias fail; CodeDeploy rolls back.",
                        f"{_LAMBDA_ROLLBACK}#deploy-errors"),
    DeploymentAlarmSpec("-deploy-throttles", "warning",
                        "Lambda deployment guard: invocations through the alias are throttled; CodeDeploy rolls back.",
                        f"{_LAMBDA_ROLLBACK}#deploy-throttles"),
    DeploymentAlarmSpec("-deploy-p99-duration", "warning",
                        "Lambda deployment guard: p99 duration through the alias too high; CodeDeploy rolls back.",
                        f"{_LAMBDA_ROLLBACK}#deploy-p99-duration"),
)


def deployment_alarm(alarm_name: str) -> DeploymentAlarmSpec | None:
    """The deployment alarm spec whose suffix ends `alarm_name`, if any."""
    return next((spec for spec in DEPLOYMENT_ALARMS if alarm_name.endswith(spec.suffix)), None)
# Composite: the platform is down when targets are unhealthy AND requests fail.
PLATFORM_DOWN = "platform-down"
PLATFORM_DOWN_ALL_OF = "alb-unhealthy-hosts"
PLATFORM_DOWN_ANY_OF = ("alb-target-5xx-rate", "alb-elb-5xx")


def by_name(name: str, alarms: tuple[AlarmSpec, ...] = ALARMS) -> AlarmSpec:
    for spec in alarms:
        if spec.name == name:
            return spec
    raise KeyError(f"no alarm named {name!r} in the catalogue")


def active(d: Deployed, alarms: tuple[AlarmSpec, ...] = ALARMS) -> tuple[AlarmSpec, ...]:
    """The alarms that exist for these deployed resources (e.g. replica lag only with a replica)."""
    return tuple(spec for spec in alarms if spec.applies(d))


if len({spec.name for spec in ALARMS}) != len(ALARMS):
    raise RuntimeError("alarm names in monitoring.catalogue are not unique")
