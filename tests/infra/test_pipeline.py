"""Pipeline stack: the MSK -> S3 archiver, the Glue catalog over the lake, the optional read API."""

from __future__ import annotations

import dataclasses
import itertools
import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk import aws_lambda as lambda_
from aws_cdk.assertions import Template

from cdk.app import LAMBDA_SOURCES
from cdk.components import bundling
from cdk.components.bundling import BundlingError, PipLocalBundling, PythonBundle, SourceFile
from cdk.components.deploy_hooks import HOOK_RUNTIME
from cdk.stacks.pipeline import LAMBDA_RUNTIME
from tests.conftest import REPO_ROOT
from tests.infra.conftest import SKIP_BUNDLING, Synthesized, only

ARCHIVER_ACTIONS = {
    "logs:CreateLogStream",
    "logs:PutLogEvents",
    "ec2:CreateNetworkInterface",
    "ec2:DescribeNetworkInterfaces",
    "ec2:DeleteNetworkInterface",
    "ec2:AssignPrivateIpAddresses",
    "ec2:UnassignPrivateIpAddresses",
    "ec2:DescribeSubnets",
    "ec2:DescribeSecurityGroups",
    "ec2:DescribeVpcs",
    "kafka:DescribeCluster",
    "kafka:DescribeClusterV2",
    "kafka:GetBootstrapBrokers",
    "kafka-cluster:Connect",
    "kafka-cluster:DescribeClusterDynamicConfiguration",
    "kafka-cluster:DescribeTopic",
    "kafka-cluster:ReadData",
    "kafka-cluster:DescribeGroup",
    "kafka-cluster:AlterGroup",
    "sqs:SendMessage",
    "s3:PutObject",
}


# --- helpers -----------------------------------------------------------------------------------------


_INTRINSICS = {
    "Ref": lambda argument: f"<{argument}>",
    "Fn::GetAtt": lambda argument: f"<{argument[0]}.{argument[1]}>",
    "Fn::GetStackOutput": lambda argument: f"<{argument['StackName']}:{argument['OutputName']}>",
    "Fn::Join": lambda argument: argument[0].join(text(part) for part in argument[1]),
    "Fn::Select": lambda argument: f"select({argument[0]},{text(argument[1])})",
    "Fn::Split": lambda argument: f"split({argument[0]},{text(argument[1])})",
}


def text(value: Any) -> str:
    """A CloudFormation value as readable text: `Fn::Join` concatenated, references in <...>."""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return ",".join(text(item) for item in value)
    ((function, argument),) = value.items()
    return _INTRINSICS[function](argument)


def resources(env: Synthesized, resource_type: str, prefix: str = "") -> dict[str, dict[str, Any]]:
    """Resources of one type whose logical id starts with `prefix` (the construct path, flattened)."""
    return {
        logical_id: resource
        for logical_id, resource in env.pipeline.find_resources(resource_type).items()
        if logical_id.startswith(prefix)
    }


def one(env: Synthesized, resource_type: str, prefix: str) -> tuple[str, dict[str, Any]]:
    found = resources(env, resource_type, prefix)
    assert len(found) == 1, f"expected one {resource_type} under {prefix}, found {sorted(found)}"
    return next(iter(found.items()))


def statements(env: Synthesized, prefix: str) -> dict[str, dict[str, Any]]:
    """The execution role's inline policy statements by Sid."""
    _, role = one(env, "AWS::IAM::Role", prefix)
    (policy,) = role["Properties"]["Policies"]
    return {statement["Sid"]: statement for statement in policy["PolicyDocument"]["Statement"]}


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def data_output(env: Synthesized, stack: str, output_prefix: str) -> str:
    """How a consumer spells a weak reference to another stack's output (see `text`)."""
    return f"<Sensor-{env.config.name}-{stack}:PublishOutput{output_prefix}"


# --- archiver: event source mapping, alias, function ------------------------------------------------


