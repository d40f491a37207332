"""S3 buckets: the sensor data lake and the access-log bucket the platform writes into."""

from __future__ import annotations

from aws_cdk import Aws, Duration, RemovalPolicy
from aws_cdk import aws_s3 as s3
from constructs import Construct

from cdk.components.checkov import acknowledge_checkov
from environments.config import DataLakeConfig
from environments.naming import EnvironmentNames

# Prefix layout shared by the app (dead letters), the archiver and the Glue table.
RAW_PREFIX = "raw/"
PROCESSED_PREFIX = "processed/"
DEAD_LETTER_PREFIX = "dead-letter/"
# The ingestion service's own letters (its role may write nowhere else; the archiver has its own prefix).
SERVICE_DEAD_LETTER_PREFIX = f"{DEAD_LETTER_PREFIX}service/"
ACCESS_LOG_RETENTION = Duration.days(365)


def private_bucket(scope: Construct, construct_id: str, **props) -> s3.Bucket:
    """A bucket with the platform's baseline: SSE-S3 encryption, public access blocked, bucket-owner
    object ownership, TLS 1.2+ only, versioned, retained on stack deletion. `props` add the rest
    (name, access logging, lifecycle)."""
    return s3.Bucket(
        scope,
        construct_id,
        encryption=s3.BucketEncryption.S3_MANAGED,
        block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
        object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
        enforce_ssl=True,
        minimum_tls_version=1.2,
        versioned=True,
        removal_policy=RemovalPolicy.RETAIN,
        **props,
    )


def access_log_bucket(scope: Construct, construct_id: str) -> s3.Bucket:
    """A bucket for S3 server access logs and ALB access logs: SSE-S3 (the only encryption ALB access
    logging supports), private, TLS 1.2+ only, versioned, logs expire after a year, retained."""
    bucket = private_bucket(
        scope,
        construct_id,
        lifecycle_rules=[
            s3.LifecycleRule(
                id="expire-access-logs",
                expiration=ACCESS_LOG_RETENTION,
                noncurrent_version_expiration=Duration.days(30),
            )
        ],
    )
    acknowledge_checkov(
        bucket,
        "CKV_AWS_18",
        "This bucket is the access-log destination itself; logging its access into another bucket would "
        "need yet another unlogged bucket, so the chain ends here as AWS's logging guidance recommends.",
    )
    return bucket


class DataLake(Construct):
    """Owns the data-lake bucket (`raw/year=/month=/day=/hour=/`, `processed/`, `dead-letter/`)
    and the access-log bucket that receives S3 server access logs and ALB access logs.

    Both: S3-managed encryption, public access blocked, TLS 1.2+ enforced, versioned, retained
    on stack deletion. The lake moves objects to Infrequent Access and then Glacier by config.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: DataLakeConfig,
        names: EnvironmentNames,
        region: str,
    ) -> None:
        super().__init__(scope, construct_id)
        # Fixed per environment, account and region, so runbooks, consumers in other stacks and IAM
        # policies can name it without a cross-stack reference.
        self.bucket_name = names.datalake_bucket(Aws.ACCOUNT_ID, region)

        self.access_logs = access_log_bucket(self, "AccessLogs")

        self.bucket = private_bucket(
            self,
            "Lake",
            bucket_name=self.bucket_name,
            server_access_logs_bucket=self.access_logs,
            server_access_logs_prefix="s3/datalake/",
            lifecycle_rules=[
                s3.LifecycleRule(
                    id="tier-down-readings",
                    transitions=[
                        s3.Transition(
                            storage_class=s3.StorageClass.INFREQUENT_ACCESS,
                            transition_after=Duration.days(config.infrequent_access_after_days),
                        ),
                        s3.Transition(
                            storage_class=s3.StorageClass.GLACIER,
                            transition_after=Duration.days(config.glacier_after_days),
                        ),
                    ],
                    noncurrent_version_expiration=Duration.days(
                        config.noncurrent_versions_expire_after_days
                    ),
                    abort_incomplete_multipart_upload_after=Duration.days(7),
                )
            ],
        )
