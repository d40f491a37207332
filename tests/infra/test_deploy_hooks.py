"""Service stack: the blue/green smoke-test hook, its wiring into the ECS service, its permissions
and network path, and the deployment rollback alarms."""

from __future__ import annotations

from typing import Any

from tests.infra.conftest import Synthesized, only

HOOK_PATH = "DeploySmokeTest"


def _resources(env: Synthesized) -> dict[str, Any]:
    return env.service.to_json()["Resources"]


def _logical_id(env: Synthesized, resource_type: str, fragment: str) -> str:
    (logical_id,) = [
        logical_id
        for logical_id, resource in _resources(env).items()
        if resource["Type"] == resource_type and logical_id.startswith(fragment)
    ]
    return logical_id


def _function(env: Synthesized) -> tuple[str, dict[str, Any]]:
    logical_id = _logical_id(env, "AWS::Lambda::Function", f"{HOOK_PATH}Function")
    return logical_id, _resources(env)[logical_id]["Properties"]


def _deployment(env: Synthesized) -> dict[str, Any]:
    return only(env.service, "AWS::ECS::Service")["Properties"]["DeploymentConfiguration"]


def test_service_runs_the_hook_after_the_test_traffic_shift(each_env: Synthesized) -> None:
    function_id, _ = _function(each_env)
    (hook,) = _deployment(each_env)["LifecycleHooks"]
    assert hook["HookTargetArn"] == {"Fn::GetAtt": [function_id, "Arn"]}
    assert hook["LifecycleStages"] == ["POST_TEST_TRAFFIC_SHIFT"]

    # ECS may invoke that function, unqualified, and nothing else.
    role_id = hook["RoleArn"]["Fn::GetAtt"][0]
    role = _resources(each_env)[role_id]["Properties"]
    assert role["AssumeRolePolicyDocument"]["Statement"][0]["Principal"] == {"Service": "ecs.amazonaws.com"}
    (policy,) = role["Policies"]
    assert policy["PolicyDocument"]["Statement"] == [
        {"Action": "lambda:InvokeFunction", "Effect": "Allow", "Resource": {"Fn::GetAtt": [function_id, "Arn"]},
         "Sid": "InvokeSmokeTestHook"}
    ]


def test_hook_function_calls_the_test_listener_with_its_smoke_client(each_env: Synthesized) -> None:
    _, function = _function(each_env)
    config = each_env.config
    assert function["Runtime"] == "python3.11"
    assert function["Handler"] == "handler.handler"
    assert function["FunctionName"] == f"sensor-{config.name}-deploy-smoke"
    env = function["Environment"]["Variables"]
    scheme = "https" if config.certificate_arn else "http"
    alb_id = _logical_id(each_env, "AWS::ElasticLoadBalancingV2::LoadBalancer", "IngestLoadBalancer")
    assert env["TEST_BASE_URL"] == {
        "Fn::Join": ["", [f"{scheme}://", {"Fn::GetAtt": [alb_id, "DNSName"]}, f":{config.service.test_listener_port}"]]
    }
    secret_id = _logical_id(each_env, "AWS::SecretsManager::Secret", f"{HOOK_PATH}SmokeClientSecret")
    assert env["SMOKE_CLIENT_SECRET_ARN"] == {"Ref": secret_id}
    assert env["SMOKE_CLIENT_ID"] == config.service.smoke_client_id
    assert env["MAX_WAIT_SECONDS"] == str(config.service.smoke_test_max_wait_seconds)
    assert env["SMOKE_STAGES"] == "POST_TEST_TRAFFIC_SHIFT"
    assert "SMOKE_CLIENT_SECRET" not in env  # fetched at cold start, never in the environment
    # TLS is verified against the certificate's name (SNI), never switched off.
    assert "TLS_VERIFY_HOSTNAME" not in env
    assert env.get("TLS_SERVER_NAME") == config.domain_name

    secret = _resources(each_env)[secret_id]["Properties"]["GenerateSecretString"]
    assert secret["GenerateStringKey"] == "client_secret"
    assert config.service.smoke_client_id in secret["SecretStringTemplate"]


def test_hook_runs_in_private_subnets_with_only_the_test_listener_and_endpoints_reachable(
    each_env: Synthesized,
) -> None:
    _, function = _function(each_env)
    (group_ref,) = function["VpcConfig"]["SecurityGroupIds"]
    group = _resources(each_env)[group_ref["Fn::GetAtt"][0]]["Properties"]
    egress = {(rule["CidrIp"], rule["FromPort"], rule["ToPort"]) for rule in group["SecurityGroupEgress"]}
    port = each_env.config.service.test_listener_port
    assert egress == {("0.0.0.0/0", port, port), (each_env.config.network.vpc_cidr, 443, 443)}
    assert "SecurityGroupIngress" not in group
    # The same private (egress through NAT) subnets as the service's tasks.
    service = only(each_env.service, "AWS::ECS::Service")["Properties"]
    assert function["VpcConfig"]["SubnetIds"] == service["NetworkConfiguration"]["AwsvpcConfiguration"]["Subnets"]
    subnets = str(function["VpcConfig"]["SubnetIds"])
    assert "privateSubnet" in subnets and "publicSubnet" not in subnets and "isolatedSubnet" not in subnets


