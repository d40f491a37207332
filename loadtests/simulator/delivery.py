"""Delivery to the ingestion service like a well-behaved field client: token handling, and retries of
429/5xx/connection errors with backoff and Retry-After, item by item outcomes.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import math
import random
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import httpx

from loadtests.simulator.config import SimulatorConfig
from loadtests.simulator.generation import Body
from loadtests.simulator.stats import Stats

log = logging.getLogger("simulator")

TOKEN_PATH = "/auth/token"  # noqa: S105 - a URL path
SINGLE_PATH = "/ingest"
BATCH_PATH = "/ingest/batch"
ACKNOWLEDGED = frozenset({200, 201, 202})
RETRYABLE = frozenset({408, 429, 500, 502, 503, 504})
# Refresh this long before expiry so a request never races the token's end.
TOKEN_REFRESH_MARGIN_SECONDS = 60.0
# A 429 is flow control, not failure: it does not use up attempts, but a client that is refused this many
# times in a row for one request gives up on it (spools it) rather than waiting forever.
MAX_RATE_LIMITED_WAITS = 60
MAX_RETRY_AFTER_SECONDS = 300.0


class FatalDeliveryError(Exception):
    """Retrying cannot help (credentials refused, scope missing): the whole run stops."""


class TransientError(Exception):
    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Outcome(enum.Enum):
    DELIVERED = "delivered"
    REJECTED = "rejected"
    UNDELIVERED = "undelivered"


@dataclass(frozen=True)
class DeliveryResult:
    outcome: Outcome
    statuses: tuple[str, ...] = ()
    flagged: int = 0
    detail: str = ""


def item_count(body: Body) -> int:
    return len(body) if isinstance(body, list) else 1


def retry_after_seconds(response: httpx.Response) -> float | None:
    """Retry-After as delay-seconds or an HTTP date, capped; None when absent or unreadable."""
    header = response.headers.get("Retry-After")
    if not header:
        return None
    try:
        seconds = float(header)
    except ValueError:
        try:
            seconds = (parsedate_to_datetime(header) - datetime.now(UTC)).total_seconds()
        except (TypeError, ValueError):
            return None
    if not math.isfinite(seconds):
        return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_SECONDS)


def backoff_delay(failures: int, base: float, cap: float, rng: random.Random) -> float:
    """Exponential backoff with "equal jitter": half the step fixed, half random, so clients that failed
    together spread out while the delay still grows."""
    step = min(cap, base * 2 ** (failures - 1))
    return step / 2 + rng.uniform(0, step / 2)


def describe_error(response: httpx.Response) -> str:
    """`HTTP 422 validation_error: invalid reading: value (value: ... is outside ...)` from the error body."""
    try:
        error = response.json().get("error", {})
        first = (error.get("details") or [{}])[0]
        detail = f" ({'.'.join(map(str, first.get('loc', [])))}: {first['msg']})" if "msg" in first else ""
        return f"HTTP {response.status_code} {error.get('code', '')}: {error.get('message', '')}{detail}"
    except (ValueError, AttributeError, TypeError, IndexError):
        return f"HTTP {response.status_code}: {response.text[:200]}"


async def wait_for_event(event: asyncio.Event, seconds: float) -> bool:
    """Sleep up to `seconds`; True as soon as `event` is set (a stop request interrupts waits)."""
    if event.is_set():
        return True
    if seconds <= 0:
        return False
    try:
        await asyncio.wait_for(event.wait(), timeout=seconds)
    except TimeoutError:
        return False
    return True


class TokenProvider:
    """Client-credentials token, fetched lazily and refreshed before it expires (or after a 401)."""

    def __init__(self, client: httpx.AsyncClient, client_id: str, client_secret: str) -> None:
        self._client = client
        self._client_id = client_id
        self._client_secret = client_secret
        self._token: str | None = None
        self._refresh_at = 0.0
        self._lock = asyncio.Lock()

    async def token(self) -> str:
        if self._token is not None and time.monotonic() < self._refresh_at:
            return self._token
        async with self._lock:  # one refresh for all devices, not one per device
            if self._token is None or time.monotonic() >= self._refresh_at:
                self._token, self._refresh_at = await self._fetch()
            return self._token

    def invalidate(self, token: str) -> None:
        """Drop `token` after the service refused it; a concurrent refresh's newer token is kept."""
        if self._token == token:
            self._token = None

    async def _fetch(self) -> tuple[str, float]:
        requested_at = time.monotonic()
        response = await self._client.post(
            TOKEN_PATH, json={"client_id": self._client_id, "client_secret": self._client_secret}
        )
        if response.status_code in RETRYABLE:
            raise TransientError(f"token request: HTTP {response.status_code}", retry_after_seconds(response))
        if response.status_code != 200:
            raise FatalDeliveryError(f"the service refused client {self._client_id!r}: {describe_error(response)}")
        try:
            payload = response.json()
            token, expires_in = str(payload["access_token"]), float(payload.get("expires_in", 300))
        except (ValueError, KeyError, TypeError, AttributeError):
            raise TransientError("token request: unreadable 200 response") from None
        refresh_in = max(expires_in - TOKEN_REFRESH_MARGIN_SECONDS, expires_in / 2)
        log.info("obtained a token for %s (scope %r, expires in %.0fs)", self._client_id,
                 payload.get("scope", ""), expires_in)
        return token, requested_at + refresh_in


