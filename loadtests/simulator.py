"""Sensor simulator: generates seed-002 readings or seed-004 device records and delivers them to the
ingestion service like a well-behaved field client.

Owns three separable parts:
- generation: pure functions of a seeded `random.Random` (device profiles, values, injected anomalies);
- the spool: a JSONL file of request bodies that could not be delivered, replayed on the next start;
- delivery: token handling, 429/5xx/connection-error retries, and the run loop with its summaries.

    python -m loadtests.simulator --devices 5 --rate 1 --shape seed002 --duration 60

Counts in the summary are items (a reading for seed002, a device record for seed004), not requests.
"""

from __future__ import annotations

import argparse
import asyncio
import enum
import json
import logging
import math
import os
import random
import signal
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any, Literal, TextIO

import httpx

log = logging.getLogger("simulator")

Shape = Literal["seed002", "seed004"]
Item = dict[str, Any]
Body = Item | list[Item]  # POST /ingest takes one item, POST /ingest/batch a list

DEFAULT_URL = "http://127.0.0.1:8000"
DEFAULT_CLIENT_ID = "simulator"
LOCAL_CLIENT_SECRET = "simulator-local-secret"  # noqa: S105 - the documented local-only secret
SECRET_ENV_VAR = "SIMULATOR_CLIENT_SECRET"  # noqa: S105 - a variable name, not a secret
DEFAULT_SPOOL = Path("var/simulator-spool.jsonl")
# The service's limit (Settings.max_batch_readings); a larger batch would be refused whole.
MAX_BATCH_SIZE = 1000


# --------------------------------------------------------------------------------------------------
# Generation: pure functions of their arguments and a seeded random.Random
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MetricProfile:
    """How one tag's values are drawn, the service's valid range, and where injected spikes land.

    Spikes stay inside the valid range (so the service accepts them) but many standard deviations
    from the mean (so its rolling z-score flags them).
    """

    mean: float
    stddev: float
    low: float | None
    high: float | None
    spikes: tuple[float, ...]
    decimals: int

    def clip(self, value: float) -> float:
        if self.low is not None:
            value = max(self.low, value)
        if self.high is not None:
            value = min(self.high, value)
        return value


SEED002_PROFILES: dict[str, MetricProfile] = {
    "fermenter_temp": MetricProfile(37.0, 1.0, 30.0, 50.0, spikes=(30.5, 48.5), decimals=2),
    "fermenter_ph": MetricProfile(7.0, 0.2, 5.0, 9.0, spikes=(5.3, 8.7), decimals=3),
    "agitator_rpm": MetricProfile(450.0, 40.0, 200.0, 700.0, spikes=(205.0, 695.0), decimals=1),
}
SEED002_TAGS = tuple(SEED002_PROFILES)

SEED004_PROFILES: dict[str, MetricProfile] = {
    "temperature": MetricProfile(22.0, 2.0, -50.0, 100.0, spikes=(-20.0, 65.0), decimals=2),
    "humidity": MetricProfile(45.0, 5.0, 0.0, 100.0, spikes=(4.0, 96.0), decimals=2),
    "battery_level": MetricProfile(80.0, 5.0, 0.0, 100.0, spikes=(12.0,), decimals=1),
    "energy_consumption": MetricProfile(1.5, 0.3, 0.0, None, spikes=(6.5,), decimals=3),
}
SEED004_METRICS = tuple(SEED004_PROFILES)
SEED004_FIELDS = (
    "device_id", "device_type", "temperature", "humidity", "battery_level", "energy_consumption",
    "latitude", "longitude", "status", "firmware_version", "timestamp",
)
DEVICE_TYPES = ("environment_sensor", "smart_meter", "weather_station", "thermostat")
FIRMWARE_VERSIONS = ("1.4.2", "1.5.0", "2.0.1")
SITE_LATITUDE, SITE_LONGITUDE = 52.3676, 4.9041
LOW_BATTERY_PERCENT = 20.0


@dataclass(frozen=True)
class Device:
    """A simulated device's fixed attributes (seed004 uses all of them, seed002 only the id)."""

    index: int
    device_id: str
    device_type: str
    latitude: float
    longitude: float
    firmware_version: str


@dataclass(frozen=True)
class Generated:
    """One item to send, and whether the generator deliberately made it anomalous."""

    body: Item
    anomaly: bool


