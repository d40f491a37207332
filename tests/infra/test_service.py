"""Service stack: ALB + WAF, ECS-native blue/green, autoscaling, task permissions."""

from __future__ import annotations

from typing import Any

import pytest

from tests.infra.conftest import Synthesized, only


def _resources(env: Synthesized) -> dict[str, Any]:
    return env.service.to_json()["Resources"]


def _ecs_service(env: Synthesized) -> dict[str, Any]:
    return only(env.service, "AWS::ECS::Service")["Properties"]


def test_alb_is_internet_facing_http2_and_logs_access(each_env: Synthesized) -> None:
    alb = only(each_env.service, "AWS::ElasticLoadBalancingV2::LoadBalancer")["Properties"]
    assert alb["Scheme"] == "internet-facing"
    attributes = {a["Key"]: a["Value"] for a in alb["LoadBalancerAttributes"]}
    assert attributes["routing.http2.enabled"] == "true"
    assert attributes["routing.http.drop_invalid_header_fields.enabled"] == "true"
    assert attributes["access_logs.s3.enabled"] == "true"
    assert attributes["deletion_protection.enabled"] == str(each_env.config.production).lower()


def test_waf_web_acl_is_associated_with_the_alb(each_env: Synthesized) -> None:
    association = only(each_env.service, "AWS::WAFv2::WebACLAssociation")["Properties"]
    (alb_id,) = each_env.service.find_resources("AWS::ElasticLoadBalancingV2::LoadBalancer")
    assert association["ResourceArn"] == {"Ref": alb_id}
    acl = only(each_env.service, "AWS::WAFv2::WebACL")["Properties"]
    assert acl["Scope"] == "REGIONAL" and acl["DefaultAction"] == {"Allow": {}}
    names = [rule["Name"] for rule in acl["Rules"]]
    assert names == [
        "rate-limit-per-ip",
        "AWSManagedRulesAmazonIpReputationList",
        "AWSManagedRulesCommonRuleSet",
        "AWSManagedRulesKnownBadInputsRuleSet",
        "AWSManagedRulesSQLiRuleSet",
    ]
    rate = acl["Rules"][0]["Statement"]["RateBasedStatement"]
    assert rate["Limit"] == each_env.config.waf.rate_limit_per_5_minutes
    only(each_env.service, "AWS::WAFv2::LoggingConfiguration")


def test_rate_limit_exempts_the_allow_listed_load_generators(prod: Synthesized, dev: Synthesized) -> None:
    ip_set = only(prod.service, "AWS::WAFv2::IPSet")["Properties"]
    assert ip_set["Addresses"] == list(prod.config.waf.allow_listed_cidrs)
    rate = only(prod.service, "AWS::WAFv2::WebACL")["Properties"]["Rules"][0]["Statement"]["RateBasedStatement"]
    (ip_set_id,) = prod.service.find_resources("AWS::WAFv2::IPSet")
    assert rate["ScopeDownStatement"] == {
        "NotStatement": {
            "Statement": {"IPSetReferenceStatement": {"Arn": {"Fn::GetAtt": [ip_set_id, "Arn"]}}}
        }
    }
    # dev configures no CIDRs: its allow list is only the load generators' NAT address (load_test.enabled,
    # see test_load_test_stack.py); everyone else is rate limited.
    dev_addresses = only(dev.service, "AWS::WAFv2::IPSet")["Properties"]["Addresses"]
    assert len(dev_addresses) == dev.config.network.nat_gateways and all("Fn::Join" in a for a in dev_addresses)


