"""Network stack: the VPC and the security groups every other stack places resources in."""

from __future__ import annotations

from typing import Any

from aws_cdk import Stack
from constructs import Construct

from cdk.components.network import SensorVpc
from cdk.components.security_groups import PlatformSecurityGroups
from cdk.props import PlatformNetwork
from environments.config import EnvironmentConfig


class NetworkStack(Stack):
    """Owns the VPC (subnets, NAT, endpoints, flow logs) and the platform's security groups; hands the
    other stacks `platform_network`."""

    def __init__(
        self, scope: Construct, construct_id: str, *, config: EnvironmentConfig, **kwargs: Any
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.network = SensorVpc(self, "Network", config=config.network)
        self.vpc = self.network.vpc
        self.security_groups = PlatformSecurityGroups(
            self,
            "SecurityGroups",
            vpc=self.vpc,
            vpc_cidr=config.network.vpc_cidr,
            container_port=config.service.container_port,
            public_ports=(80, 443) if config.https else (80,),
            test_listener_port=config.service.test_listener_port,
        )
        self.platform_network = PlatformNetwork(
            vpc=self.vpc,
            load_balancer_security_group=self.security_groups.load_balancer,
            app_security_group=self.security_groups.app,
        )
