"""Kafka client construction: where the brokers are and how to authenticate.

Two modes, chosen by the settings:
- `kafka_bootstrap` set: plain TCP to those brokers (local development, tansu).
- only `msk_cluster_arn` set: Amazon MSK with IAM. The brokers come from the MSK GetBootstrapBrokers
  API; the connection is SASL_SSL with OAUTHBEARER tokens signed by aws-msk-iam-sasl-signer.

`create_producer` returns a producer that is not started yet.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import boto3
from aiokafka import AIOKafkaProducer
from aiokafka.abc import AbstractTokenProvider
from aiokafka.helpers import create_ssl_context
from aws_msk_iam_sasl_signer import MSKAuthTokenProvider

from app.settings import Settings

# Renew a signed token this long before it expires (they live 15 minutes).
TOKEN_RENEWAL_MARGIN_MS = 60_000


class MskIamTokenProvider(AbstractTokenProvider):
    """OAUTHBEARER tokens for MSK IAM auth, signed with the task's default AWS credentials.

    One token is reused by every connection until shortly before it expires; signing runs in a
    thread because botocore may fetch credentials over HTTP (ECS task role endpoint).
    """

    def __init__(self, region: str) -> None:
        self.region = region
        self._token: str | None = None
        self._expires_at_ms = 0
        self._renewal = asyncio.Lock()

    async def token(self) -> str:
        async with self._renewal:
            if self._token is None or time.time() * 1000 >= self._expires_at_ms - TOKEN_RENEWAL_MARGIN_MS:
                self._token, self._expires_at_ms = await asyncio.to_thread(
                    MSKAuthTokenProvider.generate_auth_token, self.region
                )
            return self._token


def msk_iam_bootstrap_brokers(kafka_client: Any, cluster_arn: str) -> str:
    """The cluster's IAM listener addresses (comma separated), from a boto3 `kafka` client."""
    response = kafka_client.get_bootstrap_brokers(ClusterArn=cluster_arn)
    brokers = response.get("BootstrapBrokerStringSaslIam")
    if not brokers:
        raise RuntimeError(f"MSK cluster {cluster_arn} has no IAM bootstrap brokers (is IAM auth enabled?)")
    return brokers


async def connection_options(settings: Settings, *, kafka_client: Any | None = None) -> dict[str, Any]:
    """Keyword arguments locating and authenticating to the brokers, for any aiokafka client.

    `kafka_client` (a boto3 `kafka` client) replaces the default one, e.g. a stubbed client in tests.
    """
    if settings.kafka_bootstrap:
        return {"bootstrap_servers": settings.kafka_bootstrap, "security_protocol": "PLAINTEXT"}
    if not settings.msk_cluster_arn:
        raise ValueError("Kafka is not configured: set SENSOR_KAFKA_BOOTSTRAP or MSK_CLUSTER_ARN")
    client = kafka_client or boto3.client("kafka", region_name=settings.aws_region)
    brokers = await asyncio.to_thread(msk_iam_bootstrap_brokers, client, settings.msk_cluster_arn)
    return {
        "bootstrap_servers": brokers,
        "security_protocol": "SASL_SSL",
        "ssl_context": create_ssl_context(),
        "sasl_mechanism": "OAUTHBEARER",
        "sasl_oauth_token_provider": MskIamTokenProvider(settings.aws_region),
    }


async def create_producer(
    settings: Settings,
    *,
    idempotent: bool | None = None,
    request_timeout_ms: int = 10_000,
    kafka_client: Any | None = None,
) -> AIOKafkaProducer:
    """A producer for the outbox relay (not started): every send waits for all in-sync replicas.

    `idempotent=None` enables the idempotent producer on MSK only. tansu 0.6.0 (the local broker)
    answers aiokafka's InitProducerId v0 request with UNKNOWN_SERVER_ERROR, so `start()` would fail
    there. Without idempotence ordering per partition still holds (aiokafka keeps one in-flight
    batch per partition); a retried batch may be written twice, which consumers absorb anyway by
    deduplicating on the reading id.

    `request_timeout_ms` bounds how long an unacknowledged batch holds the relay (and its stop).
    """
    options = await connection_options(settings, kafka_client=kafka_client)
    if idempotent is None:
        idempotent = not settings.kafka_bootstrap
    return AIOKafkaProducer(
        **options,
        client_id="sensor-outbox-relay",
        acks="all",
        enable_idempotence=idempotent,
        linger_ms=5,
        request_timeout_ms=request_timeout_ms,
    )
