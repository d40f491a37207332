"""Lambda blue/green: each non-hook function's `live` alias moves through a CodeDeploy deployment group
with rollback alarms on the alias and a pre-traffic hook that may only invoke the version under
deployment (cdk/components/lambda_deployment.py, lambda/pre_traffic)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.infra.conftest import Synthesized
from tests.infra.test_pipeline import one, resources, text

# (logical-id prefix of the function's construct, function name suffix)
FUNCTIONS = (("Archiver", "archiver"), ("ReadApi", "read-api"))
CONFIG_NAMES = {
    "CANARY_10_PERCENT_5_MINUTES": "CodeDeployDefault.LambdaCanary10Percent5Minutes",
    "LINEAR_10_PERCENT_EVERY_1_MINUTE": "CodeDeployDefault.LambdaLinear10PercentEvery1Minute",
    "ALL_AT_ONCE": "CodeDeployDefault.LambdaAllAtOnce",
}
ALARMS = {
    "Errors": ("errors", "Errors", {"Statistic": "Sum"}),
    "Throttles": ("throttles", "Throttles", {"Statistic": "Sum"}),
    "P99Duration": ("p99-duration", "Duration", {"ExtendedStatistic": "p99"}),
}


def group_of(env: Synthesized, prefix: str) -> tuple[str, dict[str, Any]]:
    return one(env, "AWS::CodeDeploy::DeploymentGroup", f"{prefix}Deployment")


@pytest.mark.parametrize(("env_name", "expected"), [("dev", "ALL_AT_ONCE"), ("prod", "CANARY_10_PERCENT_5_MINUTES")])
def test_committed_environments_use_their_deployment_configuration(
    env_name: str, expected: str, request: pytest.FixtureRequest
) -> None:
    env: Synthesized = request.getfixturevalue(env_name)
    assert env.config.pipeline.lambda_deployment == expected
    groups = resources(env, "AWS::CodeDeploy::DeploymentGroup")
    assert len(groups) == len(FUNCTIONS)
    for group in groups.values():
        assert group["Properties"]["DeploymentConfigName"] == CONFIG_NAMES[expected]


def test_one_lambda_application_for_the_stack(each_env: Synthesized) -> None:
    app_id, app = one(each_env, "AWS::CodeDeploy::Application", "LambdaDeployments")
    assert app["Properties"] == {
        "ApplicationName": f"sensor-{each_env.config.name}-lambdas",
        "ComputePlatform": "Lambda",
        "Tags": app["Properties"]["Tags"],
    }
    for prefix, _ in FUNCTIONS:
        _, group = group_of(each_env, prefix)
        assert group["Properties"]["ApplicationName"] == {"Ref": app_id}


def test_each_alias_deploys_through_its_group_with_the_hook_before_traffic(each_env: Synthesized) -> None:
    name = each_env.config.name
    for prefix, suffix in FUNCTIONS:
        group_id, group = group_of(each_env, prefix)
        hook_id, _ = one(each_env, "AWS::Lambda::Function", f"{prefix}DeploymentHook")
        _, alias = one(each_env, "AWS::Lambda::Alias", f"{prefix}LiveAlias")
        update = alias["UpdatePolicy"]["CodeDeployLambdaAliasUpdate"]
        assert update["DeploymentGroupName"] == {"Ref": group_id}
        assert update["BeforeAllowTrafficHook"] == {"Ref": hook_id}
        assert "AfterAllowTrafficHook" not in update
        assert {hook_id, group_id} <= set(alias["DependsOn"])
        props = group["Properties"]
        assert props["DeploymentGroupName"] == f"sensor-{name}-{suffix}"
        assert props["DeploymentStyle"] == {"DeploymentOption": "WITH_TRAFFIC_CONTROL", "DeploymentType": "BLUE_GREEN"}
        assert props["AutoRollbackConfiguration"]["Enabled"] is True
        assert set(props["AutoRollbackConfiguration"]["Events"]) == {
            "DEPLOYMENT_FAILURE",
            "DEPLOYMENT_STOP_ON_REQUEST",
            "DEPLOYMENT_STOP_ON_ALARM",
        }


def test_rollback_alarms_watch_the_alias(each_env: Synthesized) -> None:
    name, pipeline = each_env.config.name, each_env.config.pipeline
    thresholds = {
        "Archiver": pipeline.archiver_p99_duration_alarm_ms,
        "ReadApi": pipeline.read_api_p99_duration_alarm_ms,
    }
    for prefix, suffix in FUNCTIONS:
        _, group = group_of(each_env, prefix)
        function_id, _ = one(each_env, "AWS::Lambda::Function", f"{prefix}Function")
        configured = group["Properties"]["AlarmConfiguration"]
        assert configured["Enabled"] is True
        alarm_ids = {alarm["Name"]["Ref"] for alarm in configured["Alarms"]}
        assert len(alarm_ids) == len(ALARMS)
        for construct_id, (alarm_suffix, metric, statistic) in ALARMS.items():
            alarm_id, alarm = one(each_env, "AWS::CloudWatch::Alarm", f"{prefix}Deployment{construct_id}")
            assert alarm_id in alarm_ids
            props = alarm["Properties"]
            assert props["AlarmName"] == f"sensor-{name}-{suffix}-deploy-{alarm_suffix}"
            assert (props["Namespace"], props["MetricName"], props["Period"]) == ("AWS/Lambda", metric, 60)
            assert statistic.items() <= props.items()
            assert (props["EvaluationPeriods"], props["DatapointsToAlarm"]) == (2, 2)
            assert props["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
            assert props["TreatMissingData"] == "notBreaching"
            expected_threshold = thresholds[prefix] if metric == "Duration" else 1
            assert props["Threshold"] == expected_threshold
            # The alias's metrics (both versions while traffic shifts), not the whole function's.
            dimensions = {dimension["Name"]: dimension["Value"] for dimension in props["Dimensions"]}
            assert dimensions["FunctionName"] == {"Ref": function_id}
            assert text(dimensions["Resource"]) == f"<{function_id}>:live"


def test_hook_is_named_for_the_managed_policy_and_probes_the_new_version(each_env: Synthesized) -> None:
    name, retention = each_env.config.name, each_env.config.log_retention_days
    for prefix, suffix in FUNCTIONS:
        _, hook = one(each_env, "AWS::Lambda::Function", f"{prefix}DeploymentHook")
        function_id, _ = one(each_env, "AWS::Lambda::Function", f"{prefix}Function")
        version_id, _ = one(each_env, "AWS::Lambda::Version", f"{prefix}FunctionCurrentVersion")
        log_id, log_group = one(each_env, "AWS::Logs::LogGroup", f"{prefix}DeploymentHookLogs")
        props = hook["Properties"]
        # AWSCodeDeployRoleForLambdaLimited lets CodeDeploy invoke only functions named CodeDeployHook_*.
        assert props["FunctionName"] == f"CodeDeployHook_sensor-{name}-{suffix}"
        assert props["Runtime"] == "python3.11"
        assert props["Handler"] == "handler.handler"
        assert props["Environment"]["Variables"] == {
            "TARGET_FUNCTION_NAME": {"Ref": function_id},
            "CURRENT_VERSION": {"Ref": version_id},
            "PROBE": "archiver" if prefix == "Archiver" else "read-api",
        }
        assert props["LoggingConfig"] == {"LogGroup": {"Ref": log_id}}
        assert log_group["Properties"]["RetentionInDays"] == retention
        assert log_group["Properties"]["LogGroupName"] == f"/aws/lambda/CodeDeployHook_sensor-{name}-{suffix}"
        assert "VpcConfig" not in props  # it only calls the Lambda and CodeDeploy APIs


def test_hook_role_invokes_only_the_version_and_reports_only_to_its_group(each_env: Synthesized) -> None:
    name, region = each_env.config.name, each_env.config.region
    account = each_env.config.account or "<AWS::AccountId>"
    for prefix, suffix in FUNCTIONS:
        version_id, _ = one(each_env, "AWS::Lambda::Version", f"{prefix}FunctionCurrentVersion")
        log_id, _ = one(each_env, "AWS::Logs::LogGroup", f"{prefix}DeploymentHookLogs")
        _, role = one(each_env, "AWS::IAM::Role", f"{prefix}DeploymentHookRole")
        assert "ManagedPolicyArns" not in role["Properties"]
        (policy,) = role["Properties"]["Policies"]
        found = {statement["Sid"]: statement for statement in policy["PolicyDocument"]["Statement"]}
        assert set(found) == {"WriteOwnLogs", "InvokeVersionUnderDeployment", "ReportHookStatus"}
        assert found["WriteOwnLogs"]["Resource"] == {"Fn::GetAtt": [log_id, "Arn"]}
        invoke = found["InvokeVersionUnderDeployment"]
        assert (invoke["Action"], invoke["Resource"]) == ("lambda:InvokeFunction", {"Ref": version_id})
        report = found["ReportHookStatus"]
        assert report["Action"] == "codedeploy:PutLifecycleEventHookExecutionStatus"
        assert text(report["Resource"]) == (
            f"arn:aws:codedeploy:{region}:{account}:deploymentgroup:sensor-{name}-lambdas/sensor-{name}-{suffix}"
        )
    # No automatic grants anywhere (CDK's pre_hook grants would land in an AWS::IAM::Policy).
    assert resources(each_env, "AWS::IAM::Policy") == {}


def test_codedeploy_service_role_is_the_limited_managed_policy(each_env: Synthesized) -> None:
    role_id, role = one(each_env, "AWS::IAM::Role", "LambdaDeploymentsServiceRole")
    (statement,) = role["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert statement["Principal"] == {"Service": "codedeploy.amazonaws.com"}
    assert [text(arn) for arn in role["Properties"]["ManagedPolicyArns"]] == [
        "arn:<AWS::Partition>:iam::aws:policy/service-role/AWSCodeDeployRoleForLambdaLimited"
    ]
    assert "Policies" not in role["Properties"]
    for prefix, _ in FUNCTIONS:
        _, group = group_of(each_env, prefix)
        assert group["Properties"]["ServiceRoleArn"] == {"Fn::GetAtt": [role_id, "Arn"]}


# ALL_AT_ONCE is the committed dev environment's own setting.
@pytest.mark.parametrize("config_name", ["CANARY_10_PERCENT_5_MINUTES", "LINEAR_10_PERCENT_EVERY_1_MINUTE"])
def test_deployment_configuration_follows_the_config(synth_variant, config_name: str) -> None:
    env = synth_variant("dev", lambda raw: raw["pipeline"].update(lambda_deployment=config_name))
    for group in resources(env, "AWS::CodeDeploy::DeploymentGroup").values():
        assert group["Properties"]["DeploymentConfigName"] == CONFIG_NAMES[config_name]
