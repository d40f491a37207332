"""Blue/green deployments of a Lambda alias through CodeDeploy: rollback alarms, a pre-traffic hook."""

from __future__ import annotations

from pathlib import Path

from aws_cdk import ArnFormat, Duration, Stack
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_codedeploy as codedeploy
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from cdk.components.checkov import acknowledge_checkov
from cdk.components.lambda_common import (
    acknowledge_plain_environment,
    execution_role,
    function_log_group,
    log_write_statement,
)
from cdk.components.nag import acknowledge
from environments.config import LambdaDeploymentName

# CodeDeploy's AWS-managed service policy for Lambda deployments: update/read the alias, read the
# rollback alarms, and invoke hook functions whose names start with HOOK_NAME_PREFIX (no others).
CODEDEPLOY_LAMBDA_POLICY = "service-role/AWSCodeDeployRoleForLambdaLimited"
HOOK_NAME_PREFIX = "CodeDeployHook_"
HOOK_HANDLER = "handler.handler"
# Rollback alarms: one-minute periods, both of the last two breaching (a single slow minute of a
# cold start does not roll back; a sustained regression does within about two minutes).
ALARM_PERIOD = Duration.minutes(1)
ALARM_EVALUATION_PERIODS = 2
# The hook waits for the target's answer; a little more than the target's own timeout.
HOOK_TIMEOUT_MARGIN_SECONDS = 30
HOOK_MAX_TIMEOUT_SECONDS = 900


def deployment_config(name: LambdaDeploymentName) -> codedeploy.ILambdaDeploymentConfig:
    """The predefined CodeDeploy configuration named in `pipeline.lambda_deployment`."""
    return getattr(codedeploy.LambdaDeploymentConfig, name)


def hook_code(directory: Path) -> lambda_.Code:
    """lambda/pre_traffic as it is: standard library and boto3 only, so no bundling."""
    return lambda_.Code.from_asset(str(directory), exclude=["__pycache__", "*.pyc"])


class LambdaApplication(Construct):
    """Owns the CodeDeploy application of one stack's Lambda deployments and the service role
    CodeDeploy assumes for them (the AWS-managed `AWSCodeDeployRoleForLambdaLimited` policy)."""

    def __init__(self, scope: Construct, construct_id: str, *, application_name: str) -> None:
        super().__init__(scope, construct_id)
        self.application_name = application_name
        self.application = codedeploy.LambdaApplication(
            self, "Application", application_name=application_name
        )
        self.role = iam.Role(
            self,
            "ServiceRole",
            assumed_by=iam.ServicePrincipal("codedeploy.amazonaws.com"),
            description=f"{application_name}: CodeDeploy shifts Lambda aliases and runs their hooks",
            managed_policies=[iam.ManagedPolicy.from_aws_managed_policy_name(CODEDEPLOY_LAMBDA_POLICY)],
        )
        acknowledge(
            self.role,
            f"IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/{CODEDEPLOY_LAMBDA_POLICY}]",
            "The AWS-maintained Limited policy for CodeDeploy Lambda deployments: alias update/read, alarm "
            "reads, and invoking only functions named CodeDeployHook_*, which is how our hooks are named.",
        )


