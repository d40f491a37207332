"""cfn-lint: zero errors on every synthesized template (warnings are CDK's own, e.g. W3005)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.infra.conftest import Synthesized


def lint_errors(templates: list[Path]) -> list[str]:
    result = subprocess.run(
        [str(Path(sys.executable).parent / "cfn-lint"), "--format", "json", *map(str, templates)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.stdout.strip(), f"cfn-lint printed nothing: {result.stderr}"
    matches = json.loads(result.stdout)
    return [
        f"{Path(m['Filename']).name}: {m['Rule']['Id']} {m['Message']}"
        for m in matches
        if m["Level"] == "Error"
    ]


@pytest.mark.slow
def test_templates_have_no_cfn_lint_errors(dev: Synthesized, prod: Synthesized) -> None:
    templates = sorted(dev.outdir.glob("*.template.json")) + sorted(prod.outdir.glob("*.template.json"))
    # Network, Data, Service, Pipeline, Monitoring per environment, and dev's LoadTest (load_test.enabled)
    assert len(templates) == 11
    assert lint_errors(templates) == []


@pytest.mark.slow
def test_lint_reports_errors_when_a_template_is_wrong(tmp_path: Path) -> None:
    broken = tmp_path / "broken.template.json"
    broken.write_text(json.dumps({"Resources": {"Bucket": {"Type": "AWS::S3::Bucket", "Properties": {"Nope": 1}}}}))
    assert any("E3002" in error for error in lint_errors([broken]))
