"""The service's internet-facing ALB: production and test listeners, blue and green target groups, and
the forward rules ECS re-weights during a blue/green deployment."""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_elasticloadbalancingv2 as elbv2
from aws_cdk import aws_s3 as s3
from constructs import Construct

from cdk.components.checkov import acknowledge_checkov
from cdk.components.hsts import add_hsts
from environments.config import ServiceConfig

PRODUCTION_RULE_PRIORITY = 10


def app_target_group(
    scope: Construct, construct_id: str, *, vpc: ec2.IVpc, config: ServiceConfig
) -> elbv2.ApplicationTargetGroup:
    """Targets are the tasks' IPs on the container port, health-checked on `health_check_path`."""
    return elbv2.ApplicationTargetGroup(
        scope,
        construct_id,
        vpc=vpc,
        port=config.container_port,
        protocol=elbv2.ApplicationProtocol.HTTP,
        target_type=elbv2.TargetType.IP,
        deregistration_delay=Duration.seconds(30),
        health_check=elbv2.HealthCheck(
            path=config.health_check_path,
            interval=Duration.seconds(10),
            timeout=Duration.seconds(5),
            healthy_threshold_count=2,
            unhealthy_threshold_count=3,
            healthy_http_codes="200",
        ),
    )


class IngestLoadBalancer:
    """Builds, inside the service construct, `LoadBalancer` (access logs under `alb/<prefix>`), the
    `Blue`/`Green` target groups, the listeners and the `ProductionRule`/`TestRule` forward rules."""

    def __init__(
        self,
        scope: Construct,
        *,
        config: ServiceConfig,
        name_prefix: str,
        production: bool,
        vpc: ec2.IVpc,
        security_group: ec2.ISecurityGroup,
        certificate_arn: str | None,
        domain_name: str | None,
        access_logs_bucket: s3.IBucket,
    ) -> None:
        self._scope = scope
        self._config = config
        self.load_balancer = elbv2.ApplicationLoadBalancer(
            scope, "LoadBalancer", vpc=vpc, internet_facing=True,
            security_group=security_group,
            vpc_subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PUBLIC),
            http2_enabled=True,
            drop_invalid_header_fields=True,
            deletion_protection=production,
        )
        self.load_balancer.log_access_logs(access_logs_bucket, prefix=f"alb/{name_prefix}")

        self.blue_target_group = app_target_group(scope, "BlueTargetGroup", vpc=vpc, config=config)
        self.green_target_group = app_target_group(scope, "GreenTargetGroup", vpc=vpc, config=config)
        self.production_listener, test_listener = self._listeners(certificate_arn)
        self.production_rule = self._forward_rule("ProductionRule", self.production_listener)
        self.test_rule = self._forward_rule("TestRule", test_listener)
        # Clients use the certificate's name (verified TLS); the ALB's DNS name only without a certificate.
        self.url = (f"https://{domain_name}" if certificate_arn and domain_name
                    else f"http://{self.load_balancer.load_balancer_dns_name}")

    def _listeners(
        self, certificate_arn: str | None
    ) -> tuple[elbv2.ApplicationListener, elbv2.ApplicationListener]:
        """Production listener (443; port 80 only redirects) and the test listener (HTTPS), both
        adding HSTS to every answer. Plain HTTP only in an environment that opted out explicitly
        (`allow_plain_http`, non-production, warned at synth).

        Unmatched requests get a 404 from the ALB; the forward rules carry the traffic, so ECS can
        re-weight them during a deployment.
        """
        not_found = elbv2.ListenerAction.fixed_response(
            404, content_type="application/json", message_body='{"detail":"Not Found"}'
        )
        test_port = self._config.test_listener_port
        if certificate_arn is None:
            production = self.load_balancer.add_listener(
                "Http", port=80, protocol=elbv2.ApplicationProtocol.HTTP, open=False,
                default_action=not_found,
            )
            test = self.load_balancer.add_listener(
                "Test", port=test_port, protocol=elbv2.ApplicationProtocol.HTTP,
                open=False, default_action=not_found,
            )
            for listener in (production, test):
                for check in ("CKV_AWS_2", "CKV_AWS_103"):
                    acknowledge_checkov(
                        listener,
                        check,
                        "Plain HTTP only in an environment without certificate_arn (dev); production "
                        "requires a certificate. Issue 20 turns this into an explicit no-certificate opt-out.",
                    )
            return production, test

        certificate = elbv2.ListenerCertificate.from_arn(certificate_arn)
        production = self.load_balancer.add_listener(
            "Https", port=443, protocol=elbv2.ApplicationProtocol.HTTPS, certificates=[certificate],
            ssl_policy=elbv2.SslPolicy.RECOMMENDED_TLS, open=False, default_action=not_found,
        )
        self.load_balancer.add_redirect(source_port=80, target_port=443, open=False)
        test = self.load_balancer.add_listener(
            "Test", port=test_port, protocol=elbv2.ApplicationProtocol.HTTPS,
            certificates=[certificate], ssl_policy=elbv2.SslPolicy.RECOMMENDED_TLS, open=False,
            default_action=not_found,
        )
        for listener in (production, test):
            add_hsts(listener)
        return production, test

    def _forward_rule(
        self, construct_id: str, listener: elbv2.ApplicationListener
    ) -> elbv2.ApplicationListenerRule:
        # ECS shifts the weights between blue and green during a deployment.
        return elbv2.ApplicationListenerRule(
            self._scope,
            construct_id,
            listener=listener,
            priority=PRODUCTION_RULE_PRIORITY,
            conditions=[elbv2.ListenerCondition.path_patterns(["/*"])],
            action=elbv2.ListenerAction.weighted_forward(
                [
                    elbv2.WeightedTargetGroup(target_group=self.blue_target_group, weight=100),
                    elbv2.WeightedTargetGroup(target_group=self.green_target_group, weight=0),
                ]
            ),
        )

    @property
    def colours(self) -> tuple[tuple[str, elbv2.ApplicationTargetGroup], ...]:
        """(colour, target group) for blue and green, for metrics summed or maxed over both."""
        return (("blue", self.blue_target_group), ("green", self.green_target_group))
