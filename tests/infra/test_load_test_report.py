"""`python -m monitoring.load_test_report`: the hold window's ALB and ECS numbers from CloudWatch (moto).

moto computes sums and maxima but no percentiles: the report must keep everything else and say so.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import boto3
import pytest

from monitoring import load_test_report as report
from tests.infra.test_watch import REGION, aws, create_load_balancer  # noqa: F401 - `aws` is a fixture

NOW = datetime.now(UTC).replace(second=0, microsecond=0)
START = NOW - timedelta(minutes=20)
ECS_DIMENSIONS = [{"Name": "ClusterName", "Value": "sensor-dev"}, {"Name": "ServiceName", "Value": "sensor-dev-ingest"}]


def put(namespace: str, name: str, dimensions: list[dict], values: list[float], first: datetime) -> None:
    """One datapoint per minute, 10 s into each minute."""
    boto3.client("cloudwatch", region_name=REGION).put_metric_data(Namespace=namespace, MetricData=[
        {"MetricName": name, "Value": value, "Dimensions": dimensions,
         "Timestamp": first + timedelta(minutes=index, seconds=10)}
        for index, value in enumerate(values)
    ])


def put_hold_window(load_balancer: str) -> None:
    lb = [{"Name": "LoadBalancer", "Value": load_balancer}]
    put("AWS/ApplicationELB", "RequestCount", lb, [30_000, 31_000, 29_000], START)
    put("AWS/ApplicationELB", "HTTPCode_Target_5XX_Count", lb, [0, 6, 0], START)
    put("AWS/ApplicationELB", "RequestCount", lb, [99_999], START - timedelta(minutes=5))  # before the window
    put("ECS/ContainerInsights", "RunningTaskCount", ECS_DIMENSIONS, [4, 6, 7], START)
    put("ECS/ContainerInsights", "DesiredTaskCount", ECS_DIMENSIONS, [6, 7, 7], START)
    put("AWS/ApplicationELB", "TargetResponseTime", lb, [0.120, 0.180, 0.150], START)


@pytest.mark.usefixtures("aws")
def test_report_per_minute_and_whole_window_with_discovered_load_balancer(capsys, tmp_path: Path) -> None:
    dimension = create_load_balancer()  # also puts one datapoint "now", outside the window
    put_hold_window(dimension)
    out = tmp_path / "report.json"
    code = report.main(["--env", "dev", "--start", START.isoformat(), "--end",
                        (START + timedelta(minutes=3)).strftime("%Y-%m-%dT%H:%M:%S"), "--json", str(out)], now=NOW)
    assert code == 0
    data = json.loads(out.read_text())
    assert data["load_balancer"] == dimension
    assert (data["cluster"], data["service"]) == ("sensor-dev", "sensor-dev-ingest")
    assert [m["requests"] for m in data["minutes"]] == [30_000, 31_000, 29_000]
    assert [m["target_5xx"] for m in data["minutes"]] == [0, 6, 0]
    assert [m["running_tasks"] for m in data["minutes"]] == [4, 6, 7]
    assert [m["desired_tasks"] for m in data["minutes"]] == [6, 7, 7]
    summary = data["summary"]
    assert summary["requests"] == 90_000 and summary["requests_per_second"] == 500
    assert summary["target_5xx"] == 6 and summary["target_5xx_percent"] == pytest.approx(100 * 6 / 90_000)
    assert (summary["running_tasks_min"], summary["running_tasks_max"], summary["desired_tasks_max"]) == (4, 7, 7)
    # moto has no percentiles: empty, and the report says why instead of failing.
    assert summary["p99_ms"] is None and all(m["p95_ms"] is None for m in data["minutes"])
    assert any(problem.startswith("latency percentiles:") for problem in data["problems"])

    text = capsys.readouterr().out
    assert f"hold window {START:%Y-%m-%dT%H:%M:%SZ}" in text
    assert "requests 90,000 (500.0/s)" in text and "target 5xx 6 (0.007 %)" in text
    assert f"{START:%Y-%m-%d %H:%M}" in text and "31,000" in text


@pytest.mark.usefixtures("aws")
def test_explicit_load_balancer_skips_discovery_and_missing_data_shows_dashes(capsys, tmp_path: Path) -> None:
    put_hold_window("app/sensor-dev-alb/abc123")
    code = report.main(["--env", "dev", "--start", START.isoformat(), "--end", NOW.isoformat(),
                        "--load-balancer", "app/sensor-dev-alb/abc123", "--json", str(tmp_path / "r.json")], now=NOW)
    assert code == 0
    data = json.loads((tmp_path / "r.json").read_text())
    assert len(data["minutes"]) == 20
    assert data["minutes"][-1]["requests"] is None  # no traffic in the last minute
    assert not any("not found" in problem for problem in data["problems"])
    assert not any("no datapoints" in problem for problem in data["problems"])
    last_row = [line for line in capsys.readouterr().out.splitlines()
                if line.startswith(f"{NOW - timedelta(minutes=1):%Y-%m-%d %H:%M}")]
    assert last_row and last_row[0].split()[2:4] == ["-", "-"]


@pytest.mark.parametrize(
    ("start", "end", "message"),
    [
        ("2026-11-22 20:00", "yesterday", "not an ISO 8601 time"),
        (START.isoformat(), START.isoformat(), "--end must be after --start"),
        (START.isoformat(), (NOW + timedelta(hours=1)).isoformat(), "is in the future"),
        ((NOW - timedelta(days=16)).isoformat(), NOW.isoformat(), "more than 15 days ago"),
    ],
)
def test_bad_windows_exit_2_naming_the_flag(capsys, start: str, end: str, message: str) -> None:
    with pytest.raises(SystemExit) as exit_:
        report.main(["--env", "dev", "--start", start, "--end", end], now=NOW)
    assert exit_.value.code == 2
    assert message in capsys.readouterr().err


def test_unknown_environment_exits_2(capsys) -> None:
    assert report.main(["--env", "staging", "--start", START.isoformat(), "--end", NOW.isoformat()], now=NOW) == 2
    assert "unknown environment 'staging'" in capsys.readouterr().err


def test_window_rounds_to_whole_minutes_and_times_without_zone_are_utc() -> None:
    window = report.hold_window(report.parse_time("2026-11-22T20:10:30"), report.parse_time("2026-11-22T20:40:05+00:00"),
                                datetime(2026, 11, 22, 21, tzinfo=UTC))
    assert (window.start, window.end) == (datetime(2026, 11, 22, 20, 10, tzinfo=UTC),
                                          datetime(2026, 11, 22, 20, 41, tzinfo=UTC))
    assert window.seconds == 31 * 60
    assert report.parse_time("1795455000.5") == datetime(2026, 11, 23, 17, 30, 0, 500000, tzinfo=UTC)


@pytest.mark.usefixtures("aws")
def test_series_without_datapoints_are_named(tmp_path: Path) -> None:
    put("ECS/ContainerInsights", "RunningTaskCount", ECS_DIMENSIONS, [3], START)
    assert report.main(["--env", "dev", "--start", START.isoformat(), "--end", NOW.isoformat(),
                        "--load-balancer", "app/idle/1", "--json", str(tmp_path / "r.json")], now=NOW) == 0
    problems = json.loads((tmp_path / "r.json").read_text())["problems"]
    assert "no datapoints in the window for: desired_tasks, p50, p95, p99, requests, target_5xx" in problems
