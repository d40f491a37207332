"""Replacement guard: no deploy of the current tree replaces a stateful resource of the committed
snapshot unless the change says so (cdk/components/replacement.py); cdk/plan.py does the reading."""

from __future__ import annotations

import copy
import json

import pytest

from cdk.components.replacement import REPLACEMENT_METADATA_KEY
from cdk.plan import compare, create_only_properties, render, scrubbed, snapshot_path
from tests.infra.conftest import Synthesized

REGION = "eu-west-1"


def _plans(env: Synthesized):
    for stack, template in env.templates.items():
        before = json.loads(snapshot_path(env.config.name, stack).read_text())
        yield compare(f"Sensor-{env.config.name}-{stack}", before, scrubbed(template.to_json()), env.config.region)


def test_no_stateful_resource_is_replaced_against_the_snapshot(each_env: Synthesized) -> None:
    for plan in _plans(each_env):
        assert plan.unacknowledged_stateful_replacements() == [], render(plan)


def _data_snapshot() -> dict:
    return json.loads(snapshot_path("dev", "Data").read_text())


def _logical_id(template: dict, resource_type: str, contains: str) -> str:
    (logical_id,) = [k for k, v in template["Resources"].items() if v["Type"] == resource_type and contains in k]
    return logical_id


def test_a_changed_db_instance_identifier_is_a_blocked_replacement() -> None:
    before = _data_snapshot()
    after = copy.deepcopy(before)
    database = _logical_id(after, "AWS::RDS::DBInstance", "DatabaseInstance")
    after["Resources"][database]["Properties"]["DBInstanceIdentifier"] = "sensor-dev-renamed"
    plan = compare("Sensor-dev-Data", before, after, REGION)
    (blocked,) = plan.unacknowledged_stateful_replacements()
    assert (blocked.logical_id, blocked.detail) == (database, "create-only DBInstanceIdentifier")
    assert "! REPLACE" in render(plan)

    after["Resources"][database]["Metadata"] = {
        REPLACEMENT_METADATA_KEY: {"reason": "rename reviewed: restored from the final snapshot"}
    }
    assert compare("Sensor-dev-Data", before, after, REGION).unacknowledged_stateful_replacements() == []


def test_a_changed_bucket_logical_id_is_a_blocked_replacement() -> None:
    before = _data_snapshot()
    after = copy.deepcopy(before)
    bucket = _logical_id(after, "AWS::S3::Bucket", "DataLakeC5E9")
    after["Resources"]["DataLakeRenamedBucket"] = after["Resources"].pop(bucket)
    plan = compare("Sensor-dev-Data", before, after, REGION)
    (blocked,) = plan.unacknowledged_stateful_replacements()
    assert (blocked.logical_id, blocked.resource_type) == (bucket, "AWS::S3::Bucket")
    assert [change.logical_id for change in plan.added] == ["DataLakeRenamedBucket"]

    after["Resources"]["DataLakeRenamedBucket"]["Metadata"] = {
        REPLACEMENT_METADATA_KEY: {"reason": "moved on purpose", "replaces": bucket}
    }
    assert compare("Sensor-dev-Data", before, after, REGION).unacknowledged_stateful_replacements() == []


def test_an_in_place_change_is_modified_not_replaced() -> None:
    before = _data_snapshot()
    after = copy.deepcopy(before)
    database = _logical_id(after, "AWS::RDS::DBInstance", "DatabaseInstance")
    after["Resources"][database]["Properties"]["AllocatedStorage"] = "200"
    plan = compare("Sensor-dev-Data", before, after, REGION)
    assert plan.replaced == [] and [c.logical_id for c in plan.modified] == [database]


@pytest.mark.parametrize(
    ("resource_type", "property_path"),
    [
        ("AWS::RDS::DBInstance", ("DBInstanceIdentifier",)),
        ("AWS::S3::Bucket", ("BucketName",)),
        ("AWS::MSK::Cluster", ("ClusterName",)),
        ("AWS::SecretsManager::Secret", ("Name",)),
    ],
)
def test_create_only_properties_come_from_the_cfn_lint_schemas(resource_type: str, property_path: tuple) -> None:
    assert property_path in create_only_properties(resource_type, REGION)
