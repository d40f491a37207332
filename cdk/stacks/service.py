"""Service stack: the ingestion service on ECS Fargate, its ALB, its blue/green deployment hook and
the WAF in front of it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aws_cdk import Annotations, CfnOutput, Stack
from aws_cdk import aws_ec2 as ec2
from constructs import Construct

from cdk.components.datalake import SERVICE_DEAD_LETTER_PREFIX
from cdk.components.deploy_hooks import DeploySmokeTest
from cdk.components.ingest.service import IngestService
from cdk.components.state_store import connect_task
from cdk.components.waf import EdgeFirewall
from cdk.props import DatabaseAccess, LakeAccess, PlatformNetwork, ServiceEdge, StateStoreAccess, StreamAccess
from environments.config import EnvironmentConfig
from environments.naming import EnvironmentNames

DEPLOY_HOOKS_DIRECTORY = Path(__file__).resolve().parent.parent.parent / "lambda" / "deploy_hooks"


class ServiceStack(Stack):
    """Owns the ECS cluster and service (blue/green), the ALB and listeners, the smoke-test
    deployment hook, and the web ACL. Hands the Pipeline stack its `edge` and the Monitoring stack
    its `ingest.load_balancer_names`."""

    def __init__(
        self, scope: Construct, construct_id: str, *,
        config: EnvironmentConfig, image_directory: Path, network: PlatformNetwork,
        database: DatabaseAccess, stream: StreamAccess, lake: LakeAccess, state_store: StateStoreAccess,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        names, vpc = EnvironmentNames(config.name), network.vpc
        self.ingest = IngestService(
            self,
            "Ingest",
            config=config.service,
            names=names,
            production=config.production,
            image_directory=image_directory,
            network=network,
            certificate_arn=config.certificate_arn,
            domain_name=config.domain_name,
            database=database,
            database_name=config.database.database_name,
            lake=lake,
            dead_letter_prefix=SERVICE_DEAD_LETTER_PREFIX,
            stream=stream,
            log_retention_days=config.log_retention_days,
        )
        # Shared per-client limits and anomaly windows across the tasks (ElastiCache for Valkey, IAM auth).
        connect_task(state_store, self.ingest.task_definition)
        scheme = "https" if config.certificate_arn else "http"
        self.smoke_test = DeploySmokeTest(
            self,
            "DeploySmokeTest",
            config=config.service,
            names=names,
            code_directory=DEPLOY_HOOKS_DIRECTORY,
            service=self.ingest.service,
            test_base_url=(
                f"{scheme}://{self.ingest.load_balancer.load_balancer_dns_name}:"
                f"{config.service.test_listener_port}"
            ),
            # The ALB's own DNS name is what the hook dials; the certificate names the service's domain,
            # so the hook verifies it against that name (SNI), with full chain and host-name checks.
            tls_server_name=config.domain_name,
            vpc=vpc,
            vpc_cidr=config.network.vpc_cidr,
            load_balancer_security_group=network.load_balancer_security_group,
            nat_public_ips=_nat_public_ips(vpc),
            log_retention_days=config.log_retention_days,
        )
        self.firewall = EdgeFirewall(
            self,
            "Firewall",
            config=config.waf,
            names=names,
            load_balancer_arn=self.ingest.load_balancer.load_balancer_arn,
            log_retention_days=config.log_retention_days,
            # The LoadTest stack's workers reach the ALB from these addresses (they run in this VPC).
            load_generator_ips=tuple(_nat_public_ips(vpc)) if config.load_test.enabled else (),
        )
        self.edge = ServiceEdge(
            production_listener=self.ingest.production_listener,
            url=self.ingest.url,
            jwt_signing_key_secret_arn=self.ingest.jwt_signing_key.secret_arn,
            api_clients_secret_arn=self.ingest.api_clients.secret_arn,
        )
        if config.allow_plain_http:
            Annotations.of(self).add_warning_v2(
                "sensor:plain-http",
                f"environment {config.name!r} has no certificate (allow_plain_http: true): the ALB's "
                "listeners carry client secrets and bearer tokens in plain HTTP. Non-production only.",
            )
        CfnOutput(self, "LoadBalancerUrl", value=self.ingest.url)
        CfnOutput(self, "ClusterName", value=self.ingest.cluster.cluster_name)
        CfnOutput(self, "ServiceName", value=self.ingest.service.service_name)
        # Its `client_secret`'s SHA-256 digest goes into the ApiClients secret (README: blue/green).
        CfnOutput(self, "SmokeClientSecretArn", value=self.smoke_test.client_secret.secret_arn)


def _nat_public_ips(vpc: ec2.IVpc) -> list[str]:
    """The Elastic IPs of the VPC's NAT gateways (one per public subnet hosting one)."""
    addresses = []
    for subnet in vpc.public_subnets:
        eip = subnet.node.try_find_child("EIP")
        if isinstance(eip, ec2.CfnEIP):
            addresses.append(eip.attr_public_ip)
    return addresses
