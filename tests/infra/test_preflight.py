"""`make diff/deploy` stop at once, with one clear line, when AWS credentials are missing or wrong."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from moto import mock_aws

from cdk.preflight import PreflightError, check
from tests.conftest import REPO_ROOT

MOTO_ACCOUNT = "123456789012"  # moto's STS answers with this account


@pytest.fixture
def fake_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")


def test_credentials_for_the_pinned_account_pass(fake_credentials, tmp_path: Path) -> None:
    bundle = tmp_path / "rds-global-bundle.pem"
    bundle.write_text("-----BEGIN CERTIFICATE-----\n")
    with mock_aws():
        assert check("prod", ca_bundle=bundle) == MOTO_ACCOUNT
        assert check("prod") == MOTO_ACCOUNT  # diff and reports need no bundle


def test_no_deploy_without_the_rds_ca_bundle(fake_credentials, tmp_path: Path) -> None:
    """The read API verifies RDS's certificate (verify-full) against the bundle it ships."""
    with mock_aws(), pytest.raises(PreflightError, match=r"rds-global-bundle.pem is missing: run `make rds-ca-bundle`"):
        check("prod", ca_bundle=tmp_path / "rds-global-bundle.pem")


def test_credentials_for_another_account_are_refused(fake_credentials, tmp_path: Path) -> None:
    cdk_json = json.loads((REPO_ROOT / "cdk.json").read_text())
    cdk_json["context"]["environments"]["prod"]["account"] = "999999999999"
    path = tmp_path / "cdk.json"
    path.write_text(json.dumps(cdk_json))
    with mock_aws(), pytest.raises(PreflightError, match="account 123456789012, but environment 'prod' deploys to 999999999999"):
        check("prod", cdk_json=path)


def test_missing_credentials_exit_2_with_instructions(tmp_path: Path) -> None:
    env = {key: value for key, value in os.environ.items() if not key.startswith("AWS_")}
    env.update(
        AWS_CONFIG_FILE=str(tmp_path / "none"),
        AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "none"),
        AWS_EC2_METADATA_DISABLED="true",
        PYTHONPATH=str(REPO_ROOT),
    )
    result = subprocess.run(
        [sys.executable, "-m", "cdk.preflight", "--env", "dev"],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False,
    )
    assert result.returncode == 2
    assert result.stderr.startswith("error: no AWS credentials found. Log in first")
    assert "Traceback" not in result.stderr


def test_unknown_environment_exits_2_naming_it(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "cdk.preflight", "--env", "staging"],
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)}, cwd=tmp_path,
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert result.returncode == 2
    assert result.stderr.startswith("error: unknown environment 'staging'")
    assert "Traceback" not in result.stderr


def test_make_deploy_runs_the_preflight_before_anything_else() -> None:
    makefile = (REPO_ROOT / "Makefile").read_text()
    for target in ("deploy", "diff"):
        recipe = makefile.split(f"\n{target}: ", 1)[1].split("\n\n", 1)[0].splitlines()[1:]
        expected = "$(PY) -m cdk.preflight --env $(ENV)" + (" --deploy" if target == "deploy" else "")
        assert recipe[0].strip() == expected, target
    deploy = makefile.split("\ndeploy: ", 1)[1].split("\n\n", 1)[0]
    assert "-m cdk.deploy_plan deploy --env $(ENV)" in deploy
    assert "--confirm-stateful $(CONFIRM_STATEFUL)" in deploy
    assert "--all" not in deploy
