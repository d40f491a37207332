"""The AWS side of a local environment, seeded into moto so `make verify` can check it like a deployed one.

moto's CloudFormation cannot deploy the real templates (MSK, aliases, CodeDeploy, alarms...), so this
creates the equivalent resources with the AWS APIs and minimal stacks whose Outputs carry the local
names, under the real stack names (`Sensor-<env>-Service`, `-Data`, `-Pipeline`, `-Monitoring`):

- Service: an ECS cluster, task definition and service (deployed by moto's CloudFormation, so the stack
  lists the task definition like the real one); the smoke client's secret in Secrets Manager.
- Data: the data-lake bucket's name (the bucket itself is the local profile's moto bucket).
- Pipeline: the archiver function and a published version (CloudFormation), its `live` alias on that
  version (Lambda API: moto's CloudFormation has no aliases); the Glue database and table with the
  same partition projection as cdk/components/lake_catalog.py (both from cdk/components/lake_schema.py).
- Monitoring: every catalogue alarm (and the platform-down composite) and every dashboard.

The function is never invoked here: the local archiver is devstack.pipeline.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import httpx

from app.settings import LOCAL_CLIENTS
from cdk.components.lake_schema import (
    PARQUET_INPUT_FORMAT,
    PARQUET_OUTPUT_FORMAT,
    PARQUET_SERDE,
    PARTITION_KEYS,
    READING_COLUMNS,
    TABLE_NAME,
    table_parameters,
)
from environments.naming import LIVE_ALIAS as ARCHIVER_ALIAS
from environments.naming import EnvironmentNames
from monitoring import catalogue, dashboards

REPO_ROOT = Path(__file__).resolve().parents[1]
LOCAL_ENV = "local"
REGION = "eu-west-1"
LOCAL_CREDENTIALS = {"aws_access_key_id": "local", "aws_secret_access_key": "local"}
RAW_PREFIX = "raw/"
SMOKE_CLIENT_ID = "deploy-smoke"
# moto's ECS reports this many running tasks per service when its server runs with it in the environment.
MOTO_ECS_ENVIRONMENT = {"MOTO_ECS_SERVICE_RUNNING": "1"}


@dataclass(frozen=True)
class SmokeClient:
    """The generated smoke-test credential, and the `SENSOR_CLIENTS` entry that lets the app accept it."""

    client_id: str
    client_secret: str

    def client_entry(self) -> dict[str, Any]:
        return {"client_id": self.client_id, "secret_sha256": hashlib.sha256(self.client_secret.encode()).hexdigest(),
                "scopes": ["ingest", "read"], "rate_per_second": 100.0, "burst": 100}


def seed_environment(*, endpoint_url: str, env_name: str, app_url: str, lake_bucket: str,
                     max_tasks: int = 20, read_replica: bool = False) -> SmokeClient:
    """Create the environment's stacks and resources in the moto server at `endpoint_url`."""
    session = boto3.session.Session(region_name=REGION, **LOCAL_CREDENTIALS)

    def client(service: str):
        return session.client(service, endpoint_url=endpoint_url)

    names = EnvironmentNames(env_name)
    prefix = names.prefix
    smoke = SmokeClient(SMOKE_CLIENT_ID, secrets.token_urlsafe(36))
    smoke_secret_arn = client("secretsmanager").create_secret(
        Name=f"{prefix}-smoke-client", SecretString=json.dumps({"client_id": smoke.client_id,
                                                                 "client_secret": smoke.client_secret}))["ARN"]
    cloudformation = client("cloudformation")
    _create_stack(cloudformation, names.stack("Service"), _service_template(prefix), {
        "LoadBalancerUrl": app_url, "ClusterName": names.ecs_cluster, "ServiceName": names.ingest_service,
        "SmokeClientSecretArn": smoke_secret_arn})
    _create_stack(cloudformation, names.stack("Data"), _placeholder_template(), {
        "DataLakeBucketName": lake_bucket, "ReadingsTopic": "sensor-readings"})

    database, table = names.glue_database, TABLE_NAME
    _create_lake_table(client("glue"), database, table, lake_bucket)
    _create_stack(cloudformation, names.stack("Pipeline"), _pipeline_template(prefix), {
        "ArchiverFunctionName": names.archiver_function,
        "ArchiverAliasName": f"{names.archiver_function}:{ARCHIVER_ALIAS}",
        "GlueDatabaseName": database, "GlueTableName": table})
    version = client("lambda").list_versions_by_function(FunctionName=names.archiver_function)["Versions"][-1]["Version"]
    client("lambda").create_alias(FunctionName=names.archiver_function, Name=ARCHIVER_ALIAS, FunctionVersion=version)

    deployed = local_deployed(env_name, max_tasks=max_tasks, read_replica=read_replica)
    put_catalogue_alarms(client("cloudwatch"), deployed)
    for spec in dashboards.DASHBOARDS:
        client("cloudwatch").put_dashboard(DashboardName=spec.dashboard_name(prefix),
                                           DashboardBody=json.dumps({"widgets": []}))
    _create_stack(cloudformation, names.stack("Monitoring"), _placeholder_template(), {
        spec.output_id: f"local dashboard {spec.dashboard_name(prefix)}" for spec in dashboards.DASHBOARDS})
    return smoke


