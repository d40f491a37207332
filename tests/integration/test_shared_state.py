"""The multi-process proof: 4 app processes behind HAProxy round robin (like 4 ECS tasks behind the ALB)
on real PostgreSQL and a real redis-server behave like one process.

- one client sending 50 requests/s for 20 s gets about 20 + 5·t accepted in total (its bucket: burst 20,
  5/s), not 4 times that;
- the seed-002 stream (3 tags, one batch per second of readings, 5 % spikes) of several devices at once,
  and a level-shift stream, get for every reading the verdict (is_anomaly, z_score) a single process
  gives: the reference is `AnomalyDetector` fed each series in order, as one process would be;
- redis-server killed mid-run: nothing lost or answered 5xx, the fallback metric rises, and after a
  restart the store holds the state again and verdicts are exact again (windows rebuilt from PostgreSQL).

With SHARED_STATE_STORE=off the same tests run the apps without the store (per-process state, the code of
before the store): the limit and verdict tests then fail, which shows they can. `make shared-state-proof`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import asyncpg
import httpx
import pytest
import redis

from app.anomaly import AnomalyDetector, SeriesKey
from loadtests.simulator.generation import (
    SEED002_TAGS,
    Device,
    format_timestamp,
    make_devices,
    seed002_reading,
)
from tests.support.cluster import LOADTEST_CREDENTIALS, AppCluster
from tests.support.services import create_migrated_database

PROCESSES = 4
RATE_SECONDS = 20.0
RATE_PER_SECOND = 50
BURST, LEAK_PER_SECOND = 20, 5.0  # the simulator client's limit (seed 000)
START = datetime(2026, 12, 1, tzinfo=UTC)
WITH_STORE = os.environ.get("SHARED_STATE_STORE", "on") != "off"

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]
logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request otherwise


@pytest.fixture(scope="module")
def database_url(postgres_server) -> str:
    """A migrated database of its own on the session cluster (module scope: the cluster outlives each test)."""
    return _fresh_database(postgres_server.port)


def _fresh_database(port: int) -> str:
    return create_migrated_database(port, f"shared_state_{os.getpid()}_{int(time.time() * 1000)}")


@pytest.fixture(scope="module")
def cluster(database_url: str, tmp_path_factory) -> Iterator[AppCluster]:
    workdir = tmp_path_factory.mktemp("shared-state")
    # A short pause after a store failure, so the outage test sees the store come back quickly.
    running = AppCluster(workdir, database_url, processes=PROCESSES, state_store=WITH_STORE,
                         extra_env={"SENSOR_STATE_STORE_RETRY_SECONDS": "0.5"})
    try:
        yield running.start()
    finally:
        running.close()


async def _token(client: httpx.AsyncClient, credentials: dict[str, str]) -> dict[str, str]:
    response = await client.post("/auth/token", json=credentials)
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


# --- one client, 50 req/s for 20 s ------------------------------------------------------------------


def test_a_client_gets_its_limit_once_across_all_processes(cluster: AppCluster) -> None:
    before = cluster.counter("ReadingsIngested")
    responses, elapsed = asyncio.run(_paced_requests(cluster.url))

    statuses = [response.status_code for response in responses]
    accepted = statuses.count(201)
    expected = BURST + LEAK_PER_SECOND * elapsed
    assert len(statuses) == RATE_PER_SECOND * RATE_SECONDS
    assert set(statuses) <= {201, 429}, sorted(set(statuses))
    print(f"\nrate: {accepted} accepted of {len(statuses)} sent over {elapsed:.2f} s; one bucket admits "
          f"{expected:.0f} (20 + 5·t)")
    assert abs(accepted - expected) <= 0.10 * expected, \
        f"{accepted} accepted of {len(statuses)} in {elapsed:.1f} s; one bucket admits {expected:.0f}"
    for response in responses:
        assert response.headers["X-RateLimit-Limit"] == str(BURST)
        if response.status_code == 429:
            assert int(response.headers["Retry-After"]) >= 1
    # The requests really were spread: every process stored some of the accepted readings.
    served = [after - earlier for after, earlier in zip(cluster.counter("ReadingsIngested"), before, strict=True)]
    assert sum(served) == accepted and all(count > 0 for count in served), served


async def _paced_requests(url: str) -> tuple[list[httpx.Response], float]:
    """Open loop: request i leaves at start + i/50 s whatever the answers, like a misbehaving client."""
    async with httpx.AsyncClient(base_url=url, timeout=30, limits=httpx.Limits(max_connections=200)) as client:
        headers = await _token(client, {"client_id": "simulator", "client_secret": "simulator-local-secret"})
        total = int(RATE_PER_SECOND * RATE_SECONDS)
        start = time.monotonic()
        sent_at: list[float] = []

        async def one(index: int) -> httpx.Response:
            await asyncio.sleep(max(0.0, start + index / RATE_PER_SECOND - time.monotonic()))
            sent_at.append(time.monotonic())
            body = {"timestamp": format_timestamp(START + timedelta(milliseconds=20 * index)),
                    "tag": "fermenter_temp", "value": 37.0, "device_id": "rate-probe"}
            return await client.post("/ingest", json=body, headers=headers)

        responses = await asyncio.gather(*(one(index) for index in range(total)))
        # The span the requests actually left in (a loaded machine may stretch the schedule a little).
        return list(responses), max(sent_at) - min(sent_at)


# --- verdicts equal to a single process ------------------------------------------------------------


def seed002_batches(device: Device, batches: int, seed: int) -> list[list[dict]]:
    """Seed 002's stream of one device: each second one batch with a reading of every tag, 5 % spikes."""
    rng = random.Random(f"{seed}:{device.device_id}")
    return [[seed002_reading(rng, device, tag, START + timedelta(seconds=second), 0.05).body for tag in SEED002_TAGS]
            for second in range(batches)]