def make_devices(shape: Shape, count: int, seed: int) -> list[Device]:
    rng = random.Random(f"{seed}:devices")
    prefix = "fermenter" if shape == "seed002" else "device"
    return [
        Device(
            index=index,
            device_id=f"sim-{prefix}-{index + 1:03d}",
            device_type=rng.choice(DEVICE_TYPES),
            latitude=round(SITE_LATITUDE + rng.uniform(-0.05, 0.05), 6),
            longitude=round(SITE_LONGITUDE + rng.uniform(-0.05, 0.05), 6),
            firmware_version=rng.choice(FIRMWARE_VERSIONS),
        )
        for index in range(count)
    ]


def device_rng(seed: int, device_index: int) -> random.Random:
    """Each device draws from its own stream, so its values do not depend on how tasks interleave."""
    return random.Random(f"{seed}:device:{device_index}")


def draw_value(rng: random.Random, profile: MetricProfile, spike: bool) -> float:
    if spike:
        value = rng.choice(profile.spikes) + rng.gauss(0.0, profile.stddev / 4)
    else:
        value = rng.gauss(profile.mean, profile.stddev)
    return round(profile.clip(value), profile.decimals)


def format_timestamp(moment: datetime) -> str:
    """UTC ISO-8601 with microseconds and a `Z`, e.g. 2025-11-23T10:30:45.123456Z."""
    return moment.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def seed002_reading(
    rng: random.Random, device: Device, tag: str, timestamp: datetime, anomaly_rate: float
) -> Generated:
    anomaly = rng.random() < anomaly_rate
    value = draw_value(rng, SEED002_PROFILES[tag], spike=anomaly)
    body = {"timestamp": format_timestamp(timestamp), "tag": tag, "value": value, "device_id": device.device_id}
    return Generated(body, anomaly)


def seed004_record(rng: random.Random, device: Device, timestamp: datetime, anomaly_rate: float) -> Generated:
    anomaly = rng.random() < anomaly_rate
    spiked_metric = rng.choice(SEED004_METRICS) if anomaly else None
    metrics = {
        name: draw_value(rng, profile, spike=name == spiked_metric) for name, profile in SEED004_PROFILES.items()
    }
    body = {
        "device_id": device.device_id,
        "device_type": device.device_type,
        **metrics,
        "latitude": device.latitude,
        "longitude": device.longitude,
        "status": "low_battery" if metrics["battery_level"] < LOW_BATTERY_PERCENT else "active",
        "firmware_version": device.firmware_version,
        "timestamp": format_timestamp(timestamp),
    }
    return Generated(body, anomaly)


def generate_item(
    shape: Shape, rng: random.Random, device: Device, *, tick: int, timestamp: datetime, anomaly_rate: float
) -> Generated:
    """The device's `tick`-th item. Seed002 devices rotate through the tags, offset per device so that
    at any moment every tag is being reported by some device."""
    if shape == "seed002":
        tag = SEED002_TAGS[(tick + device.index) % len(SEED002_TAGS)]
        return seed002_reading(rng, device, tag, timestamp, anomaly_rate)
    return seed004_record(rng, device, timestamp, anomaly_rate)


def tick_offset(device_index: int, tick: int, device_count: int, rate: float) -> float:
    """Seconds after the start at which a device emits its `tick`-th item; devices are staggered
    evenly so the load is smooth rather than arriving in bursts of `device_count`."""
    return (tick + device_index / device_count) / rate


# --------------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SimulatorConfig:
    url: str = DEFAULT_URL
    client_id: str = DEFAULT_CLIENT_ID
    client_secret: str = LOCAL_CLIENT_SECRET
    devices: int = 5
    rate: float = 1.0
    shape: Shape = "seed002"
    anomaly_rate: float = 0.05
    batch_size: int = 1
    duration: float | None = None
    seed: int = 0
    spool: Path = DEFAULT_SPOOL
    max_attempts: int = 5
    backoff_base: float = 0.5
    backoff_cap: float = 30.0
    request_timeout: float = 10.0
    report_interval: float = 10.0


def _number(
    kind: type[int] | type[float], minimum: float, maximum: float | None = None, *, inclusive: bool
) -> Callable[[str], int | float]:
    """An argparse `type` that names the rule; argparse prefixes the flag ("argument --rate: ...")."""

    def convert(text: str) -> int | float:
        try:
            value = kind(text)
        except ValueError:
            noun = "an integer" if kind is int else "a number"
            raise argparse.ArgumentTypeError(f"must be {noun}, got {text!r}") from None
        if isinstance(value, float) and not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}")
        too_low = value < minimum if inclusive else value <= minimum
        if too_low or (maximum is not None and value > maximum):
            lower = f">= {minimum:g}" if inclusive else f"> {minimum:g}"
            rule = lower if maximum is None else f"{lower} and <= {maximum:g}"
            raise argparse.ArgumentTypeError(f"must be {rule}, got {text}")
        return value

    return convert


