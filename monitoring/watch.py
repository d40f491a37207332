"""On-call terminal view of one environment: traffic, latency, capacity, app metrics and alarms.

    python -m monitoring.watch --env prod [--region eu-west-1] [--interval 30] [--once]

Every interval it reads the last 5 minutes (1-minute periods) from CloudWatch GetMetricData and the
alarms named `sensor-<env>-*` from DescribeAlarms, and redraws. Fetching (`Watcher.fetch`) and
rendering (`render`, data in, text lines out) are separate so the view is testable without AWS.

The load balancer's dimension value is discovered from the `LoadBalancerUrl` output of the
`Sensor-<env>-Service` stack (or, failing that, the stack-name tag on the load balancers); when it
cannot be found the view still shows the app metrics and alarms and says what is missing. Exits 2 for
an unknown environment or missing credentials, 0 after `--once` or Ctrl-C.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from app.observability import metrics as m
from environments.config import ConfigError, EnvironmentConfig, load_from_cdk_json
from environments.credentials import PreflightError, caller_account
from environments.naming import EnvironmentNames
from monitoring.catalogue import SEVERITIES

REPO_ROOT = Path(__file__).resolve().parent.parent
WINDOW = timedelta(minutes=5)
PERIOD_SECONDS = 60
ALARM_STATE_ORDER = {"ALARM": 0, "INSUFFICIENT_DATA": 1, "OK": 2}
NOT_AVAILABLE = "n/a"
NO_DATA = "-"
CLEAR_SCREEN = "\x1b[2J\x1b[H"

# The app's custom metrics shown, with the statistic that fits their kind (gauges: Maximum over tasks).
APP_METRICS = (
    m.READINGS_INGESTED, m.ANOMALIES_DETECTED, m.DEAD_LETTERED, m.OUTBOX_OLDEST_AGE, m.DEAD_LETTER_BACKLOG,
    m.DEAD_LETTER_OLDEST_AGE, m.DB_CIRCUIT_OPEN,
)


@dataclass(frozen=True, slots=True)
class Query:
    """One GetMetricData series."""

    id: str
    namespace: str
    metric: str
    dimensions: tuple[tuple[str, str], ...]
    stat: str

    def as_request(self) -> dict[str, Any]:
        return {
            "Id": self.id,
            "ReturnData": True,
            "MetricStat": {
                "Metric": {
                    "Namespace": self.namespace,
                    "MetricName": self.metric,
                    "Dimensions": [{"Name": k, "Value": v} for k, v in self.dimensions],
                },
                "Period": PERIOD_SECONDS,
                "Stat": self.stat,
            },
        }


@dataclass(frozen=True, slots=True)
class Series:
    """Datapoints of one query, newest first."""

    values: tuple[float, ...] = ()

    @property
    def latest(self) -> float | None:
        return self.values[0] if self.values else None

    @property
    def total(self) -> float | None:
        return sum(self.values) if self.values else None

    @property
    def peak(self) -> float | None:
        return max(self.values) if self.values else None


@dataclass(frozen=True, slots=True)
class Alarm:
    """One alarm, with severity and runbook derived from `sensor-<env>-<severity>-<name>`."""

    name: str
    state: str
    severity: str
    short_name: str
    runbook: str
    since: datetime | None = None
    reason: str = ""


@dataclass
class Overview:
    """Everything one refresh shows. A series missing from `series` could not be fetched (n/a)."""

    env: str
    region: str
    generated_at: datetime
    cluster: str
    service: str
    max_tasks: int
    namespace: str
    app_env: str
    load_balancer: str | None = None
    series: dict[str, Series] = field(default_factory=dict)
    alarms: list[Alarm] | None = None
    problems: list[str] = field(default_factory=list)


# --- pure helpers ---------------------------------------------------------------------------------
def alarm_prefix(env: str) -> str:
    return EnvironmentNames(env).alarm_prefix


def parse_alarm(env: str, name: str, state: str, since: datetime | None = None, reason: str = "") -> Alarm:
    """Split `sensor-<env>-<severity>-<name>`; a name without a known severity keeps it whole."""
    rest = name.removeprefix(alarm_prefix(env))
    severity, _, short = rest.partition("-")
    if severity not in SEVERITIES or not short:
        severity, short = "?", rest
    return Alarm(name=name, state=state, severity=severity, short_name=short,
                 runbook=f"runbooks/alarms/{short}.md", since=since, reason=reason)


def sort_alarms(alarms: Iterable[Alarm]) -> list[Alarm]:
    """ALARM first, then INSUFFICIENT_DATA, then OK; by severity, then name."""
    def key(alarm: Alarm) -> tuple[int, int, str]:
        severity = SEVERITIES.index(alarm.severity) if alarm.severity in SEVERITIES else len(SEVERITIES)
        return ALARM_STATE_ORDER.get(alarm.state, 3), severity, alarm.name

    return sorted(alarms, key=key)


def load_balancer_dimension(arn: str) -> str:
    """`arn:...:loadbalancer/app/name/id` → `app/name/id`, the CloudWatch `LoadBalancer` value."""
    return arn.split(":loadbalancer/", 1)[1]


def build_queries(overview: Overview) -> tuple[list[Query], list[Query]]:
    """(basic statistics, percentiles): percentiles go in their own request so a backend that cannot
    compute them does not take the other numbers down with it."""
    ecs = (("ClusterName", overview.cluster), ("ServiceName", overview.service))
    app_dims = (("Service", m.SERVICE_NAME), ("Environment", overview.app_env))
    basic = [
        Query("tasks", "ECS/ContainerInsights", "RunningTaskCount", ecs, "Maximum"),
        Query("cpu", "AWS/ECS", "CPUUtilization", ecs, "Average"),
        Query("memory", "AWS/ECS", "MemoryUtilization", ecs, "Average"),
    ]
    for name in APP_METRICS:
        stat = "Sum" if m.REGISTRY[name].kind is m.Kind.COUNTER else "Maximum"
        basic.append(Query(name, overview.namespace, name, app_dims, stat))
    percentiles: list[Query] = []
    if overview.load_balancer:
        lb = (("LoadBalancer", overview.load_balancer),)
        basic += [
            Query("requests", "AWS/ApplicationELB", "RequestCount", lb, "Sum"),
            Query("elb5xx", "AWS/ApplicationELB", "HTTPCode_ELB_5XX_Count", lb, "Sum"),
            Query("target5xx", "AWS/ApplicationELB", "HTTPCode_Target_5XX_Count", lb, "Sum"),
        ]
        percentiles = [Query(p, "AWS/ApplicationELB", "TargetResponseTime", lb, p)
                       for p in ("p50", "p95", "p99")]
    return basic, percentiles


def _number(value: float | None, unit: str = "", digits: int = 0) -> str:
    if value is None:
        return NO_DATA
    return f"{value:,.{digits}f}{unit}"


def render(overview: Overview) -> list[str]:
    """The screen for one refresh, as lines. Pure: no I/O, no clock."""
    s = overview.series

    def get(key: str) -> Series | None:
        return s.get(key)

    def fmt(key: str, attr: str = "latest", unit: str = "", digits: int = 0, scale: float = 1) -> str:
        series = get(key)
        if series is None:
            return NOT_AVAILABLE
        value = getattr(series, attr)
        return _number(None if value is None else value * scale, unit, digits)

    stamp = overview.generated_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")
    lines = [f"{EnvironmentNames(overview.env).prefix} ({overview.region})  last 5 min, 1-min periods  {stamp}", ""]

    lines.append("ALARMS")
    if overview.alarms is None:
        lines.append(f"  {NOT_AVAILABLE} (could not be read)")
    elif not overview.alarms:
        lines.append(f"  none named {alarm_prefix(overview.env)}*")
    else:
        firing = sum(a.state == "ALARM" for a in overview.alarms)
        lines[-1] = f"ALARMS  {firing} in ALARM of {len(overview.alarms)}"
        width = max(len(a.short_name) for a in overview.alarms)
        for alarm in overview.alarms:
            runbook = alarm.runbook
            if not (REPO_ROOT / runbook).is_file():
                runbook += " (not written)"
            since = ""
            if alarm.since and alarm.state == "ALARM":
                since = f"  since {alarm.since.astimezone(UTC):%H:%M}Z"
            lines.append(f"  {alarm.state:<17} {alarm.severity:<8} {alarm.short_name:<{width}}  "
                         f"{runbook}{since}")

    lines += ["", f"TRAFFIC  load balancer {overview.load_balancer or NOT_AVAILABLE}"]
    if overview.load_balancer:
        lines.append(f"  requests      {fmt('requests', 'total'):>10} in 5 min   "
                     f"last minute {fmt('requests')}")
        lines.append(f"  5xx           {_sum_5xx(get('elb5xx'), get('target5xx')):>10} in 5 min   "
                     f"ELB {fmt('elb5xx', 'total')} / target {fmt('target5xx', 'total')}")
        latency = " / ".join(fmt(p, unit=" ms", scale=1000) for p in ("p50", "p95", "p99"))
        lines.append(f"  latency p50/p95/p99  {latency}   (last minute)")
    else:
        lines.append("  requests, 5xx and latency unavailable: the load balancer was not found")

    lines += ["", f"SERVICE  {overview.cluster}/{overview.service}"]
    lines.append(f"  running tasks {fmt('tasks'):>10} of max {overview.max_tasks}")
    cpu, memory = fmt("cpu", unit="%", digits=1), fmt("memory", unit="%", digits=1)
    lines.append(f"  cpu / memory  {cpu:>10} / {memory}")

    lines += ["", f"APP  {overview.namespace}  Service={m.SERVICE_NAME} Environment={overview.app_env}"]
    for name in APP_METRICS:
        if m.REGISTRY[name].kind is m.Kind.COUNTER:
            value = f"{fmt(name, 'total'):>10} in 5 min   last minute {fmt(name)}"
        else:
            unit = " s" if m.REGISTRY[name].unit is m.Unit.SECONDS else ""
            value = f"{fmt(name, unit=unit):>10} now   5-min max {fmt(name, 'peak', unit=unit)}"
        lines.append(f"  {name:<21} {value}")

    if overview.problems:
        lines += ["", "NOT FOUND / UNAVAILABLE"]
        lines += [f"  - {problem}" for problem in overview.problems]
    return lines


def _sum_5xx(elb: Series | None, target: Series | None) -> str:
    if elb is None or target is None:
        return NOT_AVAILABLE
    if elb.total is None and target.total is None:
        return NO_DATA
    return _number((elb.total or 0) + (target.total or 0))


# --- fetching -------------------------------------------------------------------------------------
class Watcher:
    """Reads one environment's overview from AWS; discovery of the load balancer is retried until found."""

    def __init__(self, config: EnvironmentConfig, region: str, session: boto3.session.Session | None = None,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        session = session or boto3.session.Session()
        self.config = config
        self.region = region
        self.clock = clock
        self.cloudwatch = session.client("cloudwatch", region_name=region)
        self.cloudformation = session.client("cloudformation", region_name=region)
        self.elbv2 = session.client("elbv2", region_name=region)
        self.load_balancer: str | None = None

    @property
    def stack_name(self) -> str:
        return EnvironmentNames(self.config.name).stack("Service")

    def discover_load_balancer(self) -> tuple[str | None, str | None]:
        """(dimension value, None) or (None, why it could not be found)."""
        reasons = []
        try:
            stacks = self.cloudformation.describe_stacks(StackName=self.stack_name)["Stacks"]
            outputs = {o["OutputKey"]: o["OutputValue"] for o in stacks[0].get("Outputs", [])}
            url = outputs.get("LoadBalancerUrl")
            if url:
                host = url.split("://", 1)[-1].split("/", 1)[0].split(":", 1)[0].lower()
                for page in self.elbv2.get_paginator("describe_load_balancers").paginate():
                    for lb in page["LoadBalancers"]:
                        if lb["DNSName"].lower() == host:
                            return load_balancer_dimension(lb["LoadBalancerArn"]), None
                reasons.append(f"no load balancer has the DNS name {host} (output LoadBalancerUrl)")
            else:
                reasons.append(f"stack {self.stack_name} has no LoadBalancerUrl output")
        except (BotoCoreError, ClientError) as error:
            reasons.append(f"stack {self.stack_name}: {_short(error)}")
        try:
            pages = self.elbv2.get_paginator("describe_load_balancers").paginate()
            arns = [lb["LoadBalancerArn"] for page in pages for lb in page["LoadBalancers"]]
            for start in range(0, len(arns), 20):
                batch = arns[start:start + 20]
                for described in self.elbv2.describe_tags(ResourceArns=batch)["TagDescriptions"]:
                    tags = {t["Key"]: t["Value"] for t in described.get("Tags", [])}
                    if tags.get("aws:cloudformation:stack-name") == self.stack_name:
                        return load_balancer_dimension(described["ResourceArn"]), None
            reasons.append(f"no load balancer tagged with stack {self.stack_name}")
        except (BotoCoreError, ClientError) as error:
            reasons.append(f"load balancer tags: {_short(error)}")
        return None, "load balancer not found (" + "; ".join(reasons) + ")"

    def fetch(self) -> Overview:
        """One refresh; every failure becomes a line in `problems` instead of an exception."""
        now = self.clock()
        names = EnvironmentNames(self.config.name)
        overview = Overview(env=self.config.name, region=self.region, generated_at=now, cluster=names.ecs_cluster,
                            service=names.ingest_service, max_tasks=self.config.service.scaling.max_tasks,
                            namespace=m.DEFAULT_NAMESPACE, app_env=names.prefix)
        if self.load_balancer is None:
            self.load_balancer, why = self.discover_load_balancer()
            if why:
                overview.problems.append(why)
        overview.load_balancer = self.load_balancer
        basic, percentiles = build_queries(overview)
        for label, queries in (("metrics", basic), ("latency percentiles", percentiles)):
            if not queries:
                continue
            try:
                overview.series.update(self._metric_data(queries, now))
            except Exception as error:  # e.g. a backend without percentiles: still show the rest
                overview.problems.append(f"{label}: {_short(error)}")
        try:
            overview.alarms = sort_alarms(self._alarms())
        except (BotoCoreError, ClientError) as error:
            overview.problems.append(f"alarms: {_short(error)}")
        return overview

    def _metric_data(self, queries: Sequence[Query], now: datetime) -> dict[str, Series]:
        end = now.replace(second=0, microsecond=0) + timedelta(minutes=1)
        request = {"MetricDataQueries": [q.as_request() for q in queries], "ScanBy": "TimestampDescending",
                   "StartTime": end - WINDOW - timedelta(minutes=1), "EndTime": end}
        values: dict[str, list[float]] = {q.id: [] for q in queries}
        for page in self.cloudwatch.get_paginator("get_metric_data").paginate(**request):
            for result in page["MetricDataResults"]:
                values[result["Id"]].extend(result.get("Values", []))
        return {key: Series(tuple(v[:5])) for key, v in values.items()}

    def _alarms(self) -> list[Alarm]:
        alarms = []
        pages = self.cloudwatch.get_paginator("describe_alarms").paginate(
            AlarmNamePrefix=alarm_prefix(self.config.name), AlarmTypes=["MetricAlarm", "CompositeAlarm"])
        for page in pages:
            for raw in [*page.get("MetricAlarms", []), *page.get("CompositeAlarms", [])]:
                alarms.append(parse_alarm(self.config.name, raw["AlarmName"], raw["StateValue"],
                                          raw.get("StateUpdatedTimestamp"), raw.get("StateReason", "")))
        return alarms


def _short(error: BaseException) -> str:
    text = str(error) or type(error).__name__
    return text if len(text) <= 160 else text[:157] + "..."


# --- command line ---------------------------------------------------------------------------------
def main(argv: list[str] | None = None, *, sleep: Callable[[float], None] = time.sleep) -> int:
    parser = argparse.ArgumentParser(prog="python -m monitoring.watch", description=__doc__.splitlines()[0])
    parser.add_argument("--env", required=True, help="environment name from cdk.json (dev, prod, ...)")
    parser.add_argument("--region", help="AWS region (default: the environment's region in cdk.json)")
    parser.add_argument("--interval", type=float, default=30, help="seconds between refreshes (default 30)")
    parser.add_argument("--once", action="store_true", help="print one refresh and exit")
    args = parser.parse_args(argv)
    if args.interval <= 0:
        parser.error("--interval must be positive")
    try:
        config = load_from_cdk_json(args.env)
        caller_account(config)  # credentials (and the pinned account) first: one clear line if not logged in
    except (ConfigError, PreflightError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    watcher = Watcher(config, args.region or config.region)
    clear = not args.once and sys.stdout.isatty()
    try:
        while True:
            lines = render(watcher.fetch())
            sys.stdout.write((CLEAR_SCREEN if clear else "") + "\n".join(lines) + "\n")
            sys.stdout.flush()
            if args.once:
                return 0
            sleep(args.interval)
    except KeyboardInterrupt:
        sys.stdout.write("\n")
        return 0


if __name__ == "__main__":
    sys.exit(main())