def level_shift_readings(device_id: str, count: int, shift_at: int) -> list[dict]:
    """A steady series that jumps to a new level: flagged at the jump, then the window adapts."""
    rng = random.Random(device_id)
    return [{"timestamp": format_timestamp(START + timedelta(seconds=index)), "tag": "fermenter_temp",
             "device_id": device_id, "value": round(rng.gauss(38.0 if index < shift_at else 44.0, 0.4), 2)}
            for index in range(count)]


def reference_verdicts(series: dict[SeriesKey, list[float]]) -> dict[SeriesKey, list[tuple[bool, float | None]]]:
    """What one process gives: the detector sees every reading of each series, in order."""
    detector = AnomalyDetector(window=50, threshold=3.0, min_samples=10)
    verdicts = {}
    for key, values in series.items():
        verdicts[key] = []
        for value in values:
            verdict = detector.score(key, value)
            verdicts[key].append((verdict.is_anomaly, verdict.z_score))
    return verdicts


async def stored_verdicts(database_url: str, prefix: str) -> dict[SeriesKey, list[tuple[float, bool, float | None]]]:
    """(value, is_anomaly, z_score) of every stored reading of the devices named `prefix*`, in time order."""
    connection = await asyncpg.connect(database_url.replace("postgresql+asyncpg", "postgresql"))
    try:
        rows = await connection.fetch(
            "SELECT device_id, tag, value, is_anomaly, z_score FROM readings WHERE device_id LIKE $1 "
            "ORDER BY device_id, tag, ts", prefix + "%")
    finally:
        await connection.close()
    found: dict[SeriesKey, list[tuple[float, bool, float | None]]] = {}
    for row in rows:
        found.setdefault((row["device_id"], row["tag"]), []).append((row["value"], row["is_anomaly"], row["z_score"]))
    return found