def test_listeners_are_https_only_with_hsts_in_every_environment(each_env: Synthesized) -> None:
    config = each_env.config
    listeners = each_env.service.find_resources("AWS::ElasticLoadBalancingV2::Listener")
    by_port = {listener["Properties"]["Port"]: listener["Properties"] for listener in listeners.values()}
    assert sorted(by_port) == [80, 443, config.service.test_listener_port]
    for port in (443, config.service.test_listener_port):
        assert by_port[port]["Protocol"] == "HTTPS"
        assert by_port[port]["Certificates"] == [{"CertificateArn": config.certificate_arn}]
        assert by_port[port]["SslPolicy"].startswith("ELBSecurityPolicy-TLS13")
        # The ALB adds HSTS to every answer of the HTTPS listeners.
        assert {"Key": "routing.http.response.strict_transport_security.header_value",
                "Value": "max-age=31536000; includeSubDomains"} in by_port[port]["ListenerAttributes"]
    assert by_port[80]["Protocol"] == "HTTP"
    assert by_port[80]["DefaultActions"] == [{"Type": "redirect", "RedirectConfig": {
        "Protocol": "HTTPS", "Port": "443", "StatusCode": "HTTP_301"}}]


def test_waf_logging_redacts_credentials(each_env: Synthesized) -> None:
    """Every WAF logging configuration drops the Authorization and Cookie headers and the query string."""
    stacks = [each_env.service, each_env.pipeline, *([each_env.load_test] if each_env.config.load_test.enabled else [])]
    configurations = [c for stack in stacks for c in stack.find_resources("AWS::WAFv2::LoggingConfiguration").values()]
    assert configurations, "no WAF logging configuration"
    for configuration in configurations:
        redacted = configuration["Properties"]["RedactedFields"]
        assert {"SingleHeader": {"Name": "authorization"}} in redacted
        assert {"SingleHeader": {"Name": "cookie"}} in redacted
        assert {"QueryString": {}} in redacted


def test_service_deploys_blue_green_with_alternate_target_group_and_rollback(each_env: Synthesized) -> None:
    service = _ecs_service(each_env)
    deployment = service["DeploymentConfiguration"]
    assert deployment["Strategy"] == "BLUE_GREEN"
    assert deployment["BakeTimeInMinutes"] == each_env.config.service.bake_time_minutes
    assert deployment["Alarms"]["Enable"] is True and deployment["Alarms"]["Rollback"] is True
    assert len(deployment["Alarms"]["AlarmNames"]) == 3  # 5xx, unhealthy targets, p99 latency
    assert deployment["DeploymentCircuitBreaker"] == {"Enable": True, "Rollback": True}

    (load_balancer,) = service["LoadBalancers"]
    advanced = load_balancer["AdvancedConfiguration"]
    resources = _resources(each_env)
    blue, green = load_balancer["TargetGroupArn"]["Ref"], advanced["AlternateTargetGroupArn"]["Ref"]
    assert blue != green
    assert resources[blue]["Type"] == resources[green]["Type"] == "AWS::ElasticLoadBalancingV2::TargetGroup"
    production_rule = resources[advanced["ProductionListenerRule"]["Ref"]]["Properties"]
    test_rule = resources[advanced["TestListenerRule"]["Ref"]]["Properties"]
    assert production_rule["ListenerArn"] != test_rule["ListenerArn"]
    for rule in (production_rule, test_rule):
        weights = {
            group["TargetGroupArn"]["Ref"]: group["Weight"]
            for group in rule["Actions"][0]["ForwardConfig"]["TargetGroups"]
        }
        assert weights == {blue: 100, green: 0}


def test_rollback_alarms_watch_both_colours(each_env: Synthesized) -> None:
    alarms = _resources(each_env)
    names = _ecs_service(each_env)["DeploymentConfiguration"]["Alarms"]["AlarmNames"]
    for name in names:
        alarm = alarms[name["Ref"]]["Properties"]
        assert alarm["AlarmName"].startswith(f"sensor-{each_env.config.name}-deployment-")
        expression_ids = {metric["Id"] for metric in alarm["Metrics"]}
        assert {"blue", "green"} <= expression_ids
        # period x datapoints: a bad deployment is caught within two minutes.
        assert alarm["EvaluationPeriods"] * 60 <= 120


