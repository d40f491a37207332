"""What the environment saw during a load test's hold window, from CloudWatch.

    python -m monitoring.load_test_report --env dev --start 2026-11-22T20:10:00Z --end 2026-11-22T20:40:00Z
        [--region eu-west-1] [--load-balancer app/NAME/ID] [--json PATH]

For the window [start, end) (whole minutes; ISO 8601, UTC when without a zone, or Unix seconds) it reads, per minute and
over the whole window, the ALB's `TargetResponseTime` p50/p95/p99, `RequestCount` and
`HTTPCode_Target_5XX_Count`, and the ingest service's Container Insights `RunningTaskCount` and
`DesiredTaskCount`; prints a table and writes the same numbers as JSON (default
`results/cloudwatch-<env>-<start>.json`). The load balancer and service are found the way
`monitoring.watch` finds them. Percentiles are fetched in their own request: a backend that cannot
compute them leaves them empty and says so instead of failing the report. Exits 2 on bad flags, an
unknown environment or missing credentials.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3

from environments.config import ConfigError, EnvironmentConfig, load_from_cdk_json
from environments.credentials import PreflightError, caller_account
from environments.naming import EnvironmentNames
from monitoring.watch import PERIOD_SECONDS, Query, Watcher

# CloudWatch keeps 1-minute datapoints for 15 days; GetMetricData returns at most 100,800 per series.
MAX_WINDOW = timedelta(days=15)
PERCENTILES = ("p50", "p95", "p99")
# (id, namespace, metric, statistic) of the basic series; the dimensions come from the environment.
LOAD_BALANCER_SERIES = (("requests", "RequestCount", "Sum"), ("target_5xx", "HTTPCode_Target_5XX_Count", "Sum"))
SERVICE_SERIES = (("running_tasks", "RunningTaskCount", "Maximum"), ("desired_tasks", "DesiredTaskCount", "Maximum"))


@dataclass(frozen=True)
class HoldWindow:
    """The minutes of a run at its target user count, the only ones the report's numbers cover."""

    start: datetime
    end: datetime

    @property
    def seconds(self) -> int:
        return int((self.end - self.start).total_seconds())


@dataclass
class Minute:
    """One minute of the window; None where CloudWatch had no datapoint (or could not compute it)."""

    start: str
    requests: float | None = None
    target_5xx: float | None = None
    p50_ms: float | None = None
    p95_ms: float | None = None
    p99_ms: float | None = None
    running_tasks: float | None = None
    desired_tasks: float | None = None


@dataclass
class Report:
    env: str
    region: str
    start: str
    end: str
    load_balancer: str | None
    cluster: str
    service: str
    minutes: list[Minute] = field(default_factory=list)
    # Whole-window figures: totals, percentiles over every request of the window, task extremes.
    summary: dict[str, float | None] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


def parse_time(text: str) -> datetime:
    """ISO 8601 (without a zone it is UTC) or Unix seconds (the Locust suite's summary.json
    `hold_started_at` / `hold_ended_at`). Raises ValueError with the accepted forms."""
    try:
        return datetime.fromtimestamp(float(text), UTC)
    except ValueError:
        pass
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{text!r} is not an ISO 8601 time such as 2026-11-22T20:10:00Z, nor Unix seconds") from None
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).astimezone(UTC)


def hold_window(start: datetime, end: datetime, now: datetime) -> HoldWindow:
    """Whole minutes covering [start, end): start rounds down, end up. Raises ValueError naming the flag."""
    start = start.replace(second=0, microsecond=0)
    if end.second or end.microsecond:
        end = end.replace(second=0, microsecond=0) + timedelta(minutes=1)
    if end <= start:
        raise ValueError("--end must be after --start")
    if end > now + timedelta(minutes=1):
        raise ValueError(f"--end {end:%Y-%m-%dT%H:%MZ} is in the future")
    if now - start > MAX_WINDOW:
        raise ValueError("--start is more than 15 days ago: CloudWatch no longer has 1-minute datapoints")
    return HoldWindow(start, end)


