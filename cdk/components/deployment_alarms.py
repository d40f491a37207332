"""Deployment alarms take their severity and runbook from the alarm catalogue.

The ECS and Lambda deployment guards build their alarms next to the deployments they roll back;
this pass, run once per stack, prefixes each one's description with the catalogue's severity and
text and appends its runbook link, and refuses an alarm the catalogue does not know.
"""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_cloudwatch as cloudwatch

from monitoring.catalogue import deployment_alarm


def link_deployment_runbooks(stack: cdk.Stack, runbook_base_url: str) -> None:
    for node in stack.node.find_all():
        if not isinstance(node, cloudwatch.CfnAlarm) or not isinstance(node.alarm_name, str):
            continue
        description = node.alarm_description or ""
        if "Runbook: " in description:
            continue  # a catalogue alarm (cdk/components/monitoring.py) links its runbook itself
        spec = deployment_alarm(node.alarm_name)
        if spec is None:
            raise ValueError(f"{node.node.path}: alarm {node.alarm_name} is not in monitoring/catalogue.py")
        node.alarm_description = spec.alarm_description(runbook_base_url, description)
