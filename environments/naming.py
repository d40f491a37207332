"""The one place that spells an environment's resource and stack names.

Fixed names (README: fixed names) let the stacks, the alarm catalogue, the on-call tools and the
rollback commands find the same resources without cross-stack references: the Service stack names
its ECS service `sensor-<env>-ingest`, and `make rollback-help` and `monitoring.watch` use the same
spelling from here. Names that include a deploy-time token (account id) take it as an argument, so
this module stays plain Python.
"""

from __future__ import annotations

from dataclasses import dataclass

# Stacks in deployment order; the opt-in LoadTest stack comes last and only while enabled.
CORE_DOMAINS = ("Network", "Data", "Service", "Pipeline", "Monitoring")
LOAD_TEST_DOMAIN = "LoadTest"
STATEFUL_DOMAINS = frozenset({"Data"})
# The alias every Lambda function of the platform serves traffic through (blue/green by CodeDeploy).
LIVE_ALIAS = "live"


@dataclass(frozen=True)
class EnvironmentNames:
    """Every name derived from one environment name (`dev`, `prod`, ...)."""

    env_name: str

    @property
    def prefix(self) -> str:
        """`sensor-<env>`: the start of every resource name, the APP_ENV of its tasks and functions."""
        return f"sensor-{self.env_name}"

    def stack(self, domain: str) -> str:
        """`Sensor-<env>-<Domain>`, e.g. `Sensor-prod-Data`."""
        return f"Sensor-{self.env_name}-{domain}"

    @property
    def stack_glob(self) -> str:
        """Matches the synthesized templates of every stack of the environment."""
        return f"{self.stack('*')}.template.json"

    def stacks(self, domains: tuple[str, ...] = CORE_DOMAINS) -> list[str]:
        return [self.stack(domain) for domain in domains]

    @property
    def stateful_stacks(self) -> list[str]:
        return [self.stack(domain) for domain in CORE_DOMAINS if domain in STATEFUL_DOMAINS]

    @property
    def alarm_prefix(self) -> str:
        """Every alarm of the environment starts with this (`sensor-<env>-<severity>-<name>`)."""
        return f"{self.prefix}-"

    # --- resources other parts of the repository look up by name -------------------------------
    @property
    def ecs_cluster(self) -> str:
        return self.prefix

    @property
    def ingest_service(self) -> str:
        return f"{self.prefix}-ingest"

    @property
    def db_instance(self) -> str:
        return self.prefix

    @property
    def db_replica(self) -> str:
        return f"{self.db_instance}-replica"

    @property
    def msk_cluster(self) -> str:
        return self.prefix

    @property
    def archiver_function(self) -> str:
        return f"{self.prefix}-archiver"

    @property
    def read_api_function(self) -> str:
        return f"{self.prefix}-read-api"

    @property
    def smoke_test_function(self) -> str:
        return f"{self.prefix}-deploy-smoke"

    @property
    def lambda_application(self) -> str:
        """The CodeDeploy application of the Lambda aliases."""
        return f"{self.prefix}-lambdas"

    @property
    def web_acl(self) -> str:
        return f"{self.prefix}-edge"

    @property
    def state_cache(self) -> str:
        return f"{self.prefix}-state"

    @property
    def glue_database(self) -> str:
        """Glue names allow no hyphen."""
        return f"sensor_{self.env_name.replace('-', '_')}_lake"

    def datalake_bucket(self, account: str, region: str) -> str:
        return f"{self.prefix}-datalake-{account}-{region}"

    def load_test_bucket(self, account: str, region: str) -> str:
        return f"{self.prefix}-loadtest-{account}-{region}"
