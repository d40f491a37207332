"""`make bench-replay`: dead-letter drain rate against live ingest, in one run.

    python -m loadtests.bench.replay [--readings 200000] [--letter-readings N] [--s3-delay-ms 30]
                                     [--ingest-duration 10]

1. Live ingest: `make bench-ingest`'s batch phase (one uvicorn worker, PostgreSQL, its clients, batches of 100)
   for `--ingest-duration` seconds -> readings/s.
2. Drain, local store: `--readings` readings in letters of `--letter-readings` (default: what one task's
   coalescing writer puts in a letter while the live ingest rate is dead-lettered, i.e. that rate x
   `dead_letter_window_seconds`), replayed into a fresh PostgreSQL by the service's own replayer, group
   committer and asyncpg writer (app.services.replay) -> readings/s from the first list to an empty store.
3. Drain, S3: the same on moto's S3 server behind a TCP proxy adding `--s3-delay-ms` to every call
   (loadtests.drills.delay_proxy), as S3's own latency would.
Verdict: each drain rate >= the live ingest rate (a drain slower than ingest would never catch up
after an outage under full load). Printed and added to docs/benchmarks.md; exit 1 if a rate falls short.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import boto3

from app.observability.metrics import Metrics
from app.services.replay import DeadLetterReplayer
from app.settings import Settings
from app.storage.circuit import CircuitBreaker
from app.storage.database import create_engine, migrate
from app.storage.dead_letter import DeadLetterStore, LocalDeadLetterStore, S3DeadLetterStore
from app.storage.group_commit import GroupCommitter
from app.storage.postgres_writer import PostgresGroupWriter
from app.storage.repository import ScoredReading
from devstack.local_resources import LOCAL_AWS
from devstack.moto_s3 import MotoServer
from devstack.postgres import PostgresServer
from devstack.processes import stop, wait_for_port
from loadtests.bench import ingest as bench_ingest
from loadtests.bench.benchmarks_doc import add_entry
from loadtests.bench.flags import DOC
from loadtests.harness.provenance import machine, revision

RESULTS = DOC
SECTION = "## Dead-letter replay against live ingest: `make bench-replay`"
BUCKET = "bench-lake"
PREFIX = "dead-letter/service/"
WRITERS = 2  # as the service: two group-commit writers on PostgreSQL


@dataclass
class Drain:
    store: str
    letters: int
    readings: int
    seconds: float
    stored: int

    @property
    def rate(self) -> float:
        return self.readings / self.seconds


def letters_of(prefix: str, readings: int, size: int) -> list[list[ScoredReading]]:
    start = datetime.now(UTC) - timedelta(hours=3)
    rows = [ScoredReading(f"{prefix}-{n % 50}", "fermenter_temp", start + timedelta(microseconds=n), 37.0, False, 0.1)
            for n in range(readings)]
    return [rows[i:i + size] for i in range(0, readings, size)]


async def fill(store: DeadLetterStore, letters: list[list[ScoredReading]], concurrency: int = 32) -> None:
    gate = asyncio.Semaphore(concurrency)

    async def put(letter: list[ScoredReading]) -> None:
        async with gate:
            await store.put(letter)

    await asyncio.gather(*(put(letter) for letter in letters))


async def drain(name: str, store: DeadLetterStore, database_url: str, letters: int, readings: int) -> Drain:
    """The service's replay path, timed from the first listing to an empty store."""
    settings = Settings(database_url=database_url)
    writer = PostgresGroupWriter(settings, connections=WRITERS)
    committer = GroupCommitter(writer.store, max_rows=settings.commit_max_rows, writers=WRITERS)
    committer.start()
    replayer = DeadLetterReplayer(store=store, committer=committer, metrics=Metrics("bench", {}, sink=lambda _: None),
                                  breaker=CircuitBreaker(failure_threshold=5, reset_seconds=1), interval_seconds=1,
                                  fetch_concurrency=settings.replay_fetch_concurrency,
                                  batch_readings=settings.replay_batch_readings)
    started = time.perf_counter()
    stored = 0
    try:
        while await store.names():
            stored += await replayer.replay_once()
        seconds = time.perf_counter() - started
    finally:
        await committer.close()
        await writer.close()
    return Drain(name, letters, readings, seconds, stored)


async def fresh_database(postgres: PostgresServer) -> str:
    engine = create_engine(Settings(database_url=postgres.url))
    try:
        await migrate(engine)
    finally:
        await engine.dispose()
    return postgres.url


def delayed_endpoint(target_port: int, delay_ms: float) -> tuple[subprocess.Popen, str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "loadtests.drills.delay_proxy", "--target", f"127.0.0.1:{target_port}",
         "--delay-ms", str(delay_ms)], stdout=subprocess.PIPE, text=True)
    port = int(process.stdout.readline())
    wait_for_port(port, timeout=10, process=process)
    return process, f"http://127.0.0.1:{port}"


