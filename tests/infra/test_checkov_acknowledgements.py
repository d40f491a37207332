"""checkov's accepted findings (cdk/components/checkov.py): each explained, each in use, and only on the
resources it names. `make checkov` runs checkov itself (its pins conflict with this venv's)."""

from __future__ import annotations

from collections import Counter

from cdk.components.checkov import ACCEPTED
from tests.infra.conftest import Synthesized


def _skips(env: Synthesized) -> list[tuple[str, str, str, str]]:
    """(stack, logical id, resource type, check id) of every checkov skip in the templates."""
    found = []
    for stack_name, template in env.templates.items():
        for logical_id, resource in template.to_json()["Resources"].items():
            for skip in resource.get("Metadata", {}).get("checkov", {}).get("skip", []):
                found.append((stack_name, logical_id, resource["Type"], skip["id"]))
                assert len(skip["comment"]) >= 60, skip
    return found


def test_every_accepted_finding_is_explained_used_and_scoped(dev: Synthesized, prod: Synthesized) -> None:
    assert len({entry.check_id for entry in ACCEPTED}) == len(ACCEPTED)
    skips = _skips(dev) + _skips(prod)
    by_id = {entry.check_id: entry for entry in ACCEPTED}
    for _, _, resource_type, check_id in skips:
        assert resource_type in by_id[check_id].resource_types
    used = Counter(check_id for *_, check_id in skips)
    assert set(used) == set(by_id), f"stale acknowledgements: {sorted(set(by_id) - set(used))}"


def test_scoped_acknowledgements_skip_only_their_resources(dev: Synthesized) -> None:
    skipped = {(stack, logical_id) for stack, logical_id, _, check_id in _skips(dev) if check_id == "CKV_AWS_18"}
    assert skipped and all("AccessLogs" in logical_id for _, logical_id in skipped)
    data_lake = [lid for lid in dev.data.to_json()["Resources"] if lid.startswith("DataLake") and "AccessLogs" not in lid
                 and dev.data.to_json()["Resources"][lid]["Type"] == "AWS::S3::Bucket"]
    assert data_lake and all(("Data", lid) not in skipped for lid in data_lake)
