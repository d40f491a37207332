"""Monitoring stack: the on-call alarms, their SNS topics and the dashboards, all from the catalogue
in `monitoring/` (deployed last: it only reads the names of the other stacks' resources)."""

from __future__ import annotations

from typing import Any

from aws_cdk import CfnOutput, Stack
from constructs import Construct

from cdk.components.monitoring import OnCallMonitoring
from cdk.props import LoadBalancerNames
from environments.config import EnvironmentConfig
from monitoring import dashboards
from monitoring.catalogue import Deployed, deployed_by_name


def deployed_resources(config: EnvironmentConfig, load_balancer: LoadBalancerNames) -> Deployed:
    """The names the alarms' metrics point at. Fixed names (README: fixed names) are used as plain
    strings, so the stateful Data stack exports nothing to this one; only the ALB and target-group
    full names, which CloudFormation generates, are cross-stack references (to the Service stack)."""
    return deployed_by_name(
        config.name,
        region=config.region,
        load_balancer=load_balancer.load_balancer,
        blue_target_group=load_balancer.blue_target_group,
        green_target_group=load_balancer.green_target_group,
        replica=config.database.read_replica,
        brokers=config.streaming.broker_count,
        max_tasks=config.service.scaling.max_tasks,
        state_cache_max_gib=config.state_store.max_data_gib,
    )


class MonitoringStack(Stack):
    """Owns the alarm topics and their key, every catalogue alarm, the platform-down composite alarm
    and the dashboards (`sensor-<env>-oncall`, `-service`, `-database`, `-streaming`, `-pipeline`,
    `-loadtest`)."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: EnvironmentConfig,
        load_balancer: LoadBalancerNames,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.deployed = deployed_resources(config, load_balancer)
        self.monitoring = OnCallMonitoring(
            self,
            "OnCall",
            deployed=self.deployed,
            runbook_base_url=config.monitoring.runbook_base_url,
            alarm_email=config.alarm_email,
        )
        region = config.region
        for spec in dashboards.DASHBOARDS:
            name = spec.dashboard_name(self.deployed.name_prefix)
            CfnOutput(
                self,
                spec.output_id,
                value=f"https://{region}.console.aws.amazon.com/cloudwatch/home?region={region}"
                f"#dashboards/dashboard/{name}",
            )
        CfnOutput(self, "CriticalTopicArn", value=self.monitoring.topics["critical"].topic_arn)
        CfnOutput(self, "WarningTopicArn", value=self.monitoring.topics["warning"].topic_arn)