@pytest.mark.parametrize("strategy", ["CANARY", "LINEAR"])
def test_progressive_strategies_come_from_config(synth_variant, strategy: str) -> None:
    env = synth_variant("dev", lambda raw: raw["service"].update(deployment_strategy=strategy))
    deployment = _ecs_service(env)["DeploymentConfiguration"]
    assert deployment["Strategy"] == strategy
    if strategy == "CANARY":
        assert deployment["CanaryConfiguration"] == {"CanaryPercent": 10, "CanaryBakeTimeInMinutes": 1}
    else:
        assert deployment["LinearConfiguration"] == {"StepPercent": 10, "StepBakeTimeInMinutes": 1}


def test_autoscaling_between_min_and_max_on_cpu_and_requests(each_env: Synthesized) -> None:
    target = only(each_env.service, "AWS::ApplicationAutoScaling::ScalableTarget")["Properties"]
    assert (target["MinCapacity"], target["MaxCapacity"]) == (1, 20)
    policies = [p["Properties"] for p in each_env.service.find_resources("AWS::ApplicationAutoScaling::ScalingPolicy").values()]
    assert len(policies) == 2
    cpu = next(p for p in policies if "PredefinedMetricSpecification" in p["TargetTrackingScalingPolicyConfiguration"])
    assert cpu["TargetTrackingScalingPolicyConfiguration"]["PredefinedMetricSpecification"][
        "PredefinedMetricType"] == "ECSServiceAverageCPUUtilization"


def test_request_scaling_counts_blue_and_green_per_running_task(each_env: Synthesized) -> None:
    policy = next(
        p["Properties"] for p in each_env.service.find_resources("AWS::ApplicationAutoScaling::ScalingPolicy").values()
        if "CustomizedMetricSpecification" in p["Properties"]["TargetTrackingScalingPolicyConfiguration"]
    )
    configuration = policy["TargetTrackingScalingPolicyConfiguration"]
    assert configuration["TargetValue"] == each_env.config.service.scaling.requests_per_target
    queries = {q["Id"]: q for q in configuration["CustomizedMetricSpecification"]["Metrics"]}
    assert set(queries) == {"blue", "green", "tasks", "per_task"}
    assert queries["per_task"]["Expression"] == "(FILL(blue, 0) + FILL(green, 0)) / FILL(tasks, 1)"
    assert [q["Id"] for q in queries.values() if q["ReturnData"]] == ["per_task"]
    resources = each_env.service.to_json()["Resources"]
    groups = []
    for colour in ("blue", "green"):
        metric = queries[colour]["MetricStat"]["Metric"]
        assert (metric["MetricName"], queries[colour]["MetricStat"]["Stat"]) == ("RequestCount", "Sum")
        dimension = next(d for d in metric["Dimensions"] if d["Name"] == "TargetGroup")
        groups.append(dimension["Value"]["Fn::GetAtt"][0])
    assert sorted(resources[g]["Type"] for g in groups) == ["AWS::ElasticLoadBalancingV2::TargetGroup"] * 2
    assert groups[0] != groups[1]
    assert policy["ScalingTargetId"] == {"Ref": next(iter(each_env.service.find_resources(
        "AWS::ApplicationAutoScaling::ScalableTarget")))}


def test_task_counts_follow_config(synth_variant) -> None:
    env = synth_variant("dev", lambda raw: raw["service"]["scaling"].update(min_tasks=2, max_tasks=7))
    target = only(env.service, "AWS::ApplicationAutoScaling::ScalableTarget")["Properties"]
    assert (target["MinCapacity"], target["MaxCapacity"]) == (2, 7)


