"""The ingestion service: ECS Fargate behind an ALB, deployed blue/green and autoscaled."""

from __future__ import annotations

from pathlib import Path

from aws_cdk import Aws, Duration, RemovalPolicy, SecretValue
from aws_cdk import aws_applicationautoscaling as appscaling
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cognito as cognito
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_elasticloadbalancingv2 as elbv2
from aws_cdk import aws_elasticloadbalancingv2_actions as elbv2_actions
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from cdk.components.checkov import acknowledge_checkov
from cdk.components.nag import acknowledge, finding_text
from cdk.components.retention import log_retention
from cdk.config import DashboardAuthConfig, ServiceConfig

CONTAINER_NAME = "app"
RDS_CA_BUNDLE_IN_IMAGE = "/etc/ssl/rds/global-bundle.pem"
PRODUCTION_RULE_PRIORITY = 10
# Evaluated before the production rule: /dashboard* is authenticated by the ALB when dashboard_auth is set.
DASHBOARD_RULE_PRIORITY = 6  # the read API's /read/* rule has 5 on the same listener
DASHBOARD_PATHS = ["/dashboard", "/dashboard/*"]
# HSTS on every HTTPS answer, set by the ALB itself (listener attribute), so no response can miss it.
HSTS_HEADER_VALUE = "max-age=31536000; includeSubDomains"
HSTS_ATTRIBUTE = "routing.http.response.strict_transport_security.header_value"