def seed_for_make_up(env: dict[str, str], *, app_port: int, lake_bucket: str, var_dir: Path) -> str:
    """`make up PROFILE=full`: seed the `local` environment into the profile's moto server, let the app accept
    the smoke client next to the local clients (SENSOR_CLIENTS in `env`), and write the files `make verify
    ENV=local` reads. Returns the banner line."""
    endpoint = env["SENSOR_S3_ENDPOINT_URL"]
    smoke = seed_environment(endpoint_url=endpoint, env_name=LOCAL_ENV, app_url=f"http://127.0.0.1:{app_port}",
                             lake_bucket=lake_bucket)
    env["SENSOR_CLIENTS"] = json.dumps([client.model_dump(mode="json") for client in LOCAL_CLIENTS]
                                       + [smoke.client_entry()])
    write_verify_files(var_dir, endpoint)
    return f"Verify      make verify ENV=local  (stacks {EnvironmentNames(LOCAL_ENV).stack('*')} seeded into moto {endpoint})"


def write_verify_files(directory: Path, endpoint_url: str, env_name: str = LOCAL_ENV) -> tuple[Path, Path]:
    """What `make verify ENV=local` reads: `local-cdk.json` (the repository's cdk.json plus the environment
    configured like dev: the alarms that apply and the smoke client's id come from it) and `local-aws.env`
    (the moto endpoint and placeholder credentials, sourced by the Makefile)."""
    document = json.loads((REPO_ROOT / "cdk.json").read_text())
    environments = document["context"]["environments"]
    environments[env_name] = json.loads(json.dumps(environments["dev"]))
    config, aws_env = directory / "local-cdk.json", directory / "local-aws.env"
    config.write_text(json.dumps(document, indent=1))
    aws_env.write_text(f"AWS_ENDPOINT_URL={endpoint_url}\nAWS_ACCESS_KEY_ID=local\nAWS_SECRET_ACCESS_KEY=local\n"
                       f"AWS_DEFAULT_REGION={REGION}\n")
    return config, aws_env


def put_catalogue_alarms(cloudwatch, deployed: catalogue.Deployed, only: tuple[str, ...] | None = None) -> None:
    """Put the catalogue's alarms (all active ones, or those named in `only`) with their real metrics."""
    for spec in catalogue.active(deployed):
        if only is not None and spec.alarm_name(deployed.name_prefix) not in only:
            continue
        cloudwatch.put_metric_alarm(
            AlarmName=spec.alarm_name(deployed.name_prefix), AlarmDescription=spec.description,
            ComparisonOperator=spec.comparison, Threshold=spec.threshold_for(deployed),
            EvaluationPeriods=spec.evaluation_periods, DatapointsToAlarm=spec.datapoints_to_alarm,
            TreatMissingData=spec.treat_missing_data, **_alarm_metric(spec.source(deployed), spec.period_seconds))
    composite = f"{deployed.name_prefix}-critical-{catalogue.PLATFORM_DOWN}"
    if only is None or composite in only:
        name = catalogue.by_name(catalogue.PLATFORM_DOWN_ALL_OF).alarm_name(deployed.name_prefix)
        _put_composite_alarm(cloudwatch.meta.endpoint_url, composite, f'ALARM("{name}")')


def _put_composite_alarm(endpoint_url: str, name: str, rule: str) -> None:
    """moto 5.2 has no PutCompositeAlarm; its PutMetricAlarm takes an AlarmRule in the query form (which
    botocore's PutMetricAlarm does not send), so the composite is registered by name that way."""
    response = httpx.post(f"{endpoint_url}/", data={
        "Action": "PutMetricAlarm", "Version": "2010-08-01", "AlarmName": name, "AlarmRule": rule}, headers={
        "Authorization": f"AWS4-HMAC-SHA256 Credential=local/20260101/{REGION}/monitoring/aws4_request, "
                         "SignedHeaders=host, Signature=0"})
    response.raise_for_status()