class Deliverer:
    """POSTs one body until it is acknowledged, refused for good, or out of attempts."""

    def __init__(
        self, client: httpx.AsyncClient, tokens: TokenProvider, stats: Stats, stop: asyncio.Event,
        config: SimulatorConfig,
    ) -> None:
        self._client = client
        self._tokens = tokens
        self._stats = stats
        self._stop = stop
        self._max_attempts = config.max_attempts
        self._backoff_base = config.backoff_base
        self._backoff_cap = config.backoff_cap
        # Jitter must differ between clients, so it is never seeded.
        self._jitter = random.Random()
        # After a 429 every device pauses until this moment, instead of each hammering the limiter.
        self._resume_at = 0.0

    async def deliver(self, body: Body) -> DeliveryResult:
        path = BATCH_PATH if isinstance(body, list) else SINGLE_PATH
        failures = 0
        rate_limited_waits = 0
        reauthenticated = False
        while not await wait_for_event(self._stop, self._resume_at - time.monotonic()):
            token = ""
            try:
                token = await self._tokens.token()
                response = await self._client.post(path, json=body, headers={"Authorization": f"Bearer {token}"})
            except TransientError as error:
                problem, retry_after = str(error), error.retry_after
            except httpx.RequestError as error:  # connection refused/reset, timeouts, protocol errors
                problem, retry_after = f"{type(error).__name__}: {error or 'no details'}", None
            else:
                status = response.status_code
                if status in ACKNOWLEDGED:
                    return _acknowledged(response, body)
                if status == 401 and not reauthenticated:
                    self._tokens.invalidate(token)  # expired or the service restarted with a new key
                    reauthenticated = True
                    continue
                if status in (401, 403):
                    raise FatalDeliveryError(f"{path} refused the simulator's token: {describe_error(response)}")
                if status == 429 and rate_limited_waits < MAX_RATE_LIMITED_WAITS:
                    rate_limited_waits += 1
                    self._stats.rate_limited += 1
                    self._pause(retry_after_seconds(response) or 1.0)
                    continue
                if status not in RETRYABLE:
                    return DeliveryResult(Outcome.REJECTED, detail=describe_error(response))
                problem, retry_after = f"HTTP {status}", retry_after_seconds(response)

            failures += 1
            if failures >= self._max_attempts:
                return DeliveryResult(Outcome.UNDELIVERED, detail=f"{problem} (after {failures} attempts)")
            self._stats.retries += 1
            delay = max(retry_after or 0.0, backoff_delay(failures, self._backoff_base, self._backoff_cap,
                                                          self._jitter))
            log.debug("%s %s; retrying in %.2fs", path, problem, delay)
            if await wait_for_event(self._stop, delay):
                break
        return DeliveryResult(Outcome.UNDELIVERED, detail="stopped before delivery")

    def _pause(self, seconds: float) -> None:
        self._resume_at = max(self._resume_at, time.monotonic() + seconds)


def _acknowledged(response: httpx.Response, body: Body) -> DeliveryResult:
    """Per-item statuses from `{"status", "is_anomaly"}` or `{"results": [...]}`; 202 means dead-lettered.

    The service answers one result per stored reading, in request order, so a seed004 record (one reading
    per metric) owns a run of consecutive results: it is a duplicate only if all of them are, and flagged
    if any of them is.
    """
    count = item_count(body)
    try:
        payload = response.json()
    except ValueError:
        payload = {}
    if not isinstance(payload, dict):
        payload = {}
    fallback = "accepted" if response.status_code == 202 else "success"
    results = payload.get("results")
    if not (isinstance(results, list) and results and len(results) % count == 0
            and all(isinstance(result, dict) for result in results)):
        results = [payload]
        if count > 1:  # no per-reading detail: every item shares the response's status
            results = [{"status": payload.get("status", fallback)}] * count
    per_item = len(results) // count
    statuses: list[str] = []
    flagged = 0
    for start in range(0, len(results), per_item):
        group = results[start:start + per_item]
        item_statuses = {str(result.get("status", fallback)) for result in group}
        statuses.append("duplicate" if item_statuses == {"duplicate"} else
                        "accepted" if "accepted" in item_statuses else "success")
        flagged += any(result.get("is_anomaly") for result in group)
    return DeliveryResult(Outcome.DELIVERED, statuses=tuple(statuses), flagged=flagged)