def test_hook_may_only_read_its_smoke_secret(each_env: Synthesized) -> None:
    _, function = _function(each_env)
    role_id = function["Role"]["Fn::GetAtt"][0]
    role = _resources(each_env)[role_id]["Properties"]
    assert "ManagedPolicyArns" not in role
    statements = [s for policy in role["Policies"] for s in policy["PolicyDocument"]["Statement"]]
    # No other policy is attached to the role (it takes no automatic grants).
    for policy in each_env.service.find_resources("AWS::IAM::Policy").values():
        assert role_id not in str(policy["Properties"]["Roles"])
    by_sid = {statement["Sid"]: statement for statement in statements}
    assert set(by_sid) == {"WriteOwnLogs", "VpcNetworkInterfaces", "ReadSmokeClientSecret"}
    secret_id = _logical_id(each_env, "AWS::SecretsManager::Secret", f"{HOOK_PATH}SmokeClientSecret")
    assert by_sid["ReadSmokeClientSecret"]["Action"] == "secretsmanager:GetSecretValue"
    assert by_sid["ReadSmokeClientSecret"]["Resource"] == {"Ref": secret_id}
    assert all(not str(s["Action"]).startswith(("secretsmanager", "kms", "s3", "kafka"))
               for sid, s in by_sid.items() if sid != "ReadSmokeClientSecret")
    log_group_id = _logical_id(each_env, "AWS::Logs::LogGroup", f"{HOOK_PATH}Logs")
    assert by_sid["WriteOwnLogs"]["Resource"] == {"Fn::GetAtt": [log_group_id, "Arn"]}
    log_group = _resources(each_env)[log_group_id]["Properties"]
    assert log_group["RetentionInDays"] == each_env.config.log_retention_days
    assert log_group["LogGroupName"] == f"/aws/lambda/sensor-{each_env.config.name}-deploy-smoke"


def test_rollback_alarms_include_p99_latency_from_config(each_env: Synthesized) -> None:
    resources = _resources(each_env)
    alarms = {
        resources[name["Ref"]]["Properties"]["AlarmName"]: resources[name["Ref"]]["Properties"]
        for name in _deployment(each_env)["Alarms"]["AlarmNames"]
    }
    prefix = f"sensor-{each_env.config.name}-deployment-"
    assert set(alarms) == {f"{prefix}target-5xx", f"{prefix}unhealthy-targets", f"{prefix}p99-latency"}
    for alarm in alarms.values():
        assert (alarm["EvaluationPeriods"], alarm["DatapointsToAlarm"]) == (2, 2)
        assert all(metric.get("MetricStat", {}).get("Period", 60) == 60 for metric in alarm["Metrics"])
    latency = alarms[f"{prefix}p99-latency"]
    assert latency["Threshold"] == each_env.config.service.rollback_p99_latency_ms / 1000
    assert latency["ComparisonOperator"] == "GreaterThanThreshold"
    stats = {metric["Id"]: metric["MetricStat"] for metric in latency["Metrics"] if "MetricStat" in metric}
    assert set(stats) == {"blue", "green"}
    assert {stat["Stat"] for stat in stats.values()} == {"p99"}
    assert {stat["Metric"]["MetricName"] for stat in stats.values()} == {"TargetResponseTime"}


def test_p99_threshold_follows_config(synth_variant) -> None:
    env = synth_variant("dev", lambda raw: raw["service"].update(rollback_p99_latency_ms=250))
    (latency,) = [
        alarm["Properties"] for alarm in env.service.find_resources("AWS::CloudWatch::Alarm").values()
        if alarm["Properties"]["AlarmName"] == "sensor-dev-deployment-p99-latency"
    ]
    assert latency["Threshold"] == 0.25


def test_alb_admits_the_test_listener_from_each_nat_gateway_address(each_env: Synthesized) -> None:
    """The ALB is internet-facing: the hook's calls reach it from the NAT gateways' Elastic IPs,
    not from VPC addresses, so the test listener port is opened to exactly those addresses."""
    rules = [
        resource["Properties"] for logical_id, resource in _resources(each_env).items()
        if resource["Type"] == "AWS::EC2::SecurityGroupIngress" and logical_id.startswith(f"{HOOK_PATH}NatIngressTestListenerFromNat")
    ]
    port = each_env.config.service.test_listener_port
    assert len(rules) == each_env.config.network.nat_gateways
    for rule in rules:
        assert (rule["IpProtocol"], rule["FromPort"], rule["ToPort"]) == ("tcp", port, port)
        assert "LoadBalancer" in str(rule["GroupId"])
        ip, suffix = rule["CidrIp"]["Fn::Join"][1]
        assert suffix == "/32" and "EIP" in str(ip)


def test_smoke_client_secret_arn_is_an_output(each_env: Synthesized) -> None:
    secret_id = _logical_id(each_env, "AWS::SecretsManager::Secret", f"{HOOK_PATH}SmokeClientSecret")
    assert each_env.service.to_json()["Outputs"]["SmokeClientSecretArn"]["Value"] == {"Ref": secret_id}
