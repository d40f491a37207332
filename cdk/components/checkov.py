"""checkov acknowledgements: one call per check, kept next to the resource it explains.

checkov reads `Metadata.checkov.skip` on a CloudFormation resource; tests/infra/test_checkov.py
lists every acknowledgement and fails on an unlisted, stale (the check passes anyway) or vague one.
"""

from __future__ import annotations

import aws_cdk as cdk
from constructs import IConstruct

METADATA_KEY = "checkov"


def acknowledge_checkov(construct: IConstruct, check_id: str, reason: str) -> None:
    """Acknowledge checkov `check_id` (e.g. `CKV_AWS_116`) on `construct`'s CloudFormation resource."""
    resource = construct if isinstance(construct, cdk.CfnResource) else construct.node.default_child
    if not isinstance(resource, cdk.CfnResource):
        raise TypeError(f"{construct.node.path}: no CloudFormation resource to acknowledge {check_id} on")
    entry = resource.get_metadata(METADATA_KEY) or {"skip": []}
    entry["skip"].append({"id": check_id, "comment": reason})
    resource.add_metadata(METADATA_KEY, entry)


def acknowledged_checks(resource: cdk.CfnResource) -> dict[str, str]:
    """check id -> reason for every checkov acknowledgement on `resource`."""
    entry = resource.get_metadata(METADATA_KEY) or {"skip": []}
    return {skip["id"]: skip["comment"] for skip in entry["skip"]}
