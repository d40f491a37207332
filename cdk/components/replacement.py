"""Acknowledging, on purpose, that a deploy replaces a stateful resource (see cdk/plan.py)."""

from __future__ import annotations

import aws_cdk as cdk
from constructs import IConstruct

# Read by cdk/plan.py in the template's resource metadata.
REPLACEMENT_METADATA_KEY = "ReplacementAcknowledged"


def acknowledge_replacement(construct: IConstruct, reason: str, *, replaces: str | None = None) -> None:
    """Let the replacement guard pass a replacement of `construct`'s resource.

    `replaces`: the old logical ID when the logical ID itself changes. Remove the acknowledgement
    once the change is deployed everywhere (the next snapshot no longer shows a replacement).
    """
    resource = construct if isinstance(construct, cdk.CfnResource) else construct.node.default_child
    if not isinstance(resource, cdk.CfnResource):
        raise TypeError(f"{construct.node.path}: no CloudFormation resource to acknowledge a replacement on")
    entry = {"reason": reason} | ({"replaces": replaces} if replaces else {})
    resource.add_metadata(REPLACEMENT_METADATA_KEY, entry)