def test_task_size_and_container_follow_config(each_env: Synthesized) -> None:
    task = only(each_env.service, "AWS::ECS::TaskDefinition")["Properties"]
    assert task["Cpu"] == str(each_env.config.service.cpu)
    assert task["Memory"] == str(each_env.config.service.memory_mib)
    (container,) = task["ContainerDefinitions"]
    assert container["PortMappings"][0]["ContainerPort"] == each_env.config.service.container_port
    assert container["ReadonlyRootFilesystem"] is True
    secrets = {secret["Name"] for secret in container["Secrets"]}
    assert secrets == {"DB_HOST", "DB_PORT", "DB_USERNAME", "DB_PASSWORD", "JWT_SIGNING_KEY", "SENSOR_CLIENTS"}
    environment = {item["Name"]: item["Value"] for item in container["Environment"]}
    assert not {"DB_PASSWORD", "JWT_SIGNING_KEY", "SENSOR_CLIENTS"} & set(environment)
    # TLS to RDS verified against the RDS CA bundle the image fetches at build (app/Dockerfile).
    assert environment["SENSOR_DB_SSLMODE"] == "verify-full"
    assert environment["SENSOR_DB_SSL_ROOT_CERT"] == "/etc/ssl/rds/global-bundle.pem"
    assert environment["DEAD_LETTER_PREFIX"] == "dead-letter/service/"
    assert environment["WEB_CONCURRENCY"] == str(max(1, each_env.config.service.cpu // 1024))


def test_cluster_has_container_insights(each_env: Synthesized) -> None:
    cluster = only(each_env.service, "AWS::ECS::Cluster")["Properties"]
    assert {"Name": "containerInsights", "Value": "enhanced"} in cluster["ClusterSettings"]


def _statements(env: Synthesized, role_fragment: str) -> list[dict[str, Any]]:
    statements = []
    for policy in env.service.find_resources("AWS::IAM::Policy").values():
        roles = str(policy["Properties"]["Roles"])
        if role_fragment in roles:
            statements += policy["Properties"]["PolicyDocument"]["Statement"]
    return statements


def test_task_role_is_least_privilege(each_env: Synthesized) -> None:
    statements = _statements(each_env, "TaskRole")
    actions = sorted(
        action
        for statement in statements
        for action in ([statement["Action"]] if isinstance(statement["Action"], str) else statement["Action"])
    )
    assert actions == sorted(
        [
            "s3:PutObject", "s3:GetObject", "s3:DeleteObject", "s3:ListBucket",
            "kafka-cluster:Connect", "kafka-cluster:WriteDataIdempotently", "kafka:GetBootstrapBrokers",
            "kafka-cluster:DescribeTopic", "kafka-cluster:WriteData",
            "secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret",
            "elasticache:Connect",
        ]
    )
    assert all("*" not in action for action in actions)
    s3_objects = next(s for s in statements if s.get("Sid") == "DeadLetterObjects")
    # Its own dead letters only: not the archiver's dead-letter/archiver/, nothing else in the lake.
    assert str(s3_objects["Resource"]).endswith("/dead-letter/service/*']]}")
    listing = next(s for s in statements if s.get("Sid") == "DeadLetterListing")
    assert listing["Condition"] == {"StringLike": {"s3:prefix": ["dead-letter/service/*"]}}
    topic = next(s for s in statements if s.get("Sid") == "KafkaProduceReadings")
    assert topic["Resource"]["Fn::GetStackOutput"]["OutputName"].startswith("PublishOutputFnGetAttStreamingReadingsTopic")


def test_outputs_name_the_endpoints_on_call_needs(each_env: Synthesized) -> None:
    assert {"LoadBalancerUrl", "ClusterName", "ServiceName"} <= set(each_env.service.to_json()["Outputs"])
    assert {"DataLakeBucketName", "DatabaseEndpoint", "MskClusterArn", "ReadingsTopic"} <= set(
        each_env.data.to_json()["Outputs"]
    )
    # The certificate's name: what clients (and the load generator) verify TLS against.
    url = each_env.service.to_json()["Outputs"]["LoadBalancerUrl"]["Value"]
    assert url == f"https://{each_env.config.domain_name}"
