"""A generated API-client credential in Secrets Manager: `{"client_id": ..., "client_secret": <48 chars>}`.

The service accepts such a client once the platform team adds its SHA-256 digest to the ApiClients
secret (README: API clients). Used by the deployment smoke test and the load-test users.
"""

from __future__ import annotations

from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from cdk.components.nag import acknowledge


def generated_client_secret(
    scope: Construct, construct_id: str, *, client_id: str, description: str, rotation_reason: str
) -> secretsmanager.Secret:
    """The secret, with cdk-nag's SMG4 (no rotation schedule) acknowledged for `rotation_reason`."""
    secret = secretsmanager.Secret(
        scope,
        construct_id,
        description=description,
        generate_secret_string=secretsmanager.SecretStringGenerator(
            secret_string_template=f'{{"client_id": "{client_id}"}}',
            generate_string_key="client_secret",
            password_length=48,
            exclude_punctuation=True,
        ),
    )
    acknowledge(secret, "SMG4", rotation_reason)
    return secret