def test_event_source_mapping_reads_the_topic_into_the_alias_with_config_values(
    each_env: Synthesized,
) -> None:
    pipeline = each_env.config.pipeline
    mapping = only(each_env.pipeline, "AWS::Lambda::EventSourceMapping")["Properties"]
    alias_id, alias = one(each_env, "AWS::Lambda::Alias", "ArchiverLiveAlias")
    queue_id, _ = one(each_env, "AWS::SQS::Queue", "ArchiverFailedBatches")

    # The alias ARN's function-name part plus ":live": the mapping invokes the alias, not $LATEST.
    assert text(mapping["FunctionName"]) == f"select(6,split(:,<{alias_id}>)):live"
    assert alias["Properties"]["Name"] == "live"
    assert text(mapping["EventSourceArn"]).startswith(data_output(each_env, "Data", "RefStreamingCluster"))
    assert mapping["Topics"] == [each_env.config.streaming.topic_name]
    assert mapping["StartingPosition"] == pipeline.starting_position
    assert mapping["BatchSize"] == pipeline.batch_size
    assert mapping["MaximumBatchingWindowInSeconds"] == pipeline.maximum_batching_window_seconds
    assert mapping["AmazonManagedKafkaEventSourceConfig"] == {
        "ConsumerGroupId": f"sensor-{each_env.config.name}-archiver"
    }
    assert mapping["DestinationConfig"] == {"OnFailure": {"Destination": {"Fn::GetAtt": [queue_id, "Arn"]}}}


def test_event_source_mapping_follows_a_changed_config(synth_variant) -> None:
    def tune(raw: dict[str, Any]) -> None:
        raw["pipeline"].update(batch_size=250, maximum_batching_window_seconds=0, starting_position="LATEST")

    env = synth_variant("dev", tune)
    mapping = only(env.pipeline, "AWS::Lambda::EventSourceMapping")["Properties"]
    assert (mapping["BatchSize"], mapping["MaximumBatchingWindowInSeconds"], mapping["StartingPosition"]) == (
        250,
        0,
        "LATEST",
    )


def test_failure_queue_is_encrypted_tls_only_and_keeps_records_fourteen_days(each_env: Synthesized) -> None:
    queue_id, queue = one(each_env, "AWS::SQS::Queue", "ArchiverFailedBatches")
    assert queue["Properties"]["KmsMasterKeyId"] == "alias/aws/sqs"  # KMS (checkov CKV_AWS_27)
    assert queue["Properties"]["MessageRetentionPeriod"] == 14 * 24 * 3600
    _, policy = one(each_env, "AWS::SQS::QueuePolicy", "ArchiverFailedBatches")
    (deny,) = policy["Properties"]["PolicyDocument"]["Statement"]
    assert deny["Effect"] == "Deny" and deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    assert policy["Properties"]["Queues"] == [{"Ref": queue_id}]


def test_alias_points_at_the_current_version(each_env: Synthesized) -> None:
    for prefix in ("Archiver", "ReadApi"):
        function_id, _ = one(each_env, "AWS::Lambda::Function", f"{prefix}Function")
        version_id, version = one(each_env, "AWS::Lambda::Version", f"{prefix}FunctionCurrentVersion")
        _, alias = one(each_env, "AWS::Lambda::Alias", f"{prefix}LiveAlias")
        assert version["Properties"]["FunctionName"] == {"Ref": function_id}
        assert alias["Properties"] == {
            "FunctionName": {"Ref": function_id},
            "FunctionVersion": {"Fn::GetAtt": [version_id, "Version"]},
            "Name": "live",
        }


def test_archiver_function_runtime_size_network_and_environment(each_env: Synthesized) -> None:
    config = each_env.config
    _, function = one(each_env, "AWS::Lambda::Function", "ArchiverFunction")
    props = function["Properties"]
    assert props["FunctionName"] == f"sensor-{config.name}-archiver"
    assert (props["Runtime"], props["Architectures"], props["Handler"]) == (
        "python3.11",
        ["arm64"],
        "handler.handler",
    )
    assert props["MemorySize"] == config.pipeline.archiver_memory_mb
    assert props["Timeout"] == config.pipeline.archiver_timeout_seconds
    environment = {name: text(value) for name, value in props["Environment"]["Variables"].items()}
    assert environment == {
        "DATA_LAKE_BUCKET": f"sensor-{config.name}-datalake-<AWS::AccountId>-{config.region}",
        "POWERTOOLS_SERVICE_NAME": "archiver",
        "POWERTOOLS_METRICS_NAMESPACE": "SensorPlatform",
    }
    subnets = [text(subnet) for subnet in props["VpcConfig"]["SubnetIds"]]
    assert len(subnets) == len(config.network.availability_zones)
    assert all("privateSubnet" in subnet for subnet in subnets)


# --- least privilege ---------------------------------------------------------------------------------


