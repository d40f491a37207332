"""End to end on the local profiles: readings posted over HTTP to the real app reach the data lake
exactly once, through the same archiver handler the Lambda runs.

full profile: the app on PostgreSQL relays its outbox to tansu; the local Kafka feed
(devstack.pipeline) invokes the archiver into moto's S3 server. Also measured here and printed
(`pytest -s`): end-to-end lag (HTTP 201 → object listed in the bucket) and archiver throughput.
embedded profile: the app on SQLite; the outbox drainer CLI archives into a local directory.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import io
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pyarrow.parquet as pq
import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from app.settings import Settings
from app.storage.database import create_engine
from app.storage.models import outbox, readings
from contracts.reading import encode_reading
from devstack.kafka_feed import FeedSettings, KafkaArchiverFeed, create_archiver_consumer
from devstack.lambdas import load_handler_module
from devstack.moto_s3 import MotoServer
from devstack.processes import stop
from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.timeout(90)

archiver = load_handler_module("archiver")
lake_writer = importlib.import_module("lake_writer")

REGION = "eu-west-1"
POST_BATCH = 50
LAKE_TIMEOUT = 30.0
# Series per (device, tag); every 20th reading of a series is a spike the z-score (window 50) flags.
DEVICES = ("press-1", "press-2", "press-3")
TAGS = {"temperature": 20.0, "humidity": 45.0}
SPIKE = 30.0


# --- readings and the app --------------------------------------------------------------------------


def generate_readings(count: int) -> list[dict[str, Any]]:
    """`count` readings over ~two hours ending near now, across devices and tags, with a few spikes."""
    start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)
    series = [(device, tag) for device in DEVICES for tag in TAGS]
    generated = []
    for n in range(count):
        device, tag = series[n % len(series)]
        position = n // len(series)
        spike = position % 20 == 19
        value = TAGS[tag] + (position % 5) * 0.1 + (SPIKE if spike else 0.0)
        timestamp = start + timedelta(seconds=n * 100 * 60 / count)
        generated.append({"device_id": device, "tag": tag, "value": value,
                          "timestamp": timestamp.isoformat().replace("+00:00", "Z")})
    return generated


@dataclass
class Posted:
    accepted_at: dict[int, float] = field(default_factory=dict)  # reading id → time.monotonic() of the 201
    anomalies: int = 0


def post_readings(
    client: TestClient, to_post: list[dict[str, Any]], posted: Posted, *, batch: int = POST_BATCH, pause: float = 0.0
) -> None:
    for first in range(0, len(to_post), batch):
        if first and pause:
            time.sleep(pause)
        response = client.post("/ingest/batch", json=to_post[first:first + batch])
        accepted = time.monotonic()
        assert response.status_code == 201, response.text
        for result in response.json()["results"]:
            assert result["status"] == "success", result
            posted.accepted_at[result["id"]] = accepted
            posted.anomalies += result["is_anomaly"]


def stored_reading_ids(database_url: str) -> tuple[list[int], int]:
    """(ids in `readings`, rows still in `outbox`)."""

    async def query() -> tuple[list[int], int]:
        engine = create_engine(Settings(database_url=database_url))
        try:
            async with engine.connect() as connection:
                ids = list((await connection.execute(select(readings.c.id))).scalars())
                pending = (await connection.execute(select(func.count()).select_from(outbox))).scalar_one()
        finally:
            await engine.dispose()
        return ids, pending

    return asyncio.run(query())


# --- the lake --------------------------------------------------------------------------------------


@dataclass
class Lake:
    """A bucket on the moto server, read back like an analyst would: every raw Parquet object.

    `watching()` scans it every 50 ms in a thread of its own while the test posts readings, so that the
    time an object first shows up (for the lag) does not wait for the posting to finish.
    """

    client: Any
    bucket: str
    first_seen: dict[int, float] = field(default_factory=dict)  # reading id → time.monotonic() first listed
    rows_per_id: Counter[int] = field(default_factory=Counter)
    objects: set[str] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _scan_error: BaseException | None = None

    def create(self) -> None:
        self.client.create_bucket(Bucket=self.bucket, CreateBucketConfiguration={"LocationConstraint": REGION})

    def rows(self) -> int:
        with self._lock:
            return sum(self.rows_per_id.values())

    def scan(self) -> None:
        """Read the raw objects not seen before (the archiver never rewrites a key with other rows)."""
        with contextlib.suppress(self.client.exceptions.NoSuchBucket):
            pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix="raw/")
            listed = time.monotonic()
            for key in sorted(item["Key"] for page in pages for item in page.get("Contents", [])):
                if key in self.objects:
                    continue
                body = self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()
                reading_ids = pq.read_table(io.BytesIO(body)).column("id").to_pylist()
                with self._lock:
                    self.objects.add(key)
                    self.rows_per_id.update(reading_ids)
                    for reading_id in reading_ids:
                        self.first_seen.setdefault(reading_id, listed)

    @contextlib.contextmanager
    def watching(self, interval: float = 0.05) -> Iterator[None]:
        stopping = threading.Event()

        def watch() -> None:
            try:
                while not stopping.wait(interval):
                    self.scan()
            except BaseException as error:
                self._scan_error = error

        watcher = threading.Thread(target=watch, name="lake-watcher", daemon=True)
        watcher.start()
        try:
            yield
        finally:
            stopping.set()
            watcher.join(timeout=10)
        self.scan()

    def wait_for_rows(self, expected: int, *, timeout: float = LAKE_TIMEOUT, check: Callable[[], None]) -> None:
        """Until the (watched) lake holds `expected` rows, then one more second for any duplicate to land."""
        deadline = time.monotonic() + timeout
        while self.rows() < expected:
            assert self._scan_error is None, f"reading the lake failed: {self._scan_error!r}"
            assert time.monotonic() < deadline, f"the lake holds {self.rows()} of {expected} rows"
            check()
            time.sleep(0.05)
        time.sleep(1.0)


@pytest.fixture
def lake(moto_server: MotoServer, monkeypatch: pytest.MonkeyPatch) -> Lake:
    """A fresh bucket name (not created yet) that the archiver handler targets through its environment."""
    bucket = f"lake-{uuid.uuid4().hex[:12]}"
    for variable, value in {
        "AWS_ACCESS_KEY_ID": "local",
        "AWS_SECRET_ACCESS_KEY": "local",
        "AWS_DEFAULT_REGION": REGION,
        "DATA_LAKE_BUCKET": bucket,
        "S3_ENDPOINT_URL": moto_server.endpoint_url,
    }.items():
        monkeypatch.setenv(variable, value)
    monkeypatch.delenv("LAKE_DIR", raising=False)
    lake_writer.forget_lake_writers()
    client = boto3.client("s3", endpoint_url=moto_server.endpoint_url, region_name=REGION)
    return Lake(client, bucket)


@pytest.fixture
def quiet_archiver() -> Iterator[Callable[[dict[str, Any], Any], Any]]:
    """The archiver handler with its log lines and EMF output kept off the terminal (`pytest -s` shows
    the measurements instead). EMF is printed to sys.stdout, hence the redirect around each call."""
    log_handler = archiver.logger.registered_handler
    previous = log_handler.setStream(io.StringIO())
    output_lock = threading.Lock()

    def handler(event: dict[str, Any], context: Any) -> Any:
        with output_lock, contextlib.redirect_stdout(io.StringIO()):
            return archiver.handler(event, context)

    try:
        yield handler
    finally:
        log_handler.setStream(previous)


@dataclass(frozen=True)
class FullProfile:
    database_url: str
    bootstrap: str
    topic: str
    app_settings: Settings


@pytest.fixture
def full_profile(postgres_url: str, kafka_bootstrap: str, settings_for: Any) -> FullProfile:
    """A fresh PostgreSQL database, a fresh 3-partition topic on tansu, and the app's settings for them.

    The app's dead letters stay local: DATA_LAKE_BUCKET in this process's environment is the archiver's
    setting (in `make up` the two are separate processes with their own environments).
    """
    topic = asyncio.run(create_topic(kafka_bootstrap))
    settings = settings_for(postgres_url, kafka_bootstrap=kafka_bootstrap, kafka_topic=topic, data_lake_bucket=None)
    return FullProfile(postgres_url, kafka_bootstrap, topic, settings)


async def create_topic(bootstrap: str, partitions: int = 3) -> str:
    name = f"e2e-{uuid.uuid4().hex[:12]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=5000)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1)])
    finally:
        await admin.close()
    return name


# --- the Kafka feed in a thread of its own -----------------------------------------------------------


class FeedThread:
    """Runs a KafkaArchiverFeed on its own event loop while the test thread drives the app."""

    def __init__(self, bootstrap: str, topic: str, handler: Callable[[dict[str, Any], Any], Any]) -> None:
        self.bootstrap, self.topic, self.handler = bootstrap, topic, handler
        self.loop: asyncio.AbstractEventLoop | None = None
        self.error: BaseException | None = None
        self._feed: KafkaArchiverFeed | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._main, name="archiver-feed", daemon=True)

    @property
    def feed(self) -> KafkaArchiverFeed:
        assert self._feed is not None
        return self._feed

    def __enter__(self) -> FeedThread:
        self._thread.start()
        assert self._ready.wait(10), "the feed did not start"
        self.check()
        return self

    def __exit__(self, *_exc: object) -> None:
        if self.loop is not None and self._feed is not None and self._thread.is_alive():
            asyncio.run_coroutine_threadsafe(self._feed.stop(), self.loop).result(timeout=20)
        self._thread.join(timeout=20)
        assert not self._thread.is_alive(), "the feed did not stop"
        if self.error is not None:
            raise self.error

    def check(self) -> None:
        assert self._thread.is_alive(), f"the feed stopped early: {self.error!r}"

    def wait_until_assigned(self, timeout: float = 15.0) -> None:
        """Until the consumer joined its group (tansu holds the first join for ~the session timeout)."""
        wait_until(lambda: bool(self.feed.consumer.assignment()), "the consumer got no partitions",
                   timeout=timeout, check=self.check)

    def _main(self) -> None:
        async def run() -> None:
            self.loop = asyncio.get_running_loop()
            consumer = create_archiver_consumer(
                self.bootstrap, self.topic, f"archiver-{uuid.uuid4().hex[:8]}",
                session_timeout_ms=1000, heartbeat_interval_ms=300,
            )
            # No batching window: the lag measured is the pipeline's own (a deployed mapping adds its window).
            self._feed = KafkaArchiverFeed(
                consumer, self.handler, bootstrap=self.bootstrap,
                settings=FeedSettings(batching_window_seconds=0.0, initial_backoff_seconds=0.2),
            )
            self._ready.set()
            await self._feed.run()

        try:
            asyncio.run(run())
        except BaseException as error:
            self.error = error
            self._ready.set()


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def report(title: str, posted: Posted, lake: Lake, feed: KafkaArchiverFeed) -> None:
    lags_ms = [(lake.first_seen[reading_id] - accepted) * 1000 for reading_id, accepted in posted.accepted_at.items()]
    invocations = list(feed.invocations)
    per_invocation = [invocation.records_per_second for invocation in invocations]
    total_records = sum(invocation.records for invocation in invocations)
    total_seconds = sum(invocation.seconds for invocation in invocations)
    print(
        f"\n{title}: {len(posted.accepted_at)} readings, {posted.anomalies} anomalies, {len(lake.objects)} raw objects"
        f"\n  end-to-end lag (HTTP 201 -> object listed in S3, no batching window): p50 {percentile(lags_ms, 0.5):.0f} ms, "
        f"p99 {percentile(lags_ms, 0.99):.0f} ms, max {max(lags_ms):.0f} ms"
        f"\n  archiver: {len(invocations)} successful invocations of {total_records / len(invocations):.0f} records "
        f"on average; median {statistics.median(per_invocation):,.0f} records/s per invocation, "
        f"{total_records / total_seconds:,.0f} records/s over all handler time"
        f"\n  feed: {feed.failures_total} failed invocations retried, {feed.committed_batches} batches committed",
        flush=True,
    )


def assert_exactly_once(posted: Posted, stored_ids: list[int], rows_per_id: Counter[int]) -> None:
    duplicates = {reading_id: count for reading_id, count in rows_per_id.items() if count > 1}
    assert not duplicates, f"archived more than once: {duplicates}"
    assert sorted(posted.accepted_at) == sorted(stored_ids) == sorted(rows_per_id)


def wait_until(condition: Callable[[], bool], failure: str, *, timeout: float, check: Callable[[], None]) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, failure
        check()
        time.sleep(0.05)


# --- full profile ----------------------------------------------------------------------------------


def test_full_profile_every_accepted_reading_reaches_the_lake_exactly_once(
    full_profile: FullProfile, lake: Lake, quiet_archiver: Any, serve: Any
) -> None:
    count = 300
    lake.create()
    posted = Posted()

    with (
        serve(full_profile.app_settings) as client,
        FeedThread(full_profile.bootstrap, full_profile.topic, quiet_archiver) as running,
    ):
        # Steady state: the consumer is in its group, readings arrive over ~2 s in requests of 10.
        running.wait_until_assigned()
        with lake.watching():
            post_readings(client, generate_readings(count), posted, batch=10, pause=0.05)
            lake.wait_for_rows(count, check=running.check)
        report("full profile: app on PostgreSQL -> outbox relay -> tansu -> archiver feed -> moto S3",
               posted, lake, running.feed)
        assert running.feed.failures_total == 0

    stored_ids, pending_outbox = stored_reading_ids(full_profile.database_url)
    assert_exactly_once(posted, stored_ids, lake.rows_per_id)
    assert pending_outbox == 0
    assert posted.anomalies > 0
    hours = {key.split("/")[4] for key in lake.objects}
    assert len(hours) == 2, hours
    assert {key.rsplit("/", 1)[1].split("-")[2] for key in lake.objects} == {"0", "1", "2"}  # partitions


def test_full_profile_failed_archiving_is_retried_without_duplicates(
    full_profile: FullProfile, lake: Lake, quiet_archiver: Any, serve: Any
) -> None:
    """A real S3 failure: the bucket does not exist until the archiver has failed twice (NoSuchBucket)."""
    count = 150
    posted = Posted()

    with (
        serve(full_profile.app_settings) as client,
        FeedThread(full_profile.bootstrap, full_profile.topic, quiet_archiver) as running,
    ):
        post_readings(client, generate_readings(count), posted)
        wait_until(lambda: running.feed.failures_total >= 2, "the archiver never failed",
                   timeout=LAKE_TIMEOUT, check=running.check)
        assert running.feed.committed_batches == 0
        lake.create()
        with lake.watching():
            lake.wait_for_rows(count, check=running.check)
        report("full profile, bucket missing for the first invocations", posted, lake, running.feed)

    stored_ids, _pending = stored_reading_ids(full_profile.database_url)
    assert_exactly_once(posted, stored_ids, lake.rows_per_id)


def test_kafka_feed_cli_archives_a_topic_and_stops_on_sigterm(
    kafka_bootstrap: str, lake: Lake, moto_server: MotoServer, tmp_path: Path
) -> None:
    """`python -m devstack.pipeline kafka ...` as `make up` (full profile) runs it."""
    topic = asyncio.run(create_topic(kafka_bootstrap))
    lake.create()
    reading_ids = asyncio.run(produce_readings(kafka_bootstrap, topic, 40))
    log_path = tmp_path / "archiver.log"

    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "devstack.pipeline", "kafka", "--bootstrap", kafka_bootstrap,
             "--topic", topic, "--group", "archiver", "--bucket", lake.bucket, "--s3-endpoint", moto_server.endpoint_url],
            cwd=REPO_ROOT, env=dict(os.environ), stdout=log, stderr=subprocess.STDOUT,
        )
        try:
            with lake.watching():
                lake.wait_for_rows(len(reading_ids), check=lambda: process_alive(process, log_path))
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=15) == 0, log_path.read_text()
        finally:
            stop(process)

    assert sorted(lake.rows_per_id) == reading_ids
    assert max(lake.rows_per_id.values()) == 1


async def produce_readings(bootstrap: str, topic: str, count: int) -> list[int]:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await asyncio.wait_for(producer.start(), 10)
    try:
        start = datetime.now(UTC) - timedelta(minutes=5)
        for reading_id in range(1, count + 1):
            key, value = encode_reading({
                "id": reading_id, "device_id": f"device-{reading_id % 4}", "tag": "temperature",
                "ts": start + timedelta(seconds=reading_id), "value": 21.5, "is_anomaly": False, "z_score": None,
            })
            await producer.send(topic, value=value, key=key)
        await asyncio.wait_for(producer.flush(), 10)
    finally:
        await asyncio.wait_for(producer.stop(), 10)
    return list(range(1, count + 1))


def process_alive(process: subprocess.Popen, log_path: Path) -> None:
    assert process.poll() is None, f"exited with {process.returncode}:\n{log_path.read_text()}"


# --- embedded profile ------------------------------------------------------------------------------


def parquet_rows_in(lake_dir: Path) -> Counter[int]:
    rows: Counter[int] = Counter()
    for path in sorted((lake_dir / "raw").rglob("*.parquet")) if (lake_dir / "raw").exists() else []:
        rows.update(pq.read_table(path).column("id").to_pylist())
    return rows


def test_embedded_profile_outbox_drainer_archives_accepted_readings(
    settings_for: Any, serve: Any, tmp_path: Path
) -> None:
    """The app on SQLite (no broker) and `python -m devstack.pipeline outbox` into a lake directory."""
    count = 200
    settings = settings_for()
    lake_dir = tmp_path / "datalake"
    log_path = tmp_path / "drainer.log"
    posted = Posted()

    with serve(settings) as client, open(log_path, "wb") as log:
        # The drainer's environment is this one: no DATA_LAKE_BUCKET here, its --lake-dir is the target.
        drainer = subprocess.Popen(
            [sys.executable, "-m", "devstack.pipeline", "outbox", "--database-url", settings.database_url,
             "--lake-dir", str(lake_dir), "--idle-seconds", "0.1"],
            cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT,
        )
        try:
            # Two rounds over the same hours with an empty outbox in between: SQLite then hands out the
            # same outbox rowids again, which must not make the second round overwrite the first.
            readings_to_post = generate_readings(count)
            for half in (readings_to_post[0::2], readings_to_post[1::2]):
                post_readings(client, half, posted)
                wait_until(lambda: parquet_rows_in(lake_dir).total() >= len(posted.accepted_at),
                           "the lake directory did not fill up", timeout=LAKE_TIMEOUT,
                           check=lambda: process_alive(drainer, log_path))
            time.sleep(0.5)  # anything archived twice would show up now
            drainer.send_signal(signal.SIGTERM)
            assert drainer.wait(timeout=15) == 0, log_path.read_text()
        finally:
            stop(drainer)

    stored_ids, pending_outbox = stored_reading_ids(settings.database_url)
    assert_exactly_once(posted, stored_ids, parquet_rows_in(lake_dir))
    assert pending_outbox == 0
    anomalies = list((lake_dir / "processed" / "anomalies").rglob("*.parquet"))
    assert sum(pq.read_table(path).num_rows for path in anomalies) == posted.anomalies > 0
    assert not [path for path in lake_dir.rglob("*") if path.name.endswith(".tmp")]


def test_seed_004_record_reads_back_whole_from_the_lake(settings_for: Any, serve: Any, tmp_path: Path) -> None:
    """A device record with all its fields: its metadata is in every archived reading's Parquet row."""
    settings = settings_for()
    lake_dir = tmp_path / "datalake"
    log_path = tmp_path / "drainer.log"
    record = {
        "device_id": "sensor-0042", "device_type": "environmental", "temperature": 22.5, "humidity": 45.0,
        "battery_level": 87.0, "energy_consumption": 1.8, "latitude": 40.7, "longitude": -74.0,
        "status": "active", "firmware_version": "2.1.0",
        "timestamp": datetime.now(UTC).replace(microsecond=0, tzinfo=None).isoformat(),
    }
    with serve(settings) as client, open(log_path, "wb") as log:
        assert client.post("/ingest", json=record).status_code == 201
        drainer = subprocess.Popen(
            [sys.executable, "-m", "devstack.pipeline", "outbox", "--database-url", settings.database_url,
             "--lake-dir", str(lake_dir), "--idle-seconds", "0.1"],
            cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT,
        )
        try:
            wait_until(lambda: parquet_rows_in(lake_dir).total() >= 4, "the record did not reach the lake",
                       timeout=LAKE_TIMEOUT, check=lambda: process_alive(drainer, log_path))
            drainer.send_signal(signal.SIGTERM)
            assert drainer.wait(timeout=15) == 0, log_path.read_text()
        finally:
            stop(drainer)
    rows = [row for path in (lake_dir / "raw").rglob("*.parquet") for row in pq.read_table(path).to_pylist()]
    assert {row["tag"]: row["value"] for row in rows} == {
        "temperature": 22.5, "humidity": 45.0, "battery_level": 87.0, "energy_consumption": 1.8,
    }
    for row in rows:
        assert (row["device_type"], row["latitude"], row["longitude"], row["status"], row["firmware_version"]) == (
            "environmental", 40.7, -74.0, "active", "2.1.0")