class LambdaDeployment(Construct):
    """Owns what moves one function's alias to a new version through CodeDeploy: the deployment
    group (predefined configuration, automatic rollback), its three rollback alarms on the alias
    (`<name>-deploy-errors`, `-throttles`, `-p99-duration`) and the BeforeAllowTraffic hook Lambda
    (lambda/pre_traffic) with its log group and role.

    The hook role may invoke exactly the version under deployment and report to exactly this
    deployment group; the hook learns that version from its environment (CURRENT_VERSION), which
    CloudFormation updates before the alias whose UpdatePolicy starts the deployment.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        name: str,
        function: lambda_.Function,
        alias: lambda_.Alias,
        application: LambdaApplication,
        config_name: LambdaDeploymentName,
        p99_duration_alarm_ms: int,
        target_timeout: Duration,
        probe: str,
        code: lambda_.Code,
        runtime: lambda_.Runtime,
        architecture: lambda_.Architecture,
        log_retention_days: int,
    ) -> None:
        super().__init__(scope, construct_id)
        self.alarms = self._alarms(name, alias, p99_duration_alarm_ms)

        version_arn = function.current_version.function_arn
        self.hook_function_name = f"{HOOK_NAME_PREFIX}{name}"
        self.hook_log_group = function_log_group(
            self, "HookLogs", function_name=self.hook_function_name, retention_days=log_retention_days
        )
        # Spelled out rather than read from the group: the group refers to the hook, the hook to this role.
        group_arn = Stack.of(self).format_arn(
            service="codedeploy",
            resource="deploymentgroup",
            resource_name=f"{application.application_name}/{name}",
            arn_format=ArnFormat.COLON_RESOURCE_NAME,
        )
        self.hook_role = execution_role(
            self,
            "HookRole",
            description=f"{self.hook_function_name}: invokes the version under deployment, reports the result",
            policy_name="PreTrafficHook",
            statements=[
                log_write_statement(self.hook_log_group),
                iam.PolicyStatement(
                    sid="InvokeVersionUnderDeployment",
                    actions=["lambda:InvokeFunction"],
                    resources=[version_arn],
                ),
                iam.PolicyStatement(
                    sid="ReportHookStatus",
                    actions=["codedeploy:PutLifecycleEventHookExecutionStatus"],
                    resources=[group_arn],
                ),
            ],
        )
        self.hook_function = lambda_.Function(
            self,
            "Hook",
            function_name=self.hook_function_name,
            description=f"CodeDeploy pre-traffic hook: probes the new version of {name} before it takes traffic",
            runtime=runtime,
            architecture=architecture,
            code=code,
            handler=HOOK_HANDLER,
            memory_size=128,
            timeout=Duration.seconds(
                min(target_timeout.to_seconds() + HOOK_TIMEOUT_MARGIN_SECONDS, HOOK_MAX_TIMEOUT_SECONDS)
            ),
            role=self.hook_role.without_policy_updates(),
            log_group=self.hook_log_group,
            environment={
                "TARGET_FUNCTION_NAME": function.function_name,
                "CURRENT_VERSION": version_arn,
                "PROBE": probe,
            },
        )
        acknowledge(
            self.hook_function,
            "L1",
            "Python 3.11 is a supported runtime, pinned like every function of this stack "
            "(cdk/stacks/pipeline.py LAMBDA_RUNTIME) so that all Lambdas move to a new runtime in one change.",
        )
        acknowledge_plain_environment(self.hook_function)
        acknowledge_checkov(
            self.hook_function,
            "CKV_AWS_116",
            "CodeDeploy invokes the hook once per deployment and waits for its status report; a lost "
            "invocation fails the deployment at the hook timeout and rolls back, so a DLQ adds nothing.",
        )
        acknowledge_checkov(
            self.hook_function,
            "CKV_AWS_115",
            "Runs once per deployment; reserved concurrency would permanently take from the account's "
            "unreserved pool for a function that is idle nearly all the time.",
        )
        acknowledge_checkov(
            self.hook_function,
            "CKV_AWS_117",
            "Calls only the public Lambda and CodeDeploy APIs (invoke the new version, report the hook "
            "status) and reaches no private resource, so VPC attachment would only add ENIs and NAT use.",
        )

        self.group = codedeploy.LambdaDeploymentGroup(
            self,
            "Group",
            application=application.application,
            deployment_group_name=name,
            alias=alias,
            deployment_config=deployment_config(config_name),
            alarms=list(self.alarms),
            pre_hook=self.hook_function,
            auto_rollback=codedeploy.AutoRollbackConfig(
                deployment_in_alarm=True, failed_deployment=True, stopped_deployment=True
            ),
            # The managed policy already covers everything; CDK's own grants must not widen it.
            role=application.role.without_policy_updates(),
        )
        # The alias update starts the deployment: the hook (with the new CURRENT_VERSION) and the group
        # must be in place first. Explicit, not left to the references inside the UpdatePolicy.
        alias.node.add_dependency(self.hook_function, self.group)

    def _alarms(
        self, name: str, alias: lambda_.Alias, p99_duration_alarm_ms: int
    ) -> tuple[cloudwatch.Alarm, ...]:
        """Errors, throttles and p99 duration of the alias (both versions while traffic shifts)."""
        specs = (
            ("Errors", "errors", alias.metric_errors(period=ALARM_PERIOD, statistic="Sum"), 1,
             "invocations through the alias failed"),
            ("Throttles", "throttles", alias.metric_throttles(period=ALARM_PERIOD, statistic="Sum"), 1,
             "invocations through the alias were throttled"),
            ("P99Duration", "p99-duration", alias.metric_duration(period=ALARM_PERIOD, statistic="p99"),
             p99_duration_alarm_ms, f"p99 duration through the alias above {p99_duration_alarm_ms} ms"),
        )
        return tuple(
            cloudwatch.Alarm(
                self,
                construct_id,
                alarm_name=f"{name}-deploy-{suffix}",
                alarm_description=f"{name}: {what} in {ALARM_EVALUATION_PERIODS} consecutive minutes; "
                "rolls back a CodeDeploy deployment in progress",
                metric=metric,
                threshold=threshold,
                comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
                evaluation_periods=ALARM_EVALUATION_PERIODS,
                datapoints_to_alarm=ALARM_EVALUATION_PERIODS,
                # No invocations is no evidence against the new version (the archiver idles often).
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            )
            for construct_id, suffix, metric, threshold, what in specs
        )
