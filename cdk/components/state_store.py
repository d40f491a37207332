"""ElastiCache Serverless for Valkey: the state every ingestion task shares (per-client rate-limit
buckets, the anomaly windows of each series), so limits and verdicts do not depend on the task count.

Why serverless rather than a replicated node cluster: the state is small (a bucket per client, 50
values per series) and the load follows the service's 1-20 tasks; serverless scales with it within
the configured limits, is Multi-AZ (replicated across the AZs of its subnets) with no node type or
shard count to size or patch, and always has TLS in transit and encryption at rest. A node cluster
would need sizing for the 20-task peak around the clock. The cache is rebuildable: a lost window is
rebuilt from PostgreSQL, a lost bucket starts empty, so no snapshot is needed by default.

Access: its own security group admits only the app tasks' group on the cache ports; authentication
is IAM (no password to store or rotate): the user `sensor-<env>-app` authenticates with a SigV4
token signed by the task role, which alone holds `elasticache:Connect` on the cache and that user.
The user's ACL allows only the keys `sensor:*` and the commands the scripts use. The user group's
required `default` user is switched off.
"""

from __future__ import annotations

from aws_cdk import Aws, Duration, RemovalPolicy
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_elasticache as elasticache
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from constructs import Construct

from cdk.components.security_groups import admitting_clients
from cdk.props import StateStoreAccess
from environments.config import StateStoreConfig
from environments.naming import EnvironmentNames

ENGINE = "valkey"
PORTS = (6379, 6380)  # the serverless endpoint and its reader endpoint
# Keys under sensor:, the commands of app/state/scripts.py (EVALSHA, SCRIPT LOAD; inside them HMGET, HSET,
# PEXPIRE, TIME, EXISTS, RPUSH, LRANGE, LTRIM, EXPIRE, DEL) and connection handling. No admin commands.
APP_ACCESS_STRING = "on ~sensor:* resetchannels -@all +@read +@write +@scripting +@connection +time -@dangerous"


class SharedStateStore(Construct):
    """Owns the serverless cache, its security group, customer-managed KMS key, users and user group."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: StateStoreConfig,
        names: EnvironmentNames,
        vpc: ec2.IVpc,
        client_security_group: ec2.ISecurityGroup,
    ) -> None:
        super().__init__(scope, construct_id)
        self.cache_name = names.state_cache
        self.user_id = f"{names.prefix}-app"

        self.security_group = admitting_clients(
            self, vpc=vpc, description="ElastiCache for Valkey: shared state", client=client_security_group,
            port=ec2.Port.tcp_range(PORTS[0], PORTS[-1]), label="App to the shared state store",
        )
        self.key = kms.Key(
            self, "Key", description=f"{self.cache_name}: encryption at rest of the shared state store",
            enable_key_rotation=True, removal_policy=RemovalPolicy.DESTROY, pending_window=Duration.days(7),
        )
        app_user = elasticache.CfnUser(
            self, "AppUser", engine=ENGINE, user_id=self.user_id, user_name=self.user_id,
            access_string=APP_ACCESS_STRING, authentication_mode={"Type": "iam"},
        )
        default_user = elasticache.CfnUser(
            self, "DisabledDefaultUser", engine=ENGINE, user_id=f"{names.prefix}-default", user_name="default",
            access_string="off -@all", authentication_mode={"Type": "no-password-required"},
        )
        user_group = elasticache.CfnUserGroup(
            self, "UserGroup", engine=ENGINE, user_group_id=names.state_cache,
            user_ids=[default_user.user_id, app_user.user_id],
        )
        user_group.node.add_dependency(app_user, default_user)
        isolated = vpc.select_subnets(subnet_type=ec2.SubnetType.PRIVATE_ISOLATED)
        self.cache = elasticache.CfnServerlessCache(
            self, "Cache",
            serverless_cache_name=self.cache_name,
            description="Shared per-client rate limits and anomaly windows of the ingestion tasks",
            engine=ENGINE,
            major_engine_version=config.major_engine_version,
            subnet_ids=isolated.subnet_ids,
            security_group_ids=[self.security_group.security_group_id],
            kms_key_id=self.key.key_arn,
            user_group_id=user_group.user_group_id,
            cache_usage_limits=elasticache.CfnServerlessCache.CacheUsageLimitsProperty(
                data_storage=elasticache.CfnServerlessCache.DataStorageProperty(
                    maximum=config.max_data_gib, unit="GB"),
                ecpu_per_second=elasticache.CfnServerlessCache.ECPUPerSecondProperty(
                    maximum=config.max_ecpu_per_second),
            ),
            snapshot_retention_limit=config.snapshot_retention_days,
        )
        self.cache.node.add_dependency(user_group)
        # Rebuildable state: nothing to keep when the stack goes (windows come back from PostgreSQL).
        self.cache.apply_removal_policy(RemovalPolicy.DESTROY)
        self.user_arn = app_user.attr_arn

    @property
    def access(self) -> StateStoreAccess:
        """What a client task needs (the endpoint as a rediss:// TLS URL, the app's SENSOR_STATE_STORE_URL)."""
        return StateStoreAccess(
            url=f"rediss://{self.cache.attr_endpoint_address}:{self.cache.attr_endpoint_port}/0",
            cache_name=self.cache_name,
            user_id=self.user_id,
            user_arn=self.user_arn,
        )


def connect_task(access: StateStoreAccess, task_definition: ecs.TaskDefinition) -> None:
    """Point the app container at the cache and let its task role (only) authenticate as the app user."""
    container = task_definition.default_container
    if container is None:
        raise ValueError("the task definition has no container to configure")
    container.add_environment("STATE_STORE_URL", access.url)
    container.add_environment("STATE_STORE_IAM_USER", access.user_id)
    container.add_environment("STATE_STORE_CACHE_NAME", access.cache_name)
    task_definition.task_role.add_to_principal_policy(iam.PolicyStatement(
        sid="StateStoreConnect",
        actions=["elasticache:Connect"],
        resources=[
            f"arn:{Aws.PARTITION}:elasticache:{Aws.REGION}:{Aws.ACCOUNT_ID}:serverlesscache:{access.cache_name}",
            access.user_arn,
        ],
    ))
