"""cdk-nag acknowledgements: one call per finding, kept next to the resource it explains."""

from __future__ import annotations

from typing import Any

import aws_cdk as cdk
from constructs import IConstruct


def acknowledge(construct: IConstruct, rule_id: str, reason: str) -> None:
    """Acknowledge one AwsSolutions finding on `construct` (and its children) with a reason.

    `rule_id` is the bare rule (`S1`) or a granular finding (`IAM5[Resource::...]`); cdk-nag 3
    matches granular findings exactly, so each one needs its own acknowledgement.
    """
    cdk.Validations.of(construct).acknowledge(
        cdk.Acknowledgment(id=f"AwsSolutions::AwsSolutions-{rule_id}", reason=reason)
    )


def finding_text(scope: IConstruct, value: str) -> str:
    """Spell a (possibly tokenized) string the way cdk-nag writes it in a finding id:
    `Fn::Join` parts are concatenated and `{"Ref": "AWS::AccountId"}` becomes `<AWS::AccountId>`.
    """
    return _render(cdk.Stack.of(scope).resolve(value))


def _render(resolved: Any) -> str:
    if isinstance(resolved, str):
        return resolved
    if isinstance(resolved, dict) and set(resolved) == {"Ref"}:
        return f"<{resolved['Ref']}>"
    if isinstance(resolved, dict) and set(resolved) == {"Fn::Join"}:
        delimiter, parts = resolved["Fn::Join"]
        return delimiter.join(_render(part) for part in parts)
    raise ValueError(f"cannot spell {resolved!r} as a cdk-nag finding; use literal values")