def local_deployed(env_name: str, *, max_tasks: int = 20, read_replica: bool = False) -> catalogue.Deployed:
    """Local names of the resources the catalogue's metrics point at (only `applies` and names matter here)."""
    return catalogue.deployed_by_name(
        env_name, region=REGION, load_balancer="app/local/0", blue_target_group="targetgroup/blue/0",
        green_target_group="targetgroup/green/0", replica=read_replica, brokers=2, max_tasks=max_tasks,
        state_cache_max_gib=1)


def _alarm_metric(source: catalogue.Source, period: int) -> dict[str, Any]:
    def stat(metric: catalogue.Metric) -> dict[str, Any]:
        return {"Metric": {"Namespace": metric.namespace, "MetricName": metric.name,
                           "Dimensions": [{"Name": k, "Value": v} for k, v in metric.dimensions.items()]},
                "Period": period, "Stat": metric.statistic}

    if isinstance(source, catalogue.Metric):
        return {"Metrics": [{"Id": "m", "MetricStat": stat(source), "ReturnData": True}]}
    return {"Metrics": [{"Id": "e", "Expression": source.expression, "Label": source.label, "ReturnData": True},
                        *({"Id": key, "MetricStat": stat(metric), "ReturnData": False}
                          for key, metric in source.metrics.items())]}


def _create_lake_table(glue, database: str, table: str, bucket: str) -> None:
    """The table input cdk/components/lake_catalog.py renders (the catalog id aside), from the same lake_schema."""
    location = f"s3://{bucket}/{RAW_PREFIX}"
    parameters = table_parameters(location)
    glue.create_database(DatabaseInput={"Name": database})
    glue.create_table(DatabaseName=database, TableInput={
        "Name": table, "TableType": "EXTERNAL_TABLE", "Parameters": parameters,
        "PartitionKeys": [{"Name": name, "Type": "int"} for name, _, _ in PARTITION_KEYS],
        "StorageDescriptor": {
            "Location": location, "InputFormat": PARQUET_INPUT_FORMAT, "OutputFormat": PARQUET_OUTPUT_FORMAT,
            "SerdeInfo": {"SerializationLibrary": PARQUET_SERDE, "Parameters": {"serialization.format": "1"}},
            "Columns": [{"Name": name, "Type": kind} for name, kind, _ in READING_COLUMNS]}})


def _create_stack(cloudformation, name: str, template: dict[str, Any], outputs: dict[str, str]) -> None:
    template = {**template, "Outputs": {key: {"Value": value} for key, value in outputs.items()}}
    cloudformation.create_stack(StackName=name, TemplateBody=json.dumps(template), Capabilities=["CAPABILITY_IAM"])


def _placeholder_template() -> dict[str, Any]:
    # A stack needs one resource; its outputs are what `make verify` reads.
    return {"Resources": {"Placeholder": {"Type": "AWS::CloudFormation::WaitConditionHandle"}}}


def _service_template(prefix: str) -> dict[str, Any]:
    return {"Resources": {
        "Cluster": {"Type": "AWS::ECS::Cluster", "Properties": {"ClusterName": prefix}},
        "TaskDefinition": {"Type": "AWS::ECS::TaskDefinition", "Properties": {
            "Family": f"{prefix}-ingest", "RequiresCompatibilities": ["FARGATE"], "NetworkMode": "awsvpc",
            "Cpu": "256", "Memory": "512",
            "ContainerDefinitions": [{"Name": "app", "Image": "sensor-app:local", "Essential": True}]}},
        "Service": {"Type": "AWS::ECS::Service", "Properties": {
            "ServiceName": f"{prefix}-ingest", "Cluster": {"Ref": "Cluster"},
            "TaskDefinition": {"Ref": "TaskDefinition"}, "DesiredCount": 1, "LaunchType": "FARGATE"}},
    }}


def _pipeline_template(prefix: str) -> dict[str, Any]:
    return {"Resources": {
        "ArchiverRole": {"Type": "AWS::IAM::Role", "Properties": {
            "RoleName": f"{prefix}-archiver", "AssumeRolePolicyDocument": {"Version": "2012-10-17", "Statement": [
                {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}]}}},
        "Archiver": {"Type": "AWS::Lambda::Function", "Properties": {
            "FunctionName": f"{prefix}-archiver", "Runtime": "python3.13", "Handler": "handler.handler",
            "Role": {"Fn::GetAtt": ["ArchiverRole", "Arn"]},
            "Code": {"ZipFile": "def handler(event, context):\n    return {}\n"}}},
        "ArchiverVersion": {"Type": "AWS::Lambda::Version", "Properties": {"FunctionName": {"Ref": "Archiver"}}},
    }}
