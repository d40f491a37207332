"""Full profile: `KafkaArchiverFeed`, the stand-in for the MSK event source mapping (batches, the batching
window, commit after success, identical retries with backoff, rewind on stop).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError
from aiokafka.structs import ConsumerRecord

from devstack.lambdas import Handler
from devstack.msk_events import (
    KAFKA_EVENT_SOURCE_ARN,
    TIMESTAMP_TYPES,
    InvokingHandler,
    msk_event,
    msk_record,
)

log = logging.getLogger("devstack.pipeline")


def create_archiver_consumer(
    bootstrap: str, topic: str, group: str, *, session_timeout_ms: int = 3000, heartbeat_interval_ms: int = 1000,
) -> AIOKafkaConsumer:
    """A consumer for KafkaArchiverFeed: manual commits, from the earliest offset for a new group.

    tansu holds a group's first JoinGroup for about the session timeout, hence the short default.
    """
    return AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=group,
        client_id=f"{group}-local",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        session_timeout_ms=session_timeout_ms,
        heartbeat_interval_ms=heartbeat_interval_ms,
        request_timeout_ms=10_000,
        fetch_max_wait_ms=100,
    )


def kafka_batch_event(batch: Mapping[TopicPartition, Sequence[ConsumerRecord]], *, bootstrap: str) -> dict[str, Any]:
    records = [
        msk_record(
            topic=record.topic, partition=record.partition, offset=record.offset, timestamp_ms=record.timestamp,
            key=record.key, value=record.value, headers=record.headers,
            timestamp_type=TIMESTAMP_TYPES.get(record.timestamp_type, "CREATE_TIME"),
        )
        for partition in sorted(batch) for record in batch[partition]
    ]
    return msk_event(records, event_source_arn=KAFKA_EVENT_SOURCE_ARN, bootstrap_servers=bootstrap)


@dataclass(frozen=True, slots=True)
class FeedSettings:
    """Batching as the event source mapping does it (BatchSize, MaximumBatchingWindowInSeconds), then the
    feed's own poll timeout and its backoff while the broker is unreachable."""

    max_records: int = 1000
    batching_window_seconds: float = 0.5
    poll_timeout_ms: int = 200
    initial_backoff_seconds: float = 0.5
    max_backoff_seconds: float = 10.0