class IngestService(Construct):
    """Owns the ECS cluster, the app's task definition and Fargate service, the internet-facing
    ALB with its production and test listeners, the blue and green target groups, the deployment
    rollback alarms, autoscaling, the task's IAM permissions and the JWT signing-key secret.

    Deployments are ECS-native blue/green (or canary/linear by config): ECS starts the green task
    set behind the alternate target group, exposes it on the test listener, shifts the production
    listener rule to it after the bake time and rolls back when a deployment alarm fires.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: ServiceConfig,
        name_prefix: str,
        production: bool,
        image_directory: Path,
        vpc: ec2.IVpc,
        load_balancer_security_group: ec2.ISecurityGroup,
        app_security_group: ec2.ISecurityGroup,
        certificate_arn: str | None,
        domain_name: str | None,
        access_logs_bucket: s3.IBucket,
        database_secret: secretsmanager.ISecret,
        database_name: str,
        lake_bucket_name: str,
        dead_letter_prefix: str,
        msk_cluster_arn: str,
        topic_arn: str,
        topic_name: str,
        log_retention_days: int,
    ) -> None:
        super().__init__(scope, construct_id)
        self._config = config

        self.cluster = ecs.Cluster(
            self,
            "Cluster",
            vpc=vpc,
            cluster_name=name_prefix,
            container_insights_v2=ecs.ContainerInsights.ENHANCED,
        )

        self.jwt_signing_key = secretsmanager.Secret(
            self,
            "JwtSigningKey",
            description=f"{name_prefix}: HMAC key that signs API access tokens",
            generate_secret_string=secretsmanager.SecretStringGenerator(
                password_length=64, exclude_punctuation=True
            ),
        )
        # Who may obtain tokens: a JSON list of {client_id, secret_sha256, scopes, rate_per_second,
        # burst}. Starts empty (nobody); the platform team fills it (README: API clients).
        self.api_clients = secretsmanager.Secret(
            self,
            "ApiClients",
            description=f"{name_prefix}: API clients allowed to obtain tokens (JSON list, secrets hashed)",
            secret_string_value=SecretValue.unsafe_plain_text("[]"),
        )
        acknowledge(
            self.api_clients,
            "SMG4",
            "Holds SHA-256 digests of client secrets, edited by the platform team; clients rotate their "
            "secrets by the documented procedure (add the new digest, then remove the old one).",
        )
        acknowledge(
            self.jwt_signing_key,
            "SMG4",
            "Rotating the token-signing key invalidates every issued token at once; it is rotated "
            "by the documented key-rollover procedure (new value, redeploy), not on a timer.",
        )

        self.task_definition = self._task_definition(
            image_directory=image_directory,
            name_prefix=name_prefix,
            database_secret=database_secret,
            database_name=database_name,
            lake_bucket_name=lake_bucket_name,
            dead_letter_prefix=dead_letter_prefix,
            msk_cluster_arn=msk_cluster_arn,
            topic_name=topic_name,
            log_retention_days=log_retention_days,
        )
        self._grant_task_permissions(
            database_secret=database_secret,
            lake_bucket_name=lake_bucket_name,
            dead_letter_prefix=dead_letter_prefix,
            msk_cluster_arn=msk_cluster_arn,
            topic_arn=topic_arn,
        )

        self.load_balancer = elbv2.ApplicationLoadBalancer(
            self,
            "LoadBalancer",
            vpc=vpc,
            internet_facing=True,
            security_group=load_balancer_security_group,
            vpc_subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PUBLIC),
            http2_enabled=True,
            drop_invalid_header_fields=True,
            deletion_protection=production,
        )
        self.load_balancer.log_access_logs(access_logs_bucket, prefix=f"alb/{name_prefix}")

        self.blue_target_group = self._target_group("Blue", vpc)
        self.green_target_group = self._target_group("Green", vpc)
        production_listener, test_listener = self._listeners(certificate_arn)
        self.production_listener = production_listener
        self.production_rule = self._forward_rule("ProductionRule", production_listener)
        self.test_rule = self._forward_rule("TestRule", test_listener)
        # Clients use the certificate's name (verified TLS); the ALB's DNS name only without a certificate.
        self.url = (f"https://{domain_name}" if certificate_arn and domain_name
                    else f"http://{self.load_balancer.load_balancer_dns_name}")

        self.rollback_alarms = self._rollback_alarms(name_prefix)
        self.service = ecs.FargateService(
            self,
            "Service",
            cluster=self.cluster,
            task_definition=self.task_definition,
            service_name=f"{name_prefix}-ingest",
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

        target = self.service.load_balancer_target(
            container_name=CONTAINER_NAME,
            container_port=config.container_port,
            alternate_target=ecs.AlternateTarget(
                "GreenTarget",
                alternate_target_group=self.green_target_group,
                production_listener=ecs.ListenerRuleConfiguration.application_listener_rule(
                    self.production_rule
                ),
                test_listener=ecs.ListenerRuleConfiguration.application_listener_rule(self.test_rule),
            ),
        )
        target.attach_to_application_target_group(self.blue_target_group)
        if config.dashboard_auth.provider != "none":
            self._authenticated_dashboard(config.dashboard_auth, vpc, production_listener, load_balancer_security_group)
        acknowledge(
            self.service,
            "IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/AmazonECSInfrastructureRolePolicyForLoadBalancers]",
            "ECS blue/green re-weights the listener rules through this role; AWS documents this "
            "managed policy for it and keeps it current with the actions ECS needs.",
        )

        self._autoscaling()

    def _task_definition(
        self,
        *,
        image_directory: Path,
        name_prefix: str,
        database_secret: secretsmanager.ISecret,
        database_name: str,
        lake_bucket_name: str,
        dead_letter_prefix: str,
        msk_cluster_arn: str,
        topic_name: str,
        log_retention_days: int,
    ) -> ecs.FargateTaskDefinition:
        task_definition = ecs.FargateTaskDefinition(
            self,
            "TaskDefinition",
            cpu=self._config.cpu,
            memory_limit_mib=self._config.memory_mib,
            runtime_platform=ecs.RuntimePlatform(
                cpu_architecture=ecs.CpuArchitecture.X86_64,
                operating_system_family=ecs.OperatingSystemFamily.LINUX,
            ),
        )
        log_group = logs.LogGroup(
            self,
            "AppLogs",
            retention=log_retention(log_retention_days),
            removal_policy=RemovalPolicy.DESTROY,
        )
        task_definition.add_container(
            CONTAINER_NAME,
            image=ecs.ContainerImage.from_asset(str(image_directory), file="app/Dockerfile"),
            port_mappings=[ecs.PortMapping(container_port=self._config.container_port)],
            logging=ecs.LogDrivers.aws_logs(stream_prefix="app", log_group=log_group),
            readonly_root_filesystem=True,
            stop_timeout=Duration.seconds(30),
            environment={
                "APP_ENV": name_prefix,
                "PORT": str(self._config.container_port),
                # uvicorn workers follow the task size: one per vCPU, at least one.
                "WEB_CONCURRENCY": str(max(1, self._config.cpu // 1024)),
                "DB_NAME": database_name,
                "DATA_LAKE_BUCKET": lake_bucket_name,
                "DEAD_LETTER_PREFIX": dead_letter_prefix,
                "MSK_CLUSTER_ARN": msk_cluster_arn,
                "KAFKA_TOPIC": topic_name,
                "DB_SECRET_ARN": database_secret.secret_arn,
                # TLS to RDS verified against the RDS CA bundle the image fetches at build (app/Dockerfile).
                "SENSOR_DB_SSLMODE": "verify-full",
                "SENSOR_DB_SSL_ROOT_CERT": RDS_CA_BUNDLE_IN_IMAGE,
            },
            secrets={
                "DB_HOST": ecs.Secret.from_secrets_manager(database_secret, "host"),
                "DB_PORT": ecs.Secret.from_secrets_manager(database_secret, "port"),
                "DB_USERNAME": ecs.Secret.from_secrets_manager(database_secret, "username"),
                "DB_PASSWORD": ecs.Secret.from_secrets_manager(database_secret, "password"),
                "JWT_SIGNING_KEY": ecs.Secret.from_secrets_manager(self.jwt_signing_key),
                "SENSOR_CLIENTS": ecs.Secret.from_secrets_manager(self.api_clients),
            },
        )
        acknowledge(
            task_definition,
            "ECS2",
            "The environment holds only non-secret settings (names, ARNs, sizes); credentials and "
            "the signing key are injected as Secrets Manager secrets.",
        )
        acknowledge(
            task_definition,
            "IAM5[Resource::*]",
            "ecr:GetAuthorizationToken (execution role) supports no resource-level permissions; image "
            "pulls themselves are scoped to the asset repository.",
        )
        return task_definition

    def _grant_task_permissions(
        self,
        *,
        database_secret: secretsmanager.ISecret,
        lake_bucket_name: str,
        dead_letter_prefix: str,
        msk_cluster_arn: str,
        topic_arn: str,
    ) -> None:
        role = self.task_definition.task_role
        lake_arn = f"arn:{Aws.PARTITION}:s3:::{lake_bucket_name}"
        dead_letter_objects = f"{lake_arn}/{dead_letter_prefix}*"
        # Re-read after rotation: injected secrets are fixed at task start.
        database_secret.grant_read(role)
        # Dead-letter store: written while the database is down, replayed and removed later.
        # A policy of its own, so its one acknowledged wildcard cannot cover anything else.
        dead_letter_policy = iam.Policy(
            self,
            "DeadLetterPolicy",
            statements=[
                iam.PolicyStatement(
                    sid="DeadLetterObjects",
                    actions=["s3:PutObject", "s3:GetObject", "s3:DeleteObject"],
                    resources=[dead_letter_objects],
                ),
                iam.PolicyStatement(
                    sid="DeadLetterListing",
                    actions=["s3:ListBucket"],
                    resources=[lake_arn],
                    conditions={"StringLike": {"s3:prefix": [f"{dead_letter_prefix}*"]}},
                ),
            ],
        )
        dead_letter_policy.attach_to_role(role)
        acknowledge(
            dead_letter_policy,
            f"IAM5[Resource::{finding_text(self, dead_letter_objects)}]",
            f"Object keys under the '{dead_letter_prefix}' prefix are generated per batch; the "
            "wildcard is limited to that prefix of the data-lake bucket.",
        )
        role.add_to_principal_policy(
            iam.PolicyStatement(
                sid="KafkaConnect",
                actions=[
                    "kafka-cluster:Connect",
                    "kafka-cluster:WriteDataIdempotently",
                    "kafka:GetBootstrapBrokers",
                ],
                resources=[msk_cluster_arn],
            )
        )
        role.add_to_principal_policy(
            iam.PolicyStatement(
                sid="KafkaProduceReadings",
                actions=["kafka-cluster:DescribeTopic", "kafka-cluster:WriteData"],
                resources=[topic_arn],
            )
        )

    def _target_group(self, colour: str, vpc: ec2.IVpc) -> elbv2.ApplicationTargetGroup:
        return elbv2.ApplicationTargetGroup(
            self,
            f"{colour}TargetGroup",
            vpc=vpc,
            port=self._config.container_port,
            protocol=elbv2.ApplicationProtocol.HTTP,
            target_type=elbv2.TargetType.IP,
            deregistration_delay=Duration.seconds(30),
            health_check=elbv2.HealthCheck(
                path=self._config.health_check_path,
                interval=Duration.seconds(10),
                timeout=Duration.seconds(5),
                healthy_threshold_count=2,
                unhealthy_threshold_count=3,
                healthy_http_codes="200",
            ),
        )

    def _listeners(
        self, certificate_arn: str | None
    ) -> tuple[elbv2.ApplicationListener, elbv2.ApplicationListener]:
        """Production listener (443; port 80 only redirects) and the test listener (HTTPS), both
        adding HSTS to every answer. Plain HTTP only in an environment that opted out explicitly
        (`allow_plain_http`, non-production, warned at synth).

        Unmatched requests get a 404 from the ALB; the forward rules below carry the traffic, so
        ECS can re-weight them during a deployment.
        """
        not_found = elbv2.ListenerAction.fixed_response(
            404, content_type="application/json", message_body='{"detail":"Not Found"}'
        )
        if certificate_arn is None:
            production = self.load_balancer.add_listener(
                "Http", port=80, protocol=elbv2.ApplicationProtocol.HTTP, open=False,
                default_action=not_found,
            )
            test = self.load_balancer.add_listener(
                "Test", port=self._config.test_listener_port, protocol=elbv2.ApplicationProtocol.HTTP,
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
            "Test", port=self._config.test_listener_port, protocol=elbv2.ApplicationProtocol.HTTPS,
            certificates=[certificate], ssl_policy=elbv2.SslPolicy.RECOMMENDED_TLS, open=False,
            default_action=not_found,
        )
        for listener in (production, test):
            listener.set_attribute(HSTS_ATTRIBUTE, HSTS_HEADER_VALUE)
        return production, test

    def _authenticated_dashboard(
        self,
        auth: DashboardAuthConfig,
        vpc: ec2.IVpc,
        listener: elbv2.ApplicationListener,
        load_balancer_security_group: ec2.ISecurityGroup,
    ) -> None:
        """The ALB signs dashboard viewers in (Cognito or OIDC) before forwarding /dashboard* to the tasks.

        Its own target group, which every task of the service joins whatever its colour: ECS re-weights only
        the production rule during a blue/green deployment, so a rule forwarding to blue/green would point at
        the old colour afterwards. The app then trusts the `x-amzn-oidc-data` header signed by this ALB
        (SENSOR_DASHBOARD_AUTH=alb, SENSOR_ALB_ARN).
        """
        self.dashboard_target_group = self._target_group("Dashboard", vpc)
        self.service.load_balancer_target(
            container_name=CONTAINER_NAME, container_port=self._config.container_port
        ).attach_to_application_target_group(self.dashboard_target_group)
        forward = elbv2.ListenerAction.forward([self.dashboard_target_group])
        timeout = Duration.minutes(auth.session_timeout_minutes)
        if auth.cognito is not None:
            pool = cognito.UserPool.from_user_pool_arn(self, "DashboardUserPool", auth.cognito.user_pool_arn)
            action: elbv2.ListenerAction = elbv2_actions.AuthenticateCognitoAction(
                user_pool=pool,
                user_pool_client=cognito.UserPoolClient.from_user_pool_client_id(
                    self, "DashboardUserPoolClient", auth.cognito.user_pool_client_id
                ),
                user_pool_domain=cognito.UserPoolDomain.from_domain_name(
                    self, "DashboardUserPoolDomain", auth.cognito.user_pool_domain
                ),
                session_timeout=timeout,
                next=forward,
            )
        else:
            assert auth.oidc is not None  # DashboardAuthConfig guarantees one block per provider
            action = elbv2.ListenerAction.authenticate_oidc(
                issuer=auth.oidc.issuer,
                authorization_endpoint=auth.oidc.authorization_endpoint,
                token_endpoint=auth.oidc.token_endpoint,
                user_info_endpoint=auth.oidc.user_info_endpoint,
                client_id=auth.oidc.client_id,
                client_secret=SecretValue.secrets_manager(auth.oidc.client_secret_name),
                session_timeout=timeout,
                next=forward,
            )
        elbv2.ApplicationListenerRule(
            self, "DashboardRule", listener=listener, priority=DASHBOARD_RULE_PRIORITY,
            conditions=[elbv2.ListenerCondition.path_patterns(DASHBOARD_PATHS)], action=action,
        )
        # The authenticate action calls the identity provider's token and user-info endpoints from the ALB.
        load_balancer_security_group.add_egress_rule(
            ec2.Peer.any_ipv4(), ec2.Port.tcp(443), "ALB to the dashboard's identity provider (authenticate action)"
        )
        container = self.task_definition.default_container
        assert container is not None
        container.add_environment("SENSOR_DASHBOARD_AUTH", "alb")
        container.add_environment("SENSOR_ALB_ARN", self.load_balancer.load_balancer_arn)

    def _forward_rule(
        self, construct_id: str, listener: elbv2.ApplicationListener
    ) -> elbv2.ApplicationListenerRule:
        # ECS shifts the weights between blue and green during a deployment.
        return elbv2.ApplicationListenerRule(
            self,
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

    def _rollback_alarms(self, name_prefix: str) -> list[cloudwatch.Alarm]:
        """Alarms that roll a deployment back: 5xx from the tasks and unhealthy targets, summed
        over both colours because the new tasks may sit behind either target group, and the p99
        target response time of the slower colour (`rollback_p99_latency_ms`)."""
        period = Duration.minutes(1)
        target_5xx = cloudwatch.MathExpression(
            expression="FILL(blue, 0) + FILL(green, 0)",
            using_metrics={
                colour: group.metrics.http_code_target(
                    elbv2.HttpCodeTarget.TARGET_5XX_COUNT, period=period, statistic="Sum"
                )
                for colour, group in (("blue", self.blue_target_group), ("green", self.green_target_group))
            },
            label="Target 5xx (blue + green)",
            period=period,
        )
        unhealthy = cloudwatch.MathExpression(
            expression="MAX([FILL(blue, 0), FILL(green, 0)])",
            using_metrics={
                colour: group.metrics.unhealthy_host_count(period=period, statistic="Maximum")
                for colour, group in (("blue", self.blue_target_group), ("green", self.green_target_group))
            },
            label="Unhealthy targets (max of blue, green)",
            period=period,
        )
        # p99 of each colour's own target response time (seconds); the slower colour decides.
        p99_latency = cloudwatch.MathExpression(
            expression="MAX([FILL(blue, 0), FILL(green, 0)])",
            using_metrics={
                colour: group.metrics.target_response_time(period=period, statistic="p99")
                for colour, group in (("blue", self.blue_target_group), ("green", self.green_target_group))
            },
            label="p99 target response time, seconds (max of blue, green)",
            period=period,
        )
        return [
            cloudwatch.Alarm(
                self,
                "DeploymentTarget5xxAlarm",
                alarm_name=f"{name_prefix}-deployment-target-5xx",
                alarm_description="Rolls back an ECS deployment: the app answers 5xx.",
                metric=target_5xx,
                threshold=10,
                evaluation_periods=2,
                datapoints_to_alarm=2,
                comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            ),
            cloudwatch.Alarm(
                self,
                "DeploymentUnhealthyTargetsAlarm",
                alarm_name=f"{name_prefix}-deployment-unhealthy-targets",
                alarm_description="Rolls back an ECS deployment: targets fail health checks.",
                metric=unhealthy,
                threshold=1,
                evaluation_periods=2,
                datapoints_to_alarm=2,
                comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            ),
            cloudwatch.Alarm(
                self,
                "DeploymentP99LatencyAlarm",
                alarm_name=f"{name_prefix}-deployment-p99-latency",
                alarm_description=(
                    "Rolls back an ECS deployment: p99 target response time above "
                    f"{self._config.rollback_p99_latency_ms} ms."
                ),
                metric=p99_latency,
                threshold=self._config.rollback_p99_latency_ms / 1000,
                evaluation_periods=2,
                datapoints_to_alarm=2,
                comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            ),
        ]

    def _autoscaling(self) -> None:
        scaling_config = self._config.scaling
        scaling = self.service.auto_scale_task_count(
            min_capacity=scaling_config.min_tasks, max_capacity=scaling_config.max_tasks
        )
        cooldowns = {
            "scale_in_cooldown": Duration.seconds(scaling_config.scale_in_cooldown_seconds),
            "scale_out_cooldown": Duration.seconds(scaling_config.scale_out_cooldown_seconds),
        }
        scaling.scale_on_cpu_utilization(
            "CpuScaling", target_utilization_percent=scaling_config.cpu_target_percent, **cooldowns
        )
        self._scale_on_requests_over_both_colours(scaling, scaling_config)

    def _scale_on_requests_over_both_colours(self, scaling: ecs.ScalableTaskCount, scaling_config) -> None:
        """Requests per running task, counting blue AND green: during a deployment traffic moves to
        the alternate target group, and a policy on one group would see its load vanish. The L2
        refuses metric math in target tracking, so this is the L1 policy (AWS accepts any
        CloudWatch metric-math function here)."""
        load_balancer = self.load_balancer.load_balancer_full_name
        queries = [
            _metric_query(colour, "AWS/ApplicationELB", "RequestCount", "Sum",
                          TargetGroup=group.target_group_full_name, LoadBalancer=load_balancer)
            for colour, group in (("blue", self.blue_target_group), ("green", self.green_target_group))
        ]
        queries.append(_metric_query("tasks", "ECS/ContainerInsights", "RunningTaskCount", "Average",
                                     ClusterName=self.cluster.cluster_name, ServiceName=self.service.service_name))
        queries.append({
            "id": "per_task",
            "expression": "(FILL(blue, 0) + FILL(green, 0)) / FILL(tasks, 1)",
            "label": "ALB requests per running task (blue + green)",
            "returnData": True,
        })
        target = scaling.node.find_child("Target")
        appscaling.CfnScalingPolicy(
            self,
            "RequestScaling",
            policy_name=f"{self.service.service_name}-requests-per-task",
            policy_type="TargetTrackingScaling",
            scaling_target_id=target.scalable_target_id,
            target_tracking_scaling_policy_configuration={
                "targetValue": scaling_config.requests_per_target,
                "scaleInCooldown": scaling_config.scale_in_cooldown_seconds,
                "scaleOutCooldown": scaling_config.scale_out_cooldown_seconds,
                "customizedMetricSpecification": {"metrics": queries},
            },
        )


def _metric_query(query_id: str, namespace: str, name: str, statistic: str, **dimensions: str) -> dict:
    return {
        "id": query_id,
        "returnData": False,
        "metricStat": {
            "metric": {"namespace": namespace, "metricName": name,
                       "dimensions": [{"name": key, "value": value} for key, value in dimensions.items()]},
            "stat": statistic,
        },
    }


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
