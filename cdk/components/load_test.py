"""The distributed Locust load generator of one environment: results bucket, master and workers (the UI's
access is cdk/components/locust_ui.py).

Locust's master serves the web UI on 8089 and takes its workers on 5557; the workers run the users
and reach the environment's internet-facing ALB through the VPC's NAT gateways (whose Elastic IPs the
Service stack's WAF allow-list exempts from the per-IP rate limit while `load_test.enabled`).
"""

from __future__ import annotations

from pathlib import Path

from aws_cdk import Aws, Duration, RemovalPolicy
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_servicediscovery as servicediscovery
from constructs import Construct

from cdk.components.client_secret import generated_client_secret
from cdk.components.datalake import access_log_bucket, private_bucket
from cdk.components.fargate import linux_task_definition
from cdk.components.locust_ui import HTTPS_PORT, WEB_PORT, LocustUi
from cdk.components.nag import acknowledge, finding_text
from cdk.components.retention import log_retention
from environments.config import LoadTestConfig
from environments.naming import EnvironmentNames

MASTER_PORT = 5557
HTTP_PORT = 80
# Read by loadtests/locust/target_guard.py in every Locust process: the only host a run may target.
TARGET_URL_ENV = "LOADTEST_TARGET_URL"
MASTER_SERVICE_NAME = "master"
LOCUSTFILE = "loadtests/locust/locustfile.py"
# Where the master writes each run (`<RESULTS_DIRECTORY>/<UTC timestamp>/`) and where it lands in S3.
RESULTS_DIRECTORY = "/srv/results"
RESULTS_PREFIX = "runs/"


class LoadTestResults(Construct):
    """Owns the results bucket (encrypted, TLS-only, private, versions and objects expire after
    `results_retention_days`) and the access-log bucket that receives its server access logs and the
    UI load balancer's access logs. Both are retained when the stack is destroyed: results outlive the
    load generator, and the lifecycle rules empty them."""

    def __init__(
        self, scope: Construct, construct_id: str, *, names: EnvironmentNames, region: str, retention_days: int
    ) -> None:
        super().__init__(scope, construct_id)
        self.access_logs = access_log_bucket(self, "AccessLogs")
        # Fixed per environment, account and region, so the runbook and the task's IAM policy can name it.
        self.bucket_name = names.load_test_bucket(Aws.ACCOUNT_ID, region)
        self.bucket = private_bucket(
            self, "Results", bucket_name=self.bucket_name, server_access_logs_bucket=self.access_logs,
            server_access_logs_prefix="s3/loadtest-results/", lifecycle_rules=[
                s3.LifecycleRule(
                    id="expire-results",
                    expiration=Duration.days(retention_days),
                    noncurrent_version_expiration=Duration.days(1),
                    abort_incomplete_multipart_upload_after=Duration.days(1),
                )
            ],
        )
        self.results_prefix = RESULTS_PREFIX