def test_archiver_role_is_scoped_to_its_cluster_topic_group_queue_and_lake_prefixes(
    each_env: Synthesized,
) -> None:
    name, region = each_env.config.name, each_env.config.region
    found = statements(each_env, "ArchiverExecutionRole")
    actions = {action for statement in found.values() for action in as_list(statement["Action"])}
    assert actions == ARCHIVER_ACTIONS
    assert not any("*" in action for action in actions)

    cluster = data_output(each_env, "Data", "RefStreamingCluster")
    for sid in ("EventSourceDescribesCluster", "KafkaConnect"):
        assert text(found[sid]["Resource"]).startswith(cluster)
    assert text(found["KafkaReadReadings"]["Resource"]).startswith(
        data_output(each_env, "Data", "FnGetAttStreamingReadingsTopic")
    )
    assert text(found["KafkaConsumerGroup"]["Resource"]) == (
        f"arn:<AWS::Partition>:kafka:{region}:<AWS::AccountId>:group/sensor-{name}/*/sensor-{name}-archiver"
    )
    queue_id, _ = one(each_env, "AWS::SQS::Queue", "ArchiverFailedBatches")
    assert found["ReportFailedBatches"]["Resource"] == {"Fn::GetAtt": [queue_id, "Arn"]}
    bucket = f"arn:<AWS::Partition>:s3:::sensor-{name}-datalake-<AWS::AccountId>-{region}"
    assert found["WriteLakeObjects"]["Action"] == "s3:PutObject"
    assert sorted(text(resource) for resource in found["WriteLakeObjects"]["Resource"]) == [
        f"{bucket}/dead-letter/archiver/*",
        f"{bucket}/processed/*",
        f"{bucket}/raw/*",
    ]
    log_id, _ = one(each_env, "AWS::Logs::LogGroup", "ArchiverLogs")
    assert found["WriteOwnLogs"]["Resource"] == {"Fn::GetAtt": [log_id, "Arn"]}
    # Only the EC2 network-interface actions, which support no resource scoping, use "*".
    assert [sid for sid, statement in found.items() if statement["Resource"] == "*"] == [
        "VpcNetworkInterfaces"
    ]


def test_roles_take_no_managed_or_generated_policies(each_env: Synthesized) -> None:
    # Except CodeDeploy's service role (AWSCodeDeployRoleForLambdaLimited; tests/infra/test_lambda_deployment.py).
    for _, role in resources(each_env, "AWS::IAM::Role").items():
        if role["Properties"]["AssumeRolePolicyDocument"]["Statement"][0]["Principal"] == {
            "Service": "codedeploy.amazonaws.com"
        }:
            continue
        assert "ManagedPolicyArns" not in role["Properties"]
        (statement,) = role["Properties"]["AssumeRolePolicyDocument"]["Statement"]
        assert statement["Principal"] == {"Service": "lambda.amazonaws.com"}
    # CDK's automatic grants (event source, queue, log group) would land in a default policy.
    assert resources(each_env, "AWS::IAM::Policy") == {}


def test_read_api_role_reads_exactly_its_three_secrets(each_env: Synthesized) -> None:
    found = statements(each_env, "ReadApiExecutionRole")
    assert set(found) == {"WriteOwnLogs", "VpcNetworkInterfaces", "ReadOwnSecrets"}
    secrets = found["ReadOwnSecrets"]
    assert sorted(secrets["Action"]) == ["secretsmanager:DescribeSecret", "secretsmanager:GetSecretValue"]
    sources = sorted(text(resource) for resource in secrets["Resource"])
    assert [source.split(":PublishOutputRef")[1][:24] for source in sources] == [
        "DatabaseCredentialsAttac",
        "IngestApiClients37956D9E",
        "IngestJwtSigningKeyD3E96",
    ]
    assert not any("*" in action for statement in found.values() for action in as_list(statement["Action"]))


# --- network -----------------------------------------------------------------------------------------


def _rules(env: Synthesized, resource_type: str) -> list[dict[str, Any]]:
    return [
        {key: text(value) if isinstance(value, dict) else value for key, value in rule["Properties"].items()}
        for rule in env.pipeline.find_resources(resource_type).values()
    ]


