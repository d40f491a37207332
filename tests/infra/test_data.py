"""Data stack: stateful resources are encrypted, retained and pinned to their logical IDs."""

from __future__ import annotations

import base64

import pytest
from aws_cdk.assertions import Match

from tests.infra.conftest import Synthesized, only

# Renaming one of these replaces the resource (and its data): change them only on purpose.
PINNED_LOGICAL_IDS = {
    "DatabaseInstanceAA8A5FDE": ("AWS::RDS::DBInstance", "Snapshot"),
    "StreamingCluster00CC9E96": ("AWS::MSK::Cluster", "Retain"),
    "StreamingReadingsTopic67F2726A": ("AWS::MSK::Topic", "Retain"),
    "DataLakeC5E9BBFD": ("AWS::S3::Bucket", "Retain"),
    "DataLakeAccessLogs1DA51325": ("AWS::S3::Bucket", "Retain"),
}


def test_stateful_resources_keep_their_logical_ids_and_removal_policies(each_env: Synthesized) -> None:
    resources = each_env.data.to_json()["Resources"]
    for logical_id, (resource_type, deletion_policy) in PINNED_LOGICAL_IDS.items():
        assert logical_id in resources, f"{logical_id} was renamed: that replaces the resource"
        assert resources[logical_id]["Type"] == resource_type
        assert resources[logical_id]["DeletionPolicy"] == deletion_policy
        assert resources[logical_id]["UpdateReplacePolicy"] == deletion_policy


def test_termination_protection_only_in_production(dev: Synthesized, prod: Synthesized) -> None:
    assert dev.platform.data.termination_protection is False
    assert prod.platform.data.termination_protection is True


def test_database_is_multi_az_encrypted_and_backed_up(each_env: Synthesized) -> None:
    database = each_env.config.database
    instance = each_env.data.to_json()["Resources"]["DatabaseInstanceAA8A5FDE"]["Properties"]
    assert instance["MultiAZ"] is True
    assert instance["StorageEncrypted"] is True
    assert instance["Engine"] == "postgres"
    assert instance["DBInstanceClass"] == f"db.{database.instance_class}"
    assert instance["BackupRetentionPeriod"] == database.backup_retention_days
    assert instance["EnablePerformanceInsights"] is True
    assert instance["MonitoringInterval"] == 60
    assert instance["PubliclyAccessible"] is False
    assert instance["DeletionProtection"] is each_env.config.production
    assert instance["DBInstanceIdentifier"] == f"sensor-{each_env.config.name}"
    assert instance["EnableCloudwatchLogsExports"] == ["postgresql", "upgrade"]
    assert instance["AllocatedStorage"] == str(database.allocated_storage_gib)
    assert instance["MaxAllocatedStorage"] == database.max_allocated_storage_gib


def test_database_forces_ssl_and_rotates_credentials(each_env: Synthesized) -> None:
    each_env.data.has_resource_properties(
        "AWS::RDS::DBParameterGroup", {"Parameters": Match.object_like({"rds.force_ssl": "1"})}
    )
    schedule = only(each_env.data, "AWS::SecretsManager::RotationSchedule")["Properties"]
    assert schedule["RotationRules"]["ScheduleExpression"] == (
        f"rate({each_env.config.database.secret_rotation_days} days)"
    )
    secrets = each_env.data.find_resources("AWS::SecretsManager::Secret")
    assert [secret["DeletionPolicy"] for secret in secrets.values()] == ["Retain"]


def test_database_only_admits_the_app_and_its_rotation_function(each_env: Synthesized) -> None:
    rules = [
        rule["Properties"]
        for rule in each_env.data.find_resources("AWS::EC2::SecurityGroupIngress").values()
        if "DatabaseSecurityGroup" in str(rule["Properties"]["GroupId"])
    ]
    sources = sorted(str(rule["SourceSecurityGroupId"]) for rule in rules)
    assert len(rules) == 2 and all("CidrIp" not in rule for rule in rules)
    assert "SecurityGroupsApp" in sources[1] and "RotationSingleUser" in sources[0]
    app_rule = next(rule for rule in rules if "SecurityGroupsApp" in str(rule["SourceSecurityGroupId"]))
    assert (app_rule["FromPort"], app_rule["ToPort"]) == (5432, 5432)


def test_read_replica_follows_config(dev: Synthesized, prod: Synthesized) -> None:
    assert dev.config.database.read_replica is False
    dev.data.resource_count_is("AWS::RDS::DBInstance", 1)
    assert prod.config.database.read_replica is True
    prod.data.resource_count_is("AWS::RDS::DBInstance", 2)
    prod.data.has_resource_properties(
        "AWS::RDS::DBInstance",
        {"SourceDBInstanceIdentifier": Match.any_value(), "DBInstanceIdentifier": "sensor-prod-replica"},
    )


