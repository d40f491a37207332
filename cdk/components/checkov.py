"""checkov (CloudFormation) findings the platform accepts, each with its reason, written into the
templates as checkov's own skip metadata (`Metadata.checkov.skip`): `make checkov` then reports zero
failed checks, and every accepted finding is explained next to the resource it concerns.

Each entry names the resource types (and, where the finding concerns only some resources of a type,
the construct-path fragments) it applies to, so a new resource of another kind is still checked.
`tests/infra/test_checkov_acknowledgements.py` fails on an entry without a reason or one no resource uses.
"""

from __future__ import annotations

from dataclasses import dataclass

import jsii
from aws_cdk import CfnResource, IAspect
from constructs import IConstruct


@dataclass(frozen=True)
class Accepted:
    check_id: str
    resource_types: tuple[str, ...]
    reason: str
    # Only resources whose construct path contains one of these (None: every resource of the types).
    path_fragments: tuple[str, ...] | None = None


ACCEPTED = (
    Accepted("CKV_AWS_158", ("AWS::Logs::LogGroup",),
             "CloudWatch Logs encrypts every log group with service keys; no log line carries a credential "
             "(app redaction, WAF RedactedFields) and readings live in RDS/S3, so a customer key adds key-policy "
             "risk without protecting more."),
    Accepted("CKV_AWS_149", ("AWS::SecretsManager::Secret",),
             "Secrets Manager encrypts with the aws/secretsmanager key; a customer-managed key matters for "
             "cross-account sharing, which the platform never does."),
    Accepted("CKV_AWS_161", ("AWS::RDS::DBInstance",),
             "Clients authenticate with a Secrets Manager password rotated every 30 days over verify-full TLS; IAM "
             "database authentication throttles new connections, which pooled tasks and Lambdas would hit."),
    Accepted("CKV_AWS_18", ("AWS::S3::Bucket",),
             "This is the access-log bucket itself: logging it into itself would loop, and it holds logs only.",
             path_fragments=("AccessLogs",)),
    Accepted("CKV_AWS_27", ("AWS::SQS::Queue",),
             "Encrypted with SQS-managed server-side encryption (SqsManagedSseEnabled); checkov only recognises "
             "a KMS key."),
    Accepted("CKV_AWS_111", ("AWS::IAM::Role",),
             "The only write actions without a resource constraint are the VPC network-interface actions, which "
             "support no resource-level permissions (the cdk-nag IAM5 acknowledgements say the same).",
             path_fragments=("ExecutionRole",)),
    Accepted("CKV_AWS_116", ("AWS::Lambda::Function",),
             "The archiver's failed batches go to its event source's on-failure SQS destination; the read API, the "
             "hooks and CDK's custom resource are invoked synchronously, where a DLQ never receives anything."),
    Accepted("CKV_AWS_115", ("AWS::Lambda::Function",),
             "Concurrency is bounded where it matters: the archiver by the topic's partitions, the read API by the "
             "WAF rate limit; the hooks run once per deployment. Reserved concurrency would only cap recovery."),
    Accepted("CKV_AWS_173", ("AWS::Lambda::Function",),
             "Lambda encrypts environment variables with its service key; they hold names and ARNs only, secrets "
             "are fetched from Secrets Manager at cold start."),
    Accepted("CKV_AWS_117", ("AWS::Lambda::Function",),
             "The CodeDeploy pre-traffic hooks and CDK's default-security-group custom resource call AWS APIs only "
             "and reach nothing inside the VPC.",
             path_fragments=("Deployment/Hook/", "Custom::VpcRestrictDefaultSG")),
    Accepted("CKV_AWS_16", ("AWS::RDS::DBInstance",),
             "A read replica is encrypted through its encrypted primary (same KMS key); CloudFormation refuses "
             "StorageEncrypted on a replica (cdk-nag RDS2 acknowledged alike).",
             path_fragments=("ReadReplica",)),
    Accepted("CKV_AWS_157", ("AWS::RDS::DBInstance",),
             "A read replica needs no standby of its own: the primary is Multi-AZ and the replica can be rebuilt "
             "from it (cdk-nag RDS3 acknowledged alike).",
             path_fragments=("ReadReplica",)),
    Accepted("CKV_AWS_260", ("AWS::EC2::SecurityGroup",),
             "The internet-facing ALB's port 80 listener only redirects to HTTPS (tested); a device that starts "
             "with http:// gets the redirect, never content.",
             path_fragments=("SecurityGroups/LoadBalancer",)),
)


@jsii.implements(IAspect)
class CheckovAcknowledgements:
    """Adds the `checkov.skip` metadata of every `ACCEPTED` entry that applies to a resource."""

    def visit(self, node: IConstruct) -> None:
        if not isinstance(node, CfnResource):
            return
        path = node.node.path
        skips = [
            {"id": entry.check_id, "comment": entry.reason}
            for entry in ACCEPTED
            if node.cfn_resource_type in entry.resource_types
            and (entry.path_fragments is None or any(fragment in path for fragment in entry.path_fragments))
        ]
        if skips:
            node.add_metadata("checkov", {"skip": skips})
