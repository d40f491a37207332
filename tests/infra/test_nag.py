"""cdk-nag AwsSolutions: zero unacknowledged findings, and every acknowledgement is on record."""

from __future__ import annotations

import json

import aws_cdk as cdk
import pytest
from aws_cdk import aws_s3 as s3
from cdk_nag import AwsSolutionsChecks

from cdk.app import build_app
from tests.infra.conftest import SKIP_BUNDLING, Synthesized, committed_context

# (construct path below the stack, finding id) for every acknowledgement in the code. A new one
# must be added here on purpose, next to the review of its reason.
ACKNOWLEDGED = {
    ("Network/SecurityGroups/LoadBalancer", "AwsSolutions-EC23"),
    ("Data/Database/Instance", "AwsSolutions-RDS11"),
    (
        "Data/Database/Instance",
        "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AmazonRDSEnhancedMonitoringRole]",
    ),
    ("Service/Ingest/JwtSigningKey", "AwsSolutions-SMG4"),
    ("Service/Ingest/ApiClients", "AwsSolutions-SMG4"),
    ("Service/Ingest/TaskDefinition", "AwsSolutions-ECS2"),
    ("Service/Ingest/TaskDefinition", "AwsSolutions-IAM5[Resource::*]"),
    (
        "Service/Ingest/Service",
        "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/AmazonECSInfrastructureRolePolicyForLoadBalancers]",
    ),
    ("Service/DeploySmokeTest/SmokeClientSecret", "AwsSolutions-SMG4"),
    ("Service/DeploySmokeTest/ExecutionRole", "AwsSolutions-IAM5[Resource::*]"),
    ("Service/DeploySmokeTest/Function", "AwsSolutions-L1"),
    ("Service/DeploySmokeTest/NatIngress", "AwsSolutions-EC23"),
    ("Pipeline/Archiver/ExecutionRole", "AwsSolutions-IAM5[Resource::*]"),
    ("Pipeline/Archiver/FailedBatches", "AwsSolutions-SQS3"),
    ("Pipeline/Archiver/Function", "AwsSolutions-L1"),
    (
        "Pipeline/LambdaDeployments/ServiceRole",
        "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSCodeDeployRoleForLambdaLimited]",
    ),
    ("Pipeline/ArchiverDeployment/Hook", "AwsSolutions-L1"),
}
# Only while pipeline.read_api_enabled (true in both committed environments).
READ_API = {
    ("Pipeline/ReadApi/ExecutionRole", "AwsSolutions-IAM5[Resource::*]"),
    ("Pipeline/ReadApi/Function", "AwsSolutions-L1"),
    ("Pipeline/ReadApiDeployment/Hook", "AwsSolutions-L1"),
}
# Only while load_test.enabled (committed: dev); plus the results-prefix wildcard below.
LOAD_TEST = {
    ("LoadTest/Ui/Users", "AwsSolutions-COG8"),
    ("LoadTest/Locust/ClientSecret", "AwsSolutions-SMG4"),
    ("LoadTest/Locust/MasterTask", "AwsSolutions-IAM5[Resource::*]"),
    ("LoadTest/Locust/WorkerTask", "AwsSolutions-IAM5[Resource::*]"),
    ("LoadTest/Locust/MasterTask", "AwsSolutions-ECS2"),
    ("LoadTest/Locust/WorkerTask", "AwsSolutions-ECS2"),
}
DEV_ONLY = {("Data/Database/Instance", "AwsSolutions-RDS10")}
PROD_ONLY = {
    ("Data/Database/ReadReplica", "AwsSolutions-RDS2"),
    ("Data/Database/ReadReplica", "AwsSolutions-RDS3"),
    ("Data/Database/ReadReplica", "AwsSolutions-RDS11"),
    (
        "Data/Database/ReadReplica",
        "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AmazonRDSEnhancedMonitoringRole]",
    ),
}


def nag_report(env: Synthesized) -> dict:
    """The AwsSolutions section of the validation report the synth wrote."""
    report = json.loads((env.outdir / "validation-report.json").read_text())
    (nag,) = [plugin for plugin in report["pluginReports"] if plugin["pluginName"] == "AwsSolutions"]
    return nag


