"""Offline change plan: each synthesized stack against its committed snapshot, the way a reviewer
reads a CloudFormation change set (added / modified / replaced / removed), plus the replacement
guard for stateful resources.

A resource is *replaced* when its type changes or a property listed in the CloudFormation resource
schema's `createOnlyProperties` changes (the schemas cfn-lint ships, for the stack's region). A
stateful resource whose logical ID disappears is replaced too (CloudFormation creates the new ID
and deletes or orphans the old one). Such a change passes the guard only when the new resource
carries `acknowledge_replacement` metadata (cdk/components/replacement.py).

    python -m cdk.plan --env dev      (make plan ENV=dev)
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import aws_cdk as cdk

from cdk.app import build_app
from cdk.components.replacement import REPLACEMENT_METADATA_KEY

REPO_ROOT = Path(__file__).resolve().parent.parent
SNAPSHOT_DIRECTORY = REPO_ROOT / "tests" / "infra" / "__snapshots__" / "test_snapshots"

# Resources whose replacement loses or orphans data, keys or identities.
STATEFUL_TYPES = frozenset(
    {
        "AWS::RDS::DBInstance",
        "AWS::RDS::DBCluster",
        "AWS::MSK::Cluster",
        "AWS::S3::Bucket",
        "AWS::SecretsManager::Secret",
        "AWS::KMS::Key",
        "AWS::ElastiCache::ServerlessCache",
        "AWS::ElastiCache::ReplicationGroup",
        "AWS::ElastiCache::CacheCluster",
        "AWS::DynamoDB::Table",
    }
)

_ASSET_HASH = re.compile(r"[0-9a-f]{64}")
# A Lambda version's logical id ends with a hash of the function's code and configuration, so any
# change to app/ or lambda/ would rename it; the alias tests pin what the version points at.
_LAMBDA_VERSION_HASH = re.compile(r"(CurrentVersion[0-9A-F]{8})[0-9a-f]{32}")


def scrubbed(template: dict[str, Any]) -> dict[str, Any]:
    """A template without CDK metadata resources and with asset and code hashes masked (snapshot form)."""
    kept = {k: v for k, v in template.get("Resources", {}).items() if v["Type"] != "AWS::CDK::Metadata"}
    text = json.dumps({**template, "Resources": kept}, sort_keys=True)
    text = _LAMBDA_VERSION_HASH.sub(r"\1<code-hash>", text)
    return json.loads(_ASSET_HASH.sub("<asset-hash>", text))


def snapshot_path(env_name: str, stack: str) -> Path:
    """Where tests/infra/test_snapshots.py records `Sensor-<env>-<stack>`."""
    if stack == "LoadTest":
        return SNAPSHOT_DIRECTORY / "test_load_test_stack_matches_snapshot.json"
    return SNAPSHOT_DIRECTORY / f"test_template_matches_snapshot[{env_name}-{stack}].json"


@cache
def create_only_properties(resource_type: str, region: str) -> tuple[tuple[str, ...], ...]:
    """The schema's createOnlyProperties as property paths (`('EncryptionInfo', 'EncryptionAtRest')`)."""
    schemas = resources.files("cfnlint.data.schemas")
    provider = json.loads((schemas / "providers" / f"{region}.json").read_text())
    if resource_type not in provider:
        return ()
    schema = json.loads((schemas / "resources" / f"{provider[resource_type]}.json").read_text())
    paths = []
    for pointer in schema.get("createOnlyProperties", []):
        parts = pointer.split("/")[2:]  # "/properties/A/B" -> ["A", "B"]
        # "*" walks into array items: compare the whole array instead.
        paths.append(tuple(parts[: parts.index("*")] if "*" in parts else parts))
    return tuple(paths)


def _value_at(properties: dict[str, Any], path: tuple[str, ...]) -> Any:
    value: Any = properties
    for part in path:
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


@dataclass(frozen=True)
class Change:
    logical_id: str
    resource_type: str
    detail: str = ""
    acknowledged: str | None = None  # the acknowledgement's reason, for replacements

    @property
    def stateful(self) -> bool:
        return self.resource_type in STATEFUL_TYPES


@dataclass
class StackPlan:
    stack: str
    added: list[Change] = field(default_factory=list)
    modified: list[Change] = field(default_factory=list)
    replaced: list[Change] = field(default_factory=list)
    removed: list[Change] = field(default_factory=list)

    def unacknowledged_stateful_replacements(self) -> list[Change]:
        """Stateful resources replaced (or whose logical ID is gone) without an acknowledgement."""
        return [c for c in self.replaced + self.removed if c.stateful and c.acknowledged is None]


