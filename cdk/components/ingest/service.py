"""The ingestion service: ECS Fargate behind an ALB, deployed blue/green and autoscaled."""

from __future__ import annotations

from pathlib import Path

from aws_cdk import Duration
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecs as ecs
from constructs import Construct

from cdk.components.ingest.dashboard_auth import authenticated_dashboard
from cdk.components.ingest.load_balancer import IngestLoadBalancer
from cdk.components.ingest.rollback_alarms import rollback_alarms
from cdk.components.ingest.scaling import autoscale
from cdk.components.ingest.secrets import token_secrets
from cdk.components.ingest.task import CONTAINER_NAME, app_task_definition, grant_task_permissions
from cdk.components.nag import acknowledge
from cdk.props import DatabaseAccess, LakeAccess, LoadBalancerNames, PlatformNetwork, StreamAccess
from environments.config import ServiceConfig
from environments.naming import EnvironmentNames


class IngestService(Construct):
    """Owns the ECS cluster, the app's task definition and Fargate service, the internet-facing
    ALB with its production and test listeners, the blue and green target groups, the deployment
    rollback alarms, autoscaling, the task's IAM permissions and the token secrets (the modules of
    this package build each part inside this construct).

    Deployments are ECS-native blue/green (or canary/linear by config): ECS starts the green task
    set behind the alternate target group, exposes it on the test listener, shifts the production
    listener rule to it after the bake time and rolls back when a deployment alarm fires.
    """

    def __init__(
        self, scope: Construct, construct_id: str, *,
        config: ServiceConfig,
        names: EnvironmentNames,
        production: bool,
        image_directory: Path,
        network: PlatformNetwork,
        certificate_arn: str | None,
        domain_name: str | None,
        database: DatabaseAccess,
        database_name: str,
        lake: LakeAccess,
        dead_letter_prefix: str,
        stream: StreamAccess,
        log_retention_days: int,
    ) -> None:
        super().__init__(scope, construct_id)
        vpc = network.vpc
        self.cluster = ecs.Cluster(
            self,
            "Cluster",
            vpc=vpc,
            cluster_name=names.ecs_cluster,
            container_insights_v2=ecs.ContainerInsights.ENHANCED,
        )
        secrets = token_secrets(self, name_prefix=names.prefix)
        self.jwt_signing_key, self.api_clients = secrets.jwt_signing_key, secrets.api_clients
        self.task_definition = app_task_definition(
            self, config=config, image_directory=image_directory, app_env=names.prefix, secrets=secrets,
            database=database, database_name=database_name, lake=lake, dead_letter_prefix=dead_letter_prefix,
            stream=stream, log_retention_days=log_retention_days,
        )
        grant_task_permissions(
            self, self.task_definition.task_role, database=database, lake_bucket_name=lake.bucket_name,
            dead_letter_prefix=dead_letter_prefix, stream=stream,
        )
        self.edge = IngestLoadBalancer(
            self, config=config, name_prefix=names.prefix, production=production, vpc=vpc,
            security_group=network.load_balancer_security_group, certificate_arn=certificate_arn,
            domain_name=domain_name, access_logs_bucket=lake.access_logs,
        )
        self.load_balancer = self.edge.load_balancer
        self.production_listener = self.edge.production_listener
        self.url = self.edge.url

        self.rollback_alarms = rollback_alarms(
            self, name_prefix=names.prefix, colours=self.edge.colours,
            p99_latency_ms=config.rollback_p99_latency_ms,
        )
        self.service = self._fargate_service(config, names, network.app_security_group)
        if config.dashboard_auth.provider != "none":
            self.dashboard_target_group = authenticated_dashboard(
                self, config=config, vpc=vpc, edge=self.edge, service=self.service,
                task_definition=self.task_definition,
                load_balancer_security_group=network.load_balancer_security_group,
            )
        acknowledge(
            self.service,
            "IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/AmazonECSInfrastructureRolePolicyForLoadBalancers]",
            "ECS blue/green re-weights the listener rules through this role; AWS documents this "
            "managed policy for it and keeps it current with the actions ECS needs.",
        )
        autoscale(
            self, service=self.service, config=config.scaling,
            load_balancer_full_name=self.load_balancer.load_balancer_full_name, colours=self.edge.colours,
            cluster_name=self.cluster.cluster_name,
        )

    @property
    def load_balancer_names(self) -> LoadBalancerNames:
        """The generated full names the alarms' metrics use as dimensions."""
        return LoadBalancerNames(
            load_balancer=self.load_balancer.load_balancer_full_name,
            blue_target_group=self.edge.blue_target_group.target_group_full_name,
            green_target_group=self.edge.green_target_group.target_group_full_name,
        )

    def _fargate_service(
        self, config: ServiceConfig, names: EnvironmentNames, app_security_group: ec2.ISecurityGroup
    ) -> ecs.FargateService:
        """The service (`<prefix>-ingest`) with blue as the production target and green as the alternate."""
        service = ecs.FargateService(
            self,
            "Service",
            cluster=self.cluster,
            task_definition=self.task_definition,
            service_name=names.ingest_service,
            security_groups=[app_security_group],
            vpc_subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS),
            assign_public_ip=False,
            min_healthy_percent=100,
            max_healthy_percent=200,
            health_check_grace_period=Duration.seconds(60),
            deployment_strategy=ecs.DeploymentStrategy[config.deployment_strategy],
            bake_time=Duration.minutes(config.bake_time_minutes),
            **_traffic_shift(config),
            circuit_breaker=ecs.DeploymentCircuitBreaker(enable=True, rollback=True),
            deployment_alarms=ecs.DeploymentAlarmConfig(
                alarm_names=[alarm.alarm_name for alarm in self.rollback_alarms],
                behavior=ecs.AlarmBehavior.ROLLBACK_ON_ALARM,
            ),
        )
        target = service.load_balancer_target(
            container_name=CONTAINER_NAME,
            container_port=config.container_port,
            alternate_target=ecs.AlternateTarget(
                "GreenTarget",
                alternate_target_group=self.edge.green_target_group,
                production_listener=ecs.ListenerRuleConfiguration.application_listener_rule(
                    self.edge.production_rule
                ),
                test_listener=ecs.ListenerRuleConfiguration.application_listener_rule(self.edge.test_rule),
            ),
        )
        target.attach_to_application_target_group(self.edge.blue_target_group)
        return service


def _traffic_shift(config: ServiceConfig) -> dict:
    """Step settings for the progressive strategies; blue/green shifts everything at once."""
    step = ecs.TrafficShiftConfig(
        step_percent=10.0, step_bake_time=Duration.minutes(config.bake_time_minutes)
    )
    if config.deployment_strategy == "CANARY":
        return {"canary_configuration": step}
    if config.deployment_strategy == "LINEAR":
        return {"linear_configuration": step}
    return {}
