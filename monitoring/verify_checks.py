"""The checks of `make verify`, one function per step, in the order they run.

Each check takes the `Context` (the environment's stack outputs, AWS clients, an HTTP client and what
earlier steps found) and returns a one-line detail on success; it raises `CheckFailed` with the reason
otherwise, or `Skipped` when the environment has nothing to check (an output absent, e.g. locally).
Only the canary reading is written; everything else is read.
"""

from __future__ import annotations

import io
import json
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pyarrow.parquet as pq
from botocore.exceptions import BotoCoreError, ClientError

from environments.config import EnvironmentConfig
from environments.naming import EnvironmentNames
from monitoring import catalogue, dashboards
from monitoring.lake_projection import ProjectionError, hour_partition_values, partition_location

STACK_DOMAINS = ("Service", "Data", "Pipeline", "Monitoring")
REQUIRED_OUTPUTS = {
    "Service": ("LoadBalancerUrl", "ClusterName", "ServiceName", "SmokeClientSecretArn"),
    "Data": ("DataLakeBucketName",),
    "Pipeline": ("ArchiverFunctionName", "ArchiverAliasName", "GlueDatabaseName", "GlueTableName"),
    "Monitoring": (),
}
RAW_PREFIX = "raw/"
CANARY_TAG = "temperature"
CANARY_VALUE = 21.5
# Objects written this long before the canary was ingested cannot hold it (clock skew allowance).
LAKE_OBJECT_SLACK = timedelta(minutes=2)


class CheckFailed(Exception):
    """The step failed; the message is the reason shown on its line."""


class Skipped(Exception):
    """The step does not apply to this environment; the message says why."""


@dataclass
class Context:
    """What the checks share. `aws(service)` returns a boto3 client for the environment's region."""

    config: EnvironmentConfig
    aws: Callable[[str], Any]
    http: httpx.Client
    base_url: str | None = None
    device_id: str = "verify-canary"
    lake_timeout: float = 600.0
    poll_interval: float = 5.0
    allowed_alarms: frozenset[str] = frozenset()
    sleep: Callable[[float], None] = time.sleep
    outputs: dict[str, dict[str, str]] = field(default_factory=dict)
    resources: dict[str, list[dict[str, str]]] = field(default_factory=dict)
    token: str | None = None
    canary: dict[str, Any] | None = None  # {"id", "timestamp"}
    lake_object: str | None = None  # s3://bucket/key holding the canary

    @property
    def prefix(self) -> str:
        return EnvironmentNames(self.config.name).prefix

    def stack_name(self, domain: str) -> str:
        return EnvironmentNames(self.config.name).stack(domain)

    def output(self, domain: str, key: str) -> str:
        value = self.outputs.get(domain, {}).get(key)
        if not value:
            raise Skipped(f"stack {self.stack_name(domain)} has no output {key}")
        return value

    def url(self, path: str) -> str:
        return (self.base_url or self.output("Service", "LoadBalancerUrl")).rstrip("/") + path


# --- the steps --------------------------------------------------------------------------------------


def stack_outputs(ctx: Context) -> str:
    cloudformation = ctx.aws("cloudformation")
    for domain in STACK_DOMAINS:
        name = ctx.stack_name(domain)
        try:
            stack = cloudformation.describe_stacks(StackName=name)["Stacks"][0]
        except ClientError as error:
            raise CheckFailed(f"stack {name}: {_aws_message(error)}") from None
        except BotoCoreError as error:  # no credentials, no endpoint: one line saying what to do
            raise CheckFailed(f"{error}: log in first (aws sso login / AWS_PROFILE=...) for the environment's "
                              "account") from None
        if not stack["StackStatus"].endswith("_COMPLETE") or "ROLLBACK" in stack["StackStatus"]:
            raise CheckFailed(f"stack {name} is {stack['StackStatus']}")
        ctx.outputs[domain] = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
        missing = [key for key in REQUIRED_OUTPUTS[domain] if not ctx.outputs[domain].get(key)]
        if missing:
            raise CheckFailed(f"stack {name} lacks outputs {', '.join(missing)}")
    return f"{len(STACK_DOMAINS)} stacks complete; app at {ctx.url('')}"


def health(ctx: Context) -> str:
    return _expect_ok(ctx, "/health")


def ready(ctx: Context) -> str:
    body = _expect_ok(ctx, "/ready", parse=True)
    if body.get("status") != "ready" or body.get("database") != "ok":
        raise CheckFailed(f"/ready answered 200 but {json.dumps(body)}: the service is not ready end to end")
    return "200 ready, database ok"


