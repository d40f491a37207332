"""The shared state store's parts against a real redis-server: the bucket script, the window script, the
coalescing, the outage/reconnect cycle, and the settings and IAM token the service builds from its environment.
(The 4-process behaviour is tests/integration/test_shared_state.py.)"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from urllib.parse import parse_qs, urlparse

import pytest
from pydantic import ValidationError

from app.anomaly import AnomalyDetector
from app.observability.metrics import Metrics
from app.security.ratelimit import LeakyBucketLimiter
from app.settings import Settings
from app.state.iam_auth import ElastiCacheIamCredentials
from app.state.ratelimit import SharedRateLimiter
from app.state.scripts import WINDOW
from app.state.store import Call, StateStore, StoreUnavailable
from app.state.windows import SharedWindows, window_key
from devstack.redis import RedisServer


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer().start()
    try:
        yield server
    finally:
        server.stop()


def new_store(url: str, metrics: Metrics, retry_seconds: float = 0.2) -> StateStore:
    return StateStore.from_url(url, timeout=0.25, retry_seconds=retry_seconds, metrics=metrics)


def metrics() -> Metrics:
    return Metrics("test", {}, sink=lambda _: None)


def test_the_bucket_admits_the_burst_then_refuses_with_retry_after(redis_server: RedisServer) -> None:
    async def run():
        store = new_store(redis_server.url, metrics())
        limiter = SharedRateLimiter(store, fallback=LeakyBucketLimiter(), metrics=metrics())
        try:
            decisions = [await limiter.check("client-a", 5.0, 20) for _ in range(22)]
            other = await limiter.check("client-b", 5.0, 20)
        finally:
            await store.close()
        return decisions, other

    decisions, other = asyncio.run(run())
    assert [d.allowed for d in decisions] == [True] * 20 + [False] * 2
    assert [d.remaining for d in decisions[:3]] == [19, 18, 17] and decisions[19].remaining == 0
    assert decisions[20].retry_after == 1 and decisions[20].limit == 20
    assert decisions[19].reset_seconds == 4  # 20 requests drain at 5/s
    assert other.allowed and other.remaining == 19  # buckets are per client


def test_concurrent_checks_from_two_clients_of_the_store_share_one_bucket(redis_server: RedisServer) -> None:
    async def run():
        stores = [new_store(redis_server.url, metrics()) for _ in range(2)]
        limiters = [SharedRateLimiter(s, fallback=LeakyBucketLimiter(), metrics=metrics()) for s in stores]
        try:
            return await asyncio.gather(*(limiters[i % 2].check("shared", 5.0, 20) for i in range(60)))
        finally:
            for store in stores:
                await store.close()

    decisions = asyncio.run(run())
    assert sum(d.allowed for d in decisions) in (20, 21)  # the burst, plus at most one drained meanwhile


def test_a_window_is_missing_until_seeded_then_returned_before_each_append(redis_server: RedisServer) -> None:
    key = window_key(("dev-1", "fermenter_temp"))

    async def run():
        store = new_store(redis_server.url, metrics())
        try:
            missing = await store.run([Call(WINDOW, key, [3, 60, "score", 0, "1.5"])])
            seeded = await store.run([Call(WINDOW, key, [3, 60, "seed", 2, "1.0", "2.0", "3.0"])])
            reseed = await store.run([Call(WINDOW, key, [3, 60, "seed", 1, "99.0", "4.0", "5.0"])])
            after = await store.run([Call(WINDOW, key, [3, 60, "score", 0])])
            reset = await store.run([Call(WINDOW, key, [3, 60, "reset", 0])])
            gone = await store.run([Call(WINDOW, key, [3, 60, "score", 0, "1.0"])])
        finally:
            await store.close()
        return missing, seeded, reseed, after, reset, gone

    missing, seeded, reseed, after, reset, gone = asyncio.run(run())
    assert missing == [None]  # nothing appended to a missing window
    assert seeded == ["1.0 2.0"]  # the seed, before the new value
    assert reseed == ["1.0 2.0 3.0"]  # a later seed is ignored: the window exists
    assert after == ["3.0 4.0 5.0"]  # trimmed to the window size (3)
    assert reset == [None] and gone == [None]


def test_shared_windows_give_the_verdicts_of_one_detector_and_seed_from_history(redis_server: RedisServer) -> None:
    history_queries: list[list] = []
    stored = {("dev-1", "temp"): [37.0, 37.2] * 25}

    async def history(keys, limit):
        history_queries.append(list(keys))
        return {key: stored[key][-limit:] for key in keys if key in stored}

    values = [37.1, 37.0, 39.5, 37.2, 45.0, 37.1]

    async def run():
        store = new_store(redis_server.url, metrics())
        detector = AnomalyDetector(window=50, threshold=3.0, min_samples=10)
        windows = SharedWindows(store, detector=detector, history=history, ttl_seconds=60,
                                history_allowed=lambda: True, metrics=metrics())
        try:
            # Two requests for the same new series at once: one history query.
            first = await asyncio.gather(windows.score([(("dev-1", "temp"), v) for v in values[:3]]),
                                         windows.score([(("dev-1", "temp"), v) for v in values[3:]]))
        finally:
            await store.close()
        return first

    first = asyncio.run(run())
    reference = AnomalyDetector(window=50, threshold=3.0, min_samples=10)
    reference.load(("dev-1", "temp"), stored[("dev-1", "temp")])
    expected = [reference.score(("dev-1", "temp"), v) for v in values]
    assert first[0] + first[1] == expected
    assert [v.is_anomaly for v in expected] == [False, False, True, False, True, False]
    assert history_queries == [[("dev-1", "temp")]]


def test_requests_at_once_share_a_round_trip(redis_server: RedisServer) -> None:
    counted = metrics()

    async def run():
        store = new_store(redis_server.url, counted)
        limiter = SharedRateLimiter(store, fallback=LeakyBucketLimiter(), metrics=counted)
        try:
            await asyncio.gather(*(limiter.check(f"client-{i}", 5.0, 20) for i in range(50)))
        finally:
            await store.close()

    asyncio.run(run())
    round_trips = counted.snapshot()["counters"]["StateStoreRoundTrips"]
    assert 1 <= round_trips <= 3, round_trips  # 50 checks, not 50 round trips


def test_a_dead_store_falls_back_at_once_and_is_used_again_when_back(redis_server: RedisServer) -> None:
    counted = metrics()

    async def run():
        store = new_store(redis_server.url, counted, retry_seconds=0.2)
        fallback = LeakyBucketLimiter()
        limiter = SharedRateLimiter(store, fallback=fallback, metrics=counted)
        try:
            assert (await limiter.check("c", 5.0, 20)).remaining == 19
            await asyncio.to_thread(redis_server.kill)
            started = time.monotonic()
            during = [await limiter.check("c", 5.0, 20) for _ in range(5)]
            seconds = time.monotonic() - started
            marked_down = not store.available
            with pytest.raises(StoreUnavailable):
                await store.run([Call(WINDOW, "sensor:w:x", [3, 60, "score", 0])])
            await asyncio.to_thread(redis_server.start)  # same port, empty
            await asyncio.sleep(0.3)
            back = await limiter.check("c", 5.0, 20)
        finally:
            await store.close()
        return during, seconds, marked_down, back

    during, seconds, marked_down, back = asyncio.run(run())
    assert all(d.allowed for d in during) and [d.remaining for d in during] == [19, 18, 17, 16, 15]  # the task's own
    assert seconds < 1.0 and marked_down
    assert back.allowed and back.remaining == 19  # the store again (restarted empty), same client object
    snapshot = counted.snapshot()
    assert snapshot["counters"]["StateStoreFallbacks"] == 5
    assert snapshot["gauges"]["StateStoreUnavailable"] == 0


def test_settings_refuse_a_bad_url_and_iam_without_tls() -> None:
    with pytest.raises(ValidationError, match="SENSOR_STATE_STORE_URL must start with redis:// or rediss://"):
        Settings(state_store_url="http://cache:6379")
    with pytest.raises(ValidationError, match="SENSOR_STATE_STORE_IAM_USER needs TLS"):
        Settings(state_store_url="redis://cache:6379", state_store_iam_user="app", state_store_cache_name="c")
    with pytest.raises(ValidationError, match="SENSOR_STATE_STORE_CACHE_NAME"):
        Settings(state_store_url="rediss://cache:6379", state_store_iam_user="app")
    with pytest.raises(ValidationError, match="state_store_timeout_seconds"):
        Settings(state_store_timeout_seconds=0)


def test_iam_token_is_a_presigned_connect_request_for_the_user_and_cache(monkeypatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAIOSFODNN7EXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    user, token = ElastiCacheIamCredentials(user_id="sensor-dev-app", cache_name="sensor-dev-state",
                                            region="eu-west-1").get_credentials()
    parsed = urlparse(f"https://{token}")
    query = parse_qs(parsed.query)
    assert user == "sensor-dev-app" and parsed.netloc == "sensor-dev-state" and not token.startswith("https://")
    assert query["Action"] == ["connect"] and query["User"] == ["sensor-dev-app"]
    assert query["ResourceType"] == ["ServerlessCache"] and query["X-Amz-Expires"] == ["900"]
    assert "/eu-west-1/elasticache/aws4_request" in query["X-Amz-Credential"][0]
    assert len(query["X-Amz-Signature"][0]) == 64


def test_with_the_shared_store_a_device_record_reads_back_whole(redis_server: RedisServer, serve, settings_for,
                                                                postgres_url: str) -> None:
    """The shared windows score the readings; the record's device metadata must still be stored with each."""
    settings = settings_for(postgres_url).model_copy(update={"state_store_url": redis_server.url})
    now = time.time()
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now - 5)) + "Z"
    record = {"device_id": "sensor-store-1", "device_type": "environmental", "temperature": 22.5, "humidity": 45.0,
              "latitude": 40.7, "longitude": -74.0, "status": "active", "firmware_version": "2.1.0",
              "timestamp": stamp}
    with serve(settings) as client:
        response = client.post("/ingest", json=record)
        assert response.status_code == 201, response.text
        assert client.app.state.services.ingest._shared_windows is not None  # the store path scored them
        stored = client.get("/data", params={"device_id": "sensor-store-1"}).json()
    assert {r["tag"] for r in stored} == {"temperature", "humidity"}
    for reading in stored:
        assert {k: reading[k] for k in ("device_type", "latitude", "longitude", "status", "firmware_version")} == {
            "device_type": "environmental", "latitude": 40.7, "longitude": -74.0, "status": "active",
            "firmware_version": "2.1.0"}