class KafkaArchiverFeed(InvokingHandler):
    """Polls batches, invokes the handler, commits after success; `run()` until `stop()`.

    The feed owns the consumer: `run()` starts it (retrying while the broker is unreachable) and stops it.
    """

    def __init__(
        self,
        consumer: AIOKafkaConsumer,
        handler: Handler,
        *,
        bootstrap: str,
        settings: FeedSettings = FeedSettings(),
        function_name: str = "archiver-local",
    ) -> None:
        super().__init__(handler, function_name)
        self.consumer = consumer
        self.bootstrap = bootstrap
        self.settings = settings
        self.archived_total = 0
        self.failures_total = 0
        self.committed_batches = 0
        self._stop_requested = asyncio.Event()
        self._finished = asyncio.Event()

    async def run(self) -> None:
        try:
            if not await self._start_consumer():
                return
            try:
                while not self._stop_requested.is_set():
                    batch = await self._poll_batch()
                    if batch:
                        await self._archive(batch)
            finally:
                await self._stop_consumer()
        finally:
            self._finished.set()

    async def stop(self) -> None:
        """Finish the batch in flight (or abandon its retries), commit what succeeded, and return."""
        self._stop_requested.set()
        await self._finished.wait()

    async def _start_consumer(self) -> bool:
        backoff = self.settings.initial_backoff_seconds
        while not self._stop_requested.is_set():
            try:
                await self.consumer.start()
                return True
            except KafkaError:
                log.exception("archiver feed: cannot reach the broker; retrying in %.1f s", backoff)
                await self._sleep(backoff)
                backoff = min(backoff * 2, self.settings.max_backoff_seconds)
        return False

    async def _stop_consumer(self) -> None:
        try:
            await self.consumer.stop()
        except asyncio.CancelledError:
            # aiokafka 0.14 lets the cancellation of its own fetch task escape stop() when the broker is
            # already gone (Ctrl-C stops the whole local stack at once); only a cancellation of ours counts.
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise
            log.warning("archiver feed: the consumer stopped without the broker")
        except KafkaError:
            log.warning("archiver feed: the consumer stopped without the broker", exc_info=True)

    async def _poll_batch(self) -> dict[TopicPartition, list[ConsumerRecord]]:
        """Records polled within `poll_timeout_ms`, then more until the batching window closes or the
        batch holds `max_records`; {} when nothing arrived."""
        batch: dict[TopicPartition, list[ConsumerRecord]] = {}
        polled_records = 0
        window_closes: float | None = None
        while polled_records < self.settings.max_records and not self._stop_requested.is_set():
            if window_closes is None:
                timeout_ms = self.settings.poll_timeout_ms
            else:
                timeout_ms = int((window_closes - time.monotonic()) * 1000)
                if timeout_ms <= 0:
                    break
            polled = await self.consumer.getmany(timeout_ms=timeout_ms, max_records=self.settings.max_records - polled_records)
            for partition, records in polled.items():
                batch.setdefault(partition, []).extend(records)
                polled_records += len(records)
            if not polled_records:
                break
            if window_closes is None:
                window_closes = time.monotonic() + self.settings.batching_window_seconds
        return {partition: records for partition, records in batch.items() if records}

    async def _archive(self, batch: dict[TopicPartition, list[ConsumerRecord]]) -> None:
        event = kafka_batch_event(batch, bootstrap=self.bootstrap)
        records = sum(len(partition_records) for partition_records in batch.values())
        if not await self._invoke_until_success(event, records, batch):
            self._rewind(batch)
            return
        self.archived_total += records
        await self._commit(batch)

    async def _invoke_until_success(
        self, event: dict[str, Any], records: int, batch: Mapping[TopicPartition, Sequence[ConsumerRecord]]
    ) -> bool:
        backoff = self.settings.initial_backoff_seconds
        while True:
            try:
                await self.invoke(event, records)
                return True
            except Exception:
                self.failures_total += 1
                log.exception("archiver failed on %s; retrying the same batch in %.1f s", _describe(batch), backoff)
            if await self._sleep(backoff):
                return False
            backoff = min(backoff * 2, self.settings.max_backoff_seconds)

    async def _commit(self, batch: Mapping[TopicPartition, Sequence[ConsumerRecord]]) -> None:
        offsets = {partition: records[-1].offset + 1 for partition, records in batch.items()}
        try:
            await self.consumer.commit(offsets)
            self.committed_batches += 1
        except (CommitFailedError, IllegalStateError):
            # The group rebalanced while the handler ran: whoever owns these partitions now reads the
            # batch again (archived twice, under other object names if cut differently; readers
            # deduplicate on the reading id).
            log.warning("archived %s but could not commit its offsets", _describe(batch), exc_info=True)

    def _rewind(self, batch: Mapping[TopicPartition, Sequence[ConsumerRecord]]) -> None:
        assigned = self.consumer.assignment()
        for partition, records in batch.items():
            if partition in assigned:
                self.consumer.seek(partition, records[0].offset)

    async def _sleep(self, seconds: float) -> bool:
        """Sleep, waking at once on stop(); True when stopping."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop_requested.wait(), timeout=seconds)
        return self._stop_requested.is_set()


def _describe(batch: Mapping[TopicPartition, Sequence[ConsumerRecord]]) -> str:
    return ", ".join(
        f"{partition.topic}-{partition.partition}@{records[0].offset}..{records[-1].offset}"
        for partition, records in sorted(batch.items())
    )
