"""The service's token secrets: the JWT signing key and the list of API clients allowed to get tokens."""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import SecretValue
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from cdk.components.nag import acknowledge


@dataclass(frozen=True)
class TokenSecrets:
    jwt_signing_key: secretsmanager.Secret
    api_clients: secretsmanager.Secret


def token_secrets(scope: Construct, *, name_prefix: str) -> TokenSecrets:
    """`JwtSigningKey` (generated, 64 characters) and `ApiClients` (starts empty: nobody) in `scope`."""
    jwt_signing_key = secretsmanager.Secret(
        scope,
        "JwtSigningKey",
        description=f"{name_prefix}: HMAC key that signs API access tokens",
        generate_secret_string=secretsmanager.SecretStringGenerator(
            password_length=64, exclude_punctuation=True
        ),
    )
    # Who may obtain tokens: a JSON list of {client_id, secret_sha256, scopes, rate_per_second,
    # burst}. Starts empty (nobody); the platform team fills it (README: API clients).
    api_clients = secretsmanager.Secret(
        scope,
        "ApiClients",
        description=f"{name_prefix}: API clients allowed to obtain tokens (JSON list, secrets hashed)",
        secret_string_value=SecretValue.unsafe_plain_text("[]"),
    )
    acknowledge(
        api_clients,
        "SMG4",
        "Holds SHA-256 digests of client secrets, edited by the platform team; clients rotate their "
        "secrets by the documented procedure (add the new digest, then remove the old one).",
    )
    acknowledge(
        jwt_signing_key,
        "SMG4",
        "Rotating the token-signing key invalidates every issued token at once; it is rotated "
        "by the documented key-rollover procedure (new value, redeploy), not on a timer.",
    )
    return TokenSecrets(jwt_signing_key=jwt_signing_key, api_clients=api_clients)
