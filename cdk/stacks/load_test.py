"""LoadTest stack (opt-in, `load_test.enabled`): the distributed Locust load generator of an environment."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aws_cdk import CfnOutput, Stack
from aws_cdk import aws_ec2 as ec2
from constructs import Construct

from cdk.components.load_test import LoadTestResults, LocustFleet
from cdk.components.locust_ui import LocustUi
from environments.config import EnvironmentConfig
from environments.naming import EnvironmentNames


class LoadTestStack(Stack):
    """Owns the results bucket, the Cognito-authenticated internal UI load balancer and the Locust
    master and workers on their own ECS cluster in the environment's VPC. It depends on the Network
    stack (VPC) and the Service stack (the URL it targets) and nothing depends on it: it can be
    deployed for a test and destroyed afterwards (the results bucket is retained)."""

    def __init__(
        self, scope: Construct, construct_id: str, *, config: EnvironmentConfig, image_directory: Path,
        vpc: ec2.IVpc, target_url: str, **kwargs: Any,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        names = EnvironmentNames(config.name)
        name_prefix = names.prefix
        certificate_arn = config.load_test_certificate_arn
        assert certificate_arn is not None  # environments.config refuses load_test.enabled without one
        self.results = LoadTestResults(
            self, "Results", names=names, region=config.region,
            retention_days=config.load_test.results_retention_days,
        )
        self.ui = LocustUi(
            self, "Ui", config=config.load_test, name_prefix=name_prefix, certificate_arn=certificate_arn, vpc=vpc,
            vpc_cidr=config.network.vpc_cidr, access_logs_bucket=self.results.access_logs,
        )
        self.fleet = LocustFleet(
            self, "Locust", config=config.load_test, name_prefix=name_prefix, image_directory=image_directory,
            vpc=vpc, target_url=config.load_test.target_url or target_url, ui=self.ui, results=self.results,
            log_retention_days=config.log_retention_days,
        )
        CfnOutput(self, "UiUrl", value=self.ui.url)
        CfnOutput(self, "UserPoolId", value=self.ui.user_pool.user_pool_id)
        CfnOutput(self, "ResultsBucket", value=self.results.bucket_name)
        CfnOutput(self, "ClusterName", value=self.fleet.cluster.cluster_name)
        CfnOutput(self, "MasterServiceName", value=self.fleet.master.service_name)
        CfnOutput(self, "WorkersServiceName", value=self.fleet.workers.service_name)
        # Its `client_secret`'s SHA-256 digest goes into the ApiClients secret (runbook).
        CfnOutput(self, "ClientSecretArn", value=self.fleet.client_secret.secret_arn)