def _acknowledgement(resource: dict[str, Any], replaces: str | None = None) -> str | None:
    entry = resource.get("Metadata", {}).get(REPLACEMENT_METADATA_KEY)
    if not entry:
        return None
    if replaces is not None and entry.get("replaces") != replaces:
        return None
    return entry["reason"]


def compare(stack: str, before: dict[str, Any], after: dict[str, Any], region: str) -> StackPlan:
    """What deploying `after` over `before` does to each resource."""
    plan = StackPlan(stack)
    old, new = before.get("Resources", {}), after.get("Resources", {})
    for logical_id in sorted(new.keys() - old.keys()):
        plan.added.append(Change(logical_id, new[logical_id]["Type"]))
    for logical_id in sorted(old.keys() - new.keys()):
        resource_type = old[logical_id]["Type"]
        # A new logical ID of the same type that says it replaces this one.
        successor = next(
            (
                (candidate, reason)
                for candidate in new.keys() - old.keys()
                if new[candidate]["Type"] == resource_type
                and (reason := _acknowledgement(new[candidate], replaces=logical_id))
            ),
            None,
        )
        detail = f"logical ID gone (now {successor[0]})" if successor else "logical ID gone"
        plan.removed.append(Change(logical_id, resource_type, detail, successor[1] if successor else None))
    for logical_id in sorted(old.keys() & new.keys()):
        was, now = old[logical_id], new[logical_id]
        if was == now:
            continue
        if was["Type"] != now["Type"]:
            plan.replaced.append(
                Change(logical_id, now["Type"], f"type {was['Type']} -> {now['Type']}", _acknowledgement(now))
            )
            continue
        changed = [
            "/".join(path)
            for path in create_only_properties(now["Type"], region)
            if _value_at(was.get("Properties", {}), path) != _value_at(now.get("Properties", {}), path)
        ]
        if changed:
            detail = "create-only " + ", ".join(changed)
            plan.replaced.append(Change(logical_id, now["Type"], detail, _acknowledgement(now)))
        else:
            keys = sorted(
                key for key in was.get("Properties", {}).keys() | now.get("Properties", {}).keys()
                if was.get("Properties", {}).get(key) != now.get("Properties", {}).get(key)
            )
            other = [k for k in ("Metadata", "DependsOn", "DeletionPolicy", "UpdateReplacePolicy") if was.get(k) != now.get(k)]
            plan.modified.append(Change(logical_id, now["Type"], ", ".join(keys + other)))
    return plan


def render(plan: StackPlan) -> str:
    lines = [
        f"{plan.stack}: {len(plan.added)} added, {len(plan.modified)} modified, "
        f"{len(plan.replaced)} replaced, {len(plan.removed)} removed"
    ]
    for verb, changes in (("+ add", plan.added), ("~ modify", plan.modified), ("! REPLACE", plan.replaced),
                          ("- remove", plan.removed)):
        for change in changes:
            flag = " [stateful]" if change.stateful else ""
            note = f" (acknowledged: {change.acknowledged})" if change.acknowledged else ""
            detail = f"  {change.detail}" if change.detail else ""
            lines.append(f"  {verb:<9} {change.logical_id} {change.resource_type}{flag}{detail}{note}")
    return "\n".join(lines)


def plan_environment(env_name: str) -> list[StackPlan]:
    """Synthesize `env_name` offline (committed context, no bundling) and compare with the snapshots."""
    context = json.loads((REPO_ROOT / "cdk.json").read_text())["context"]
    context.update(json.loads((REPO_ROOT / "cdk.context.json").read_text()))
    context.update({"env": env_name, "load_test": True, "aws:cdk:bundling-stacks": []})
    with tempfile.TemporaryDirectory() as outdir:
        app = cdk.App(outdir=outdir, context=context)
        platform = build_app(app)
        assembly = app.synth()
        plans = []
        for stack in platform.stacks:
            domain = stack.stack_name.rsplit("-", 1)[1]
            template = scrubbed(assembly.get_stack_artifact(stack.artifact_id).template)
            path = snapshot_path(env_name, domain)
            before = json.loads(path.read_text()) if path.exists() else {}
            plans.append(compare(stack.stack_name, before, template, platform.config.region))
    return plans


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cdk.plan", description=__doc__.split("\n\n")[0])
    parser.add_argument("--env", required=True, help="environment name in cdk.json (dev, prod, ...)")
    args = parser.parse_args(argv)
    plans = plan_environment(args.env)
    for plan in plans:
        print(render(plan))
    blocked = [change for plan in plans for change in plan.unacknowledged_stateful_replacements()]
    if blocked:
        print(f"\n{len(blocked)} stateful resource(s) would be replaced without an acknowledgement "
              "(cdk/components/replacement.py):", file=sys.stderr)
        for change in blocked:
            print(f"  {change.logical_id} {change.resource_type}: {change.detail}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
