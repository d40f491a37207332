"""Dead letters on S3 (moto's server, real HTTP through boto3): coalesced per task, spread over shard
prefixes under `dead-letter/service/`, each request answered only once its letter is durable, at most
1/window PUTs per second per task; replayed into the real PostgreSQL by several replayers at once
without storing anything twice, deleting letters only after their readings committed."""

from __future__ import annotations

import asyncio
import json
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import asyncpg
import boto3
import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from app.observability.metrics import Metrics
from app.services.replay import DeadLetterReplayer
from app.settings import Settings
from app.storage.circuit import CircuitBreaker
from app.storage.dead_letter import S3DeadLetterStore, readings_in
from app.storage.dead_letter_writer import CoalescingDeadLetterWriter, puts_per_second_bound
from app.storage.group_commit import GroupCommitter
from app.storage.postgres_writer import PostgresGroupWriter
from app.storage.repository import ScoredReading
from devstack.local_resources import LOCAL_AWS
from devstack.moto_s3 import MotoServer
from devstack.postgres import PostgresServer
from tests.support.app import token_headers

PREFIX = "dead-letter/service/"
LOADTEST = {"client_id": "loadtest", "client_secret": "loadtest-local-secret"}
START = datetime.now(UTC) - timedelta(hours=1)


@pytest.fixture
def bucket(moto_server: MotoServer, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> str:
    for key, value in LOCAL_AWS.items():
        monkeypatch.setenv(key, value)
    name = f"lake-{request.node.name.lower().replace('_', '-')[:40]}-{time.time_ns() % 100000}"
    s3(moto_server).create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": LOCAL_AWS["AWS_DEFAULT_REGION"]})
    return name


def s3(moto_server: MotoServer):
    return boto3.client("s3", endpoint_url=moto_server.endpoint_url, region_name=LOCAL_AWS["AWS_DEFAULT_REGION"],
                        aws_access_key_id=LOCAL_AWS["AWS_ACCESS_KEY_ID"],
                        aws_secret_access_key=LOCAL_AWS["AWS_SECRET_ACCESS_KEY"])


def store(moto_server: MotoServer, bucket: str) -> S3DeadLetterStore:
    return S3DeadLetterStore(bucket=bucket, prefix=PREFIX, region=LOCAL_AWS["AWS_DEFAULT_REGION"],
                             endpoint_url=moto_server.endpoint_url)


def keys(moto_server: MotoServer, bucket: str) -> list[str]:
    pages = s3(moto_server).get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="dead-letter/")
    return sorted(o["Key"] for page in pages for o in page.get("Contents", []))


def scored(number: int, device: str = "dev-1") -> ScoredReading:
    return ScoredReading(device, "fermenter_ph", START + timedelta(milliseconds=number), 7.0, False, None)


def test_concurrent_failed_groups_share_letters_that_are_durable_before_anyone_is_answered(
        moto_server: MotoServer, bucket: str) -> None:
    target = store(moto_server, bucket)
    writer = CoalescingDeadLetterWriter(target, window_seconds=0.05)
    client = s3(moto_server)
    durable_when_answered = []

    async def one_request(number: int) -> None:
        name = await writer.put([scored(number), scored(number, "dev-2")])
        # The answer (202) may go out only now: the letter must already be in S3.
        durable_when_answered.append(client.head_object(Bucket=bucket, Key=PREFIX + name)["ContentLength"] > 0)

    async def burst() -> None:
        await asyncio.gather(*(one_request(n) for n in range(300)))

    asyncio.run(burst())
    found = keys(moto_server, bucket)
    assert all(durable_when_answered) and len(durable_when_answered) == 300
    assert 1 <= len(found) <= 30, f"{len(found)} letters for 300 requests: not coalesced"
    assert all(key.startswith(PREFIX) and key[len(PREFIX):].split("/")[0].isdigit() for key in found), found
    readings = [r for key in found for r in json.loads(client.get_object(Bucket=bucket, Key=key)["Body"].read())["readings"]]
    assert len(readings) == 600 and sum(readings_in(key[len(PREFIX):]) for key in found) == 600


def test_letters_spread_over_shard_prefixes_and_one_task_stays_under_its_put_bound(
        moto_server: MotoServer, bucket: str) -> None:
    window = 0.05
    writer = CoalescingDeadLetterWriter(store(moto_server, bucket), window_seconds=window)

    async def steady_failures(seconds: float) -> None:
        async def client(number: int) -> None:
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline:
                await writer.put([scored(number)])
                number += 1000

        await asyncio.gather(*(client(n) for n in range(20)))

    started = time.monotonic()
    asyncio.run(steady_failures(1.5))
    elapsed = time.monotonic() - started
    found = keys(moto_server, bucket)
    assert len(found) <= puts_per_second_bound(window) * elapsed + 1, (len(found), elapsed)
    assert len({key[len(PREFIX):].split("/")[0] for key in found}) > 1, "every letter under one prefix"


def test_a_failed_put_fails_every_request_of_its_letter(moto_server: MotoServer, bucket: str) -> None:
    writer = CoalescingDeadLetterWriter(store(moto_server, "no-such-bucket-anywhere"), window_seconds=0.02)

    async def burst() -> list:
        return await asyncio.gather(*(writer.put([scored(n)]) for n in range(10)), return_exceptions=True)

    outcomes = asyncio.run(burst())
    assert all(isinstance(outcome, Exception) for outcome in outcomes), outcomes