def test_only_the_event_source_pollers_reach_msk_through_the_cluster_group(
    each_env: Synthesized,
) -> None:
    msk = data_output(each_env, "Data", "FnGetAttStreamingSecurityGroup")
    archiver_id, archiver = one(each_env, "AWS::EC2::SecurityGroup", "ArchiverSecurityGroup")
    archiver_group = f"<{archiver_id}.GroupId>"
    assert archiver["Properties"]["SecurityGroupEgress"] == [
        {
            "CidrIp": "0.0.0.0/0",
            "Description": "HTTPS to S3 (gateway endpoint)",
            "FromPort": 443,
            "IpProtocol": "tcp",
            "ToPort": 443,
        }
    ]
    ingress = [
        rule for rule in _rules(each_env, "AWS::EC2::SecurityGroupIngress") if rule["GroupId"].startswith(msk)
    ]
    egress = [
        rule
        for rule in _rules(each_env, "AWS::EC2::SecurityGroupEgress")
        if rule["GroupId"] in (archiver_group,) or rule["GroupId"].startswith(msk)
    ]
    assert sorted(
        (rule["SourceSecurityGroupId"][:20], rule["FromPort"], rule["ToPort"]) for rule in ingress
    ) == [(msk[:20], 9098, 9098)]
    assert (
        sorted(
            (
                rule["GroupId"][:20],
                rule.get("DestinationSecurityGroupId", rule.get("CidrIp"))[:20],
                rule["FromPort"],
            )
            for rule in egress
        )
        == sorted(
            [
                (msk[:20], msk[:20], 9098),  # pollers (cluster group) -> brokers
                (msk[:20], "0.0.0.0/0", 443),  # pollers -> Lambda and STS APIs
            ]
        )
    )


def test_read_api_reaches_only_the_database_and_the_secrets_endpoint(each_env: Synthesized) -> None:
    database = data_output(each_env, "Data", "FnGetAttDatabaseSecurityGroup")
    group_id, group = one(each_env, "AWS::EC2::SecurityGroup", "ReadApiSecurityGroup")
    assert group["Properties"]["SecurityGroupEgress"] == [
        {
            "CidrIp": each_env.config.network.vpc_cidr,
            "Description": "Secrets Manager endpoint",
            "FromPort": 443,
            "IpProtocol": "tcp",
            "ToPort": 443,
        }
    ]
    (into_database,) = [
        rule
        for rule in _rules(each_env, "AWS::EC2::SecurityGroupIngress")
        if rule["GroupId"].startswith(database)
    ]
    assert (into_database["SourceSecurityGroupId"], into_database["FromPort"], into_database["ToPort"]) == (
        f"<{group_id}.GroupId>",
        5432,
        5432,
    )
    (to_database,) = [
        rule
        for rule in _rules(each_env, "AWS::EC2::SecurityGroupEgress")
        if rule["GroupId"] == f"<{group_id}.GroupId>"
    ]
    assert to_database["DestinationSecurityGroupId"].startswith(database) and to_database["FromPort"] == 5432


def test_rules_naming_pipeline_groups_live_in_the_pipeline_stack(each_env: Synthesized) -> None:
    """A rule in the data stack that named a pipeline group would make the stacks depend on each other."""
    pipeline = each_env.platform.pipeline
    assert each_env.platform.data in pipeline.dependencies
    for stack in (each_env.platform.network, each_env.platform.data, each_env.platform.service):
        assert pipeline not in stack.dependencies
        assert pipeline.stack_name not in json.dumps(
            each_env.templates[stack.stack_name.rsplit("-", 1)[1]].to_json()
        )


# --- logs --------------------------------------------------------------------------------------------


def test_log_groups_keep_the_environment_retention(each_env: Synthesized) -> None:
    groups = resources(each_env, "AWS::Logs::LogGroup")
    assert {logical_id.rstrip("0123456789ABCDEF") for logical_id in groups} == {
        "ArchiverLogs",
        "ReadApiLogs",
        "ArchiverDeploymentHookLogs",
        "ReadApiDeploymentHookLogs",
    }
    assert {group["Properties"]["RetentionInDays"] for group in groups.values()} == {
        each_env.config.log_retention_days
    }
    for prefix, name in (("Archiver", "archiver"), ("ReadApi", "read-api")):
        log_id, log_group = one(each_env, "AWS::Logs::LogGroup", f"{prefix}Logs")
        assert log_group["Properties"]["LogGroupName"] == f"/aws/lambda/sensor-{each_env.config.name}-{name}"
        _, function = one(each_env, "AWS::Lambda::Function", f"{prefix}Function")
        assert function["Properties"]["LoggingConfig"] == {"LogGroup": {"Ref": log_id}}