class LocustFleet(Construct):
    """Owns the load-test ECS cluster (Fargate and Fargate Spot capacity providers, Container
    Insights), its Cloud Map namespace, the master service (one task: web UI, `--expect-workers`,
    uploads the results to S3) and the workers service (`workers` tasks, optionally on Spot), their
    task definitions, log group, security groups and the load-test API client's generated secret.

    Only the UI load balancer reaches the master's 8089 and only the workers its 5557; the workers
    accept nothing. Outbound, the tasks may reach only the target's port (the internet-facing ALB, whose
    addresses are not fixed, hence any address on that one port), HTTPS (image layers from S3, the
    Secrets Manager and Logs endpoints) and, for the workers, the master's 5557: no other port, no
    other protocol. Which host the users may call is enforced in the load generator itself
    (`LOADTEST_TARGET_URL`, loadtests/locust/target_guard.py).
    """

    def __init__(
        self, scope: Construct, construct_id: str, *,
        config: LoadTestConfig,
        name_prefix: str,
        image_directory: Path,
        vpc: ec2.IVpc,
        target_url: str,
        ui: LocustUi,
        results: LoadTestResults,
        log_retention_days: int,
    ) -> None:
        super().__init__(scope, construct_id)
        self._config = config
        self._target_url = target_url
        self.cluster = ecs.Cluster(
            self, "Cluster", vpc=vpc, cluster_name=f"{name_prefix}-loadtest",
            enable_fargate_capacity_providers=True,
            container_insights_v2=ecs.ContainerInsights.ENHANCED,
        )
        self.namespace = self.cluster.add_default_cloud_map_namespace(
            name=f"loadtest.{name_prefix}.internal", vpc=vpc, use_for_service_connect=False
        )
        self.master_host = f"{MASTER_SERVICE_NAME}.loadtest.{name_prefix}.internal"

        self.master_security_group = ec2.SecurityGroup(
            self, "MasterSecurityGroup", vpc=vpc, description="Locust master", allow_all_outbound=False
        )
        self.worker_security_group = ec2.SecurityGroup(
            self, "WorkerSecurityGroup", vpc=vpc, description="Locust workers", allow_all_outbound=False
        )
        target_port = _port_of(target_url)
        for group in (self.master_security_group, self.worker_security_group):
            group.add_egress_rule(ec2.Peer.any_ipv4(), ec2.Port.tcp(HTTPS_PORT),
                                  "HTTPS: image layers (S3), Secrets Manager and Logs endpoints, the target")
            if target_port != HTTPS_PORT:
                group.add_egress_rule(ec2.Peer.any_ipv4(), ec2.Port.tcp(target_port), "The target ALB's listener")
        self.worker_security_group.add_egress_rule(
            self.master_security_group, ec2.Port.tcp(MASTER_PORT), "Locust workers to master"
        )
        self.master_security_group.add_ingress_rule(
            self.worker_security_group, ec2.Port.tcp(MASTER_PORT), "Locust workers to master"
        )
        self.master_security_group.add_ingress_rule(
            ui.security_group, ec2.Port.tcp(WEB_PORT), "UI load balancer to Locust web UI"
        )
        ui.security_group.add_egress_rule(
            self.master_security_group, ec2.Port.tcp(WEB_PORT), "UI load balancer to Locust web UI"
        )

        self.client_secret = generated_client_secret(
            self,
            "ClientSecret",
            client_id=config.client_id,
            description=f"{name_prefix}: the load-test API client's credentials (Locust users log in with it)",
            rotation_reason=(
                "The load-test client's secret is paired with its SHA-256 digest in the ApiClients secret for the "
                "duration of a test; destroying the stack after the test retires it, so there is nothing to rotate."
            ),
        )

        self.log_group = logs.LogGroup(
            self, "Logs", retention=log_retention(log_retention_days), removal_policy=RemovalPolicy.DESTROY
        )
        image = ecs.ContainerImage.from_asset(str(image_directory))
        self.master_task = self._task_definition(
            "MasterTask", config.master_cpu, config.master_memory_mib, image, "master",
            command=self.master_command(target_url, results.bucket_name, results.results_prefix),
            port=WEB_PORT, writes_results=True,
        )
        self.worker_task = self._task_definition(
            "WorkerTask", config.worker_cpu, config.worker_memory_mib, image, "worker",
            command=self.worker_command(), port=None, writes_results=False,
        )
        self._grant_results_upload(results)

        # Never two masters at once: workers would split between them.
        self.master = self._service(
            "Master", self.master_task, name=f"{name_prefix}-loadtest-master", desired_count=1,
            security_group=self.master_security_group,
            cloud_map_options=ecs.CloudMapOptions(
                name=MASTER_SERVICE_NAME, dns_record_type=servicediscovery.DnsRecordType.A, dns_ttl=Duration.seconds(10)
            ),
        )
        ui.target_group.add_target(
            self.master.load_balancer_target(container_name="master", container_port=WEB_PORT)
        )
        self.workers = self._service(
            "Workers", self.worker_task, name=f"{name_prefix}-loadtest-workers", desired_count=config.workers,
            security_group=self.worker_security_group, **_capacity(config),
        )
        # Workers retry until the master answers, but starting them together wastes their first minute.
        self.workers.node.add_dependency(self.master)

    def master_command(self, target_url: str, bucket_name: str, prefix: str) -> list[str]:
        """Locust master with the web UI, wrapped by the exporter that uploads the run folder to S3 every
        `export_interval_seconds` and once more when Locust exits. Stopping the task (SIGTERM) ends the
        run: Locust writes its HTML report and threshold verdict, the exporter uploads them, and ECS
        starts a fresh master with a new run folder."""
        locust = " ".join((
            "locust", "-f", LOCUSTFILE, "--master", "--expect-workers", str(self._config.workers),
            "--master-bind-port", str(MASTER_PORT), "--web-port", str(WEB_PORT), "--host", target_url,
            "--load-profile", self._config.profile, "--csv", '"$RUN/stats"', "--csv-full-history",
            "--html", '"$RUN/report.html"', "--summary-file", '"$RUN/summary.json"',
        ))
        export = " ".join((
            "python", "-m", "loadtests.locust.export_results", "--dir", RESULTS_DIRECTORY, "--bucket", bucket_name,
            "--prefix", prefix, "--watch", str(self._config.export_interval_seconds), "--",
        ))
        # One run folder per master task start, named by its UTC start time.
        return ["sh", "-c", f'RUN={RESULTS_DIRECTORY}/$(date -u +%Y%m%dT%H%M%SZ) && mkdir -p "$RUN" && '
                            f"exec {export} {locust}"]

    def worker_command(self) -> list[str]:
        return ["locust", "-f", LOCUSTFILE, "--worker", "--master-host", self.master_host,
                "--master-port", str(MASTER_PORT)]

    def _task_definition(
        self, construct_id: str, cpu: int, memory_mib: int, image: ecs.ContainerImage, role: str, *,
        command: list[str], port: int | None, writes_results: bool,
    ) -> ecs.FargateTaskDefinition:
        task_definition = linux_task_definition(self, construct_id, cpu=cpu, memory_mib=memory_mib)
        container = task_definition.add_container(
            role,
            image=image,
            command=command,
            port_mappings=[ecs.PortMapping(container_port=port)] if port else [],
            logging=ecs.LogDrivers.aws_logs(stream_prefix=role, log_group=self.log_group),
            readonly_root_filesystem=True,
            # On SIGTERM Locust writes its HTML report and verdict, then the exporter uploads them.
            stop_timeout=Duration.seconds(120),
            # The only host the users may send the client secret to, whatever the web UI says.
            environment={TARGET_URL_ENV: self._target_url},
            secrets={
                "LOADTEST_CLIENT_ID": ecs.Secret.from_secrets_manager(self.client_secret, "client_id"),
                "LOADTEST_CLIENT_SECRET": ecs.Secret.from_secrets_manager(self.client_secret, "client_secret"),
            },
        )
        acknowledge(
            task_definition,
            "ECS2",
            "The environment holds only the load test's target URL (not a secret: the one host the users may "
            "call); the client credentials are injected from Secrets Manager.",
        )
        # Task-local volumes are the only writable paths; the image itself stays read-only.
        volumes = {"scratch": "/tmp", **({"results": RESULTS_DIRECTORY} if writes_results else {})}  # noqa: S108
        for volume, path in volumes.items():
            task_definition.add_volume(name=volume)
            container.add_mount_points(ecs.MountPoint(source_volume=volume, container_path=path, read_only=False))
        return task_definition

    def _service(
        self, construct_id: str, task_definition: ecs.FargateTaskDefinition, *, name: str, desired_count: int,
        security_group: ec2.ISecurityGroup, **options: object,
    ) -> ecs.FargateService:
        """A service in the private subnets that replaces all its tasks at once (0..100 % healthy)."""
        return ecs.FargateService(
            self, construct_id, cluster=self.cluster, task_definition=task_definition, service_name=name,
            desired_count=desired_count, min_healthy_percent=0, max_healthy_percent=100,
            security_groups=[security_group], assign_public_ip=False,
            vpc_subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS),
            circuit_breaker=ecs.DeploymentCircuitBreaker(enable=True, rollback=True), **options,
        )

    def _grant_results_upload(self, results: LoadTestResults) -> None:
        """The master's task role may put objects under the results prefix of the results bucket, nothing else."""
        objects = f"arn:{Aws.PARTITION}:s3:::{results.bucket_name}/{results.results_prefix}*"
        policy = iam.Policy(
            self,
            "ResultsUploadPolicy",
            statements=[
                iam.PolicyStatement(
                    sid="UploadResults",
                    actions=["s3:PutObject", "s3:AbortMultipartUpload"],
                    resources=[objects],
                )
            ],
        )
        policy.attach_to_role(self.master_task.task_role)
        acknowledge(
            policy,
            f"IAM5[Resource::{finding_text(self, objects)}]",
            f"Each run uploads files under '{results.results_prefix}<run>/'; the wildcard is that prefix of the "
            "load-test results bucket only, and the role can neither read nor delete.",
        )


def _port_of(url: str) -> int:
    """The TCP port of an http(s) URL (its explicit port, else the scheme's)."""
    scheme, _, rest = url.partition("://")
    host = rest.split("/", 1)[0]
    if ":" in host and host.rsplit(":", 1)[1].isdigit():
        return int(host.rsplit(":", 1)[1])
    return HTTPS_PORT if scheme == "https" else HTTP_PORT


def _capacity(config: LoadTestConfig) -> dict:
    if not config.spot:
        return {}
    return {"capacity_provider_strategies": [ecs.CapacityProviderStrategy(capacity_provider="FARGATE_SPOT", weight=1)]}
