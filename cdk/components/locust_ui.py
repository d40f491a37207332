"""The Locust web UI of the LoadTest stack: an internal HTTPS load balancer that signs operators in
with Cognito (administrator-created users, TOTP required) before forwarding to the Locust master."""

from __future__ import annotations

from aws_cdk import Aws, Duration, RemovalPolicy
from aws_cdk import aws_cognito as cognito
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_elasticloadbalancingv2 as elbv2
from aws_cdk import aws_elasticloadbalancingv2_actions as elbv2_actions
from aws_cdk import aws_s3 as s3
from constructs import Construct

from cdk.components.hsts import add_hsts
from cdk.components.nag import acknowledge
from environments.config import LoadTestConfig

WEB_PORT = 8089  # Locust's web UI on the master
HTTPS_PORT = 443


class LocustUi(Construct):
    """Owns the UI's internal ALB (HTTPS only, in the private subnets), its security group, and the
    Cognito user pool that authenticates every request before the ALB forwards it to the master.

    Users are created by an administrator (no self sign-up) and must use a TOTP second factor.
    The ALB's security group admits HTTPS from the VPC (and `ui_allowed_cidrs`) and may send only to
    the master on 8089 and to Cognito's token endpoint on 443 (the authenticate action needs it).
    """

    def __init__(
        self, scope: Construct, construct_id: str, *,
        config: LoadTestConfig,
        name_prefix: str,
        certificate_arn: str,
        vpc: ec2.IVpc,
        vpc_cidr: str,
        access_logs_bucket: s3.IBucket,
    ) -> None:
        super().__init__(scope, construct_id)
        self.security_group = ec2.SecurityGroup(
            self, "SecurityGroup", vpc=vpc, description="Locust UI load balancer (internal)",
            allow_all_outbound=False,
        )
        for cidr in (vpc_cidr, *config.ui_allowed_cidrs):
            self.security_group.add_ingress_rule(ec2.Peer.ipv4(cidr), ec2.Port.tcp(HTTPS_PORT), "Locust UI (HTTPS)")

        self.load_balancer = elbv2.ApplicationLoadBalancer(
            self,
            "LoadBalancer",
            vpc=vpc,
            internet_facing=False,
            # Lower-case and fixed, so the DNS name in the Cognito callback URL matches what browsers send.
            load_balancer_name=f"{name_prefix}-loadtest",
            security_group=self.security_group,
            vpc_subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS),
            drop_invalid_header_fields=True,
        )
        self.load_balancer.log_access_logs(access_logs_bucket, prefix=f"alb/{name_prefix}-loadtest")
        host = config.ui_domain_name or self.load_balancer.load_balancer_dns_name
        self.url = f"https://{host}"

        self.user_pool = cognito.UserPool(
            self,
            "Users",
            user_pool_name=f"{name_prefix}-loadtest-ui",
            self_sign_up_enabled=False,
            sign_in_aliases=cognito.SignInAliases(email=True),
            mfa=cognito.Mfa.REQUIRED,
            mfa_second_factor=cognito.MfaSecondFactor(otp=True, sms=False),
            password_policy=cognito.PasswordPolicy(
                min_length=14, require_digits=True, require_lowercase=True, require_uppercase=True,
                require_symbols=True, temp_password_validity=Duration.days(3),
            ),
            account_recovery=cognito.AccountRecovery.NONE,
            removal_policy=RemovalPolicy.DESTROY,
        )
        acknowledge(
            self.user_pool,
            "COG8",
            "Threat protection needs the Cognito Plus plan; this pool holds a handful of administrator-"
            "created operators with mandatory TOTP MFA for a UI reachable only from inside the VPC.",
        )
        self.domain = self.user_pool.add_domain(
            "Domain",
            cognito_domain=cognito.CognitoDomainOptions(domain_prefix=f"{name_prefix}-loadtest-{Aws.ACCOUNT_ID}"),
        )
        self.client = self.user_pool.add_client(
            "AlbClient",
            user_pool_client_name=f"{name_prefix}-loadtest-alb",
            generate_secret=True,
            o_auth=cognito.OAuthSettings(
                flows=cognito.OAuthFlows(authorization_code_grant=True),
                scopes=[cognito.OAuthScope.OPENID, cognito.OAuthScope.EMAIL],
                callback_urls=[f"{self.url}/oauth2/idpresponse"],
            ),
            supported_identity_providers=[cognito.UserPoolClientIdentityProvider.COGNITO],
        )

        self.target_group = elbv2.ApplicationTargetGroup(
            self,
            "MasterTargetGroup",
            vpc=vpc,
            port=WEB_PORT,
            protocol=elbv2.ApplicationProtocol.HTTP,
            target_type=elbv2.TargetType.IP,
            deregistration_delay=Duration.seconds(5),
            health_check=elbv2.HealthCheck(path="/", healthy_http_codes="200", interval=Duration.seconds(15)),
        )
        self.listener = self.load_balancer.add_listener(
            "Https",
            port=HTTPS_PORT,
            protocol=elbv2.ApplicationProtocol.HTTPS,
            certificates=[elbv2.ListenerCertificate.from_arn(certificate_arn)],
            ssl_policy=elbv2.SslPolicy.RECOMMENDED_TLS,
            open=False,
            default_action=elbv2_actions.AuthenticateCognitoAction(
                user_pool=self.user_pool,
                user_pool_client=self.client,
                user_pool_domain=self.domain,
                session_timeout=Duration.hours(8),
                next=elbv2.ListenerAction.forward([self.target_group]),
            ),
        )
        add_hsts(self.listener)