# --- Glue catalog ------------------------------------------------------------------------------------


def test_glue_table_projects_hourly_partitions_over_raw(each_env: Synthesized) -> None:
    name, region = each_env.config.name, each_env.config.region
    database = only(each_env.pipeline, "AWS::Glue::Database")["Properties"]
    assert database["DatabaseInput"]["Name"] == f"sensor_{name}_lake"
    table = only(each_env.pipeline, "AWS::Glue::Table")["Properties"]
    assert table["DatabaseName"] == f"sensor_{name}_lake"
    table_input = table["TableInput"]
    assert (table_input["Name"], table_input["TableType"]) == ("readings_raw", "EXTERNAL_TABLE")
    bucket = f"s3://sensor-{name}-datalake-<AWS::AccountId>-{region}"
    parameters = {key: text(value) for key, value in table_input["Parameters"].items()}
    assert parameters == {
        "classification": "parquet",
        "EXTERNAL": "TRUE",
        "projection.enabled": "true",
        "storage.location.template": (
            f"{bucket}/raw/year=${{year}}/month=${{month}}/day=${{day}}/hour=${{hour}}/"
        ),
        "projection.year.type": "integer",
        "projection.year.range": "2016,2050",
        "projection.year.digits": "4",
        "projection.month.type": "integer",
        "projection.month.range": "1,12",
        "projection.month.digits": "2",
        "projection.day.type": "integer",
        "projection.day.range": "1,31",
        "projection.day.digits": "2",
        "projection.hour.type": "integer",
        "projection.hour.range": "0,23",
        "projection.hour.digits": "2",
    }
    assert table_input["PartitionKeys"] == [
        {"Name": key, "Type": "int"} for key in ("year", "month", "day", "hour")
    ]
    storage = table_input["StorageDescriptor"]
    assert text(storage["Location"]) == f"{bucket}/raw/"
    assert (
        storage["SerdeInfo"]["SerializationLibrary"]
        == "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe"
    )
    assert [(column["Name"], column["Type"]) for column in storage["Columns"]] == [
        ("id", "bigint"),
        ("device_id", "string"),
        ("tag", "string"),
        ("timestamp", "timestamp"),
        ("value", "double"),
        ("is_anomaly", "boolean"),
        ("z_score", "double"),
        ("device_type", "string"),
        ("latitude", "double"),
        ("longitude", "double"),
        ("status", "string"),
        ("firmware_version", "string"),
        ("kafka_topic", "string"),
        ("kafka_partition", "int"),
        ("kafka_offset", "bigint"),
    ]


def test_glue_table_matches_the_archivers_parquet_schema_and_key_layout(dev: Synthesized) -> None:
    """The contract with lambda/archiver/lake_layout.py: same columns and types, same partition path."""
    pa = pytest.importorskip("pyarrow")
    sys.path.insert(0, str(REPO_ROOT / "lambda" / "archiver"))
    try:
        import lake_layout  # noqa: PLC0415 - the archiver's own module, importable only from its directory
    finally:
        sys.path.remove(str(REPO_ROOT / "lambda" / "archiver"))
    glue_types = {
        pa.int64(): "bigint",
        pa.int32(): "int",
        pa.string(): "string",
        pa.float64(): "double",
        pa.bool_(): "boolean",
    }
    expected = [
        (field.name, "timestamp" if pa.types.is_timestamp(field.type) else glue_types[field.type])
        for field in lake_layout.PARQUET_SCHEMA
    ]
    table_input = only(dev.pipeline, "AWS::Glue::Table")["Properties"]["TableInput"]
    assert [
        (column["Name"], column["Type"]) for column in table_input["StorageDescriptor"]["Columns"]
    ] == expected

    hour = datetime(2026, 5, 1, 7, tzinfo=UTC)
    template = text(table_input["Parameters"]["storage.location.template"])
    projected = template.replace("${year}", "2026").replace("${month}", "05").replace("${day}", "01")
    projected = projected.replace("${hour}", "07")
    assert projected.endswith(f"/{lake_layout.RAW_PREFIX}/{lake_layout.hour_path(hour)}/")


# --- read API ----------------------------------------------------------------------------------------