def suppressed(env: Synthesized) -> dict[tuple[str, str], str]:
    """(acknowledged-at path minus the stack prefix, finding id) -> reason, as cdk-nag applied them."""
    prefix = f"Sensor-{env.config.name}-"
    return {
        (finding["acknowledgedAt"].removeprefix(prefix), finding["ruleName"]): finding["reason"]
        for finding in nag_report(env)["suppressedViolations"]
    }


def declared(env: Synthesized) -> set[tuple[str, str]]:
    """Every AwsSolutions acknowledgement attached anywhere in the construct tree."""
    key = cdk.Validations.ACKNOWLEDGED_RULES_METADATA_KEY
    prefix = f"Sensor-{env.config.name}-"
    return {
        (construct.node.path.removeprefix(prefix), rule_id.removeprefix("AwsSolutions::"))
        for construct in env.app.node.find_all()
        for entry in construct.node.metadata
        if entry.type == key
        for rule_id in entry.data
        if rule_id.startswith("AwsSolutions::")
    }


def _dead_letter_acknowledgement(env: Synthesized) -> tuple[str, str]:
    name, region = env.config.name, env.config.region
    return (
        "Service/Ingest/DeadLetterPolicy",
        "AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:s3:::"
        f"sensor-{name}-datalake-<AWS::AccountId>-{region}/dead-letter/service/*]",
    )


def _archiver_acknowledgements(env: Synthesized) -> set[tuple[str, str]]:
    """The archiver's scoped wildcards: its consumer group (cluster UUID) and its three lake prefixes."""
    name, region = env.config.name, env.config.region
    bucket = f"arn:<AWS::Partition>:s3:::sensor-{name}-datalake-<AWS::AccountId>-{region}"
    group = f"arn:<AWS::Partition>:kafka:{region}:<AWS::AccountId>:group/sensor-{name}/*/sensor-{name}-archiver"
    resources = [group] + [f"{bucket}/{prefix}*" for prefix in ("raw/", "processed/", "dead-letter/archiver/")]
    return {("Pipeline/Archiver/ExecutionRole", f"AwsSolutions-IAM5[Resource::{resource}]") for resource in resources}


def _load_test_acknowledgements(env: Synthesized) -> set[tuple[str, str]]:
    if not env.config.load_test.enabled:
        return set()
    name, region = env.config.name, env.config.region
    results = f"arn:<AWS::Partition>:s3:::sensor-{name}-loadtest-<AWS::AccountId>-{region}/runs/*"
    return LOAD_TEST | {("LoadTest/Locust/ResultsUploadPolicy", f"AwsSolutions-IAM5[Resource::{results}]")}


def expected_acknowledgements(env: Synthesized, extra: set[tuple[str, str]]) -> set[tuple[str, str]]:
    read_api = READ_API if env.config.pipeline.read_api_enabled else set()
    return (
        ACKNOWLEDGED | extra | read_api | {_dead_letter_acknowledgement(env)} | _archiver_acknowledgements(env)
        | _load_test_acknowledgements(env)
    )


def test_no_unacknowledged_findings(each_env: Synthesized) -> None:
    nag = nag_report(each_env)
    assert nag["violations"] == []
    assert nag["conclusion"] == "success"


def test_every_acknowledgement_is_listed_used_and_explained(dev: Synthesized, prod: Synthesized) -> None:
    for env, extra in ((dev, DEV_ONLY), (prod, PROD_ONLY)):
        applied = suppressed(env)
        assert set(applied) == expected_acknowledgements(env, extra)
        # An acknowledgement that suppresses nothing is stale: remove it.
        assert declared(env) == set(applied)
        for finding, reason in applied.items():
            assert len(reason) >= 60, f"{finding}: say why, specifically ({reason!r})"


def test_checks_report_a_violation_when_one_exists() -> None:
    app = cdk.App()
    stack = cdk.Stack(app, "Probe")
    s3.Bucket(stack, "Careless")  # no access logs, no TLS enforcement
    report = AwsSolutionsChecks(app).validate_scope(app)
    rules = {violation.rule_name for violation in report.violations}
    assert {"AwsSolutions-S1", "AwsSolutions-S10"} <= rules
    assert report.success is False


def test_the_cdk_entry_point_fails_synth_on_a_new_finding(tmp_path) -> None:
    app = cdk.App(outdir=str(tmp_path), context={**committed_context(), "env": "dev", **SKIP_BUNDLING})
    platform = build_app(app)
    s3.Bucket(platform.data, "Careless")
    with pytest.raises(RuntimeError, match="AwsSolutions-S1"):
        app.synth()
