"""The archiver: an MSK event source mapping feeds readings to a Lambda that writes Parquet to the lake."""

from __future__ import annotations

from aws_cdk import Aws, Duration, RemovalPolicy
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_event_sources as event_sources
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from cdk.components.checkov import acknowledge_checkov
from cdk.components.lambda_common import (
    EVENT_SOURCE_NETWORK_ACTIONS,
    acknowledge_pinned_runtime,
    acknowledge_plain_environment,
    execution_role,
    function_log_group,
    log_write_statement,
    network_interface_statement,
)
from cdk.components.nag import acknowledge, finding_text
from cdk.config import PipelineConfig

ALIAS_NAME = "live"
POWERTOOLS_SERVICE_NAME = "archiver"
METRICS_NAMESPACE = "SensorPlatform"
# Longest retention SQS offers: time to investigate a failed batch and re-export it.
FAILURE_RETENTION = Duration.days(14)
HTTPS_PORT = 443

class Archiver(Construct):
    """Owns the archiver Lambda (readings topic -> Parquet under `raw/` and `processed/`, undecodable
    records under `dead-letter/archiver/`), its execution role with an explicit least-privilege policy,
    its log group and security group, the `live` alias on the current version, the MSK event source
    mapping on that alias, its encrypted on-failure queue, and the MSK security-group rules the
    mapping's pollers need.

    The role accepts no automatic grants (`without_policy_updates`): everything the function and the
    mapping may do is in the one policy below, so a CDK default cannot widen it unnoticed.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: PipelineConfig,
        name_prefix: str,
        region: str,
        code: lambda_.Code,
        runtime: lambda_.Runtime,
        architecture: lambda_.Architecture,
        vpc: ec2.IVpc,
        msk_security_group: ec2.ISecurityGroup,
        msk_port: int,
        msk_cluster_arn: str,
        msk_cluster_name: str,
        topic_arn: str,
        topic_name: str,
        lake_bucket_name: str,
        lake_write_prefixes: tuple[str, ...],
        log_retention_days: int,
    ) -> None:
        super().__init__(scope, construct_id)
        self.function_name = f"{name_prefix}-archiver"
        self.consumer_group_id = f"{name_prefix}-archiver"

        self.security_group = ec2.SecurityGroup(
            self, "SecurityGroup", vpc=vpc, description="Archiver Lambda", allow_all_outbound=False
        )
        # S3 is reached through the VPC's gateway endpoint, whose prefix list has no CloudFormation
        # attribute; 443 to any address is the narrowest rule that covers it without a lookup.
        self.security_group.add_egress_rule(
            ec2.Peer.any_ipv4(), ec2.Port.tcp(HTTPS_PORT), "HTTPS to S3 (gateway endpoint)"
        )
        self._allow_msk_access(msk_security_group, msk_port)

        self.failure_queue = sqs.Queue(
            self,
            "FailedBatches",
            # KMS (aws/sqs) rather than SQS-managed SSE: the encryption checkov CKV_AWS_27 recognises.
            encryption=sqs.QueueEncryption.KMS_MANAGED,
            enforce_ssl=True,
            retention_period=FAILURE_RETENTION,
            # Holds pointers (topic, partition, offsets) to batches, not the readings themselves:
            # PostgreSQL stays the system of record, so nothing is lost with the queue.
            removal_policy=RemovalPolicy.DESTROY,
        )
        acknowledge(
            self.failure_queue,
            "SQS3",
            "This queue is itself the dead-letter destination of the archiver's event source mapping; "
            "nothing consumes it automatically, so a second dead-letter queue behind it would never fill.",
        )

        self.log_group = function_log_group(
            self, "Logs", function_name=self.function_name, retention_days=log_retention_days
        )
        self.role = self._execution_role(
            region=region,
            msk_cluster_arn=msk_cluster_arn,
            msk_cluster_name=msk_cluster_name,
            topic_arn=topic_arn,
            lake_bucket_name=lake_bucket_name,
            lake_write_prefixes=lake_write_prefixes,
        )

        self.function = lambda_.Function(
            self,
            "Function",
            function_name=self.function_name,
            description="Archives readings from the MSK topic as Parquet in the S3 data lake",
            runtime=runtime,
            architecture=architecture,
            code=code,
            handler="handler.handler",
            memory_size=config.archiver_memory_mb,
            timeout=Duration.seconds(config.archiver_timeout_seconds),
            role=self.role.without_policy_updates(),
            vpc=vpc,
            vpc_subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS),
            security_groups=[self.security_group],
            log_group=self.log_group,
            environment={
                "DATA_LAKE_BUCKET": lake_bucket_name,
                "POWERTOOLS_SERVICE_NAME": POWERTOOLS_SERVICE_NAME,
                "POWERTOOLS_METRICS_NAMESPACE": METRICS_NAMESPACE,
            },
        )
        acknowledge_pinned_runtime(self.function)
        acknowledge_plain_environment(self.function)
        acknowledge_checkov(
            self.function,
            "CKV_AWS_116",
            "Invoked only synchronously by its MSK event source mapping, whose on-failure destination "
            "(FailedBatches) already keeps every failed batch; a function DLQ would never receive one.",
        )
        acknowledge_checkov(
            self.function,
            "CKV_AWS_115",
            "The MSK event source mapping runs at most one invocation per topic partition, which bounds "
            "concurrency; reserving it would also take from the account's unreserved pool (10 on new accounts).",
        )
        self.alias = lambda_.Alias(
            self, "LiveAlias", alias_name=ALIAS_NAME, version=self.function.current_version
        )
        # On the alias, so that shifting the alias (blue/green) also moves the stream consumer.
        self.alias.add_event_source(
            event_sources.ManagedKafkaEventSource(
                cluster_arn=msk_cluster_arn,
                topic=topic_name,
                consumer_group_id=self.consumer_group_id,
                starting_position=lambda_.StartingPosition[config.starting_position],
                batch_size=config.batch_size,
                max_batching_window=Duration.seconds(config.maximum_batching_window_seconds),
                on_failure=event_sources.SqsDlq(self.failure_queue),
            )
        )

    def _allow_msk_access(self, msk_security_group: ec2.ISecurityGroup, msk_port: int) -> None:
        """Security-group rules for reading the topic, all created in this (the consumer's) stack.

        A rule on the MSK group that names this construct's group must not live in the data stack:
        the data stack would then depend on this stack while this stack depends on it (a cycle).

        Lambda's event source pollers run in the cluster's subnets *with the cluster's security
        group*, so that group must also admit itself on the IAM/TLS port and reach AWS APIs (Lambda,
        STS) over HTTPS through the NAT gateways; its own construct allows no egress at all.
        """
        # The function itself never connects to the brokers (the pollers hand it the records), so
        # its own group gets no path to MSK.
        ec2.CfnSecurityGroupIngress(
            self,
            "MskFromEventSourcePollers",
            group_id=msk_security_group.security_group_id,
            source_security_group_id=msk_security_group.security_group_id,
            ip_protocol="tcp",
            from_port=msk_port,
            to_port=msk_port,
            description="Lambda event source pollers (cluster security group) to brokers",
        )
        ec2.CfnSecurityGroupEgress(
            self,
            "EventSourcePollersToMsk",
            group_id=msk_security_group.security_group_id,
            destination_security_group_id=msk_security_group.security_group_id,
            ip_protocol="tcp",
            from_port=msk_port,
            to_port=msk_port,
            description="Lambda event source pollers (cluster security group) to brokers",
        )
        ec2.CfnSecurityGroupEgress(
            self,
            "EventSourcePollersToAwsApis",
            group_id=msk_security_group.security_group_id,
            cidr_ip="0.0.0.0/0",
            ip_protocol="tcp",
            from_port=HTTPS_PORT,
            to_port=HTTPS_PORT,
            description="Lambda event source pollers to the Lambda and STS APIs (through NAT)",
        )

    def _execution_role(
        self,
        *,
        region: str,
        msk_cluster_arn: str,
        msk_cluster_name: str,
        topic_arn: str,
        lake_bucket_name: str,
        lake_write_prefixes: tuple[str, ...],
    ) -> iam.Role:
        kafka_arn_prefix = f"arn:{Aws.PARTITION}:kafka:{region}:{Aws.ACCOUNT_ID}"
        # The cluster's UUID is only known once it exists; the name pins the cluster, the wildcard
        # only stands for that UUID segment.
        group_arn = f"{kafka_arn_prefix}:group/{msk_cluster_name}/*/{self.consumer_group_id}"
        lake_arn = f"arn:{Aws.PARTITION}:s3:::{lake_bucket_name}"
        lake_objects = [f"{lake_arn}/{prefix}*" for prefix in lake_write_prefixes]
        role = execution_role(
            self,
            "ExecutionRole",
            description=f"{self.function_name}: reads the readings topic, writes the data lake",
            policy_name="Archiver",
            statements=[
                log_write_statement(self.log_group),
                network_interface_statement(*EVENT_SOURCE_NETWORK_ACTIONS),
                iam.PolicyStatement(
                    sid="EventSourceDescribesCluster",
                    actions=["kafka:DescribeCluster", "kafka:DescribeClusterV2", "kafka:GetBootstrapBrokers"],
                    resources=[msk_cluster_arn],
                ),
                iam.PolicyStatement(
                    sid="KafkaConnect",
                    actions=["kafka-cluster:Connect", "kafka-cluster:DescribeClusterDynamicConfiguration"],
                    resources=[msk_cluster_arn],
                ),
                iam.PolicyStatement(
                    sid="KafkaReadReadings",
                    actions=["kafka-cluster:DescribeTopic", "kafka-cluster:ReadData"],
                    resources=[topic_arn],
                ),
                iam.PolicyStatement(
                    sid="KafkaConsumerGroup",
                    actions=["kafka-cluster:DescribeGroup", "kafka-cluster:AlterGroup"],
                    resources=[group_arn],
                ),
                iam.PolicyStatement(
                    sid="ReportFailedBatches",
                    actions=["sqs:SendMessage"],
                    resources=[self.failure_queue.queue_arn],
                ),
                iam.PolicyStatement(
                    sid="WriteLakeObjects", actions=["s3:PutObject"], resources=lake_objects
                ),
            ],
        )
        acknowledge(
            role,
            "IAM5[Resource::*]",
            "EC2 network-interface and Describe actions for the VPC function and its MSK pollers "
            "support no resource-level permissions (same actions as AWSLambdaMSKExecutionRole).",
        )
        acknowledge_checkov(
            role,
            "CKV_AWS_111",
            "EC2 network-interface and Describe actions for the VPC function and its MSK pollers "
            "support no resource-level permissions (same actions as AWSLambdaMSKExecutionRole).",
        )
        acknowledge(
            role,
            f"IAM5[Resource::{finding_text(self, group_arn)}]",
            "MSK group ARNs contain the cluster UUID, unknown until the cluster exists; the cluster name "
            "and the consumer group name are fixed, the wildcard only covers that UUID segment.",
        )
        for objects in lake_objects:
            acknowledge(
                role,
                f"IAM5[Resource::{finding_text(self, objects)}]",
                "Object keys carry the partition path and the batch's offsets; PutObject only, and only "
                "under the prefix the archiver writes (raw/, processed/ or dead-letter/archiver/).",
            )
        return role
