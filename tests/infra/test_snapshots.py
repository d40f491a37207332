"""Whole-template snapshots (asset hashes scrubbed): any change shows up in review.

Update on purpose with `make snapshot-update` and read the diff.
"""

from __future__ import annotations

import pytest
from syrupy.extensions.json import JSONSnapshotExtension

from cdk.plan import scrubbed
from tests.infra.conftest import Synthesized


@pytest.fixture
def snapshot_json(snapshot):
    return snapshot.use_extension(JSONSnapshotExtension)


@pytest.mark.parametrize("stack", ["Network", "Data", "Service", "Pipeline", "Monitoring"])
def test_template_matches_snapshot(each_env: Synthesized, stack: str, snapshot_json) -> None:
    assert scrubbed(each_env.templates[stack].to_json()) == snapshot_json


def test_load_test_stack_matches_snapshot(dev: Synthesized, snapshot_json) -> None:
    """Opt-in (`load_test.enabled`): committed in dev only."""
    assert scrubbed(dev.templates["LoadTest"].to_json()) == snapshot_json