def _base_url(text: str) -> str:
    parsed = httpx.URL(text)
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise argparse.ArgumentTypeError(f"must be an http(s) URL such as {DEFAULT_URL}, got {text!r}")
    return text.rstrip("/")


def build_parser() -> argparse.ArgumentParser:
    defaults = SimulatorConfig()
    parser = argparse.ArgumentParser(
        prog="python -m loadtests.simulator",
        description="Send simulated sensor readings to the ingestion service until Ctrl-C or --duration.",
        epilog=f"The client secret can also come from ${SECRET_ENV_VAR} (keeps it out of the process list).",
    )
    parser.add_argument("--url", type=_base_url, default=defaults.url, help="service base URL (%(default)s)")
    parser.add_argument("--client-id", default=defaults.client_id, help="client id for POST /auth/token (%(default)s)")
    parser.add_argument(
        "--client-secret",
        default=os.environ.get(SECRET_ENV_VAR, defaults.client_secret),
        help=f"client secret (default: ${SECRET_ENV_VAR}, else the local development secret)",
    )
    parser.add_argument("--devices", type=_number(int, 1, 10_000, inclusive=True), default=defaults.devices,
                        help="number of simulated devices (%(default)s)")
    parser.add_argument("--rate", type=_number(float, 0, inclusive=False), default=defaults.rate,
                        help="items per second per device (%(default)s)")
    parser.add_argument("--shape", choices=("seed002", "seed004"), default=defaults.shape,
                        help="seed002: one tag reading per item; seed004: wide device records (%(default)s)")
    parser.add_argument("--anomaly-rate", type=_number(float, 0, 1, inclusive=True), default=defaults.anomaly_rate,
                        help="fraction of items with an in-range spike the service should flag (%(default)s)")
    parser.add_argument("--batch-size", type=_number(int, 1, MAX_BATCH_SIZE, inclusive=True),
                        default=defaults.batch_size,
                        help="1: POST /ingest per item; more: POST /ingest/batch per device batch (%(default)s)")
    parser.add_argument("--duration", type=_number(float, 0, inclusive=False), default=None,
                        help="stop after this many seconds (default: run until Ctrl-C)")
    parser.add_argument("--seed", type=int, default=None, help="random seed for reproducible values (default: random)")
    parser.add_argument("--spool", type=Path, default=defaults.spool,
                        help="JSONL file for undelivered request bodies, replayed on start (%(default)s)")
    parser.add_argument("--max-attempts", type=_number(int, 1, 100, inclusive=True), default=defaults.max_attempts,
                        help="delivery attempts on connection errors and 5xx before spooling (%(default)s)")
    parser.add_argument("--report-interval", type=_number(float, 0, inclusive=False),
                        default=defaults.report_interval, help="seconds between summary lines (%(default)s)")
    return parser


def parse_config(argv: Sequence[str] | None = None) -> SimulatorConfig:
    args = build_parser().parse_args(argv)
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(2**31)
    return SimulatorConfig(
        url=args.url, client_id=args.client_id, client_secret=args.client_secret, devices=args.devices,
        rate=args.rate, shape=args.shape, anomaly_rate=args.anomaly_rate, batch_size=args.batch_size,
        duration=args.duration, seed=seed, spool=args.spool, max_attempts=args.max_attempts,
        report_interval=args.report_interval,
    )


# --------------------------------------------------------------------------------------------------
# Spool: undelivered request bodies, one JSON document per line
# --------------------------------------------------------------------------------------------------


