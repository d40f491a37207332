"""Monitoring stack: the on-call alarms, their SNS topics and the dashboards, all from the catalogue
in `monitoring/` (deployed last: it only reads the names of the other stacks' resources)."""

from __future__ import annotations

from typing import Any

from aws_cdk import CfnOutput, Stack
from constructs import Construct

from cdk.components.archiver import ALIAS_NAME
from cdk.components.monitoring import OnCallMonitoring
from cdk.config import EnvironmentConfig
from cdk.stacks.data import DataStack
from cdk.stacks.pipeline import PipelineStack
from cdk.stacks.service import ServiceStack
from monitoring import dashboards
from monitoring.catalogue import Deployed


def deployed_resources(
    config: EnvironmentConfig, data: DataStack, service: ServiceStack, pipeline: PipelineStack
) -> Deployed:
    """The names the alarms' metrics point at. Fixed names (README: fixed names) are used as plain
    strings, so the stateful Data stack exports nothing to this one; only the ALB and target-group
    full names, which CloudFormation generates, are cross-stack references (to the Service stack)."""
    name_prefix = f"sensor-{config.name}"
    ingest = service.ingest
    database = data.database
    return Deployed(
        env_name=config.name,
        region=config.region,
        load_balancer=ingest.load_balancer.load_balancer_full_name,
        blue_target_group=ingest.blue_target_group.target_group_full_name,
        green_target_group=ingest.green_target_group.target_group_full_name,
        cluster_name=name_prefix,
        service_name=f"{name_prefix}-ingest",
        db_instance=database.instance_identifier,
        db_replica=f"{database.instance_identifier}-replica" if database.read_replica is not None else None,
        # The streaming construct names the cluster `sensor-<env>`; MSK numbers brokers from 1.
        msk_cluster=name_prefix,
        msk_broker_ids=tuple(range(1, config.streaming.broker_count + 1)),
        archiver_function=pipeline.archiver.function_name,
        archiver_alias=ALIAS_NAME,
        web_acl=f"{name_prefix}-edge",
        max_tasks=config.service.scaling.max_tasks,
        state_cache=data.state_store.cache_name,
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
        data: DataStack,
        service: ServiceStack,
        pipeline: PipelineStack,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.deployed = deployed_resources(config, data, service, pipeline)
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
