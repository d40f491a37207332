"""The per-client leaky bucket: its arithmetic, and how protected routes report and enforce it.

Default test clients drain at 5 requests per second with a burst of 20. Time comes from a fake clock.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

import httpx
import pytest
from fastapi import Depends, FastAPI
from hypothesis import given
from hypothesis import strategies as st

from app.security import Decision, LeakyBucketLimiter, Principal, require_scope
from tests.api.test_auth import START_TIME, assert_error, bearer, build_app, fetch_token, http_client
from tests.support.clock import ManualClock

BURST = 20


# --- LeakyBucketLimiter ----------------------------------------------------------------------------------


def test_first_request_is_allowed_and_reports_the_bucket() -> None:
    limiter = LeakyBucketLimiter(clock=ManualClock(START_TIME))

    decision = limiter.check("client", rate_per_second=5, burst=20)

    assert decision == Decision(allowed=True, limit=20, remaining=19, reset_seconds=1, retry_after=0)


def test_full_bucket_refuses_with_retry_after() -> None:
    limiter = LeakyBucketLimiter(clock=ManualClock(START_TIME))
    decisions = [limiter.check("client", 5, 20) for _ in range(21)]

    assert all(decision.allowed for decision in decisions[:20])
    assert [decision.remaining for decision in decisions[:20]] == list(range(19, -1, -1))
    assert decisions[19] == Decision(allowed=True, limit=20, remaining=0, reset_seconds=4, retry_after=1)
    assert decisions[20] == Decision(allowed=False, limit=20, remaining=0, reset_seconds=4, retry_after=1)


def test_refused_requests_do_not_fill_the_bucket() -> None:
    clock = ManualClock(START_TIME)
    limiter = LeakyBucketLimiter(clock=clock)
    for _ in range(20):
        limiter.check("client", 5, 20)
    refusals = [limiter.check("client", 5, 20) for _ in range(50)]

    clock.advance(0.2)

    assert not any(decision.allowed for decision in refusals)
    assert limiter.check("client", 5, 20).allowed


def test_bucket_drains_at_the_rate() -> None:
    clock = ManualClock(START_TIME)
    limiter = LeakyBucketLimiter(clock=clock)
    for _ in range(20):
        limiter.check("client", 5, 20)

    clock.advance(2)  # drains 10
    decision = limiter.check("client", 5, 20)

    assert decision == Decision(allowed=True, limit=20, remaining=9, reset_seconds=3, retry_after=0)


def test_partial_drain_rounds_remaining_down_and_waits_up() -> None:
    clock = ManualClock(START_TIME)
    limiter = LeakyBucketLimiter(clock=clock)
    for _ in range(3):
        limiter.check("client", 1, 3)

    clock.advance(1.5)  # level 1.5, then 2.5 with this request
    decision = limiter.check("client", 1, 3)

    assert decision == Decision(allowed=True, limit=3, remaining=0, reset_seconds=3, retry_after=1)


def test_slow_rate_retry_after_covers_the_missing_fraction() -> None:
    clock = ManualClock(START_TIME)
    limiter = LeakyBucketLimiter(clock=clock)
    limiter.check("client", 0.5, 2)
    limiter.check("client", 0.5, 2)

    assert limiter.check("client", 0.5, 2) == Decision(False, limit=2, remaining=0, reset_seconds=4, retry_after=2)
    clock.advance(1.5)  # level 1.25: 0.25 too full, 0.5 s at 0.5/s
    assert limiter.check("client", 0.5, 2) == Decision(False, limit=2, remaining=0, reset_seconds=3, retry_after=1)
    clock.advance(0.5)
    assert limiter.check("client", 0.5, 2).allowed


def test_empty_bucket_after_reset_seconds() -> None:
    clock = ManualClock(START_TIME)
    limiter = LeakyBucketLimiter(clock=clock)
    for _ in range(7):
        decision = limiter.check("client", 3, 10)

    clock.advance(decision.reset_seconds)

    assert limiter.check("client", 3, 10).remaining == 9


def test_keys_have_separate_buckets() -> None:
    limiter = LeakyBucketLimiter(clock=ManualClock(START_TIME))
    for _ in range(2):
        limiter.check("noisy", 1, 2)

    assert not limiter.check("noisy", 1, 2).allowed
    assert limiter.check("quiet", 1, 2).allowed


def test_clock_going_backwards_does_not_refill() -> None:
    clock = ManualClock(START_TIME)
    limiter = LeakyBucketLimiter(clock=clock)
    limiter.check("client", 1, 1)

    clock.advance(-100)

    assert not limiter.check("client", 1, 1).allowed


@pytest.mark.parametrize(("rate", "burst"), [(0, 5), (-1, 5), (1, 0)])
def test_nonsensical_limits_are_refused(rate: float, burst: int) -> None:
    with pytest.raises(ValueError, match="rate_per_second"):
        LeakyBucketLimiter(clock=ManualClock(START_TIME)).check("client", rate, burst)


@given(
    rate=st.floats(min_value=0.1, max_value=1000),
    burst=st.integers(min_value=1, max_value=50),
    gaps=st.lists(st.floats(min_value=0, max_value=5), max_size=60),
)
def test_decisions_are_honest(rate: float, burst: int, gaps: list[float]) -> None:
    """Never more than burst + drained requests; `remaining` and `retry_after` can be taken at their word."""
    clock = ManualClock(START_TIME)
    started_at = clock.now
    limiter = LeakyBucketLimiter(clock=clock)
    allowed = 0
    for gap in gaps:
        clock.advance(gap)
        decision = limiter.check("client", rate, burst)
        allowed += decision.allowed
        assert allowed <= burst + rate * (clock.now - started_at) + 1e-6
        assert 0 <= decision.remaining < burst
        assert (decision.retry_after == 0) == (decision.remaining > 0)
        if not decision.allowed:
            assert decision.remaining == 0
            assert decision.retry_after >= 1

    decision = limiter.check("client", rate, burst)
    assert all(limiter.check("client", rate, burst).allowed for _ in range(decision.remaining))
    refused = limiter.check("client", rate, burst)
    assert not refused.allowed
    clock.advance(refused.retry_after)
    assert limiter.check("client", rate, burst).allowed


# --- protected routes ------------------------------------------------------------------------------------


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START_TIME)


@pytest.fixture
def app(clock: ManualClock) -> FastAPI:
    app = build_app(clock)

    @app.put("/readings", dependencies=[Depends(require_scope("read"))])
    async def guarded_twice(principal: Annotated[Principal, Depends(require_scope("ingest"))]) -> dict[str, str]:
        return {"client_id": principal.client_id}

    return app


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with http_client(app) as client:
        yield client


async def exhaust(client: httpx.AsyncClient, token: str) -> list[httpx.Response]:
    return [await client.post("/readings", headers=bearer(token)) for _ in range(BURST)]


@pytest.mark.anyio
async def test_burst_then_429_with_retry_after(client: httpx.AsyncClient) -> None:
    token = await fetch_token(client)

    accepted = await exhaust(client, token)
    refused = await client.post("/readings", headers=bearer(token))

    assert [response.status_code for response in accepted] == [200] * BURST
    assert [response.headers["X-RateLimit-Remaining"] for response in accepted] == [
        str(left) for left in range(BURST - 1, -1, -1)
    ]
    error = assert_error(refused, 429, "rate_limited")
    assert "simulator" in error["message"]
    assert refused.headers["Retry-After"] == "1"
    assert refused.headers["X-RateLimit-Limit"] == "20"
    assert refused.headers["X-RateLimit-Remaining"] == "0"
    assert refused.headers["X-RateLimit-Reset"] == "4"


@pytest.mark.anyio
async def test_bucket_refills_as_time_passes(client: httpx.AsyncClient, clock: ManualClock) -> None:
    token = await fetch_token(client)
    await exhaust(client, token)

    clock.advance(1)  # drains 5 requests' worth
    after_a_second = [await client.post("/readings", headers=bearer(token)) for _ in range(6)]

    assert [response.status_code for response in after_a_second] == [200] * 5 + [429]
    clock.advance(4)
    response = await client.post("/readings", headers=bearer(token))
    assert response.status_code == 200
    assert response.headers["X-RateLimit-Remaining"] == str(BURST - 1)


@pytest.mark.anyio
async def test_one_client_exhausting_its_bucket_does_not_limit_another(client: httpx.AsyncClient) -> None:
    noisy, quiet = await fetch_token(client, "simulator"), await fetch_token(client, "gateway")
    await exhaust(client, noisy)

    assert (await client.post("/readings", headers=bearer(noisy))).status_code == 429
    response = await client.post("/readings", headers=bearer(quiet))

    assert response.status_code == 200
    assert response.headers["X-RateLimit-Remaining"] == str(BURST - 1)


@pytest.mark.anyio
async def test_all_tokens_of_a_client_share_its_bucket(client: httpx.AsyncClient) -> None:
    await exhaust(client, await fetch_token(client))

    response = await client.get("/readings", headers=bearer(await fetch_token(client, scope="read")))

    assert_error(response, 429, "rate_limited")


@pytest.mark.anyio
async def test_token_endpoint_is_not_behind_the_client_bucket(client: httpx.AsyncClient) -> None:
    await exhaust(client, await fetch_token(client))

    responses = [
        await client.post("/auth/token", json={"client_id": "simulator", "client_secret": "simulator-secret"})
        for _ in range(BURST + 5)
    ]

    assert {response.status_code for response in responses} == {200}


@pytest.mark.anyio
async def test_stacked_guards_count_a_request_once(client: httpx.AsyncClient) -> None:
    token = await fetch_token(client)

    response = await client.put("/readings", headers=bearer(token))

    assert response.status_code == 200
    assert response.headers["X-RateLimit-Remaining"] == str(BURST - 1)


@pytest.mark.anyio
async def test_rejected_tokens_do_not_use_the_bucket(client: httpx.AsyncClient) -> None:
    token = await fetch_token(client)
    for _ in range(BURST + 5):
        await client.post("/readings", headers=bearer(token + "x"))

    response = await client.post("/readings", headers=bearer(token))

    assert response.headers["X-RateLimit-Remaining"] == str(BURST - 1)