class Spool:
    """Append-only JSONL file; every append is fsynced because it is the only copy of those readings."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def append(self, bodies: Sequence[Body]) -> None:
        if not bodies:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("ab") as spool_file:
            # A crash mid-write leaves a torn last line; start on a fresh line so it stays the only bad one.
            if spool_file.tell() > 0 and not self._ends_with_newline():
                spool_file.write(b"\n")
            spool_file.write(b"".join(json.dumps(body, separators=(",", ":")).encode() + b"\n" for body in bodies))
            spool_file.flush()
            os.fsync(spool_file.fileno())

    def read(self) -> tuple[list[Body], list[str]]:
        """The spooled bodies, and the lines that are not a JSON object or list (e.g. a torn write)."""
        if not self.path.exists():
            return [], []
        bodies: list[Body] = []
        malformed: list[str] = []
        for line in self.path.read_text(encoding="utf-8", errors="replace").splitlines():
            if not line.strip():
                continue
            try:
                body = json.loads(line)
            except ValueError:
                body = None
            if isinstance(body, dict | list):
                bodies.append(body)
            else:
                malformed.append(line)
        return bodies, malformed

    def truncate(self) -> None:
        if not self.path.exists():
            return
        with self.path.open("r+b") as spool_file:
            spool_file.truncate(0)
            os.fsync(spool_file.fileno())

    def replace(self, bodies: Sequence[Body]) -> None:
        """Atomically rewrite the spool with exactly `bodies` (a crash leaves the old or the new file)."""
        staging = self.path.with_name(self.path.name + ".tmp")
        staging.unlink(missing_ok=True)
        Spool(staging).append(bodies)
        staging.touch()
        os.replace(staging, self.path)

    def _ends_with_newline(self) -> bool:
        with self.path.open("rb") as spool_file:
            spool_file.seek(-1, os.SEEK_END)
            return spool_file.read(1) == b"\n"


def rejected_path(spool_path: Path) -> Path:
    """Where bodies the service refused for good go: kept for inspection, never replayed."""
    return spool_path.with_name(spool_path.stem + ".rejected.jsonl")


# --------------------------------------------------------------------------------------------------
# Delivery
# --------------------------------------------------------------------------------------------------

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


# --------------------------------------------------------------------------------------------------
# The run: replay the spool, then one task per device, summaries every --report-interval seconds
# --------------------------------------------------------------------------------------------------


@dataclass
class Stats:
    """Item counters. sent = handed to the service (new and replayed); accepted = stored or dead-lettered
    (202, also counted in dead_lettered); flagged = the service said is_anomaly."""

    sent: int = 0
    accepted: int = 0
    duplicates: int = 0
    dead_lettered: int = 0
    anomalies_injected: int = 0
    flagged: int = 0
    spooled: int = 0
    replayed: int = 0
    rejected: int = 0
    retries: int = 0
    rate_limited: int = 0
    started_at: float = field(default_factory=time.monotonic, repr=False)

    def line(self, label: str = "") -> str:
        elapsed = time.monotonic() - self.started_at
        counters = " ".join(f"{f.name}={getattr(self, f.name)}" for f in fields(self) if f.name != "started_at")
        return f"[simulator{' ' + label if label else ''} {elapsed:.1f}s] {counters}"


class Simulator:
    def __init__(self, config: SimulatorConfig, stop: asyncio.Event | None = None, out: TextIO = sys.stdout) -> None:
        self.config = config
        self.stop = stop or asyncio.Event()
        self.out = out
        self.stats = Stats()
        self.spool = Spool(config.spool)
        self.rejects = Spool(rejected_path(config.spool))
        self.fatal_error: str | None = None
        self._deliverer: Deliverer | None = None

    async def run(self) -> Stats:
        config = self.config
        print(
            f"simulator: {config.devices} {config.shape} device(s) x {config.rate:g}/s, batch {config.batch_size}, "
            f"anomaly rate {config.anomaly_rate:g} -> {config.url} (seed {config.seed}, spool {config.spool})",
            file=self.out, flush=True,
        )
        timeout = httpx.Timeout(config.request_timeout, connect=min(3.0, config.request_timeout))
        limits = httpx.Limits(max_connections=max(10, config.devices))
        async with httpx.AsyncClient(base_url=config.url, timeout=timeout, limits=limits) as client:
            tokens = TokenProvider(client, config.client_id, config.client_secret)
            self._deliverer = Deliverer(client, tokens, self.stats, self.stop, config)
            reporter = asyncio.create_task(self._report_periodically())
            try:
                await self._replay_spool()
                if not self.stop.is_set():
                    await self._run_devices()
            finally:
                reporter.cancel()
        print(self.stats.line("final"), file=self.out, flush=True)
        if self.fatal_error:
            log.error("stopped: %s", self.fatal_error)
        return self.stats

    async def _replay_spool(self) -> None:
        bodies, malformed = self.spool.read()
        if malformed:
            log.warning("%d unreadable spool line(s) moved to %s", len(malformed), self.rejects.path)
            self._write_rejected_lines(malformed)
            self.spool.replace(bodies)
        if not bodies:
            self.spool.truncate()
            return
        log.info("replaying %d spooled request(s) from %s", len(bodies), self.spool.path)
        for body in bodies:
            if self.stop.is_set():
                return
            if await self._deliver(body, replay=True) is Outcome.UNDELIVERED:
                # Keep every line: those already acknowledged are deduplicated by the service next time.
                log.warning("service still unavailable: keeping the spool for the next start")
                return
        self.spool.truncate()
        log.info("spool replayed and truncated")

    async def _run_devices(self) -> None:
        config = self.config
        devices = make_devices(config.shape, config.devices, config.seed)
        started_monotonic, started_wall = time.monotonic(), datetime.now(UTC)
        async with asyncio.TaskGroup() as group:  # an unexpected error in one device cancels the others
            for device in devices:
                group.create_task(self._run_device(device, started_monotonic, started_wall))

    async def _run_device(self, device: Device, started_monotonic: float, started_wall: datetime) -> None:
        config = self.config
        rng = device_rng(config.seed, device.index)
        pending: list[Item] = []
        tick = 0
        while not self.stop.is_set():
            offset = tick_offset(device.index, tick, config.devices, config.rate)
            # A device that fell behind (rate limited, slow service) drops the ticks it missed at the deadline
            # rather than stretching the run.
            if config.duration is not None and config.duration <= max(offset, time.monotonic() - started_monotonic):
                break
            if await wait_for_event(self.stop, started_monotonic + offset - time.monotonic()):
                break
            # The scheduled moment, not "now": a device that fell behind keeps unique, evenly spaced timestamps.
            item = generate_item(config.shape, rng, device, tick=tick,
                                 timestamp=started_wall + timedelta(seconds=offset), anomaly_rate=config.anomaly_rate)
            tick += 1
            self.stats.anomalies_injected += item.anomaly
            pending.append(item.body)
            if len(pending) >= config.batch_size:
                body, pending = self._body(pending), []
                await self._deliver(body)
        if pending:
            body = self._body(pending)
            if self.stop.is_set():
                self._spool([body])
            else:
                await self._deliver(body)

    def _body(self, items: list[Item]) -> Body:
        return items[0] if self.config.batch_size == 1 else list(items)

    async def _deliver(self, body: Body, *, replay: bool = False) -> Outcome:
        assert self._deliverer is not None
        count = item_count(body)
        self.stats.sent += count
        self.stats.replayed += count if replay else 0
        try:
            result = await self._deliverer.deliver(body)
        except FatalDeliveryError as error:
            if self.fatal_error is None:
                self.fatal_error = str(error)
            self.stop.set()
            result = DeliveryResult(Outcome.UNDELIVERED, detail=str(error))
        if result.outcome is Outcome.DELIVERED:
            self._count_acknowledged(result)
        elif result.outcome is Outcome.REJECTED:
            self.stats.rejected += count
            log.warning("service refused %d item(s), kept in %s: %s", count, self.rejects.path, result.detail)
            self.rejects.append([body])
        elif not replay:  # a replayed body is still in the spool
            log.warning("could not deliver %d item(s), spooled: %s", count, result.detail)
            self._spool([body])
        return result.outcome

    def _count_acknowledged(self, result: DeliveryResult) -> None:
        self.stats.flagged += result.flagged
        for status in result.statuses:
            if status == "duplicate":
                self.stats.duplicates += 1
            else:
                self.stats.accepted += 1
                self.stats.dead_lettered += status == "accepted"

    def _spool(self, bodies: list[Body]) -> None:
        self.spool.append(bodies)
        self.stats.spooled += sum(item_count(body) for body in bodies)

    def _write_rejected_lines(self, lines: list[str]) -> None:
        self.rejects.path.parent.mkdir(parents=True, exist_ok=True)
        with self.rejects.path.open("a", encoding="utf-8") as rejected_file:
            rejected_file.writelines(line + "\n" for line in lines)

    async def _report_periodically(self) -> None:
        while True:
            await asyncio.sleep(self.config.report_interval)
            print(self.stats.line(), file=self.out, flush=True)


# --------------------------------------------------------------------------------------------------
# Entry point
# --------------------------------------------------------------------------------------------------

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


async def run_until_signal(config: SimulatorConfig) -> int:
    """Run with Ctrl-C/SIGTERM meaning "finish in-flight requests, spool the rest"; a second signal
    gets the default behaviour (immediate exit)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()

    def request_stop(signum: signal.Signals) -> None:
        log.info("%s: finishing in-flight requests and spooling the rest (repeat to abort)", signum.name)
        stop.set()
        for stop_signal in STOP_SIGNALS:
            loop.remove_signal_handler(stop_signal)

    for stop_signal in STOP_SIGNALS:
        loop.add_signal_handler(stop_signal, request_stop, stop_signal)
    simulator = Simulator(config, stop)
    await simulator.run()
    return 1 if simulator.fatal_error else 0


def main(argv: Sequence[str] | None = None) -> int:
    config = parse_config(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s simulator %(levelname)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request would drown the summaries
    return asyncio.run(run_until_signal(config))


if __name__ == "__main__":
    sys.exit(main())