def test_msk_uses_tls_iam_auth_encryption_and_broker_logs(each_env: Synthesized) -> None:
    streaming = each_env.config.streaming
    cluster = only(each_env.data, "AWS::MSK::Cluster")["Properties"]
    assert cluster["NumberOfBrokerNodes"] == streaming.broker_count
    assert cluster["BrokerNodeGroupInfo"]["InstanceType"] == streaming.broker_instance_type
    assert len(cluster["BrokerNodeGroupInfo"]["ClientSubnets"]) == len(each_env.config.network.availability_zones)
    assert cluster["EncryptionInfo"]["EncryptionInTransit"] == {"ClientBroker": "TLS", "InCluster": True}
    assert "StreamingStorageKey" in str(cluster["EncryptionInfo"]["EncryptionAtRest"]["DataVolumeKMSKeyId"])
    (key,) = [v for k, v in each_env.data.find_resources("AWS::KMS::Key").items() if k.startswith("StreamingStorageKey")]
    assert key["Properties"]["EnableKeyRotation"] is True and key["DeletionPolicy"] == "Retain"
    assert cluster["ClientAuthentication"]["Sasl"]["Iam"]["Enabled"] is True
    assert "Unauthenticated" not in cluster["ClientAuthentication"]
    assert cluster["LoggingInfo"]["BrokerLogs"]["CloudWatchLogs"]["Enabled"] is True


def test_readings_topic_is_replicated_with_min_insync_replicas(each_env: Synthesized) -> None:
    topic = only(each_env.data, "AWS::MSK::Topic")["Properties"]
    replication = min(3, each_env.config.streaming.broker_count)
    assert topic["TopicName"] == each_env.config.streaming.topic_name
    assert topic["ReplicationFactor"] == replication
    assert topic["PartitionCount"] == each_env.config.streaming.partitions
    assert each_env.config.streaming.partitions == 10  # seed 003
    retention_ms = 7 * 24 * 3600 * 1000
    assert f"retention.ms={retention_ms}" in base64.b64decode(topic["Configs"]).decode()
    configs = base64.b64decode(topic["Configs"]).decode()
    assert f"min.insync.replicas={replication - 1}" in configs.splitlines()


def _bucket(env: Synthesized, logical_id: str) -> dict:
    return env.data.to_json()["Resources"][logical_id]["Properties"]


@pytest.mark.parametrize("logical_id", ["DataLakeC5E9BBFD", "DataLakeAccessLogs1DA51325"])
def test_buckets_are_encrypted_versioned_and_private(each_env: Synthesized, logical_id: str) -> None:
    bucket = _bucket(each_env, logical_id)
    assert bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"][0][
        "ServerSideEncryptionByDefault"
    ]["SSEAlgorithm"] == "AES256"
    assert bucket["VersioningConfiguration"] == {"Status": "Enabled"}
    assert bucket["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True,
        "BlockPublicPolicy": True,
        "IgnorePublicAcls": True,
        "RestrictPublicBuckets": True,
    }


def test_bucket_policies_deny_plain_http_and_old_tls(each_env: Synthesized) -> None:
    policies = each_env.data.find_resources("AWS::S3::BucketPolicy")
    assert len(policies) == 2
    for policy in policies.values():
        statements = policy["Properties"]["PolicyDocument"]["Statement"]
        conditions = [s["Condition"] for s in statements if s["Effect"] == "Deny"]
        assert {"Bool": {"aws:SecureTransport": "false"}} in conditions
        assert {"NumericLessThan": {"s3:TlsVersion": 1.2}} in conditions


def test_data_lake_tiers_down_and_logs_access(each_env: Synthesized) -> None:
    lake = _bucket(each_env, "DataLakeC5E9BBFD")
    config = each_env.config.datalake
    (rule,) = lake["LifecycleConfiguration"]["Rules"]
    assert rule["Status"] == "Enabled"
    assert rule["Transitions"] == [
        {"StorageClass": "STANDARD_IA", "TransitionInDays": config.infrequent_access_after_days},
        {"StorageClass": "GLACIER", "TransitionInDays": config.glacier_after_days},
    ]
    assert rule["AbortIncompleteMultipartUpload"] == {"DaysAfterInitiation": 7}
    assert lake["LoggingConfiguration"]["DestinationBucketName"] == {"Ref": "DataLakeAccessLogs1DA51325"}
    assert lake["BucketName"]["Fn::Join"][1][0] == f"sensor-{each_env.config.name}-datalake-"


def test_lifecycle_days_come_from_config(synth_variant) -> None:
    env = synth_variant(
        "dev", lambda raw: raw.update(datalake={"infrequent_access_after_days": 45, "glacier_after_days": 180})
    )
    (rule,) = _bucket(env, "DataLakeC5E9BBFD")["LifecycleConfiguration"]["Rules"]
    assert [t["TransitionInDays"] for t in rule["Transitions"]] == [45, 180]
