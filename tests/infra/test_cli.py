"""The real entry point through the pinned CDK CLI: what `make synth` runs."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

CDK = REPO_ROOT / "node_modules" / ".bin" / "cdk"
PYTHON = REPO_ROOT / ".venv" / "bin" / "python"
# The CLI refuses user context under `aws:` (so no "aws:cdk:bundling-stacks=[]"); `--exclusively` with
# a stack that bundles nothing keeps pip out of the tests. The whole assembly is still written.
NO_BUNDLING = ["--exclusively", "Sensor-{env}-Network"]


def run_cdk(args: list[str], cwd: Path, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "CDK_DISABLE_CLI_TELEMETRY": "true",
        "CDK_DISABLE_VERSION_CHECK": "1",
        "CDK_HOME": str(tmp_path / "cdk-home"),
        "PYTHONPATH": str(REPO_ROOT),
    }
    return subprocess.run(
        [str(CDK), *args, "--no-notices", "--app", f"{PYTHON} -m cdk.app"],
        cwd=cwd, env=env, capture_output=True, text=True, check=False, timeout=300,
    )


@pytest.mark.slow
def test_synth_prod_writes_one_template_per_stack_with_nag_enabled(tmp_path: Path) -> None:
    out = tmp_path / "cdk.out"
    no_bundling = [arg.format(env="prod") for arg in NO_BUNDLING]
    result = run_cdk(["synth", "-c", "env=prod", "-q", "-o", str(out), *no_bundling], REPO_ROOT, tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert sorted(p.name for p in out.glob("*.template.json")) == [
        "Sensor-prod-Data.template.json",
        "Sensor-prod-Monitoring.template.json",
        "Sensor-prod-Network.template.json",
        "Sensor-prod-Pipeline.template.json",
        "Sensor-prod-Service.template.json",
    ]
    assert "Bundling asset" not in result.stderr
    template = json.loads((out / "Sensor-prod-Data.template.json").read_text())
    assert any(r["Type"] == "AWS::RDS::DBInstance" for r in template["Resources"].values())


@pytest.mark.slow
def test_bad_config_stops_synth_with_the_key_and_no_traceback(tmp_path: Path) -> None:
    cdk_json = json.loads((REPO_ROOT / "cdk.json").read_text())
    cdk_json["context"]["environments"]["dev"]["service"]["scaling"]["max_tasks"] = "twenty"
    (tmp_path / "cdk.json").write_text(json.dumps(cdk_json))
    result = run_cdk(["synth", "-c", "env=dev", "-q", "-o", str(tmp_path / "out")], tmp_path, tmp_path)
    assert result.returncode != 0
    assert "environments.dev.service.scaling.max_tasks: Input should be a valid integer (got 'twenty')" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_missing_environment_is_explained(tmp_path: Path) -> None:
    result = run_cdk(["synth", "-q", "-o", str(tmp_path / "out")], REPO_ROOT, tmp_path)
    assert result.returncode != 0
    assert "no environment selected: pass -c env=NAME (one of: dev, prod)" in result.stderr
