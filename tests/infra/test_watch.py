"""`python -m monitoring.watch`: one `--once` refresh against moto, rendering, and its error exits."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from app.observability import metrics as m
from monitoring import watch
from tests.conftest import REPO_ROOT

REGION = "eu-west-1"
APP_DIMENSIONS = [{"Name": "Service", "Value": "ingest"}, {"Name": "Environment", "Value": "sensor-dev"}]
STACK_TEMPLATE = """{"Resources": {"Topic": {"Type": "AWS::SNS::Topic"}},
 "Outputs": {"LoadBalancerUrl": {"Value": "http://%s"}}}"""


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch):
    """Fake credentials and moto for the test."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    with mock_aws():
        yield


def put_alarms(cloudwatch) -> None:
    common = {"MetricName": m.DB_CIRCUIT_OPEN, "Namespace": "SensorPlatform", "Statistic": "Maximum",
              "Period": 60, "EvaluationPeriods": 1, "Threshold": 1, "ComparisonOperator": "GreaterThanThreshold"}
    for name in ("sensor-dev-warning-dead-letter-backlog", "sensor-dev-critical-db-circuit-open",
                 "sensor-dev-warning-outbox-age", "sensor-prod-critical-db-circuit-open"):
        cloudwatch.put_metric_alarm(AlarmName=name, **common)
    cloudwatch.set_alarm_state(AlarmName="sensor-dev-critical-db-circuit-open", StateValue="ALARM",
                               StateReason="breaker open")
    cloudwatch.set_alarm_state(AlarmName="sensor-dev-warning-outbox-age", StateValue="OK", StateReason="fine")


def put_app_metrics(cloudwatch) -> None:
    values = {m.READINGS_INGESTED: 4242, m.ANOMALIES_DETECTED: 17, m.DEAD_LETTERED: 3, m.OUTBOX_OLDEST_AGE: 12,
              m.DEAD_LETTER_BACKLOG: 5, m.DB_CIRCUIT_OPEN: 1}
    cloudwatch.put_metric_data(Namespace="SensorPlatform", MetricData=[
        {"MetricName": name, "Value": value, "Dimensions": APP_DIMENSIONS} for name, value in values.items()
    ])


def create_load_balancer() -> str:
    """An ALB and the Service stack whose LoadBalancerUrl output points at it; returns its dimension."""
    ec2 = boto3.client("ec2", region_name=REGION)
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnets = [ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.0.{i}.0/24", AvailabilityZone=f"{REGION}{az}")
               ["Subnet"]["SubnetId"] for i, az in enumerate("ab")]
    lb = boto3.client("elbv2", region_name=REGION).create_load_balancer(Name="sensor-dev-alb", Subnets=subnets)
    balancer = lb["LoadBalancers"][0]
    boto3.client("cloudformation", region_name=REGION).create_stack(
        StackName="Sensor-dev-Service", TemplateBody=STACK_TEMPLATE % balancer["DNSName"])
    dimension = watch.load_balancer_dimension(balancer["LoadBalancerArn"])
    lb_dims = [{"Name": "LoadBalancer", "Value": dimension}]
    boto3.client("cloudwatch", region_name=REGION).put_metric_data(Namespace="AWS/ApplicationELB", MetricData=[
        {"MetricName": "RequestCount", "Value": 987, "Dimensions": lb_dims},
        {"MetricName": "HTTPCode_Target_5XX_Count", "Value": 4, "Dimensions": lb_dims},
        {"MetricName": "HTTPCode_ELB_5XX_Count", "Value": 1, "Dimensions": lb_dims},
        {"MetricName": "TargetResponseTime", "Value": 0.042, "Dimensions": lb_dims},
    ])
    return dimension


def run_once(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, list[str]]:
    code = watch.main(["--env", "dev", "--once", *args])
    return code, capsys.readouterr().out.splitlines()


