"""Sensor-<env>-Monitoring: catalogue alarms, SNS paging, the composite alarm and the dashboards."""

from __future__ import annotations

import json
import re
from typing import Any

from aws_cdk.assertions import Template

from monitoring import catalogue, dashboards
from tests.infra.conftest import Synthesized

PLACEHOLDER = "TOKEN"


def flatten(value: Any, name_of: dict[str, str] | None = None) -> str:
    """A CloudFormation string value as text: `Fn::Join` parts concatenated, `Fn::GetAtt` of a
    resource in `name_of` replaced by that name, any other intrinsic by `TOKEN`."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and "Fn::Join" in value:
        delimiter, parts = value["Fn::Join"]
        return delimiter.join(flatten(part, name_of) for part in parts)
    if isinstance(value, dict) and "Fn::GetAtt" in value and name_of:
        return name_of.get(value["Fn::GetAtt"][0], PLACEHOLDER)
    return PLACEHOLDER


def dashboard_bodies(template: Template) -> dict[str, Any]:
    """DashboardName -> parsed DashboardBody (tokens stand inside JSON strings, so `TOKEN` keeps it valid)."""
    return {
        resource["Properties"]["DashboardName"]: json.loads(flatten(resource["Properties"]["DashboardBody"]))
        for resource in template.find_resources("AWS::CloudWatch::Dashboard").values()
    }


def alarms(template: Template) -> dict[str, dict[str, Any]]:
    """AlarmName -> properties."""
    return {
        resource["Properties"]["AlarmName"]: resource["Properties"]
        for resource in template.find_resources("AWS::CloudWatch::Alarm").values()
    }


def topics(template: Template) -> dict[str, str]:
    """Topic logical id -> TopicName."""
    return {
        logical_id: resource["Properties"]["TopicName"]
        for logical_id, resource in template.find_resources("AWS::SNS::Topic").items()
    }


def period_of(properties: dict[str, Any]) -> int:
    if "Period" in properties:
        return properties["Period"]
    return max(query["MetricStat"]["Period"] for query in properties["Metrics"] if "MetricStat" in query)


def test_every_active_catalogue_alarm_exists_with_its_name(each_env: Synthesized) -> None:
    found = alarms(each_env.templates["Monitoring"])
    prefix = f"sensor-{each_env.config.name}"
    assert len(found) >= 15
    for name in found:
        assert re.fullmatch(rf"{prefix}-(critical|warning)-[a-z0-9]+(-[a-z0-9]+)*", name), name
    deployed = each_env.platform.monitoring.deployed
    assert set(found) == {spec.alarm_name(prefix) for spec in catalogue.active(deployed)}


def test_descriptions_link_the_runbook(each_env: Synthesized) -> None:
    base = each_env.config.monitoring.runbook_base_url
    prefix = f"sensor-{each_env.config.name}"
    for spec in catalogue.active(each_env.platform.monitoring.deployed):
        description = alarms(each_env.templates["Monitoring"])[spec.alarm_name(prefix)]["AlarmDescription"]
        assert description.endswith(f"Runbook: {base}{spec.name}.md"), description


def test_critical_alarms_detect_within_two_minutes(each_env: Synthesized) -> None:
    critical = {n: p for n, p in alarms(each_env.templates["Monitoring"]).items() if "-critical-" in n}
    assert len(critical) == len(catalogue.CRITICAL)
    for name, properties in critical.items():
        assert period_of(properties) * properties["DatapointsToAlarm"] <= 120, name


def test_alarm_and_ok_actions_go_to_the_severity_topic(each_env: Synthesized) -> None:
    template = each_env.templates["Monitoring"]
    topic_names = topics(template)
    prefix = f"sensor-{each_env.config.name}"
    assert sorted(topic_names.values()) == [f"{prefix}-critical", f"{prefix}-warning"]
    for name, properties in alarms(template).items():
        severity = "critical" if name.startswith(f"{prefix}-critical-") else "warning"
        for actions in (properties["AlarmActions"], properties["OKActions"]):
            assert [topic_names[action["Ref"]] for action in actions] == [f"{prefix}-{severity}"], name


def test_ecs_tasks_at_max_uses_the_configured_maximum(each_env: Synthesized) -> None:
    prefix = f"sensor-{each_env.config.name}"
    properties = alarms(each_env.templates["Monitoring"])[f"{prefix}-warning-ecs-tasks-at-max"]
    assert properties["Threshold"] == each_env.config.service.scaling.max_tasks
    (query,) = properties["Metrics"]  # a labelled metric renders as a one-query list
    assert query["MetricStat"]["Metric"]["Namespace"] == "ECS/ContainerInsights"
    assert query["MetricStat"]["Metric"]["MetricName"] == "RunningTaskCount"
    assert period_of(properties) * properties["EvaluationPeriods"] == 300


def test_composite_platform_down(each_env: Synthesized) -> None:
    template = each_env.templates["Monitoring"]
    prefix = f"sensor-{each_env.config.name}"
    name_of = {
        logical_id: resource["Properties"]["AlarmName"]
        for logical_id, resource in template.find_resources("AWS::CloudWatch::Alarm").items()
    }
    (composite,) = template.find_resources("AWS::CloudWatch::CompositeAlarm").values()
    properties = composite["Properties"]
    assert properties["AlarmName"] == f"{prefix}-critical-platform-down"
    rule = flatten(properties["AlarmRule"], name_of)
    assert rule == (
        f'(ALARM("{prefix}-critical-alb-unhealthy-hosts") AND '
        f'(ALARM("{prefix}-critical-alb-target-5xx-rate") OR ALARM("{prefix}-critical-alb-elb-5xx")))'
    )
    critical = {v: k for k, v in topics(template).items()}[f"{prefix}-critical"]
    assert properties["AlarmActions"] == properties["OKActions"] == [{"Ref": critical}]


def test_topics_are_encrypted_and_tls_only(each_env: Synthesized) -> None:
    template = each_env.templates["Monitoring"]
    for resource in template.find_resources("AWS::SNS::Topic").values():
        assert "KmsMasterKeyId" in resource["Properties"]
    policies = template.find_resources("AWS::SNS::TopicPolicy").values()
    assert len(policies) == 2
    for policy in policies:
        statements = policy["Properties"]["PolicyDocument"]["Statement"]
        assert any(
            s["Effect"] == "Deny" and s.get("Condition") == {"Bool": {"aws:SecureTransport": "false"}}
            for s in statements
        )
        assert any(
            s["Effect"] == "Allow" and s["Principal"] == {"Service": "cloudwatch.amazonaws.com"}
            and s["Action"] == "sns:Publish"
            for s in statements
        )
    (key,) = template.find_resources("AWS::KMS::Key").values()
    assert key["Properties"]["EnableKeyRotation"] is True
    principals = [s["Principal"] for s in key["Properties"]["KeyPolicy"]["Statement"]]
    assert {"Service": "cloudwatch.amazonaws.com"} in principals


def test_email_subscription_only_when_configured(dev: Synthesized, prod: Synthesized) -> None:
    assert dev.config.alarm_email is None
    assert dev.templates["Monitoring"].find_resources("AWS::SNS::Subscription") == {}
    subscriptions = prod.templates["Monitoring"].find_resources("AWS::SNS::Subscription").values()
    assert len(subscriptions) == 2  # one per severity topic
    for subscription in subscriptions:
        assert subscription["Properties"]["Protocol"] == "email"
        assert subscription["Properties"]["Endpoint"] == prod.config.alarm_email


def test_replica_lag_alarm_only_with_the_read_replica(dev: Synthesized, prod: Synthesized) -> None:
    assert "sensor-prod-warning-rds-replica-lag" in alarms(prod.templates["Monitoring"])
    assert "sensor-dev-warning-rds-replica-lag" not in alarms(dev.templates["Monitoring"])
    assert prod.config.database.read_replica and not dev.config.database.read_replica


def test_dashboards_are_valid_json_and_complete(each_env: Synthesized) -> None:
    template = each_env.templates["Monitoring"]
    prefix = f"sensor-{each_env.config.name}"
    bodies = dashboard_bodies(template)
    assert len(bodies) >= 2
    assert set(bodies) == {spec.dashboard_name(prefix) for spec in dashboards.DASHBOARDS}
    oncall = bodies[f"{prefix}-oncall"]["widgets"]
    (status,) = [w for w in oncall if w["type"] == "alarm"]
    assert len(status["properties"]["alarms"]) == len(alarms(template)) + 1  # + the composite
    (text,) = [w for w in oncall if w["type"] == "text"]
    base = each_env.config.monitoring.runbook_base_url
    for spec in catalogue.active(each_env.platform.monitoring.deployed):
        assert f"({base}{spec.name}.md)" in text["properties"]["markdown"]
    annotations = {
        annotation["label"]: annotation["value"]
        for widget in oncall
        if widget["type"] == "metric"
        for annotation in widget["properties"].get("annotations", {}).get("horizontal", [])
    }
    assert annotations["critical: alb-target-p99-latency"] == 1
    assert annotations["configured max_tasks"] == each_env.config.service.scaling.max_tasks


def test_dashboard_urls_are_outputs(each_env: Synthesized) -> None:
    outputs = each_env.templates["Monitoring"].find_outputs("*")
    region = each_env.config.region
    for spec in dashboards.DASHBOARDS:
        url = outputs[spec.output_id]["Value"]
        assert url.startswith(f"https://{region}.console.aws.amazon.com/cloudwatch/")
        assert url.endswith(f"#dashboards/dashboard/sensor-{each_env.config.name}-{spec.suffix}")