def test_read_api_is_served_through_the_services_alb_edge(each_env: Synthesized) -> None:
    """The reads share the ingest path's edge (docs/security.md): the same HTTPS production listener
    (HSTS), hence the same WAF web ACL with its per-IP rate limit, and no API Gateway of their own."""
    alias_id, _ = one(each_env, "AWS::Lambda::Alias", "ReadApiLiveAlias")
    target_group_id, target_group = one(each_env, "AWS::ElasticLoadBalancingV2::TargetGroup", "ReadApiTargetGroup")
    assert target_group["Properties"]["TargetType"] == "lambda"
    assert [text(t["Id"]) for t in target_group["Properties"]["Targets"]] == [f"<{alias_id}>"]
    _, rule = one(each_env, "AWS::ElasticLoadBalancingV2::ListenerRule", "ReadApiListenerRule")
    props = rule["Properties"]
    assert props["Priority"] == 5  # before the service's own forward rule (10)
    assert props["Conditions"] == [{"Field": "path-pattern", "PathPatternConfig": {"Values": ["/read", "/read/*"]}}]
    assert props["Actions"] == [{"Type": "forward", "TargetGroupArn": {"Ref": target_group_id}}]
    listener = text(props["ListenerArn"])
    https = "Https" if each_env.config.https else "Http"
    assert f"RefIngestLoadBalancer{https}" in listener.replace("<", "").replace(">", ""), listener
    (permission,) = [p for p in resources(each_env, "AWS::Lambda::Permission", "ReadApi").values()
                     if p["Properties"]["Principal"] == "elasticloadbalancing.amazonaws.com"]
    assert text(permission["Properties"]["FunctionName"]) == f"<{alias_id}>"
    assert permission["Properties"]["SourceAccount"] == {"Ref": "AWS::AccountId"}  # this account's ALBs only
    for resource_type in ("AWS::ApiGatewayV2::Api", "AWS::ApiGatewayV2::Stage", "AWS::ApiGateway::RestApi"):
        each_env.pipeline.resource_count_is(resource_type, 0)


def test_read_api_function_fetches_its_secrets_and_runs_in_the_vpc(each_env: Synthesized) -> None:
    config = each_env.config
    _, function = one(each_env, "AWS::Lambda::Function", "ReadApiFunction")
    props = function["Properties"]
    assert props["FunctionName"] == f"sensor-{config.name}-read-api"
    assert (props["Runtime"], props["Architectures"], props["Handler"]) == (
        "python3.11",
        ["arm64"],
        "handler.handler",
    )
    assert (props["MemorySize"], props["Timeout"]) == (
        config.pipeline.read_api_memory_mb,
        config.pipeline.read_api_timeout_seconds,
    )
    environment = {name: text(value) for name, value in props["Environment"]["Variables"].items()}
    assert {name: value for name, value in environment.items() if not name.endswith("_SECRET_ARN")} == {
        "APP_ENV": f"sensor-{config.name}",
        "DB_NAME": config.database.database_name,
        "SENSOR_DB_SSLMODE": "verify-full",  # against the RDS CA bundle in the Lambda bundle
        "SENSOR_DB_SSL_ROOT_CERT": "/var/task/rds-global-bundle.pem",
        "SENSOR_DB_POOL_SIZE": "1",
    }
    assert environment["DB_SECRET_ARN"].startswith(data_output(each_env, "Data", "RefDatabaseCredentials"))
    assert environment["JWT_SIGNING_KEY_SECRET_ARN"].startswith(
        data_output(each_env, "Service", "RefIngestJwtSigningKey")
    )
    assert environment["API_CLIENTS_SECRET_ARN"].startswith(
        data_output(each_env, "Service", "RefIngestApiClients")
    )
    assert len(props["VpcConfig"]["SubnetIds"]) == len(config.network.availability_zones)


def test_outputs_name_the_functions_catalog_and_api_url(each_env: Synthesized) -> None:
    outputs = {name: text(output["Value"]) for name, output in each_env.pipeline.to_json()["Outputs"].items()}
    name = each_env.config.name
    assert outputs["GlueDatabaseName"] == f"sensor_{name}_lake"
    assert outputs["GlueTableName"] == "readings_raw"
    assert outputs["ArchiverFunctionName"].startswith("<ArchiverFunction")
    assert outputs["ArchiverAliasName"].endswith(":live")
    assert outputs["ReadApiUrl"] == f"https://{each_env.config.domain_name}/read"
    assert outputs["ArchiverFailedBatchesQueueUrl"].startswith("<ArchiverFailedBatches")


