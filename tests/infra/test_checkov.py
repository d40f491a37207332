"""checkov (CloudFormation policies) over every synthesized template of both environments.

Zero unacknowledged failures; every acknowledgement (`cdk/components/checkov.py`, kept next to its
resource) is listed here, still needed (checkov fails the resource without it) and explained.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import aws_cdk as cdk
import pytest

from cdk.components.checkov import METADATA_KEY, acknowledged_checks
from tests.conftest import REPO_ROOT
from tests.infra.conftest import Synthesized

CHECKOV = REPO_ROOT / ".venv-checkov" / "bin" / "checkov"

_PROVIDER = "Network/Custom::VpcRestrictDefaultSGCustomResourceProvider/Handler"
_LAMBDA_ENV = "CKV_AWS_173"
# (construct path below the stack, check id) for every acknowledgement in the code. A new one must
# be added here on purpose, next to the review of its reason.
ACKNOWLEDGED = {
    (_PROVIDER, "CKV_AWS_115"),
    (_PROVIDER, "CKV_AWS_116"),
    (_PROVIDER, "CKV_AWS_117"),
    ("Network/SecurityGroups/LoadBalancer/Resource", "CKV_AWS_260"),
    ("Data/DataLake/AccessLogs/Resource", "CKV_AWS_18"),
    ("Data/SecretsKey/Resource", "CKV_AWS_33"),
    ("Service/SecretsKey/Resource", "CKV_AWS_33"),
    ("Service/DeploySmokeTest/Function/Resource", "CKV_AWS_115"),
    ("Service/DeploySmokeTest/Function/Resource", "CKV_AWS_116"),
    ("Service/DeploySmokeTest/Function/Resource", _LAMBDA_ENV),
    ("Service/DeploySmokeTest/ExecutionRole/Resource", "CKV_AWS_111"),
    ("Pipeline/Archiver/Function/Resource", "CKV_AWS_115"),
    ("Pipeline/Archiver/Function/Resource", "CKV_AWS_116"),
    ("Pipeline/Archiver/Function/Resource", _LAMBDA_ENV),
    ("Pipeline/Archiver/ExecutionRole/Resource", "CKV_AWS_111"),
    ("Pipeline/ArchiverDeployment/Hook/Resource", "CKV_AWS_115"),
    ("Pipeline/ArchiverDeployment/Hook/Resource", "CKV_AWS_116"),
    ("Pipeline/ArchiverDeployment/Hook/Resource", "CKV_AWS_117"),
    ("Pipeline/ArchiverDeployment/Hook/Resource", _LAMBDA_ENV),
}
# Only while pipeline.read_api_enabled (true in both committed environments).
READ_API = {
    ("Pipeline/ReadApi/Function/Resource", "CKV_AWS_115"),
    ("Pipeline/ReadApi/Function/Resource", "CKV_AWS_116"),
    ("Pipeline/ReadApi/Function/Resource", _LAMBDA_ENV),
    ("Pipeline/ReadApi/ExecutionRole/Resource", "CKV_AWS_111"),
    ("Pipeline/ReadApiDeployment/Hook/Resource", "CKV_AWS_115"),
    ("Pipeline/ReadApiDeployment/Hook/Resource", "CKV_AWS_116"),
    ("Pipeline/ReadApiDeployment/Hook/Resource", "CKV_AWS_117"),
    ("Pipeline/ReadApiDeployment/Hook/Resource", _LAMBDA_ENV),
}
# Only while load_test.enabled (committed: dev).
LOAD_TEST = {
    ("LoadTest/Results/AccessLogs/Resource", "CKV_AWS_18"),
    ("LoadTest/SecretsKey/Resource", "CKV_AWS_33"),
}
# Only without certificate_arn (dev): plain-HTTP listeners (issue 20 makes this an explicit opt-out).
NO_CERTIFICATE = {
    (f"Service/Ingest/LoadBalancer/{listener}/Resource", check)
    for listener in ("Http", "Test")
    for check in ("CKV_AWS_2", "CKV_AWS_103")
}
# Only with database.read_replica (committed: prod).
READ_REPLICA = {
    ("Data/Database/ReadReplica/Resource", "CKV_AWS_16"),
    ("Data/Database/ReadReplica/Resource", "CKV_AWS_157"),
}
MIN_REASON_LENGTH = 60


def expected_acknowledgements(env: Synthesized) -> set[tuple[str, str]]:
    config = env.config
    return (
        ACKNOWLEDGED
        | (READ_API if config.pipeline.read_api_enabled else set())
        | (LOAD_TEST if config.load_test.enabled else set())
        | (NO_CERTIFICATE if config.certificate_arn is None else set())
        | (READ_REPLICA if config.database.read_replica else set())
    )


def declared(env: Synthesized) -> dict[tuple[str, str], str]:
    """(path below the stack, check id) -> reason, for every acknowledgement in the construct tree."""
    prefix = f"Sensor-{env.config.name}-"
    return {
        (node.node.path.removeprefix(prefix), check): reason
        for node in env.app.node.find_all()
        if isinstance(node, cdk.CfnResource)
        for check, reason in acknowledged_checks(node).items()
    }


def logical_paths(env: Synthesized) -> dict[tuple[str, str], str]:
    """(template file name, logical id) -> construct path below the stack."""
    prefix = f"Sensor-{env.config.name}-"
    paths = {}
    for stack in env.platform.stacks:
        for node in stack.node.find_all():
            if isinstance(node, cdk.CfnResource):
                key = (f"{stack.stack_name}.template.json", stack.resolve(node.logical_id))
                paths[key] = node.node.path.removeprefix(prefix)
    return paths


def _copy_templates(env: Synthesized, target: Path, *, strip_acknowledgements: bool) -> None:
    target.mkdir(parents=True)
    for source in env.outdir.glob("*.template.json"):
        template = json.loads(source.read_text())
        if strip_acknowledgements:
            for resource in template.get("Resources", {}).values():
                resource.get("Metadata", {}).pop(METADATA_KEY, None)
        (target / source.name).write_text(json.dumps(template))


def run_checkov(directory: Path) -> dict[str, dict]:
    """checkov's CloudFormation report per top-level sub-directory of `directory`."""
    if not CHECKOV.exists():
        pytest.fail(f"{CHECKOV} is missing: run `make checkov-venv` (make test does)")
    result = subprocess.run(
        [str(CHECKOV), "-d", str(directory), "--framework", "cloudformation", "--output", "json",
         "--compact", "--skip-download"],
        capture_output=True, text=True, check=False,
    )
    assert result.stdout.strip(), f"checkov printed nothing: {result.stderr[-2000:]}"
    report = json.loads(result.stdout)
    (cloudformation,) = report if isinstance(report, list) else [report]
    by_directory: dict[str, dict] = {}
    for outcome in ("passed_checks", "failed_checks", "skipped_checks"):
        for check in cloudformation["results"].get(outcome, []):
            directory_name, file_name = check["file_path"].strip("/").split("/", 1)
            entry = by_directory.setdefault(
                directory_name, {"passed_checks": [], "failed_checks": [], "skipped_checks": []}
            )
            entry[outcome].append({**check, "file_name": file_name})
    return by_directory