def token(ctx: Context) -> str:
    arn = ctx.output("Service", "SmokeClientSecretArn")
    try:
        secret = json.loads(ctx.aws("secretsmanager").get_secret_value(SecretId=arn)["SecretString"])
    except (ClientError, BotoCoreError) as error:
        raise CheckFailed(f"smoke client secret {arn}: {_aws_message(error)}") from None
    client_id = secret.get("client_id", ctx.config.service.smoke_client_id)
    response = _request(ctx, "POST", "/auth/token", json={"client_id": client_id,
                                                          "client_secret": secret.get("client_secret", "")})
    if response.status_code != 200:
        hint = (" (is its SHA-256 digest in the ApiClients secret? runbooks/first-deploy.md)"
                if response.status_code in (400, 401) else "")
        raise CheckFailed(f"POST /auth/token for {client_id}: {response.status_code}{hint}")
    ctx.token = response.json()["access_token"]
    return f"client {client_id}, scopes {response.json().get('scope', '?')}"


def ingest(ctx: Context) -> str:
    now = datetime.now(UTC)
    timestamp = now.replace(microsecond=now.microsecond // 1000 * 1000)  # millisecond precision everywhere
    body = {"timestamp": timestamp.isoformat(), "tag": CANARY_TAG, "value": CANARY_VALUE, "device_id": ctx.device_id}
    response = _request(ctx, "POST", "/ingest", json=body, auth=True)
    if response.status_code != 201:
        raise CheckFailed(f"POST /ingest: {response.status_code} {response.text[:200]} (201 expected: 202 means "
                          "the database refused and the reading was dead-lettered)")
    ctx.canary = {"id": response.json()["id"], "timestamp": timestamp}
    return f"reading {ctx.canary['id']} from {ctx.device_id} at {timestamp.isoformat()}"


def read_back(ctx: Context) -> str:
    canary = _canary(ctx)
    params = {"device_id": ctx.device_id, "tag": CANARY_TAG, "since": canary["timestamp"].isoformat(),
              "until": (canary["timestamp"] + timedelta(milliseconds=1)).isoformat()}
    response = _request(ctx, "GET", "/data", params=params, auth=True)
    if response.status_code != 200:
        raise CheckFailed(f"GET /data: {response.status_code} {response.text[:200]}")
    ids = [row["id"] for row in response.json()]
    if canary["id"] not in ids:
        raise CheckFailed(f"reading {canary['id']} not returned by GET /data (got ids {ids[:5]})")
    return f"reading {canary['id']} returned by GET /data"


def lake(ctx: Context) -> str:
    canary = _canary(ctx)
    bucket = ctx.output("Data", "DataLakeBucketName")
    values = hour_partition_values(canary["timestamp"])
    prefix = (f"{RAW_PREFIX}year={values['year']:04d}/month={values['month']:02d}/day={values['day']:02d}/"
              f"hour={values['hour']:02d}/")
    s3 = ctx.aws("s3")
    not_before = datetime.now(UTC) - LAKE_OBJECT_SLACK
    deadline = time.monotonic() + ctx.lake_timeout
    read: set[tuple[str, str]] = set()
    while True:
        for key, etag in _recent_objects(s3, bucket, prefix, not_before):
            if (key, etag) in read:
                continue
            read.add((key, etag))
            body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
            if canary["id"] in pq.read_table(io.BytesIO(body), columns=["id"]).column("id").to_pylist():
                ctx.lake_object = f"s3://{bucket}/{key}"
                return f"reading {canary['id']} in {ctx.lake_object}"
        if time.monotonic() >= deadline:
            raise CheckFailed(f"reading {canary['id']} not in s3://{bucket}/{prefix} after {ctx.lake_timeout:g} s "
                              f"({len(read)} new Parquet objects read): is the archiver consuming the topic?")
        ctx.sleep(ctx.poll_interval)


def glue_partition(ctx: Context) -> str:
    if ctx.lake_object is None or ctx.canary is None:
        raise CheckFailed("no lake object to resolve (the lake step did not find the canary)")
    database, table = ctx.output("Pipeline", "GlueDatabaseName"), ctx.output("Pipeline", "GlueTableName")
    try:
        described = ctx.aws("glue").get_table(DatabaseName=database, Name=table)["Table"]
    except ClientError as error:
        raise CheckFailed(f"Glue table {database}.{table}: {_aws_message(error)}") from None
    keys = [key["Name"] for key in described.get("PartitionKeys", [])]
    try:
        location = partition_location(described.get("Parameters", {}), keys,
                                      hour_partition_values(ctx.canary["timestamp"]))
    except ProjectionError as error:
        raise CheckFailed(f"{database}.{table}: {error}") from None
    head, _, name = ctx.lake_object.rpartition("/")
    if head + "/" != location:
        raise CheckFailed(f"projection resolves the partition to {location}, but the object is {ctx.lake_object}")
    return f"{database}.{table} projects {'/'.join(keys)} to {location} ({name} is there)"


def alarms(ctx: Context) -> str:
    deployed = catalogue.sample_deployed(ctx.config.name, replica=ctx.config.database.read_replica)
    expected = {spec.alarm_name(ctx.prefix) for spec in catalogue.active(deployed)}
    expected.add(f"{ctx.prefix}-critical-{catalogue.PLATFORM_DOWN}")
    states = {}
    for page in ctx.aws("cloudwatch").get_paginator("describe_alarms").paginate(
            AlarmNamePrefix=f"{ctx.prefix}-", AlarmTypes=["MetricAlarm", "CompositeAlarm"]):
        for alarm in [*page.get("MetricAlarms", []), *page.get("CompositeAlarms", [])]:
            states[alarm["AlarmName"]] = alarm["StateValue"]
    problems = []
    missing = sorted(expected - states.keys())
    if missing:
        problems.append(f"missing: {', '.join(missing)}")
    firing = sorted(name for name, state in states.items() if state == "ALARM" and name not in ctx.allowed_alarms)
    if firing:
        problems.append(f"in ALARM: {', '.join(firing)} (runbooks/alarms/; --allow-alarm NAME to accept)")
    if problems:
        raise CheckFailed("; ".join(problems))
    allowed = sorted(name for name in ctx.allowed_alarms if states.get(name) == "ALARM")
    return (f"{len(expected)} catalogue alarms exist, {len(states)} {ctx.prefix}-* alarms, none in ALARM"
            + (f" except allowed {', '.join(allowed)}" if allowed else ""))


def dashboards_exist(ctx: Context) -> str:
    expected = {spec.dashboard_name(ctx.prefix) for spec in dashboards.DASHBOARDS}
    found = set()
    for page in ctx.aws("cloudwatch").get_paginator("list_dashboards").paginate(DashboardNamePrefix=ctx.prefix):
        found.update(entry["DashboardName"] for entry in page["DashboardEntries"])
    missing = sorted(expected - found)
    if missing:
        raise CheckFailed(f"missing dashboards: {', '.join(missing)}")
    return f"{len(expected)} dashboards: {', '.join(sorted(expected))}"


def archiver_version(ctx: Context) -> str:
    function = ctx.output("Pipeline", "ArchiverFunctionName")
    alias = ctx.output("Pipeline", "ArchiverAliasName").rpartition(":")[2]
    client = ctx.aws("lambda")
    try:
        described = client.get_alias(FunctionName=function, Name=alias)
    except ClientError as error:
        raise CheckFailed(f"alias {function}:{alias}: {_aws_message(error)}") from None
    expected, source = _expected_lambda_version(ctx, client, function)
    weights = (described.get("RoutingConfig") or {}).get("AdditionalVersionWeights") or {}
    if weights:
        raise CheckFailed(f"alias {alias} still shifts traffic {weights}: a CodeDeploy deployment is in progress "
                          "(runbooks/stuck-deployment.md)")
    if described["FunctionVersion"] != expected:
        raise CheckFailed(f"alias {alias} runs version {described['FunctionVersion']}, expected {expected} "
                          f"({source})")
    return f"{function}:{alias} -> version {expected} ({source})"


def service_version(ctx: Context) -> str:
    cluster, service = ctx.output("Service", "ClusterName"), ctx.output("Service", "ServiceName")
    task_definitions = [r["PhysicalResourceId"] for r in _stack_resources(ctx, "Service")
                        if r["ResourceType"] == "AWS::ECS::TaskDefinition" and r["PhysicalResourceId"]]
    if len(task_definitions) != 1:
        raise Skipped(f"stack {ctx.stack_name('Service')} lists {len(task_definitions)} task definitions")
    expected = task_definitions[0]
    described = ctx.aws("ecs").describe_services(cluster=cluster, services=[service])
    if not described.get("services") or described["services"][0].get("status") != "ACTIVE":
        raise CheckFailed(f"service {service} not found or not ACTIVE in cluster {cluster}")
    state = described["services"][0]
    deployments = state.get("deployments", [])
    primary = [d for d in deployments if d.get("status") == "PRIMARY"]
    if not primary or primary[0]["taskDefinition"] != expected:
        running = primary[0]["taskDefinition"] if primary else "nothing"
        raise CheckFailed(f"service {service} runs {running}, the stack deployed {expected}")
    if len(deployments) > 1 or primary[0].get("rolloutState", "COMPLETED") != "COMPLETED":
        raise CheckFailed(f"service {service}: deployment not finished ({len(deployments)} deployments, rollout "
                          f"{primary[0].get('rolloutState')}; runbooks/stuck-deployment.md)")
    if state.get("runningCount", 0) < max(1, state.get("desiredCount", 0)):
        raise CheckFailed(f"service {service}: {state.get('runningCount')} of {state.get('desiredCount')} tasks run")
    return (f"{service} runs {expected.rpartition('/')[2]}, {state['runningCount']}/{state['desiredCount']} tasks, "
            "rollout COMPLETED")


# --- helpers ----------------------------------------------------------------------------------------


def _request(ctx: Context, method: str, path: str, *, auth: bool = False, **kwargs: Any) -> httpx.Response:
    headers = {"Authorization": f"Bearer {ctx.token}"} if auth and ctx.token else {}
    try:
        return ctx.http.request(method, ctx.url(path), headers=headers, **kwargs)
    except httpx.HTTPError as error:
        hint = (" (the certificate names your DNS name, not the load balancer's: pass --url https://<that name>"
                " or set VERIFY_URL)" if "CERTIFICATE_VERIFY_FAILED" in str(error) else "")
        raise CheckFailed(f"{method} {ctx.url(path)}: {type(error).__name__}: {error}{hint}") from None


def _expect_ok(ctx: Context, path: str, *, parse: bool = False) -> Any:
    response = _request(ctx, "GET", path)
    if response.status_code != 200:
        raise CheckFailed(f"GET {path}: {response.status_code} {response.text[:200]}")
    return response.json() if parse else f"200 {response.text[:80]}"


def _canary(ctx: Context) -> dict[str, Any]:
    if ctx.canary is None:
        raise CheckFailed("no canary reading (the ingest step did not store one)")
    return ctx.canary


def _recent_objects(s3, bucket: str, prefix: str, not_before: datetime) -> list[tuple[str, str]]:
    """Parquet objects under the prefix written since `not_before`, newest first."""
    found = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            if item["Key"].endswith(".parquet") and item["LastModified"] >= not_before:
                found.append((item["LastModified"], item["Key"], item.get("ETag", "")))
    return [(key, etag) for _, key, etag in sorted(found, reverse=True)]


def _stack_resources(ctx: Context, domain: str) -> list[dict[str, str]]:
    if domain not in ctx.resources:
        pages = ctx.aws("cloudformation").get_paginator("list_stack_resources").paginate(
            StackName=ctx.stack_name(domain))
        ctx.resources[domain] = [r for page in pages for r in page["StackResourceSummaries"]]
    return ctx.resources[domain]


def _expected_lambda_version(ctx: Context, client, function: str) -> tuple[str, str]:
    """The version the Pipeline stack published for the function (its AWS::Lambda::Version resource); when
    the stack does not name it (moto locally), the function's newest published version."""
    pattern = re.compile(rf":function:{re.escape(function)}:(\d+)$")
    for resource in _stack_resources(ctx, "Pipeline"):
        if resource["ResourceType"] == "AWS::Lambda::Version":
            match = pattern.search(resource.get("PhysicalResourceId") or "")
            if match:
                return match.group(1), f"stack resource {resource['LogicalResourceId']}"
    versions = [v["Version"] for page in client.get_paginator("list_versions_by_function").paginate(
        FunctionName=function) for v in page["Versions"] if v["Version"].isdigit()]
    if not versions:
        raise CheckFailed(f"function {function} has no published version")
    return max(versions, key=int), "newest published version; the stack names none"


def _aws_message(error: BaseException) -> str:
    if isinstance(error, ClientError):
        return f"{error.response['Error'].get('Code')}: {error.response['Error'].get('Message')}"
    return str(error)


@dataclass(frozen=True)
class StepSpec:
    name: str
    check: Callable[[Context], str]
    needs: str | None  # the step whose failure makes this one pointless


# The order `make verify` runs them in. The data path is a chain; alarms, dashboards and versions need
# only the outputs.
STEPS: tuple[StepSpec, ...] = (
    StepSpec("outputs", stack_outputs, None),
    StepSpec("health", health, "outputs"),
    StepSpec("ready", ready, "health"),
    StepSpec("token", token, "ready"),
    StepSpec("ingest", ingest, "token"),
    StepSpec("read-back", read_back, "ingest"),
    StepSpec("lake", lake, "read-back"),
    StepSpec("glue-partition", glue_partition, "lake"),
    StepSpec("alarms", alarms, "outputs"),
    StepSpec("dashboards", dashboards_exist, "outputs"),
    StepSpec("archiver-version", archiver_version, "outputs"),
    StepSpec("service-version", service_version, "outputs"),
)
STEP_NAMES: Mapping[str, StepSpec] = {step.name: step for step in STEPS}