async def replay_benchmarks(args: argparse.Namespace, workdir: Path) -> list[Drain]:
    postgres = PostgresServer().start()
    moto = MotoServer().start()
    proxy = None
    try:
        url = await fresh_database(postgres)
        results = []
        local = LocalDeadLetterStore(workdir / "dead-letter")
        letters = letters_of("replay-local", args.readings, args.letter_readings)
        await fill(local, letters)
        results.append(await drain("local directory", local, url, len(letters), args.readings))

        os.environ.update({key: os.environ.get(key, value) for key, value in LOCAL_AWS.items()})
        boto3.client("s3", endpoint_url=moto.endpoint_url, region_name=LOCAL_AWS["AWS_DEFAULT_REGION"]).create_bucket(
            Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": LOCAL_AWS["AWS_DEFAULT_REGION"]})
        letters = letters_of("replay-s3", args.readings, args.letter_readings)
        # Filled directly (no delay): only the drain is measured.
        await fill(S3DeadLetterStore(bucket=BUCKET, prefix=PREFIX, region=LOCAL_AWS["AWS_DEFAULT_REGION"],
                                     endpoint_url=moto.endpoint_url), letters)
        proxy, delayed = delayed_endpoint(moto.port, args.s3_delay_ms)
        s3 = S3DeadLetterStore(bucket=BUCKET, prefix=PREFIX, region=LOCAL_AWS["AWS_DEFAULT_REGION"],
                               endpoint_url=delayed, concurrency=Settings().replay_fetch_concurrency)
        results.append(await drain(f"moto S3 + {args.s3_delay_ms:g} ms per call", s3, url, len(letters),
                                   args.readings))
        return results
    finally:
        stop(proxy)
        moto.stop()
        postgres.destroy()


def live_ingest(args: argparse.Namespace) -> float:
    ingest_args = argparse.Namespace(duration=args.ingest_duration, concurrency=bench_ingest.CLIENTS, batch_size=100)
    batch, _single, _copy = asyncio.run(bench_ingest.benchmark(ingest_args))
    return batch.readings / batch.seconds


def record(live: float, drains: list[Drain], command: str, letter_readings: int) -> str:
    today = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    rows = [f"\n### {today} — revision {revision()}\n",
            f"Machine: {machine()}. Command: `{command}`. Live ingest, replay, PostgreSQL, moto and the proxy "
            f"share this machine. Letters of {letter_readings} readings.\n",
            "| what | letters | readings | seconds | readings/s | ratio to live ingest | verdict |",
            "|---|---|---|---|---|---|---|",
            f"| live ingest (bench-ingest batch phase, batches of 100) | - | - | - | {live:,.0f} | 1.00 | - |"]
    for d in drains:
        rows.append(f"| drain: {d.store} | {d.letters} | {d.readings} | {d.seconds:.1f} | {d.rate:,.0f} "
                    f"| {d.rate / live:.2f} | {'PASS' if d.rate >= live else 'FAIL'} |")
    return "\n".join(rows) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtests.bench.replay", description=__doc__.splitlines()[0])
    parser.add_argument("--readings", type=int, default=200_000, help="readings to drain per store (>= 1)")
    parser.add_argument("--letter-readings", type=int, default=0,
                        help="readings per letter (default 0: live ingest rate x the dead-letter window)")
    parser.add_argument("--s3-delay-ms", type=float, default=30.0, help="added to every S3 call (>= 0)")
    parser.add_argument("--ingest-duration", type=float, default=10.0, help="seconds of live ingest (> 0)")
    parser.add_argument("--no-record", action="store_true", help=f"do not add to {RESULTS}")
    args = parser.parse_args(argv)
    for flag, low in (("readings", 1), ("letter_readings", 0), ("s3_delay_ms", 0)):
        if getattr(args, flag) < low:
            parser.error(f"--{flag.replace('_', '-')} must be >= {low}, got {getattr(args, flag)}")
    if args.ingest_duration <= 0:
        parser.error(f"--ingest-duration must be > 0, got {args.ingest_duration}")
    live = live_ingest(args)
    if not args.letter_readings:
        args.letter_readings = max(1, round(live * Settings().dead_letter_window_seconds))
    print(f"live ingest: {live:,.0f} readings/s; letters of {args.letter_readings} readings", flush=True)
    drains = asyncio.run(replay_benchmarks(args, Path(tempfile.mkdtemp(prefix="bench-replay-"))))
    command = ("make bench-replay (python -m loadtests.bench.replay " + " ".join(argv or sys.argv[1:])).strip() + ")"
    text = record(live, drains, command, args.letter_readings)
    print(text)
    if not args.no_record:
        add_entry(RESULTS, SECTION, text)
    return 0 if all(d.rate >= live and d.stored >= d.readings for d in drains) else 1


if __name__ == "__main__":
    sys.exit(main())