@pytest.fixture(scope="session")
def checkov_reports(dev: Synthesized, prod: Synthesized, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """One checkov run over both environments, as synthesized and with acknowledgements removed."""
    root = tmp_path_factory.mktemp("checkov")
    for env in (dev, prod):
        _copy_templates(env, root / env.config.name, strip_acknowledgements=False)
        _copy_templates(env, root / f"{env.config.name}-bare", strip_acknowledgements=True)
    reports = run_checkov(root)
    shutil.rmtree(root)
    return reports


def _findings(env: Synthesized, checks: list[dict]) -> set[tuple[str, str]]:
    paths = logical_paths(env)
    return {(paths[(check["file_name"], check["resource"].split(".", 1)[1])], check["check_id"]) for check in checks}


@pytest.mark.slow
def test_no_unacknowledged_failures(dev: Synthesized, prod: Synthesized, checkov_reports: dict) -> None:
    for env in (dev, prod):
        report = checkov_reports[env.config.name]
        assert [f"{c['resource']} {c['check_id']}" for c in report["failed_checks"]] == []
        assert len(report["passed_checks"]) > 300, "checkov scanned fewer resources than the platform has"
        # checkov honours exactly the acknowledgements written next to the resources.
        assert _findings(env, report["skipped_checks"]) == set(declared(env))


@pytest.mark.slow
def test_every_acknowledgement_is_listed_needed_and_explained(
    dev: Synthesized, prod: Synthesized, checkov_reports: dict
) -> None:
    for env in (dev, prod):
        acknowledgements = declared(env)
        assert set(acknowledgements) == expected_acknowledgements(env), "list new acknowledgements above"
        # Without its acknowledgement each check must fail: one that would pass anyway is stale.
        bare = checkov_reports[f"{env.config.name}-bare"]
        assert _findings(env, bare["failed_checks"]) == set(acknowledgements)
        for finding, reason in acknowledgements.items():
            assert len(reason) >= MIN_REASON_LENGTH, f"{finding}: say why, specifically ({reason!r})"


@pytest.mark.slow
def test_checkov_reports_a_failure_when_one_exists(tmp_path: Path) -> None:
    probe = tmp_path / "probe"
    probe.mkdir()
    template = {"Resources": {"Logs": {"Type": "AWS::Logs::LogGroup", "Properties": {"RetentionInDays": 7}}}}
    (probe / "probe.template.json").write_text(json.dumps(template))
    report = run_checkov(tmp_path)["probe"]
    assert {check["check_id"] for check in report["failed_checks"]} >= {"CKV_AWS_158"}
