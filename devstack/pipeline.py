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
import logging
import os
import signal
import sys
from collections.abc import Awaitable, Callable

from app.settings import Settings
from app.storage.database import create_engine
from devstack.kafka_feed import FeedSettings, KafkaArchiverFeed, create_archiver_consumer
from devstack.lambdas import load_handler
from devstack.msk_events import ARCHIVER_FUNCTION
from devstack.outbox_feed import outbox_drainer

log = logging.getLogger("devstack.pipeline")


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
                             settings=FeedSettings(max_records=args.max_records,
                                                   batching_window_seconds=args.batching_window_seconds))
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