async def _send_sequentially(client: httpx.AsyncClient, path: str, bodies: list, headers: dict,
                             answers: list) -> None:
    """One device: the next request after the answer to the previous one (the device's own order)."""
    for body in bodies:
        response = await client.post(path, json=body, headers=headers)
        answers.append((body, response.status_code, response.json()))


def test_verdicts_equal_a_single_process_for_every_reading(cluster: AppCluster) -> None:
    devices = [Device(d.index, f"agree-{d.device_id}", d.device_type, d.latitude, d.longitude, d.firmware_version)
               for d in make_devices("seed002", 4, seed=2)]
    streams = {device.device_id: seed002_batches(device, 120, seed=2) for device in devices}
    shift = level_shift_readings("agree-shift-1", 150, shift_at=90)

    async def run() -> list:
        answers: list = []
        async with httpx.AsyncClient(base_url=cluster.url, timeout=30) as client:
            headers = await _token(client, LOADTEST_CREDENTIALS)
            # Devices at once: concurrent requests for other series interleave in any order.
            await asyncio.gather(
                *(_send_sequentially(client, "/ingest/batch", batches, headers, answers) for batches in streams.values()),
                _send_sequentially(client, "/ingest", shift, headers, answers))
        return answers

    answers = asyncio.run(run())
    assert {status for _, status, _ in answers} == {201}

    sent: dict[SeriesKey, list[float]] = {}
    answered: dict[tuple[str, str, str], bool] = {}
    for body, _, answer in answers:
        readings, results = (body, answer["results"]) if isinstance(body, list) else ([body], [answer])
        for reading, result in zip(readings, results, strict=True):
            answered[(reading["device_id"], reading["tag"], reading["timestamp"])] = result["is_anomaly"]
    for batches in streams.values():
        for batch in batches:
            for reading in batch:
                sent.setdefault((reading["device_id"], reading["tag"]), []).append(reading["value"])
    sent[("agree-shift-1", "fermenter_temp")] = [reading["value"] for reading in shift]

    expected = reference_verdicts(sent)
    stored = asyncio.run(stored_verdicts(cluster.database_url, "agree-"))
    assert set(stored) == set(expected)
    mismatches = []
    for key, values in sent.items():
        assert [value for value, _, _ in stored[key]] == values, key
        for index, ((_, anomaly, z_score), reference) in enumerate(zip(stored[key], expected[key], strict=True)):
            if (anomaly, z_score) != reference:
                mismatches.append((key, index, (anomaly, z_score), reference))
    print(f"\nverdicts: {sum(map(len, sent.values()))} readings in {len(sent)} series, {len(mismatches)} differ "
          f"from one process, {sum(answered.values())} flagged")
    assert not mismatches, f"{len(mismatches)} readings differ from one process, e.g. {mismatches[:3]}"
    # The answers carry the same verdicts, and the streams did produce anomalies to agree on.
    flagged = {key: sum(anomaly for anomaly, _ in verdicts) for key, verdicts in expected.items()}
    assert sum(answered.values()) == sum(flagged.values()) > 10
    assert any(anomaly for anomaly, _ in expected[("agree-shift-1", "fermenter_temp")][90:95])


# --- the store killed mid-run -------------------------------------------------------------------------


