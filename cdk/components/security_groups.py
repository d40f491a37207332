"""Security groups of the request path (ALB and app) and the only paths allowed between them.

The database and MSK own their security groups (in the data stack) and admit the app's group.
"""

from __future__ import annotations

from aws_cdk import aws_ec2 as ec2
from constructs import Construct

from cdk.components.checkov import acknowledge_checkov
from cdk.components.nag import acknowledge


def admitting_clients(
    scope: Construct, *, vpc: ec2.IVpc, description: str, client: ec2.ISecurityGroup, port: ec2.Port, label: str
) -> ec2.SecurityGroup:
    """`SecurityGroup` of a data store (no outbound) that admits `client` on `port`: both directions, the
    ingress here and the client's egress to this group only."""
    group = ec2.SecurityGroup(scope, "SecurityGroup", vpc=vpc, description=description, allow_all_outbound=False)
    group.connections.allow_from(client, port, label)
    return group


class PlatformSecurityGroups(Construct):
    """Owns the ALB's and the app tasks' security groups.

    Allowed: internet -> ALB (public listener ports), VPC -> ALB (test listener), ALB -> app
    (container port only), app -> HTTPS (AWS APIs); the database and MSK add app -> them. The ALB
    has no other outbound path.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        vpc: ec2.IVpc,
        vpc_cidr: str,
        container_port: int,
        public_ports: tuple[int, ...],
        test_listener_port: int,
    ) -> None:
        super().__init__(scope, construct_id)

        self.load_balancer = ec2.SecurityGroup(
            self, "LoadBalancer", vpc=vpc, description="ALB: public listeners", allow_all_outbound=False
        )
        # ECS tasks pull images and call AWS APIs over HTTPS (through endpoints or NAT); the database
        # and MSK add the app's egress to them when they admit it (connections.allow_from).
        # DNS (VPC resolver) and the task metadata endpoint are not filtered by security groups.
        self.app = ec2.SecurityGroup(
            self, "App", vpc=vpc, description="Ingestion service tasks", allow_all_outbound=False
        )
        self.app.add_egress_rule(ec2.Peer.any_ipv4(), ec2.Port.tcp(443), "HTTPS to AWS APIs")

        acknowledge(
            self.load_balancer,
            "EC23",
            "Internet-facing ALB for devices: listeners are open to 0.0.0.0/0 by design; the WAF "
            "web ACL (rate limit, AWS managed rules) filters requests before they reach the app.",
        )
        acknowledge_checkov(
            self.load_balancer,
            "CKV_AWS_260",
            "Port 80 is public for the permanent redirect to HTTPS (or dev's certificate-less listener); "
            "the WAF filters it like 443. Issue 20 (HTTPS-only listeners) revisits this acknowledgement.",
        )
        for port in public_ports:
            self.load_balancer.add_ingress_rule(
                ec2.Peer.any_ipv4(), ec2.Port.tcp(port), f"Public listener {port}"
            )
        # The test listener serves green tasks before they take production traffic: only callers
        # inside the VPC (the deployment hooks) may reach it.
        self.load_balancer.add_ingress_rule(
            ec2.Peer.ipv4(vpc_cidr), ec2.Port.tcp(test_listener_port), "Blue/green test listener"
        )
        self.load_balancer.add_egress_rule(
            self.app, ec2.Port.tcp(container_port), "ALB to ingestion service"
        )
        self.app.add_ingress_rule(
            self.load_balancer, ec2.Port.tcp(container_port), "ALB to ingestion service"
        )