def test_read_api_is_absent_when_disabled(synth_variant) -> None:
    env = synth_variant("prod", lambda raw: raw["pipeline"].update(read_api_enabled=False))
    assert env.platform.pipeline.read_api is None
    for resource_type in ("AWS::ElasticLoadBalancingV2::ListenerRule", "AWS::ElasticLoadBalancingV2::TargetGroup"):
        env.pipeline.resource_count_is(resource_type, 0)
    functions = env.pipeline.find_resources("AWS::Lambda::Function")
    assert {name.rstrip("0123456789ABCDEF") for name in functions} == {"ArchiverFunction", "ArchiverDeploymentHook"}
    env.pipeline.resource_count_is("AWS::CodeDeploy::DeploymentGroup", 1)
    assert not any(name.startswith("ReadApi") for name in env.pipeline.to_json()["Outputs"])
    # Without the read API the pipeline does not depend on the service stack (its secrets live there).
    assert env.platform.service not in env.platform.pipeline.dependencies
    report = json.loads((env.outdir / "validation-report.json").read_text())
    (nag,) = [plugin for plugin in report["pluginReports"] if plugin["pluginName"] == "AwsSolutions"]
    assert nag["violations"] == []
    assert not any("ReadApi" in finding["acknowledgedAt"] for finding in nag["suppressedViolations"])


# --- local bundling ----------------------------------------------------------------------------------


def test_lambda_assets_point_at_their_sources_when_bundling_is_skipped(dev: Synthesized) -> None:
    manifest = json.loads((dev.outdir / f"Sensor-{dev.config.name}-Pipeline.assets.json").read_text())
    sources = {entry["displayName"]: entry["source"]["path"] for entry in manifest["files"].values()}
    assert sources["Archiver/Function/Code"] == str(REPO_ROOT / "lambda" / "archiver")
    assert sources["ReadApi/Function/Code"] == str(REPO_ROOT / "lambda" / "api")


def _asset_key(bundle: PythonBundle) -> str:
    """The S3 key CDK gives `bundle`'s code in a one-function app (bundling skipped)."""
    app = cdk.App(context=SKIP_BUNDLING)
    stack = cdk.Stack(app, "Probe")
    lambda_.Function(
        stack,
        "Function",
        runtime=bundle.runtime,
        handler="handler.handler",
        code=bundling.python_lambda_code(bundle),
    )
    (function,) = Template.from_stack(stack).find_resources("AWS::Lambda::Function").values()
    return function["Properties"]["Code"]["S3Key"]


def test_asset_hash_follows_the_bundle_inputs_not_the_directory(tmp_path: Path) -> None:
    bundle = _toy_bundle(tmp_path)
    first = _asset_key(bundle)
    assert _asset_key(bundle) == first  # stable: an unchanged bundle is neither rebuilt nor redeployed
    (tmp_path / "unrelated.txt").write_text("not part of the bundle")
    assert _asset_key(bundle) == first
    (tmp_path / "messages.py").write_text("VERSION = 2\n")  # a shared app module, outside the directory
    assert _asset_key(bundle) != first


def test_archiver_bundle_holds_its_handler_and_the_wire_contracts_but_no_app_module() -> None:
    bundle = LAMBDA_SOURCES.archiver_bundle()
    targets = {file.target for file in bundle.files}
    assert {"handler.py", "msk_records.py", "contracts/__init__.py", "contracts/reading.py"} <= targets
    assert not any(target.startswith("app/") for target in targets)
    assert bundle.requirements == REPO_ROOT / "lambda" / "archiver" / "requirements.txt"


def test_read_api_bundle_holds_the_app_package_without_local_tooling() -> None:
    bundle = LAMBDA_SOURCES.read_api_bundle()
    targets = {file.target for file in bundle.files}
    assert {
        "handler.py",
        "app/read_api.py",
        "app/settings.py",
        "contracts/reading.py",
        "app/api/data.py",
        "app/storage/database.py",
    } <= targets
    assert not any(
        target.startswith(("devstack/", "app/static/")) or "__pycache__" in target for target in targets
    )
    assert "app/Dockerfile" not in targets
    requirement_files = bundling._requirement_files(bundle.requirements)
    # Only the read path's own list: not the service's requirements (uvicorn, aiokafka, ...).
    assert requirement_files == [bundle.requirements]


