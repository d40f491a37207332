"""Whole-template snapshots (asset hashes scrubbed): any change shows up in review.

Update on purpose with `make snapshot-update` and read the diff.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from syrupy.extensions.json import JSONSnapshotExtension

from tests.infra.conftest import Synthesized

_ASSET_HASH = re.compile(r"[0-9a-f]{64}")
# A Lambda version's logical id ends with a hash of the function's code and configuration, so any
# change to app/ or lambda/ would rename it; the alias tests pin what the version points at.
_LAMBDA_VERSION_HASH = re.compile(r"(CurrentVersion[0-9A-F]{8})[0-9a-f]{32}")


def scrubbed(template: dict[str, Any]) -> dict[str, Any]:
    resources = {k: v for k, v in template["Resources"].items() if v["Type"] != "AWS::CDK::Metadata"}
    text = json.dumps({**template, "Resources": resources}, sort_keys=True)
    text = _LAMBDA_VERSION_HASH.sub(r"\1<code-hash>", text)
    return json.loads(_ASSET_HASH.sub("<asset-hash>", text))


@pytest.fixture
def snapshot_json(snapshot):
    return snapshot.use_extension(JSONSnapshotExtension)


@pytest.mark.parametrize("stack", ["Network", "Data", "Service", "Pipeline", "Monitoring"])
def test_template_matches_snapshot(each_env: Synthesized, stack: str, snapshot_json) -> None:
    assert scrubbed(each_env.templates[stack].to_json()) == snapshot_json


def test_load_test_stack_matches_snapshot(dev: Synthesized, snapshot_json) -> None:
    """Opt-in (`load_test.enabled`): committed in dev only."""
    assert scrubbed(dev.templates["LoadTest"].to_json()) == snapshot_json
