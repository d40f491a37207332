"""The platform's CloudWatch dashboards, as plain data built from the alarm catalogue.

`cdk/components/monitoring.py` renders them. Graphs that show an alarm's metric draw the alarm's
threshold as a horizontal annotation, taken from `monitoring.catalogue` (never restated here).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from monitoring import catalogue as c
from monitoring.catalogue import Deployed, Source


@dataclass(frozen=True)
class Graph:
    title: str
    sources: Callable[[Deployed], Sequence[Source]]
    # Catalogue alarms whose thresholds are drawn on this graph.
    thresholds: tuple[str, ...] = ()
    # Further horizontal lines: (label, value) from the deployed configuration.
    lines: Callable[[Deployed], Sequence[tuple[str, float]]] = field(default=lambda _: ())
    period_seconds: int = 60
    width: int = 12
    height: int = 6


@dataclass(frozen=True)
class AlarmStatus:
    title: str
    # None: every active alarm of the catalogue (and the composite).
    alarms: tuple[str, ...] | None = None
    width: int = 24


@dataclass(frozen=True)
class RunbookLinks:
    title: str = "Runbooks"
    width: int = 24


Widget = Graph | AlarmStatus | RunbookLinks


@dataclass(frozen=True)
class Dashboard:
    suffix: str  # dashboard name: sensor-<env>-<suffix>
    output_id: str  # CfnOutput id of its URL
    widgets: tuple[Widget, ...]

    def dashboard_name(self, name_prefix: str) -> str:
        return f"{name_prefix}-{self.suffix}"


def _alarm_source(name: str) -> Callable[[Deployed], Sequence[Source]]:
    return lambda d: (c.by_name(name).source(d),)


def _alarm_graph(title: str, alarm: str, **options: Any) -> Graph:
    """A graph of a catalogue alarm's own metric with that alarm's threshold drawn on it."""
    return Graph(title, _alarm_source(alarm), thresholds=(alarm,), **options)


def _requests(d: Deployed) -> Sequence[Source]:
    return (c.alb(d, "RequestCount", "Sum", "ALB requests"),)


def _requests_per_second(d: Deployed) -> Sequence[Source]:
    return (
        c.MathExpression(
            "requests / PERIOD(requests)",
            {"requests": c.alb(d, "RequestCount", "Sum")},
            "ALB requests per second",
        ),
    )


def _latency(d: Deployed) -> Sequence[Source]:
    return tuple(c.target_latency(d, p) for p in ("p50", "p95", "p99"))


def _errors(d: Deployed) -> Sequence[Source]:
    return (c.target_5xx_rate(d), c.alb(d, "HTTPCode_ELB_5XX_Count", "Sum", "ELB 5xx"))


def _saturation(d: Deployed) -> Sequence[Source]:
    return (c.ecs(d, "CPUUtilization", "Average"), c.ecs(d, "MemoryUtilization", "Average"))


def _tasks(d: Deployed) -> Sequence[Source]:
    return (c.ecs(d, "RunningTaskCount", "Maximum", "ECS/ContainerInsights"),)


def _max_tasks(d: Deployed) -> Sequence[tuple[str, float]]:
    return (("configured max_tasks", float(d.max_tasks)),)


def _archiver_lag(d: Deployed) -> Sequence[Source]:
    return (c.lambda_function(d, "OffsetLag", "Maximum"),)


def _archive_age(d: Deployed) -> Sequence[Source]:
    return (c.archiver_metric("ArchiveLagSeconds"),)


def _outbox(d: Deployed) -> Sequence[Source]:
    return (c.service_metric(d, "OutboxOldestAge"),)


def _outbox_pending(d: Deployed) -> Sequence[Source]:
    return (c.service_metric(d, "OutboxPending"), c.service_metric(d, "DeadLetterBacklog"))


def _dead_letter_objects(d: Deployed) -> Sequence[Source]:
    # S3 requests, not readings: letters waiting (GETs + DELETEs to come) and written (PUTs).
    return (c.service_metric(d, "DeadLetterObjects"), c.service_metric(d, "DeadLettersWritten", "Sum"),
            c.service_metric(d, "DeadLetterOldestAge"))


def _ingest_rate(d: Deployed) -> Sequence[Source]:
    return (
        c.service_metric(d, "ReadingsIngested", "Sum"),
        c.service_metric(d, "ReadingsDeadLettered", "Sum"),
        c.service_metric(d, "ValidationRejects", "Sum"),
    )


def _archiver_throughput(d: Deployed) -> Sequence[Source]:
    return (c.archiver_metric("ArchivedRecords", "Sum"), c.archiver_metric("ArchiveDeadLetters", "Sum"))


def _archiver_health(d: Deployed) -> Sequence[Source]:
    return (c.lambda_alias(d, "Errors"), c.lambda_alias(d, "Throttles"))


def _database(d: Deployed) -> Sequence[Source]:
    return tuple(
        c.rds(instance, "CPUUtilization", "Average") for instance in (d.db_instance, d.db_replica) if instance
    )


def _replica_lag(d: Deployed) -> Sequence[Source]:
    return (c.rds(d.db_replica, "ReplicaLag", "Maximum"),) if d.db_replica else ()


def _free_storage_gib(d: Deployed) -> Sequence[Source]:
    return (c.rds(d.db_instance, "FreeStorageSpace", "Minimum"),)


ONCALL = Dashboard(
    "oncall",
    "OnCallDashboardUrl",
    (
        AlarmStatus("Alarms"),
        Graph("Traffic: ALB requests", _requests),
        Graph("Errors: 5xx", _errors, thresholds=("alb-target-5xx-rate", "alb-elb-5xx")),
        Graph("Latency: target response time p50 / p95 / p99 (s)", _latency, thresholds=("alb-target-p99-latency",)),
        Graph("Saturation: ECS CPU and memory (%)", _saturation, thresholds=("ecs-cpu-high", "ecs-memory-high")),
        Graph("Tasks running vs configured maximum", _tasks, lines=_max_tasks),
        Graph("Pipeline lag: outbox oldest age (s)", _outbox, thresholds=("outbox-oldest-age",)),
        Graph("Pipeline lag: archiver offset lag (records)", _archiver_lag, thresholds=("archiver-offset-lag",)),
        Graph("Pipeline lag: archive lag (s)", _archive_age),
        RunbookLinks(),
    ),
)

def _per_route(metric: str, statistic: str, label: str) -> Callable[[Deployed], Sequence[Source]]:
    """One line per route template (app/observability/route_metrics.py), found by a SEARCH expression."""

    def sources(d: Deployed) -> Sequence[Source]:
        query = (f"{{{c.CUSTOM_NAMESPACE},Environment,Route,Service}} MetricName=\"{metric}\" "
                 f"Environment=\"{d.app_env}\" Service=\"{c.SERVICE_DIMENSION_VALUE}\"")
        return (c.MathExpression(f"SEARCH('{query}', '{statistic}', 60)", {}, label),)

    return sources


SERVICE = Dashboard(
    "service",
    "ServiceDashboardUrl",
    (
        Graph("ALB requests", _requests),
        _alarm_graph("Target 5xx rate (%)", "alb-target-5xx-rate"),
        _alarm_graph("ELB 5xx", "alb-elb-5xx"),
        Graph("Latency p50 / p95 / p99 (s)", _latency, thresholds=("alb-target-p99-latency",)),
        _alarm_graph("Unhealthy targets", "alb-unhealthy-hosts"),
        Graph("ECS CPU and memory (%)", _saturation, thresholds=("ecs-cpu-high", "ecs-memory-high")),
        Graph("Tasks running", _tasks, lines=_max_tasks),
        Graph("Readings ingested / dead-lettered / rejected", _ingest_rate),
        Graph("Per route: requests", _per_route("RouteRequests", "Sum", "requests")),
        Graph("Per route: 4xx", _per_route("Route4xx", "Sum", "4xx")),
        Graph("Per route: 5xx", _per_route("Route5xx", "Sum", "5xx")),
        Graph("Per route: p99 latency (ms)", _per_route("RouteLatency", "p99", "p99 ms")),
        _alarm_graph("Database circuit breaker", "db-circuit-open"),
        _alarm_graph("Shared state store: decisions by the per-task fallback", "state-store-fallback"),
        _alarm_graph("Shared state store: throttled commands", "state-store-throttled"),
        _alarm_graph("WAF blocked requests", "waf-blocked-spike", period_seconds=300),
    ),
)

DATABASE = Dashboard(
    "database",
    "DatabaseDashboardUrl",
    (
        Graph("CPU (%)", _database, thresholds=("rds-cpu-high",), period_seconds=300),
        _alarm_graph("Connections", "rds-connections-high"),
        Graph("Free storage (bytes)", _free_storage_gib, thresholds=("rds-free-storage-low",)),
        Graph("Replica lag (s)", _replica_lag, thresholds=("rds-replica-lag",)),
    ),
)

STREAMING = Dashboard(
    "streaming",
    "StreamingDashboardUrl",
    (
        _alarm_graph("Offline partitions", "msk-offline-partitions"),
        _alarm_graph("Under-replicated partitions", "msk-under-replicated-partitions"),
        _alarm_graph("Data log disk used (%)", "msk-disk-used", period_seconds=300),
    ),
)

PIPELINE = Dashboard(
    "pipeline",
    "PipelineDashboardUrl",
    (
        Graph("Outbox oldest age (s)", _outbox, thresholds=("outbox-oldest-age",)),
        Graph("Outbox pending / dead-letter backlog (readings)", _outbox_pending, thresholds=("dead-letter-backlog",)),
        Graph("Dead-letter objects waiting / written, oldest age (s)", _dead_letter_objects),
        Graph("Archiver offset lag (records)", _archiver_lag, thresholds=("archiver-offset-lag",)),
        Graph("Archive lag (s)", _archive_age),
        Graph("Archived records / dead letters", _archiver_throughput),
        Graph("Archiver errors and throttles", _archiver_health, thresholds=("archiver-errors",),
              period_seconds=300),
    ),
)

LOADTEST = Dashboard(
    "loadtest",
    "LoadTestDashboardUrl",
    (
        Graph("ALB requests per second", _requests_per_second, width=24),
        Graph("Latency p50 / p95 / p99 (s)", _latency, thresholds=("alb-target-p99-latency",)),
        Graph("Tasks running", _tasks, lines=_max_tasks),
        Graph("ECS CPU and memory (%)", _saturation),
        Graph("Target 5xx rate (%)", _alarm_source("alb-target-5xx-rate")),
    ),
)

DASHBOARDS: tuple[Dashboard, ...] = (ONCALL, SERVICE, DATABASE, STREAMING, PIPELINE, LOADTEST)


def sources(dashboard: Dashboard, d: Deployed) -> tuple[Source, ...]:
    """Every metric source the dashboard's graphs draw."""
    return tuple(
        source for widget in dashboard.widgets if isinstance(widget, Graph) for source in widget.sources(d)
    )
