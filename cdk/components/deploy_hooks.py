"""Blue/green deployment hooks of the ingestion service: the smoke test of the green tasks."""

from __future__ import annotations

from pathlib import Path

from aws_cdk import Duration, Fn
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from cdk.components.client_secret import generated_client_secret
from cdk.components.lambda_common import read_secrets_statement
from cdk.components.nag import acknowledge
from cdk.components.vpc_function import FunctionCode, FunctionPolicy, InvocationReasons, VpcPythonFunction
from environments.config import ServiceConfig
from environments.naming import EnvironmentNames

HOOK_RUNTIME = lambda_.Runtime.PYTHON_3_11  # = LAMBDA_RUNTIME, the tests' Python
HOOK_STAGE = ecs.DeploymentLifecycleStage.POST_TEST_TRAFFIC_SHIFT
# ECS calls the hook again after this delay while the green tasks are not answering yet.
CALLBACK_DELAY_SECONDS = 30
# Five checks with a 5-second timeout each fit well inside one invocation.
REQUEST_TIMEOUT_SECONDS = 5
FUNCTION_TIMEOUT = Duration.seconds(60)
FUNCTION_MEMORY_MB = 256


class DeploySmokeTest(VpcPythonFunction):
    """Owns the smoke-test lifecycle hook (lambda/deploy_hooks) of the ECS service, with its role (its
    logs, its ENIs, reading its one secret), log group and security group (`VpcPythonFunction`), its
    attachment at POST_TEST_TRAFFIC_SHIFT (with the role ECS uses to invoke it), the smoke client's
    generated secret, and the ALB ingress on the test listener port from the NAT gateways' addresses
    (the path the hook's calls take to the internet-facing ALB).

    The function calls the green tasks through the ALB test listener (`test_base_url`); a FAILED
    answer, or no success within `smoke_test_max_wait_seconds`, rolls the deployment back. The
    smoke client must be one of the service's API clients: the platform team adds the digest of
    this secret's `client_secret` to the ApiClients secret.
    """

    def __init__(
        self, scope: Construct, construct_id: str, *,
        config: ServiceConfig,
        names: EnvironmentNames,
        code_directory: Path,
        service: ecs.FargateService,
        test_base_url: str,
        tls_server_name: str | None,
        vpc: ec2.IVpc,
        vpc_cidr: str,
        load_balancer_security_group: ec2.ISecurityGroup,
        nat_public_ips: list[str],
        log_retention_days: int,
    ) -> None:
        super().__init__(
            scope, construct_id, function_name=names.smoke_test_function, vpc=vpc,
            security_group_description="Blue/green smoke-test hook",
        )
        # The ALB is internet-facing: its DNS name resolves to public addresses, so the calls leave
        # through the NAT gateways and the destination is not a VPC address.
        self.security_group.add_egress_rule(
            ec2.Peer.any_ipv4(), ec2.Port.tcp(config.test_listener_port), "ALB test listener"
        )
        self._allow_secrets_manager(vpc_cidr)
        self._admit_nat_gateways(config.test_listener_port, load_balancer_security_group, nat_public_ips)

        self.client_secret = generated_client_secret(
            self, "SmokeClientSecret", client_id=config.smoke_client_id,
            description=f"{names.prefix}: the blue/green smoke-test hook's API client credentials",
            rotation_reason=(
                "The smoke client's secret is paired with its SHA-256 digest in the ApiClients secret; it "
                "rotates by the documented client procedure (new digest first, then the new secret)."
            ),
        )
        self._add_function(
            description="ECS blue/green hook: smoke-tests the green tasks through the ALB test listener",
            code=FunctionCode(
                # Standard library only: the directory is the bundle.
                code=lambda_.Code.from_asset(str(code_directory), exclude=["__pycache__", "*.pyc"]),
                runtime=HOOK_RUNTIME,
                architecture=lambda_.Architecture.ARM_64,
                memory_size=FUNCTION_MEMORY_MB,
                timeout=FUNCTION_TIMEOUT,
            ),
            policy=FunctionPolicy(
                name="DeploySmokeTest",
                description=f"{self.function_name}: reads its smoke-client secret, writes its logs",
                statements=(read_secrets_statement("ReadSmokeClientSecret", [self.client_secret.secret_arn]),),
            ),
            environment={
                "TEST_BASE_URL": test_base_url,
                # The certificate's name: the TLS handshake (SNI) and the host-name check use it.
                **({"TLS_SERVER_NAME": tls_server_name} if tls_server_name else {}),
                "SMOKE_CLIENT_ID": config.smoke_client_id,
                "SMOKE_CLIENT_SECRET_ARN": self.client_secret.secret_arn,
                "SMOKE_STAGES": HOOK_STAGE.value,
                "CALLBACK_DELAY_SECONDS": str(CALLBACK_DELAY_SECONDS),
                "MAX_WAIT_SECONDS": str(config.smoke_test_max_wait_seconds),
                "MAX_ATTEMPTS": str(config.smoke_test_max_wait_seconds // CALLBACK_DELAY_SECONDS + 1),
                "REQUEST_TIMEOUT_SECONDS": str(REQUEST_TIMEOUT_SECONDS),
            },
            reasons=InvocationReasons(
                runtime=(
                    "Python 3.11 is a supported Lambda runtime pinned on purpose, like the other functions of "
                    "the platform; the hook uses the standard library only and moves with them."
                ),
                no_dead_letter_queue=(
                    "ECS invokes the lifecycle hook synchronously and reads hookStatus from the response; a "
                    "failed invocation fails the deployment stage and rolls back, there is no asynchronous "
                    "event to keep."
                ),
                no_reserved_concurrency=(
                    "Runs only during ECS deployments; reserved concurrency would permanently take from the "
                    "account's unreserved pool for a function that is idle nearly all the time."
                ),
            ),
            log_retention_days=log_retention_days,
        )
        self._attach_to(service, names)

    def _admit_nat_gateways(
        self, port: int, load_balancer_security_group: ec2.ISecurityGroup, nat_public_ips: list[str]
    ) -> None:
        """The hook's calls arrive at the ALB from the NAT gateways' public addresses, which the ALB's
        VPC-CIDR rule for the test listener does not cover. Only the test listener port; the rule lives
        in this (the consumer's) stack, like the other cross-stack security-group rules."""
        nat_ingress = Construct(self, "NatIngress")
        acknowledge(
            nat_ingress,
            "EC23",
            "Each rule admits one NAT gateway Elastic IP (/32) on the test listener port only; the "
            "address is a deploy-time token, which cdk-nag cannot read and reports as open.",
        )
        for index, public_ip in enumerate(nat_public_ips, start=1):
            ec2.CfnSecurityGroupIngress(
                nat_ingress,
                f"TestListenerFromNat{index}",
                group_id=load_balancer_security_group.security_group_id,
                ip_protocol="tcp",
                from_port=port,
                to_port=port,
                cidr_ip=Fn.join("", [public_ip, "/32"]),
                description=f"Blue/green test listener from NAT gateway {index} (deployment hooks)",
            )

    def _attach_to(self, service: ecs.FargateService, names: EnvironmentNames) -> None:
        # ECS invokes the unqualified function ARN: that ARN only (CDK's default role adds `:*`).
        self.invoke_role = iam.Role(
            self,
            "InvokeRole",
            assumed_by=iam.ServicePrincipal("ecs.amazonaws.com"),
            description=f"ECS deployments of {names.prefix}: invoke the smoke-test hook",
            inline_policies={
                "InvokeSmokeTest": iam.PolicyDocument(
                    statements=[
                        iam.PolicyStatement(
                            sid="InvokeSmokeTestHook",
                            actions=["lambda:InvokeFunction"],
                            resources=[self.function.function_arn],
                        )
                    ]
                )
            },
        )
        service.add_lifecycle_hook(
            ecs.DeploymentLifecycleLambdaTarget(
                self.function, "SmokeTest", lifecycle_stages=[HOOK_STAGE], role=self.invoke_role
            )
        )