def test_pip_targets_the_lambda_runtime_and_architecture() -> None:
    command = LAMBDA_SOURCES.archiver_bundle().pip_command("/out")
    assert command[:4] == [sys.executable, "-m", "pip", "install"]
    assert "--only-binary=:all:" in command and "--no-compile" in command
    flags = list(itertools.pairwise(command))
    assert ("--python-version", "3.11") in flags and ("--implementation", "cp") in flags
    assert [value for flag, value in flags if flag == "--platform"] == [
        "manylinux2014_aarch64",
        "manylinux_2_28_aarch64",
        "manylinux_2_34_aarch64",
    ]
    assert ("--target", "/out") in flags
    assert ("--constraint", str(REPO_ROOT / "constraints.txt")) in flags


def _toy_bundle(tmp_path: Path) -> PythonBundle:
    (tmp_path / "requirements.txt").write_text("-r shared.txt\n")
    (tmp_path / "shared.txt").write_text("tiny-package==1.0\n")
    (tmp_path / "handler.py").write_text("def handler(event, context):\n    return event\n")
    (tmp_path / "messages.py").write_text("VERSION = 1\n")
    return PythonBundle(
        name="toy",
        runtime=LAMBDA_SOURCES.archiver_bundle().runtime,
        architecture=LAMBDA_SOURCES.archiver_bundle().architecture,
        requirements=tmp_path / "requirements.txt",
        constraints=None,
        files=(
            SourceFile(tmp_path / "handler.py", "handler.py"),
            SourceFile(tmp_path / "messages.py", "contracts/reading.py"),
        ),
    )


def test_fingerprint_changes_with_any_input_including_shared_app_modules(tmp_path: Path) -> None:
    bundle = _toy_bundle(tmp_path)
    before = bundle.fingerprint()
    assert bundle.fingerprint() == before
    (tmp_path / "messages.py").write_text("VERSION = 2\n")
    after_module = bundle.fingerprint()
    (tmp_path / "shared.txt").write_text("tiny-package==1.1\n")  # included with -r
    after_requirements = bundle.fingerprint()
    moved = dataclasses.replace(bundle, architecture=lambda_.Architecture.X86_64)
    assert len({before, after_module, after_requirements, moved.fingerprint()}) == 4


def test_local_bundling_installs_then_copies_the_sources(tmp_path: Path, monkeypatch) -> None:
    source = tmp_path / "src"
    source.mkdir()
    bundle = _toy_bundle(source)
    output = tmp_path / "out"
    output.mkdir()
    calls = []

    def fake_pip(command, **kwargs):
        calls.append(command)
        (output / "tiny_package").mkdir()
        (output / "bin").mkdir()  # console scripts: removed
        return subprocess.CompletedProcess(command, 0, "", "")

    monkeypatch.setattr(bundling.subprocess, "run", fake_pip)
    assert PipLocalBundling(bundle).try_bundle(str(output), None) is True
    assert calls == [bundle.pip_command(str(output))]
    assert sorted(str(path.relative_to(output)) for path in output.rglob("*")) == [
        "contracts",
        "contracts/reading.py",
        "handler.py",
        "tiny_package",
    ]


def test_local_bundling_fails_loudly_instead_of_falling_back_to_docker(tmp_path: Path, monkeypatch) -> None:
    bundle = _toy_bundle(tmp_path)

    def failing_pip(command, **kwargs):
        return subprocess.CompletedProcess(
            command, 1, "", "ERROR: No matching distribution found for tiny-package"
        )

    monkeypatch.setattr(bundling.subprocess, "run", failing_pip)
    with pytest.raises(
        BundlingError, match=r"(?s)toy: pip install for Python 3\.11 on manylinux2014_aarch64.*No matching"
    ):
        PipLocalBundling(bundle).try_bundle(str(tmp_path / "out"), None)
    with pytest.raises(BundlingError, match="missing bundle inputs"):
        bundling.python_lambda_code(
            dataclasses.replace(bundle, files=(SourceFile(tmp_path / "gone.py", "gone.py"),))
        )


def test_lambda_runtime_is_the_python_the_tests_run_on() -> None:
    tested = f"python{sys.version_info.major}.{sys.version_info.minor}"
    assert LAMBDA_RUNTIME.name == HOOK_RUNTIME.name == tested
