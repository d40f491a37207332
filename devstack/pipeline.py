"""The local event sources of the archiver Lambda: the same handler code, fed MSK-shaped events.

    python -m devstack.pipeline outbox --database-url URL --lake-dir DIR
    python -m devstack.pipeline kafka --bootstrap HOST:PORT --topic sensor-readings --group archiver \\
        --bucket sensor-local-datalake --s3-endpoint URL

outbox (embedded profile, no broker): the outbox relay with an `ArchiverPublisher`: each relay batch
becomes one MSK event on a synthetic topic-partition, handed to the handler; the rows are deleted only
after the handler returned. The records' offsets are the reading ids, not the outbox ids: SQLite hands
out the rowids of deleted outbox rows again once the table is empty, and a reused offset would name
a new object like an old one and overwrite it. Run one drainer per database (SQLite has no row locks
to keep two apart).

kafka (full profile): `KafkaArchiverFeed`, standing in for the MSK event source mapping: a consumer in
its own group polls batches (up to `max_records`, gathered for at most `batching_window_seconds` like
the mapping's MaximumBatchingWindowInSeconds), turns each into the MSK event, invokes the handler and
commits the offsets only after the handler succeeded. A failed batch is retried as the identical event (same
records, same object keys) with exponential backoff, so a retry overwrites instead of duplicating;
a batch abandoned on stop is rewound (seek to its first offsets) and stays uncommitted.

Both run until SIGINT/SIGTERM and then finish the batch in flight.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import logging
import os
import signal
import sys
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError
from aiokafka.structs import ConsumerRecord
from sqlalchemy.ext.asyncio import AsyncEngine

from app.outbox.relay import OutboxMessage, OutboxRelay
from app.settings import Settings
from app.storage.database import create_engine
from devstack.lambdas import Handler, LocalLambdaContext, load_handler

log = logging.getLogger("devstack.pipeline")

ARCHIVER_FUNCTION = "archiver"
OUTBOX_EVENT_SOURCE_ARN = "arn:aws:kafka:local:000000000000:cluster/devstack-outbox/local"
KAFKA_EVENT_SOURCE_ARN = "arn:aws:kafka:local:000000000000:cluster/devstack-tansu/local"
# Kafka's timestampType numbers (aiokafka) as the MSK event spells them.
TIMESTAMP_TYPES = {0: "CREATE_TIME", 1: "LOG_APPEND_TIME"}
# Enough history for throughput numbers without growing forever in a long `make up`.
KEPT_INVOCATIONS = 10_000


# --- the MSK event shape ---------------------------------------------------------------------------


def msk_record(
    *,
    topic: str,
    partition: int,
    offset: int,
    timestamp_ms: int,
    key: bytes | None,
    value: bytes | None,
    headers: Sequence[tuple[str, bytes | None]] = (),
    timestamp_type: str = "CREATE_TIME",
) -> dict[str, Any]:
    """One record as the MSK event source mapping delivers it (key and value base64, headers as byte lists)."""
    record: dict[str, Any] = {
        "topic": topic,
        "partition": partition,
        "offset": offset,
        "timestamp": timestamp_ms,
        "timestampType": timestamp_type,
    }
    if key is not None:
        record["key"] = base64.b64encode(key).decode()
    if value is not None:
        record["value"] = base64.b64encode(value).decode()
    record["headers"] = [{name: list(header_value or b"")} for name, header_value in headers]
    return record


def msk_event(records: Iterable[Mapping[str, Any]], *, event_source_arn: str, bootstrap_servers: str) -> dict[str, Any]:
    """The event for a batch: records grouped under "<topic>-<partition>", in the order given."""
    grouped: dict[str, list[Mapping[str, Any]]] = {}
    for record in records:
        grouped.setdefault(f"{record['topic']}-{record['partition']}", []).append(record)
    return {
        "eventSource": "aws:kafka",
        "eventSourceArn": event_source_arn,
        "bootstrapServers": bootstrap_servers,
        "records": grouped,
    }


@dataclass(frozen=True, slots=True)
class Invocation:
    """One successful handler call: how many records it took and how long."""

    records: int
    seconds: float
    finished_at: float  # time.monotonic()
    summary: Mapping[str, Any]

    @property
    def records_per_second(self) -> float:
        return self.records / self.seconds if self.seconds > 0 else float("inf")


class InvokingHandler:
    """Calls the handler in a worker thread (it does blocking I/O) with a fresh local Lambda context."""

    def __init__(self, handler: Handler, function_name: str) -> None:
        self.handler = handler
        self.function_name = function_name
        self.invocations: deque[Invocation] = deque(maxlen=KEPT_INVOCATIONS)

    async def invoke(self, event: dict[str, Any], records: int) -> Mapping[str, Any]:
        context = LocalLambdaContext(function_name=self.function_name)
        started = time.perf_counter()
        summary = await asyncio.to_thread(self.handler, event, context)
        finished = time.monotonic()
        self.invocations.append(Invocation(records, time.perf_counter() - started, finished, summary))
        return summary


# --- embedded profile: outbox → archiver -----------------------------------------------------------


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


# --- full profile: Kafka → archiver ----------------------------------------------------------------


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
        max_records: int = 1000,
        batching_window_seconds: float = 0.5,
        poll_timeout_ms: int = 200,
        initial_backoff_seconds: float = 0.5,
        max_backoff_seconds: float = 10.0,
        function_name: str = "archiver-local",
    ) -> None:
        super().__init__(handler, function_name)
        self.consumer = consumer
        self.bootstrap = bootstrap
        self.max_records = max_records
        self.batching_window_seconds = batching_window_seconds
        self.poll_timeout_ms = poll_timeout_ms
        self.initial_backoff_seconds = initial_backoff_seconds
        self.max_backoff_seconds = max_backoff_seconds
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
        backoff = self.initial_backoff_seconds
        while not self._stop_requested.is_set():
            try:
                await self.consumer.start()
                return True
            except KafkaError:
                log.exception("archiver feed: cannot reach the broker; retrying in %.1f s", backoff)
                await self._sleep(backoff)
                backoff = min(backoff * 2, self.max_backoff_seconds)
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
        while polled_records < self.max_records and not self._stop_requested.is_set():
            if window_closes is None:
                timeout_ms = self.poll_timeout_ms
            else:
                timeout_ms = int((window_closes - time.monotonic()) * 1000)
                if timeout_ms <= 0:
                    break
            polled = await self.consumer.getmany(timeout_ms=timeout_ms, max_records=self.max_records - polled_records)
            for partition, records in polled.items():
                batch.setdefault(partition, []).extend(records)
                polled_records += len(records)
            if not polled_records:
                break
            if window_closes is None:
                window_closes = time.monotonic() + self.batching_window_seconds
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
        backoff = self.initial_backoff_seconds
        while True:
            try:
                await self.invoke(event, records)
                return True
            except Exception:
                self.failures_total += 1
                log.exception("archiver failed on %s; retrying the same batch in %.1f s", _describe(batch), backoff)
            if await self._sleep(backoff):
                return False
            backoff = min(backoff * 2, self.max_backoff_seconds)

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


# --- command line ----------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")
    if args.source == "outbox":
        os.environ["LAKE_DIR"] = str(args.lake_dir)
        print(f"archiving the outbox of {args.database_url} into {args.lake_dir}/", flush=True)
        return asyncio.run(_run_outbox(args))
    os.environ["DATA_LAKE_BUCKET"] = args.bucket
    if args.s3_endpoint:
        os.environ["S3_ENDPOINT_URL"] = args.s3_endpoint
        # moto accepts any credentials; these only keep boto3 from looking for real ones.
        for variable in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
            os.environ.setdefault(variable, "local")
    os.environ.setdefault("AWS_DEFAULT_REGION", "eu-west-1")
    print(f"archiving topic {args.topic} (group {args.group}) into s3://{args.bucket}/", flush=True)
    return asyncio.run(_run_kafka(args))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m devstack.pipeline", description=__doc__.splitlines()[0])
    sources = parser.add_subparsers(dest="source", required=True)
    outbox = sources.add_parser("outbox", help="embedded profile: drain the outbox into the archiver")
    outbox.add_argument("--database-url", required=True, help="SQLAlchemy URL of the app's database")
    outbox.add_argument("--lake-dir", required=True, help="local directory standing in for the bucket")
    outbox.add_argument("--topic", default="sensor-readings", help="topic name written into the lake keys")
    outbox.add_argument("--batch-size", type=int, default=500)
    outbox.add_argument("--idle-seconds", type=float, default=0.5)
    kafka = sources.add_parser("kafka", help="full profile: consume the topic into the archiver")
    kafka.add_argument("--bootstrap", required=True, help="HOST:PORT of the broker")
    kafka.add_argument("--topic", default="sensor-readings")
    kafka.add_argument("--group", default="archiver")
    kafka.add_argument("--bucket", required=True)
    kafka.add_argument("--s3-endpoint", default=None, help="S3 endpoint URL (moto); default: AWS")
    kafka.add_argument("--max-records", type=int, default=1000, help="largest batch per invocation")
    kafka.add_argument("--batching-window-seconds", type=float, default=0.5,
                       help="how long to gather records into one batch once the first arrived")
    return parser


async def _run_outbox(args: argparse.Namespace) -> int:
    engine = create_engine(Settings(database_url=args.database_url))
    relay = outbox_drainer(engine, load_handler(ARCHIVER_FUNCTION), topic=args.topic,
                           batch_size=args.batch_size, idle_seconds=args.idle_seconds)
    try:
        await _run_until_signalled(relay.run(), relay.stop)
        # `make up` stops the app before the drainer: archive what it committed last.
        drained = 0
        while published := await relay.publish_batch():
            drained += published
        log.info("final drain archived %d readings", drained)
    finally:
        await engine.dispose()
    log.info("outbox drainer stopped after archiving %d readings", relay.published_total)
    return 0


async def _run_kafka(args: argparse.Namespace) -> int:
    consumer = create_archiver_consumer(args.bootstrap, args.topic, args.group)
    feed = KafkaArchiverFeed(consumer, load_handler(ARCHIVER_FUNCTION), bootstrap=args.bootstrap,
                             max_records=args.max_records, batching_window_seconds=args.batching_window_seconds)
    await _run_until_signalled(feed.run(), feed.stop)
    log.info("kafka archiver feed stopped after archiving %d records", feed.archived_total)
    return 0


async def _run_until_signalled(loop_body: Awaitable[None], stop: Callable[[], Awaitable[None]]) -> None:
    loop = asyncio.get_running_loop()
    stopping: list[asyncio.Task[None]] = []

    def request_stop() -> None:
        if not stopping:
            stopping.append(loop.create_task(stop()))

    for signal_number in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signal_number, request_stop)
    await loop_body
    await asyncio.gather(*stopping)


if __name__ == "__main__":
    sys.exit(main())
