"""`make verify` against the full local profile: PostgreSQL, tansu, the app with its outbox relay, the
archiver consumer writing Parquet to moto's S3, and the environment's stacks, secret, Glue table, alarms,
dashboards, ECS service and Lambda alias seeded into the same moto server by the code `make up PROFILE=full`
runs (devstack.aws_environment.seed_for_make_up).

All steps pass; then three broken links each fail the command at their own step: an alarm deleted
(alarms), the app not ready (ready: its database is down), the archiver stopped (lake).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest

from devstack.aws_environment import (
    LOCAL_CREDENTIALS,
    LOCAL_ENV,
    MOTO_ECS_ENVIRONMENT,
    REGION,
    seed_for_make_up,
)
from devstack.local_resources import ARCHIVER_WINDOW_SECONDS, LOCAL_AWS, LOCAL_BUCKET, LOCAL_TOPIC
from devstack.moto_s3 import MotoServer
from devstack.postgres import PostgresServer
from devstack.processes import free_port, stop
from devstack.tansu import TansuBroker
from loadtests.drills.full_stack import create_topic
from loadtests.harness.app_processes import start_app, wait_ready
from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.timeout(420)

ENV = LOCAL_ENV
ALL_STEPS = ("outputs", "health", "ready", "token", "ingest", "read-back", "lake", "glue-partition", "alarms",
             "dashboards", "archiver-version", "service-version")


@dataclass
class LocalEnvironment:
    workdir: Path
    cdk_json: Path
    moto: MotoServer
    postgres: PostgresServer
    app: subprocess.Popen
    pipeline: subprocess.Popen

    def aws(self, service: str) -> Any:
        return boto3.client(service, endpoint_url=self.moto.endpoint_url, region_name=REGION, **LOCAL_CREDENTIALS)

    def verify(self, *flags: str) -> tuple[int, dict[str, Any], str]:
        """`python -m monitoring.verify` (what `make verify` runs) as a process, with the moto endpoint."""
        env = {**os.environ, **LOCAL_AWS, "AWS_ENDPOINT_URL": self.moto.endpoint_url}
        env.pop("AWS_PROFILE", None)
        completed = subprocess.run(
            [sys.executable, "-m", "monitoring.verify", "--env", ENV, "--cdk-json", str(self.cdk_json),
             "--poll-interval", "0.5", *flags],
            check=False, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300)
        report = json.loads(completed.stdout) if "--json" in flags else {}
        return completed.returncode, report, completed.stdout + completed.stderr

    def steps(self, report: dict[str, Any]) -> dict[str, str]:
        return {step["name"]: step["status"] for step in report["steps"]}


@pytest.fixture(scope="module")
def local_environment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalEnvironment]:
    workdir = tmp_path_factory.mktemp("verify")
    moto = MotoServer(environment=MOTO_ECS_ENVIRONMENT).start()
    postgres = broker = app = pipeline = None
    try:
        s3 = boto3.client("s3", endpoint_url=moto.endpoint_url, region_name=REGION, **LOCAL_CREDENTIALS)
        s3.create_bucket(Bucket=LOCAL_BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
        postgres = PostgresServer().start()
        broker = TansuBroker(log_path=workdir / "tansu.log").start()
        asyncio.run(create_topic(broker.bootstrap))
        port = free_port()
        # What `make up PROFILE=full` does before starting the app: seed `local`, add the smoke client.
        app_env = {"SENSOR_S3_ENDPOINT_URL": moto.endpoint_url}
        seed_for_make_up(app_env, app_port=port, lake_bucket=LOCAL_BUCKET, var_dir=workdir)
        app_env.update(SENSOR_KAFKA_BOOTSTRAP=broker.bootstrap, SENSOR_KAFKA_TOPIC=LOCAL_TOPIC, **LOCAL_AWS)
        app = start_app("app", port, postgres.url, workdir, extra_env=app_env)
        wait_ready(port, app)
        pipeline = subprocess.Popen(  # the archiver consumer, as `make up PROFILE=full` starts it
            [sys.executable, "-m", "devstack.pipeline", "kafka", "--bootstrap", broker.bootstrap,
             "--topic", LOCAL_TOPIC, "--group", "archiver", "--bucket", LOCAL_BUCKET,
             "--s3-endpoint", moto.endpoint_url, "--batching-window-seconds", ARCHIVER_WINDOW_SECONDS],
            env={**os.environ, **LOCAL_AWS}, stdout=open(workdir / "archiver.log", "ab"), stderr=subprocess.STDOUT)
        yield LocalEnvironment(workdir, workdir / "local-cdk.json", moto, postgres, app, pipeline)
    finally:
        for process in (pipeline, app):
            stop(process, timeout=30)
        if broker is not None:
            broker.stop()
        if postgres is not None:
            postgres.destroy()
        moto.stop()


def test_every_step_passes_on_the_full_local_profile(local_environment: LocalEnvironment) -> None:
    code, report, output = local_environment.verify("--json", "--lake-timeout", "90")
    assert code == 0, output
    assert report["ok"] is True and report["failed_step"] is None
    assert local_environment.steps(report) == dict.fromkeys(ALL_STEPS, "pass"), output
    details = {step["name"]: step["detail"] for step in report["steps"]}
    assert f"s3://{LOCAL_BUCKET}/raw/year=" in details["lake"]
    assert "version 1" in details["archiver-version"]
    assert all(step["seconds"] >= 0 for step in report["steps"])


def test_the_plain_output_has_one_timed_line_per_step(local_environment: LocalEnvironment) -> None:
    code, _, output = local_environment.verify("--lake-timeout", "90")
    assert code == 0, output
    lines = [line for line in output.splitlines() if line.startswith("PASS")]
    assert [line.split()[1] for line in lines] == list(ALL_STEPS)
    assert all(line.split()[2].endswith("s") for line in lines)
    assert output.rstrip().endswith("all checks passed")


def test_make_verify_env_local_runs_the_same_command(local_environment: LocalEnvironment) -> None:
    """`make verify ENV=local` as a developer runs it against `make up PROFILE=full` (files in LOCAL_VAR)."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("AWS_")}
    completed = subprocess.run(
        ["make", "--no-print-directory", "verify", "ENV=local", f"LOCAL_VAR={local_environment.workdir}",
         "VERIFY_ARGS=--lake-timeout 90 --poll-interval 0.5"],
        check=False, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert completed.stdout.rstrip().endswith("all checks passed")


def test_a_deleted_alarm_fails_at_the_alarms_step(local_environment: LocalEnvironment) -> None:
    cloudwatch = local_environment.aws("cloudwatch")
    name = f"sensor-{ENV}-critical-outbox-oldest-age"
    saved = cloudwatch.describe_alarms(AlarmNames=[name])["MetricAlarms"][0]
    cloudwatch.delete_alarms(AlarmNames=[name])
    try:
        code, report, output = local_environment.verify("--json", "--lake-timeout", "90")
    finally:
        cloudwatch.put_metric_alarm(**{key: saved[key] for key in (
            "AlarmName", "ComparisonOperator", "Threshold", "EvaluationPeriods", "DatapointsToAlarm",
            "TreatMissingData", "Metrics")})
    assert code == 1, output
    assert report["failed_step"] == "alarms"
    failed = next(step for step in report["steps"] if step["name"] == "alarms")
    assert f"missing: {name}" in failed["detail"]
    assert local_environment.steps(report)["lake"] == "pass"  # the data path is fine


def test_an_alarm_in_alarm_fails_unless_listed(local_environment: LocalEnvironment) -> None:
    cloudwatch = local_environment.aws("cloudwatch")
    name = f"sensor-{ENV}-warning-archiver-errors"
    cloudwatch.set_alarm_state(AlarmName=name, StateValue="ALARM", StateReason="verify test")
    try:
        code, report, _ = local_environment.verify("--json", "--lake-timeout", "90")
        assert code == 1 and report["failed_step"] == "alarms"
        code, report, output = local_environment.verify("--json", "--lake-timeout", "90", "--allow-alarm", name)
        assert code == 0, output
    finally:
        cloudwatch.set_alarm_state(AlarmName=name, StateValue="OK", StateReason="verify test done")


def test_an_app_that_is_not_ready_fails_at_the_ready_step(local_environment: LocalEnvironment) -> None:
    local_environment.postgres.stop()
    try:
        code, report, output = local_environment.verify("--json", "--lake-timeout", "5")
    finally:
        local_environment.postgres.start()
    assert code == 1, output
    assert report["failed_step"] == "ready"
    steps = local_environment.steps(report)
    assert steps["health"] == "pass"
    assert {steps[name] for name in ("token", "ingest", "read-back", "lake", "glue-partition")} == {"skip"}
    assert steps["alarms"] == steps["dashboards"] == "pass"


def test_an_alias_behind_the_newest_version_fails_at_the_archiver_version_step(
        local_environment: LocalEnvironment) -> None:
    lambda_ = local_environment.aws("lambda")
    function = f"sensor-{ENV}-archiver"
    # A new version as a deploy publishes one (unchanged code and configuration would return the old one).
    lambda_.update_function_configuration(FunctionName=function, Description="verify test: a newer version")
    newest = lambda_.publish_version(FunctionName=function)["Version"]
    assert newest != "1"
    try:
        code, report, output = local_environment.verify("--json", "--lake-timeout", "90")
    finally:
        lambda_.update_alias(FunctionName=function, Name="live", FunctionVersion=newest)
    assert code == 1, output
    assert report["failed_step"] == "archiver-version"
    failed = next(step for step in report["steps"] if step["name"] == "archiver-version")
    assert f"expected {newest}" in failed["detail"]


def test_a_stopped_archiver_fails_at_the_lake_step(local_environment: LocalEnvironment) -> None:
    # Runs last in this module: the archiver stays stopped.
    stop(local_environment.pipeline, timeout=30)
    code, report, output = local_environment.verify("--json", "--lake-timeout", "12")
    assert code == 1, output
    assert report["failed_step"] == "lake"
    steps = local_environment.steps(report)
    assert [steps[name] for name in ALL_STEPS[:6]] == ["pass"] * 6
    assert steps["glue-partition"] == "skip"
    assert "is the archiver consuming the topic?" in next(
        step["detail"] for step in report["steps"] if step["name"] == "lake")
