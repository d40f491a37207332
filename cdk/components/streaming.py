"""Amazon MSK: the event stream between the outbox relay and the archiver."""

from __future__ import annotations

import base64

from aws_cdk import RemovalPolicy
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from aws_cdk import aws_msk as msk_l1
from aws_cdk import aws_msk_alpha as msk
from constructs import Construct

from cdk.components.retention import log_retention
from cdk.components.security_groups import admitting_clients
from environments.config import StreamingConfig
from environments.naming import EnvironmentNames

KAFKA_VERSION = msk.KafkaVersion.V3_9_X
# Brokers with IAM client authentication over TLS listen on 9098.
MSK_IAM_TLS_PORT = 9098


class SensorStream(Construct):
    """Owns the MSK cluster (TLS in transit, IAM client auth, storage encrypted with its own KMS
    key, broker logs in CloudWatch) and the readings topic, declared as a resource so no client
    needs CreateTopic.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: StreamingConfig,
        names: EnvironmentNames,
        vpc: ec2.IVpc,
        client_security_group: ec2.ISecurityGroup,
        availability_zone_count: int,
        log_retention_days: int,
    ) -> None:
        super().__init__(scope, construct_id)

        self.security_group = admitting_clients(
            self, vpc=vpc, description="MSK brokers", client=client_security_group,
            port=ec2.Port.tcp(MSK_IAM_TLS_PORT), label="App to MSK (IAM over TLS)",
        )
        broker_logs = logs.LogGroup(
            self, "BrokerLogs", retention=log_retention(log_retention_days), removal_policy=RemovalPolicy.RETAIN
        )
        # A customer-managed key makes at-rest encryption explicit and auditable; it is retained
        # because retained broker volumes and snapshots are unreadable without it.
        self.storage_key = kms.Key(
            self, "StorageKey", description=f"{names.prefix}: MSK broker storage encryption",
            enable_key_rotation=True, removal_policy=RemovalPolicy.RETAIN,
        )
        self.cluster = msk.Cluster(
            self,
            "Cluster",
            cluster_name=names.msk_cluster,
            kafka_version=KAFKA_VERSION,
            # The L2 counts brokers per AZ; config counts them in total (validated divisible).
            number_of_broker_nodes=config.broker_count // availability_zone_count,
            instance_type=ec2.InstanceType(config.broker_instance_type.removeprefix("kafka.")),
            vpc=vpc,
            vpc_subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS),
            security_groups=[self.security_group],
            ebs_storage_info=msk.EbsStorageInfo(
                volume_size=config.broker_volume_gib, encryption_key=self.storage_key
            ),
            encryption_in_transit=msk.EncryptionInTransitConfig(
                client_broker=msk.ClientBrokerEncryption.TLS, enable_in_cluster=True
            ),
            client_authentication=msk.ClientAuthentication.sasl(iam=True),
            logging=msk.BrokerLogging(cloudwatch_log_group=broker_logs),
            monitoring=msk.MonitoringConfiguration(
                cluster_monitoring_level=msk.ClusterMonitoringLevel.PER_TOPIC_PER_PARTITION
            ),
            removal_policy=RemovalPolicy.RETAIN,
        )

        replication_factor = min(3, config.broker_count)
        # acks=all producers keep writing while one replica is down.
        min_in_sync = max(1, replication_factor - 1)
        retention_ms = config.retention_hours * 3600 * 1000
        topic_configs = f"min.insync.replicas={min_in_sync}\ncleanup.policy=delete\nretention.ms={retention_ms}\n"
        self.topic = msk_l1.CfnTopic(
            self,
            "ReadingsTopic",
            cluster_arn=self.cluster.cluster_arn,
            topic_name=config.topic_name,
            partition_count=config.partitions,
            replication_factor=replication_factor,
            configs=base64.b64encode(topic_configs.encode()).decode(),
        )
        self.topic.apply_removal_policy(RemovalPolicy.RETAIN)
        self.topic_name = config.topic_name