def test_once_lists_firing_alarm_first_with_runbook_and_app_metrics(aws, capsys) -> None:
    cloudwatch = boto3.client("cloudwatch", region_name=REGION)
    put_alarms(cloudwatch)
    put_app_metrics(cloudwatch)

    code, lines = run_once(capsys)

    assert code == 0
    # The test session's JSON logging may add botocore lines to stdout: find the view's own lines.
    header = next(i for i, line in enumerate(lines) if line.startswith("ALARMS"))
    assert lines[header] == "ALARMS  1 in ALARM of 3"
    alarm_lines = lines[header + 1:header + 4]
    assert alarm_lines[0].split()[:3] == ["ALARM", "critical", "db-circuit-open"]
    assert "runbooks/alarms/db-circuit-open.md" in alarm_lines[0]
    assert not any("sensor-prod" in line for line in lines)
    text = "\n".join(lines)
    for name, shown in ((m.READINGS_INGESTED, "4,242"), (m.ANOMALIES_DETECTED, "17"), (m.DEAD_LETTERED, "3"),
                        (m.OUTBOX_OLDEST_AGE, "12 s"), (m.DEAD_LETTER_BACKLOG, "5"), (m.DB_CIRCUIT_OPEN, "1")):
        (line,) = [line for line in lines if line.strip().startswith(name)]
        assert shown in line, line
    # No Service stack and no load balancer in this account: said once, the rest still shown.
    assert "load balancer not found (stack Sensor-dev-Service" in text
    assert "running tasks          - of max 20" in text
    assert "Traceback" not in text


def test_discovered_load_balancer_shows_traffic_and_na_percentiles(aws, capsys) -> None:
    dimension = create_load_balancer()
    put_app_metrics(boto3.client("cloudwatch", region_name=REGION))

    code, lines = run_once(capsys)

    assert code == 0
    text = "\n".join(lines)
    assert f"TRAFFIC  load balancer {dimension}" in text
    (requests,) = [line for line in lines if line.strip().startswith("requests")]
    assert "987 in 5 min" in requests
    (errors,) = [line for line in lines if line.strip().startswith("5xx")]
    assert "5 in 5 min" in errors and "ELB 1 / target 4" in errors
    # moto cannot compute percentiles: the latency line says n/a, and why, instead of failing.
    assert "latency p50/p95/p99  n/a / n/a / n/a" in text
    assert "latency percentiles:" in text
    assert "load balancer not found" not in text


def test_unknown_environment_exits_2_naming_it(capsys) -> None:
    assert watch.main(["--env", "staging", "--once"]) == 2
    error = capsys.readouterr().err
    assert "unknown environment 'staging'" in error and "defined: dev, prod" in error


def test_missing_credentials_exit_2_with_login_hint(tmp_path: Path) -> None:
    env = {key: value for key, value in os.environ.items() if not key.startswith("AWS_")}
    env.update(AWS_CONFIG_FILE=str(tmp_path / "none"), AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "none"),
               AWS_EC2_METADATA_DISABLED="true", PYTHONPATH=str(REPO_ROOT))
    result = subprocess.run([sys.executable, "-m", "monitoring.watch", "--env", "dev", "--once"],
                            env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 2
    assert result.stderr.startswith("error: no AWS credentials found. Log in first")
    assert "Traceback" not in result.stderr


def test_ctrl_c_exits_cleanly(aws, capsys) -> None:
    def interrupt(_seconds: float) -> None:
        raise KeyboardInterrupt

    assert watch.main(["--env", "dev", "--interval", "5"], sleep=interrupt) == 0
    assert "ALARMS" in capsys.readouterr().out


def test_render_is_pure_and_marks_unfetched_series_na() -> None:
    overview = watch.Overview(env="dev", region=REGION, generated_at=datetime(2026, 1, 1, tzinfo=UTC),
                              cluster="sensor-dev", service="sensor-dev-ingest", max_tasks=20,
                              namespace="SensorPlatform", app_env="sensor-dev", load_balancer="app/x/1",
                              series={"tasks": watch.Series((3.0, 2.0))}, alarms=[],
                              problems=["metrics: denied"])
    lines = watch.render(overview)
    assert lines[0] == "sensor-dev (eu-west-1)  last 5 min, 1-min periods  2026-01-01 00:00:00Z"
    assert "  running tasks          3 of max 20" in lines
    assert "latency p50/p95/p99  n/a / n/a / n/a   (last minute)" in "\n".join(lines)
    assert lines[-1] == "  - metrics: denied"


@pytest.mark.parametrize(("name", "severity", "short"), [
    ("sensor-dev-critical-db-circuit-open", "critical", "db-circuit-open"),
    ("sensor-dev-deployment-target-5xx", "?", "deployment-target-5xx"),
])
def test_alarm_names_give_severity_and_runbook(name: str, severity: str, short: str) -> None:
    alarm = watch.parse_alarm("dev", name, "OK")
    assert (alarm.severity, alarm.short_name, alarm.runbook) == (severity, short, f"runbooks/alarms/{short}.md")