def test_store_outage_loses_nothing_falls_back_and_resumes(cluster: AppCluster) -> None:
    devices = [Device(d.index, f"outage-{d.device_id}", d.device_type, d.latitude, d.longitude, d.firmware_version)
               for d in make_devices("seed002", 3, seed=3)]
    fallbacks_before = sum(cluster.counter("StateStoreFallbacks"))
    timeline: dict[str, float] = {}

    async def run() -> list:
        answers: list = []
        async with httpx.AsyncClient(base_url=cluster.url, timeout=30) as client:
            headers = await _token(client, LOADTEST_CREDENTIALS)
            stop = time.monotonic() + 11.0

            async def device_stream(device: Device) -> None:
                rng = random.Random(f"outage:{device.device_id}")
                second = 0
                while time.monotonic() < stop:
                    batch = [seed002_reading(rng, device, tag, START + timedelta(seconds=second), 0.05).body
                             for tag in SEED002_TAGS]
                    sent_at = time.monotonic()
                    response = await client.post("/ingest/batch", json=batch, headers=headers)
                    answers.append((sent_at, batch, response.status_code))
                    second += 1
                    await asyncio.sleep(0.02)

            async def outage() -> None:
                await asyncio.sleep(3.0)
                if cluster.store is not None:
                    await asyncio.to_thread(cluster.store.kill)
                timeline["killed"] = time.monotonic()
                await asyncio.sleep(3.0)
                if cluster.store is not None:
                    await asyncio.to_thread(cluster.store.start)  # same port, empty
                timeline["restarted"] = time.monotonic()

            await asyncio.gather(*(device_stream(device) for device in devices), outage())
        return answers

    answers = asyncio.run(run())
    statuses = [status for _, _, status in answers]
    assert set(statuses) == {201}, {status: statuses.count(status) for status in set(statuses)}  # no 5xx, no 202

    # Nothing lost, nothing twice: every acknowledged reading is stored exactly once.
    acknowledged = [(r["device_id"], r["tag"], r["value"]) for _, batch, _ in answers for r in batch]
    stored = asyncio.run(stored_verdicts(cluster.database_url, "outage-"))
    assert sum(len(values) for values in stored.values()) == len(acknowledged)
    assert sorted((key[0], key[1], value) for key, rows in stored.items() for value, _, _ in rows) == \
        sorted(acknowledged)

    # The fallback served while the store was down, and said so.
    fallbacks = sum(cluster.counter("StateStoreFallbacks")) - fallbacks_before
    print(f"\noutage: {len(answers)} batches, {len(acknowledged)} readings acknowledged and stored once, "
          f"statuses {sorted(set(statuses))}, StateStoreFallbacks +{fallbacks}")
    assert fallbacks > 0

    # The store holds the state again: every series' window and the client's bucket.
    assert cluster.store is not None
    probe = redis.Redis.from_url(cluster.store.url, decode_responses=True)
    try:
        windows = [key for key in probe.scan_iter("sensor:w:*") if ":outage-" in key]
        assert len(windows) == len(devices) * len(SEED002_TAGS)
        assert all(probe.llen(key) == 50 for key in windows)
        assert probe.exists("sensor:rl:loadtest")
    finally:
        probe.close()

    # Once every task is back on the store, verdicts are those of one process over the stored sequence.
    settled = timeline["restarted"] + 2.0
    late = {(r["device_id"], r["tag"], r["timestamp"]) for sent_at, batch, _ in answers if sent_at > settled
            for r in batch}
    assert len(late) >= 30
    ordered = {key: [value for value, _, _ in rows] for key, rows in stored.items()}
    expected = reference_verdicts(ordered)
    timestamps = _timestamps_by_series(answers)
    mismatches = []
    for key, rows in stored.items():
        for index, ((_, anomaly, z_score), reference) in enumerate(zip(rows, expected[key], strict=True)):
            if (key[0], key[1], timestamps[key][index]) in late and (anomaly, z_score) != reference:
                mismatches.append((key, index))
    print(f"outage: {len(late)} readings scored after the store came back, {len(mismatches)} differ from one process")
    assert not mismatches, f"{len(mismatches)} readings after the store came back differ, e.g. {mismatches[:3]}"


def _timestamps_by_series(answers: list) -> dict[SeriesKey, list[str]]:
    """Each series' timestamps in time order (the order the database returns them in)."""
    found: dict[SeriesKey, list[str]] = {}
    for _, batch, _ in answers:
        for reading in batch:
            found.setdefault((reading["device_id"], reading["tag"]), []).append(reading["timestamp"])
    return {key: sorted(values) for key, values in found.items()}
