"""Embedded profile: the outbox relay with an `ArchiverPublisher`, each relay batch handed to the archiver
handler as one MSK event (see devstack.pipeline for why the offsets are reading ids).
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncEngine

from app.outbox.relay import OutboxMessage, OutboxRelay
from devstack.lambdas import Handler
from devstack.msk_events import OUTBOX_EVENT_SOURCE_ARN, InvokingHandler, msk_event, msk_record


class ArchiverPublisher(InvokingHandler):
    """An outbox relay publisher that hands each batch to the archiver handler as one MSK event."""

    def __init__(
        self, handler: Handler, *, topic: str = "sensor-readings", partition: int = 0,
        function_name: str = "archiver-local",
    ) -> None:
        super().__init__(handler, function_name)
        self.topic = topic
        self.partition = partition

    async def start(self) -> None:
        """Nothing to connect to."""

    async def stop(self) -> None:
        """Nothing to disconnect from."""

    async def publish(self, messages: Sequence[OutboxMessage]) -> None:
        published_ms = int(time.time() * 1000)
        records = [
            msk_record(topic=self.topic, partition=self.partition, offset=message.reading_id,
                       timestamp_ms=published_ms, key=message.key, value=message.value)
            for message in messages
        ]
        event = msk_event(records, event_source_arn=OUTBOX_EVENT_SOURCE_ARN, bootstrap_servers="outbox")
        await self.invoke(event, len(records))


def outbox_drainer(engine: AsyncEngine, handler: Handler, *, topic: str = "sensor-readings", batch_size: int = 500,
                   idle_seconds: float = 0.5) -> OutboxRelay:
    """The relay of the embedded profile: outbox rows → archiver handler, deleted once it returned."""
    return OutboxRelay(
        engine, ArchiverPublisher(handler, topic=topic), batch_size=batch_size, idle_seconds=idle_seconds,
        max_backoff_seconds=10.0,
    )