def queries(load_balancer: str | None, cluster: str, service: str) -> tuple[list[Query], list[Query]]:
    """(basic series, percentile series), like `monitoring.watch.build_queries`."""
    ecs = (("ClusterName", cluster), ("ServiceName", service))
    basic = [Query(key, "ECS/ContainerInsights", metric, ecs, stat) for key, metric, stat in SERVICE_SERIES]
    percentiles: list[Query] = []
    if load_balancer:
        lb = (("LoadBalancer", load_balancer),)
        basic += [Query(key, "AWS/ApplicationELB", metric, lb, stat) for key, metric, stat in LOAD_BALANCER_SERIES]
        percentiles = [Query(p, "AWS/ApplicationELB", "TargetResponseTime", lb, p) for p in PERCENTILES]
    return basic, percentiles


def whole_window(query: Query, seconds: int) -> dict[str, Any]:
    """`query` as one datapoint over the whole window (`<id>_window`)."""
    request = query.as_request()
    request["Id"] = f"{query.id}_window"
    request["MetricStat"]["Period"] = seconds
    return request


class Reporter:
    """Fetches a `Report`; every failure becomes a line in `problems`."""

    def __init__(self, config: EnvironmentConfig, region: str, session: boto3.session.Session | None = None,
                 load_balancer: str | None = None) -> None:
        self.watcher = Watcher(config, region, session=session)
        self.watcher.load_balancer = load_balancer
        self.config = config
        self.region = region

    def fetch(self, window: HoldWindow) -> Report:
        names = EnvironmentNames(self.config.name)
        report = Report(env=self.config.name, region=self.region, start=_iso(window.start), end=_iso(window.end),
                        load_balancer=self.watcher.load_balancer, cluster=names.ecs_cluster,
                        service=names.ingest_service)
        if report.load_balancer is None:
            report.load_balancer, why = self.watcher.discover_load_balancer()
            if why:
                report.problems.append(why)
        basic, percentiles = queries(report.load_balancer, report.cluster, report.service)
        series: dict[str, dict[datetime, float]] = {}
        for label, group in (("metrics", basic), ("latency percentiles", percentiles)):
            if not group:
                continue
            requests = [q.as_request() for q in group] + [whole_window(q, window.seconds) for q in group]
            try:
                series.update(self._metric_data(requests, window))
            except Exception as error:  # e.g. a backend without percentiles: keep the rest
                report.problems.append(f"{label}: {error}")
        fetched = {q.id for group in (basic, percentiles) for q in group if q.id in series}
        empty = sorted(key for key in fetched if not series[key])
        if empty:
            report.problems.append(f"no datapoints in the window for: {', '.join(empty)}")
        report.minutes = _minutes(window, series)
        report.summary = _summary(window, series)
        return report

    def _metric_data(self, requests: list[dict[str, Any]], window: HoldWindow) -> dict[str, dict[datetime, float]]:
        values: dict[str, dict[datetime, float]] = {r["Id"]: {} for r in requests}
        pages = self.watcher.cloudwatch.get_paginator("get_metric_data").paginate(
            MetricDataQueries=requests, StartTime=window.start, EndTime=window.end, ScanBy="TimestampAscending")
        for page in pages:
            for result in page["MetricDataResults"]:
                for timestamp, value in zip(result.get("Timestamps", []), result.get("Values", []), strict=True):
                    values[result["Id"]][timestamp.astimezone(UTC)] = value
        return values


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _minutes(window: HoldWindow, series: dict[str, dict[datetime, float]]) -> list[Minute]:
    minutes = []
    for index in range(window.seconds // PERIOD_SECONDS):
        at = window.start + timedelta(seconds=index * PERIOD_SECONDS)
        row = Minute(start=_iso(at))
        for key in ("requests", "target_5xx", "running_tasks", "desired_tasks"):
            setattr(row, key, series.get(key, {}).get(at))
        for p in PERCENTILES:
            seconds = series.get(p, {}).get(at)
            setattr(row, f"{p}_ms", None if seconds is None else seconds * 1000)
        minutes.append(row)
    return minutes


def _summary(window: HoldWindow, series: dict[str, dict[datetime, float]]) -> dict[str, float | None]:
    def single(key: str) -> float | None:
        points = series.get(f"{key}_window", {})
        return sum(points.values()) if points else None

    def extreme(key: str, pick) -> float | None:
        points = series.get(key, {})
        return pick(points.values()) if points else None

    requests, errors = single("requests"), single("target_5xx")
    summary: dict[str, float | None] = {
        "requests": requests,
        "requests_per_second": None if requests is None else requests / window.seconds,
        "target_5xx": errors,
        "target_5xx_percent": None if not requests or errors is None else 100 * errors / requests,
    }
    for p in PERCENTILES:
        value = single(p)
        summary[f"{p}_ms"] = None if value is None else value * 1000
    summary["running_tasks_min"] = extreme("running_tasks", min)
    summary["running_tasks_max"] = extreme("running_tasks", max)
    summary["desired_tasks_max"] = extreme("desired_tasks", max)
    return summary


def render(report: Report) -> list[str]:
    """The table, as lines. Pure."""
    def cell(value: float | None, digits: int = 0) -> str:
        return "-" if value is None else f"{value:,.{digits}f}"

    lines = [f"{EnvironmentNames(report.env).prefix} ({report.region})  hold window {report.start} .. {report.end}",
             f"load balancer {report.load_balancer or 'n/a'}   service {report.cluster}/{report.service}", "",
             f"{'minute (UTC)':<17} {'requests':>10} {'5xx':>6} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} "
             f"{'tasks':>6} {'desired':>8}"]
    for row in report.minutes:
        lines.append(f"{row.start[:16].replace('T', ' '):<17} {cell(row.requests):>10} {cell(row.target_5xx):>6} "
                     f"{cell(row.p50_ms):>8} {cell(row.p95_ms):>8} {cell(row.p99_ms):>8} "
                     f"{cell(row.running_tasks):>6} {cell(row.desired_tasks):>8}")
    s = report.summary
    lines += ["", "WHOLE WINDOW",
              f"  requests {cell(s.get('requests'))} ({cell(s.get('requests_per_second'), 1)}/s)   "
              f"target 5xx {cell(s.get('target_5xx'))} ({cell(s.get('target_5xx_percent'), 3)} %)",
              f"  latency p50/p95/p99 {cell(s.get('p50_ms'))} / {cell(s.get('p95_ms'))} / {cell(s.get('p99_ms'))} ms",
              f"  running tasks {cell(s.get('running_tasks_min'))}..{cell(s.get('running_tasks_max'))}   "
              f"desired max {cell(s.get('desired_tasks_max'))}"]
    if report.problems:
        lines += ["", "NOT FOUND / UNAVAILABLE", *(f"  - {problem}" for problem in report.problems)]
    return lines


def main(argv: Sequence[str] | None = None, *, now: datetime | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m monitoring.load_test_report",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--env", required=True, help="environment name from cdk.json (dev, prod, ...)")
    parser.add_argument("--start", required=True, help="hold window start: ISO 8601 (UTC when no zone) or Unix seconds")
    parser.add_argument("--end", required=True, help="hold window end: ISO 8601 (UTC when no zone) or Unix seconds")
    parser.add_argument("--region", help="AWS region (default: the environment's region in cdk.json)")
    parser.add_argument("--load-balancer", help="CloudWatch LoadBalancer dimension (app/NAME/ID); default: discovered")
    parser.add_argument("--json", type=Path, help="where to write the JSON (default results/cloudwatch-<env>-<start>.json)")
    args = parser.parse_args(argv)
    try:
        window = hold_window(parse_time(args.start), parse_time(args.end), now or datetime.now(UTC))
    except ValueError as error:
        parser.error(str(error))
    try:
        config = load_from_cdk_json(args.env)
        caller_account(config)
    except (ConfigError, PreflightError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    report = Reporter(config, args.region or config.region, load_balancer=args.load_balancer).fetch(window)
    print("\n".join(render(report)))
    out = args.json or Path("results") / f"cloudwatch-{config.name}-{window.start:%Y%m%dT%H%M}Z.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(asdict(report), indent=2) + "\n")
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
