"""The archiver: an MSK event source mapping feeds readings to a Lambda that writes Parquet to the lake."""

from __future__ import annotations

from aws_cdk import Aws, Duration, RemovalPolicy
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_event_sources as event_sources
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from cdk.components.lambda_common import EVENT_SOURCE_NETWORK_ACTIONS
from cdk.components.nag import acknowledge, finding_text
from cdk.components.vpc_function import (
    HTTPS_PORT,
    FunctionCode,
    FunctionPolicy,
    InvocationReasons,
    VpcPythonFunction,
)
from cdk.props import LakeAccess, StreamAccess
from environments.config import PipelineConfig
from environments.naming import EnvironmentNames

POWERTOOLS_SERVICE_NAME = "archiver"
METRICS_NAMESPACE = "SensorPlatform"
# Longest retention SQS offers: time to investigate a failed batch and re-export it.
FAILURE_RETENTION = Duration.days(14)
NETWORK_REASON = (
    "EC2 network-interface and Describe actions for the VPC function and its MSK pollers "
    "support no resource-level permissions (same actions as AWSLambdaMSKExecutionRole)."
)


class Archiver(VpcPythonFunction):
    """Owns the archiver Lambda (readings topic -> Parquet under `raw/` and `processed/`, undecodable
    records under `dead-letter/archiver/`) with its role, log group and security group
    (`VpcPythonFunction`), the `live` alias on the current version, the MSK event source mapping on
    that alias, its encrypted on-failure queue, and the MSK security-group rules the mapping's pollers
    need.

    The role accepts no automatic grants (`without_policy_updates`): everything the function and the
    mapping may do is in the one policy below, so a CDK default cannot widen it unnoticed.
    """

    def __init__(
        self, scope: Construct, construct_id: str, *,
        config: PipelineConfig,
        names: EnvironmentNames,
        region: str,
        code: FunctionCode,
        vpc: ec2.IVpc,
        stream: StreamAccess,
        lake: LakeAccess,
        lake_write_prefixes: tuple[str, ...],
        log_retention_days: int,
    ) -> None:
        super().__init__(
            scope, construct_id, function_name=names.archiver_function, vpc=vpc,
            security_group_description="Archiver Lambda",
        )
        self.consumer_group_id = names.archiver_function  # the group is named after the function
        # S3 is reached through the VPC's gateway endpoint, whose prefix list has no CloudFormation
        # attribute; 443 to any address is the narrowest rule that covers it without a lookup.
        self.security_group.add_egress_rule(
            ec2.Peer.any_ipv4(), ec2.Port.tcp(HTTPS_PORT), "HTTPS to S3 (gateway endpoint)"
        )
        self._allow_msk_access(stream.security_group, stream.port)

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

        # The streaming construct names the cluster (README: fixed names); its name attribute would be a
        # cross-stack token, which an IAM finding id cannot spell.
        group_arn, lake_objects = self._resource_arns(
            region=region, msk_cluster_name=names.msk_cluster, lake_bucket_name=lake.bucket_name,
            lake_write_prefixes=lake_write_prefixes,
        )
        self._add_function(
            description="Archives readings from the MSK topic as Parquet in the S3 data lake",
            code=code,
            policy=FunctionPolicy(
                name="Archiver", description=f"{self.function_name}: reads the readings topic, writes the data lake",
                statements=self._statements(stream, group_arn, lake_objects),
                network_actions=EVENT_SOURCE_NETWORK_ACTIONS,
                network_reason=NETWORK_REASON,
            ),
            environment={
                "DATA_LAKE_BUCKET": lake.bucket_name,
                "POWERTOOLS_SERVICE_NAME": POWERTOOLS_SERVICE_NAME,
                "POWERTOOLS_METRICS_NAMESPACE": METRICS_NAMESPACE,
            },
            reasons=InvocationReasons(
                no_dead_letter_queue=(
                    "Invoked only synchronously by its MSK event source mapping, whose on-failure destination "
                    "(FailedBatches) already keeps every failed batch; a function DLQ would never receive one."
                ),
                no_reserved_concurrency=(
                    "The MSK event source mapping runs at most one invocation per topic partition, which bounds "
                    "concurrency; reserving it would also take from the account's unreserved pool (10 on new "
                    "accounts)."
                ),
            ),
            log_retention_days=log_retention_days,
        )
        self._acknowledge_wildcards(group_arn, lake_objects)
        self._add_live_alias()
        # On the alias, so that shifting the alias (blue/green) also moves the stream consumer.
        self.alias.add_event_source(
            event_sources.ManagedKafkaEventSource(
                cluster_arn=stream.cluster_arn,
                topic=stream.topic_name,
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
        group = msk_security_group.security_group_id
        pollers = "Lambda event source pollers (cluster security group) to brokers"
        ec2.CfnSecurityGroupIngress(
            self, "MskFromEventSourcePollers", group_id=group, source_security_group_id=group,
            ip_protocol="tcp", from_port=msk_port, to_port=msk_port, description=pollers,
        )
        ec2.CfnSecurityGroupEgress(
            self, "EventSourcePollersToMsk", group_id=group, destination_security_group_id=group,
            ip_protocol="tcp", from_port=msk_port, to_port=msk_port, description=pollers,
        )
        ec2.CfnSecurityGroupEgress(
            self, "EventSourcePollersToAwsApis", group_id=group, cidr_ip="0.0.0.0/0",
            ip_protocol="tcp", from_port=HTTPS_PORT, to_port=HTTPS_PORT,
            description="Lambda event source pollers to the Lambda and STS APIs (through NAT)",
        )

    def _resource_arns(
        self, *, region: str, msk_cluster_name: str, lake_bucket_name: str, lake_write_prefixes: tuple[str, ...]
    ) -> tuple[str, list[str]]:
        """(the consumer group's ARN, the lake object patterns it may write)."""
        kafka_arn_prefix = f"arn:{Aws.PARTITION}:kafka:{region}:{Aws.ACCOUNT_ID}"
        # The cluster's UUID is only known once it exists; the name pins the cluster, the wildcard
        # only stands for that UUID segment.
        group_arn = f"{kafka_arn_prefix}:group/{msk_cluster_name}/*/{self.consumer_group_id}"
        lake_arn = f"arn:{Aws.PARTITION}:s3:::{lake_bucket_name}"
        return group_arn, [f"{lake_arn}/{prefix}*" for prefix in lake_write_prefixes]

    def _statements(
        self, stream: StreamAccess, group_arn: str, lake_objects: list[str]
    ) -> tuple[iam.PolicyStatement, ...]:
        def allow(sid: str, actions: list[str], resources: list[str]) -> iam.PolicyStatement:
            return iam.PolicyStatement(sid=sid, actions=actions, resources=resources)

        return (
            allow("EventSourceDescribesCluster",
                  ["kafka:DescribeCluster", "kafka:DescribeClusterV2", "kafka:GetBootstrapBrokers"],
                  [stream.cluster_arn]),
            allow("KafkaConnect", ["kafka-cluster:Connect", "kafka-cluster:DescribeClusterDynamicConfiguration"],
                  [stream.cluster_arn]),
            allow("KafkaReadReadings", ["kafka-cluster:DescribeTopic", "kafka-cluster:ReadData"], [stream.topic_arn]),
            allow("KafkaConsumerGroup", ["kafka-cluster:DescribeGroup", "kafka-cluster:AlterGroup"], [group_arn]),
            allow("ReportFailedBatches", ["sqs:SendMessage"], [self.failure_queue.queue_arn]),
            allow("WriteLakeObjects", ["s3:PutObject"], lake_objects),
        )

    def _acknowledge_wildcards(self, group_arn: str, lake_objects: list[str]) -> None:
        acknowledge(
            self.role,
            f"IAM5[Resource::{finding_text(self, group_arn)}]",
            "MSK group ARNs contain the cluster UUID, unknown until the cluster exists; the cluster name "
            "and the consumer group name are fixed, the wildcard only covers that UUID segment.",
        )
        for objects in lake_objects:
            acknowledge(
                self.role,
                f"IAM5[Resource::{finding_text(self, objects)}]",
                "Object keys carry the partition path and the batch's offsets; PutObject only, and only "
                "under the prefix the archiver writes (raw/, processed/ or dead-letter/archiver/).",
            )
