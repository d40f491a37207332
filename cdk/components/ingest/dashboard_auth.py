"""The ALB signs dashboard viewers in (Cognito or OIDC) before forwarding /dashboard* to the tasks."""

from __future__ import annotations

from aws_cdk import Duration, SecretValue
from aws_cdk import aws_cognito as cognito
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_elasticloadbalancingv2 as elbv2
from aws_cdk import aws_elasticloadbalancingv2_actions as elbv2_actions
from constructs import Construct

from cdk.components.ingest.load_balancer import IngestLoadBalancer, app_target_group
from cdk.components.ingest.task import CONTAINER_NAME
from environments.config import DashboardAuthConfig, ServiceConfig

# Evaluated before the production rule: /dashboard* is authenticated by the ALB when dashboard_auth is set.
DASHBOARD_RULE_PRIORITY = 6  # the read API's /read/* rule has 5 on the same listener
DASHBOARD_PATHS = ["/dashboard", "/dashboard/*"]


def authenticated_dashboard(
    scope: Construct,
    *,
    config: ServiceConfig,
    vpc: ec2.IVpc,
    edge: IngestLoadBalancer,
    service: ecs.FargateService,
    task_definition: ecs.TaskDefinition,
    load_balancer_security_group: ec2.ISecurityGroup,
) -> elbv2.ApplicationTargetGroup:
    """The `DashboardTargetGroup` and the `DashboardRule` that authenticates before forwarding to it.

    Its own target group, which every task of the service joins whatever its colour: ECS re-weights only
    the production rule during a blue/green deployment, so a rule forwarding to blue/green would point at
    the old colour afterwards. The app then trusts the `x-amzn-oidc-data` header signed by this ALB
    (SENSOR_DASHBOARD_AUTH=alb, SENSOR_ALB_ARN).
    """
    target_group = app_target_group(scope, "DashboardTargetGroup", vpc=vpc, config=config)
    service.load_balancer_target(
        container_name=CONTAINER_NAME, container_port=config.container_port
    ).attach_to_application_target_group(target_group)
    action = _sign_in_action(scope, config.dashboard_auth, elbv2.ListenerAction.forward([target_group]))
    elbv2.ApplicationListenerRule(
        scope, "DashboardRule", listener=edge.production_listener, priority=DASHBOARD_RULE_PRIORITY,
        conditions=[elbv2.ListenerCondition.path_patterns(DASHBOARD_PATHS)], action=action,
    )
    # The authenticate action calls the identity provider's token and user-info endpoints from the ALB.
    load_balancer_security_group.add_egress_rule(
        ec2.Peer.any_ipv4(), ec2.Port.tcp(443), "ALB to the dashboard's identity provider (authenticate action)"
    )
    container = task_definition.default_container
    assert container is not None
    container.add_environment("SENSOR_DASHBOARD_AUTH", "alb")
    container.add_environment("SENSOR_ALB_ARN", edge.load_balancer.load_balancer_arn)
    return target_group


def _sign_in_action(
    scope: Construct, auth: DashboardAuthConfig, forward: elbv2.ListenerAction
) -> elbv2.ListenerAction:
    timeout = Duration.minutes(auth.session_timeout_minutes)
    if auth.cognito is not None:
        pool = cognito.UserPool.from_user_pool_arn(scope, "DashboardUserPool", auth.cognito.user_pool_arn)
        return elbv2_actions.AuthenticateCognitoAction(
            user_pool=pool,
            user_pool_client=cognito.UserPoolClient.from_user_pool_client_id(
                scope, "DashboardUserPoolClient", auth.cognito.user_pool_client_id
            ),
            user_pool_domain=cognito.UserPoolDomain.from_domain_name(
                scope, "DashboardUserPoolDomain", auth.cognito.user_pool_domain
            ),
            session_timeout=timeout,
            next=forward,
        )
    assert auth.oidc is not None  # DashboardAuthConfig guarantees one block per provider
    return elbv2.ListenerAction.authenticate_oidc(
        issuer=auth.oidc.issuer,
        authorization_endpoint=auth.oidc.authorization_endpoint,
        token_endpoint=auth.oidc.token_endpoint,
        user_info_endpoint=auth.oidc.user_info_endpoint,
        client_id=auth.oidc.client_id,
        client_secret=SecretValue.secrets_manager(auth.oidc.client_secret_name),
        session_timeout=timeout,
        next=forward,
    )