async def _stored(url: str) -> list[tuple[str, datetime]]:
    connection = await asyncpg.connect(url.replace("postgresql+asyncpg", "postgresql"))
    try:
        return [(r["device_id"], r["ts"]) for r in await connection.fetch("SELECT device_id, ts FROM readings")]
    finally:
        await connection.close()


def test_several_replayers_at_once_store_each_reading_once_and_empty_the_store(
        moto_server: MotoServer, bucket: str, postgres_url: str) -> None:
    target = store(moto_server, bucket)
    expected = set()

    async def scenario() -> list[int]:
        for letter in range(120):
            batch = [scored(letter * 10 + i, f"dev-{letter % 7}") for i in range(10)]
            expected.update((r.device_id, r.ts) for r in batch)
            await target.put(batch)
        settings = Settings(database_url=postgres_url)
        writers = [PostgresGroupWriter(settings, connections=2) for _ in range(3)]
        committers = [GroupCommitter(w.store, max_rows=5000, writers=2) for w in writers]
        for committer in committers:
            committer.start()
        # Three tasks' replayers over the same bucket, small rounds and batches so that they overlap.
        replayers = [DeadLetterReplayer(store=store(moto_server, bucket), committer=c, interval_seconds=1,
                                        breaker=CircuitBreaker(failure_threshold=3, reset_seconds=1),
                                        metrics=Metrics("test", {}, sink=lambda _: None), letters_per_round=16,
                                        batch_readings=50, fetch_concurrency=8) for c in committers]
        try:
            return await asyncio.gather(*(r.replay_once() for r in replayers))
        finally:
            for committer in committers:
                await committer.close()
            for writer in writers:
                await writer.close()

    replayed = asyncio.run(scenario())
    rows = asyncio.run(_stored(postgres_url))
    assert len(rows) == len(set(rows)) == 1200, "a reading was lost or stored twice"
    assert set(rows) == expected
    assert sum(replayed) >= 1200  # overlapping passes may both commit a letter: stored once anyway
    assert keys(moto_server, bucket) == [], "letters left behind after their readings committed"


def test_a_letter_is_kept_when_its_commit_fails(moto_server: MotoServer, bucket: str,
                                                 postgres_server: PostgresServer, postgres_url: str) -> None:
    target = store(moto_server, bucket)

    async def scenario() -> int:
        await target.put([scored(1)])
        writer = PostgresGroupWriter(Settings(database_url=postgres_url, db_statement_timeout_seconds=2), connections=1)
        committer = GroupCommitter(writer.store, max_rows=100)
        committer.start()
        replayer = DeadLetterReplayer(store=target, committer=committer, interval_seconds=1,
                                      breaker=CircuitBreaker(failure_threshold=3, reset_seconds=1),
                                      metrics=Metrics("test", {}, sink=lambda _: None))
        postgres_server.stop("immediate")
        try:
            return await replayer.replay_once()
        finally:
            postgres_server.start()
            await committer.close()
            await writer.close()

    assert asyncio.run(scenario()) == 0
    assert len(keys(moto_server, bucket)) == 1


def test_the_service_dead_letters_to_s3_during_an_outage_and_replays_exactly_once(
        moto_server: MotoServer, bucket: str, settings_for, postgres_server: PostgresServer, postgres_url: str) -> None:
    settings = settings_for(postgres_url, breaker_failure_threshold=2, breaker_reset_seconds=0.5,
                            db_statement_timeout_seconds=2.0, data_lake_bucket=bucket,
                            s3_endpoint_url=moto_server.endpoint_url, aws_region=LOCAL_AWS["AWS_DEFAULT_REGION"])
    acknowledged: set[tuple[str, str]] = set()

    def post(client: TestClient, number: int) -> int:
        body = [{"timestamp": (START + timedelta(milliseconds=number)).isoformat(), "tag": "fermenter_ph",
                 "value": 7.0, "device_id": f"s3-{number % 5}"}]
        response = client.post("/ingest/batch", json=body)
        if response.status_code in (201, 202):
            acknowledged.add((body[0]["device_id"], body[0]["timestamp"]))
        return response.status_code

    with TestClient(create_app(settings)) as client:
        client.headers.update(token_headers(client, LOADTEST))  # a load client: no 5/s rate limit in the way
        assert {post(client, n) for n in range(10)} == {201}
        postgres_server.stop("immediate")
        try:
            with ThreadPoolExecutor(16) as pool:
                codes = list(pool.map(lambda n: post(client, n), range(10, 170)))
            assert set(codes) == {202}, codes
            letters = keys(moto_server, bucket)
            assert letters and len(letters) < 160 // 2, f"{len(letters)} letters for 160 requests"
        finally:
            postgres_server.start()
        deadline = time.monotonic() + 30
        while keys(moto_server, bucket) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert keys(moto_server, bucket) == [], "dead letters were not replayed"

    rows = asyncio.run(_stored(postgres_url))
    assert len(rows) == len(set(rows)) == 170
    assert {(device, ts.isoformat()) for device, ts in rows} == acknowledged
