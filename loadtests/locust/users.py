"""The load-test users and the data they send (deterministic from a seed, ~5% anomalies).

HTTP contract these users rely on (what a stand-in app, e.g. the bench's bare-ASGI ceiling, must answer):

    POST /auth/token            JSON {"client_id", "client_secret"}         -> 200 JSON {"access_token": str, ...}
    POST /ingest                JSON seed-002 reading {"timestamp", "tag", "value", "device_id"}  -> 2xx
    POST /ingest                JSON seed-004 device record {"device_id", "device_type", "temperature",
                                "humidity", "battery_level", "energy_consumption", "latitude", "longitude",
                                "status", "firmware_version", "timestamp"}                          -> 2xx
    POST /ingest/batch          JSON list of seed-002 readings (Profile.batch_size of them)        -> 2xx
    GET  /data?device_id=&tag=&limit=50                                                            -> 2xx
    GET  /sensors/stats                                                                             -> 2xx
    GET  /sensors/anomalies/count                                                                   -> 2xx

Every request but the token carries `Authorization: Bearer <access_token>` and (POSTs)
`Content-Type: application/json`. Only a 2xx answer counts as a success; the only response field
read is `access_token`. A 401 makes the user fetch a new token before its next request (tokens expire
during a soak).

Request names in the statistics: "POST /auth/token", "POST /ingest", "POST /ingest [seed-004]",
"POST /ingest/batch", "GET /data", "GET /sensors/stats", "GET /sensors/anomalies/count".

Each user gets its own token in `on_start` (with the configured load-test client: --loadtest-client-id /
--loadtest-client-secret, else $LOADTEST_CLIENT_ID / $LOADTEST_CLIENT_SECRET, else the local `loadtest`
client) and its own device id `lt<seed>-w<worker>-<n>`; its readings carry unique, increasing
timestamps (one millisecond apart from the moment it started), so nothing is a duplicate. Values come
from loadtests.simulator.generation's generators seeded by (--data-seed, worker, user number).
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import random
import urllib.parse
import urllib.request
from datetime import UTC, datetime, timedelta
from typing import Any

from locust import FastHttpUser, task
from locust.exception import StopUser
from locust.runners import WorkerRunner

from loadtests.locust import target_guard
from loadtests.locust.pacing import Pacer
from loadtests.locust.profiles import active_profile
from loadtests.simulator.generation import (
    SEED002_TAGS,
    Device,
    generate_item,
    site_device,
)

log = logging.getLogger("loadtests")

ANOMALY_RATE = 0.05
LOCAL_CLIENT_ID = "loadtest"
LOCAL_CLIENT_SECRET = "loadtest-local-secret"  # noqa: S105 - the documented local-only secret (app/settings.py)
CLIENT_ID_ENV, CLIENT_SECRET_ENV = "LOADTEST_CLIENT_ID", "LOADTEST_CLIENT_SECRET"
DEFAULT_SEED = 1
JSON_HEADERS = {"Content-Type": "application/json"}
# History seeded at test start so the readers read something: HISTORY_DEVICES devices, one reading a
# minute over the last HISTORY_MINUTES minutes (tags rotating), plus one seed-004 record per minute.
HISTORY_DEVICES = 3
HISTORY_MINUTES = 60
READ_LIMIT = 50

_user_numbers = itertools.count()  # per Locust process; the worker index keeps processes apart


def add_locust_arguments(parser: Any) -> None:
    parser.add_argument("--loadtest-client-id", default=os.environ.get(CLIENT_ID_ENV, LOCAL_CLIENT_ID),
                        help=f"client id for POST /auth/token (${CLIENT_ID_ENV}, else {LOCAL_CLIENT_ID})")
    parser.add_argument("--loadtest-client-secret", default=os.environ.get(CLIENT_SECRET_ENV, LOCAL_CLIENT_SECRET),
                        include_in_web_ui=False,  # the page would carry it, masked or not
                        help=f"its secret (${CLIENT_SECRET_ENV}, else the local development secret)")
    parser.add_argument("--data-seed", type=int, default=DEFAULT_SEED,
                        help=f"seed of the generated data (default {DEFAULT_SEED})")


def credentials(options: Any) -> dict[str, str]:
    if options is None:
        return {"client_id": os.environ.get(CLIENT_ID_ENV, LOCAL_CLIENT_ID),
                "client_secret": os.environ.get(CLIENT_SECRET_ENV, LOCAL_CLIENT_SECRET)}
    return {"client_id": options.loadtest_client_id, "client_secret": options.loadtest_client_secret}


def data_seed(options: Any) -> int:
    return int(getattr(options, "data_seed", DEFAULT_SEED) or DEFAULT_SEED)


# --------------------------------------------------------------------------------------------------
# Data: a device per user, and its readings
# --------------------------------------------------------------------------------------------------


def make_device(seed: int, worker: int, number: int) -> Device:
    rng = random.Random(f"{seed}:{worker}:{number}:device")
    return site_device(rng, number, f"lt{seed}-w{worker}-{number:05d}")


class DeviceFeed:
    """One device's items: seeded values, a unique timestamp each (`start + tick` milliseconds)."""

    def __init__(self, device: Device, seed: int, start: datetime) -> None:
        self.device = device
        self.rng = random.Random(f"{seed}:{device.device_id}:values")
        self.start = start
        self.tick = 0
        self.anomalies = 0  # items generated as anomalies (in-range spikes the z-score should flag)

    def next(self, shape: str, at: datetime | None = None) -> dict[str, Any]:
        moment = at or self.start + timedelta(milliseconds=self.tick)
        item = generate_item(shape, self.rng, self.device, tick=self.tick, timestamp=moment, anomaly_rate=ANOMALY_RATE)
        self.tick += 1
        self.anomalies += item.anomaly
        return item.body

    def batch(self, size: int) -> list[dict[str, Any]]:
        return [self.next("seed002") for _ in range(size)]


def history(seed: int, now: datetime) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Seed-002 readings and seed-004 records of HISTORY_DEVICES devices over the last hour."""
    readings, records = [], []
    start = now.replace(microsecond=0) - timedelta(minutes=HISTORY_MINUTES)
    for index in range(HISTORY_DEVICES):
        device = make_device(seed, worker=0, number=index)
        device = Device(index, f"lt{seed}-history-{index}", device.device_type, device.latitude, device.longitude,
                        device.firmware_version)
        feed = DeviceFeed(device, seed, start)
        for minute in range(HISTORY_MINUTES):
            at = start + timedelta(minutes=minute)
            readings.append(feed.next("seed002", at))
            records.append(feed.next("seed004", at + timedelta(milliseconds=1)))
    return readings, records


def history_device_ids(seed: int) -> list[str]:
    return [f"lt{seed}-history-{index}" for index in range(HISTORY_DEVICES)]


def seed_history(host: str, options: Any, now: datetime | None = None) -> int:
    """Post the history in two batches before the users start; returns the number of items sent.
    A repeat with the same seed within the same second is stored once (the service deduplicates)."""
    seed = data_seed(options)
    readings, records = history(seed, now or datetime.now(UTC))
    token = _post_json(f"{host}/auth/token", credentials(options))["access_token"]
    for items in (readings, records):
        _post_json(f"{host}/ingest/batch", items, token)
    return len(readings) + len(records)


def _post_json(url: str, body: Any, token: str | None = None) -> Any:
    headers = {**JSON_HEADERS, **({"Authorization": f"Bearer {token}"} if token else {})}
    # S310: the URL is the load-test target given on the command line (http or https).
    request = urllib.request.Request(url, data=json.dumps(body).encode(), headers=headers, method="POST")  # noqa: S310
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
        return json.load(response)


# --------------------------------------------------------------------------------------------------
# Users
# --------------------------------------------------------------------------------------------------


def _worker_index(user: FastHttpUser) -> int:
    runner = user.environment.runner
    return runner.worker_index if isinstance(runner, WorkerRunner) else 0


class ApiUser(FastHttpUser):
    """A client of the API: its own token and device; waits per the active profile (closed loop or paced)."""

    abstract = True
    # Verify the platform's certificate: the users send the load-test client's secret (FastHttpUser's
    # default is not to verify).
    insecure = False

    def on_start(self) -> None:
        try:
            target_guard.check(self.environment, self.host)
        except target_guard.TargetNotAllowed as refusal:
            log.error("user stopped before its first request: %s", refusal)
            raise StopUser() from None
        options = self.environment.parsed_options
        self.profile = active_profile(self.environment)
        number = next(_user_numbers)
        seed = data_seed(options)
        self.device = make_device(seed, _worker_index(self), number)
        self.feed = DeviceFeed(self.device, seed, datetime.now(UTC))
        self.readable_devices = history_device_ids(seed)
        self.read_rng = random.Random(f"{seed}:{self.device.device_id}:reads")
        self.auth: dict[str, str] = {}
        self.pacer = Pacer(self.profile.pacing_s, random.Random(f"{seed}:{self.device.device_id}:phase")) \
            if self.profile.pacing_s else None
        self.authenticate()
        if self.pacer is not None:
            self.wait()  # the user's phase (loadtests/locust/pacing.py), before its first task

    def authenticate(self) -> bool:
        with self.client.post("/auth/token", json=credentials(self.environment.parsed_options),
                              name="POST /auth/token", catch_response=True) as response:
            if not 200 <= response.status_code < 300:
                response.failure(f"token: HTTP {response.status_code}")
                self.auth = {}
                return False
            self.auth = {"Authorization": f"Bearer {response.json()['access_token']}"}
            return True

    def wait_time(self) -> float:
        """0 in a closed loop; otherwise one task per pacing_s at the user's own phase."""
        return self.pacer.wait() if self.pacer is not None else 0.0

    def post(self, path: str, body: Any, name: str) -> None:
        self.request("POST", path, name, data=json.dumps(body), headers=JSON_HEADERS)

    def get(self, path: str, name: str, params: dict[str, Any] | None = None) -> None:
        if params:
            path = f"{path}?{urllib.parse.urlencode(params)}"
        self.request("GET", path, name)

    def request(self, method: str, path: str, name: str, **kwargs: Any) -> None:
        if not self.auth and not self.authenticate():
            return
        headers = {**kwargs.pop("headers", {}), **self.auth}
        with self.client.request(method, path, name=name, headers=headers, catch_response=True, **kwargs) as response:
            if 200 <= response.status_code < 300:
                response.success()
                return
            response.failure(f"HTTP {response.status_code}")
            if response.status_code == 401:
                self.auth = {}  # expired or revoked: a new token before the next request


class SingleIngestUser(ApiUser):
    """A seed-002 device posting one reading per request."""

    @task
    def ingest_reading(self) -> None:
        self.post("/ingest", self.feed.next("seed002"), "POST /ingest")


class TelemetryUser(ApiUser):
    """A seed-004 device posting wide telemetry records (stored as one reading per metric)."""

    @task
    def ingest_telemetry(self) -> None:
        self.post("/ingest", self.feed.next("seed004"), "POST /ingest [seed-004]")


class BatchIngestUser(ApiUser):
    """A gateway posting Profile.batch_size seed-002 readings per request."""

    @task
    def ingest_batch(self) -> None:
        self.post("/ingest/batch", self.feed.batch(self.profile.batch_size), "POST /ingest/batch")


class DashboardUser(ApiUser):
    """A dashboard reading recent data of the seeded devices, the per-tag statistics and anomaly counts."""

    @task(4)
    def recent_readings(self) -> None:
        params = {"device_id": self.read_rng.choice(self.readable_devices),
                  "tag": self.read_rng.choice(SEED002_TAGS), "limit": READ_LIMIT}
        self.get("/data", "GET /data", params)

    @task(1)
    def tag_statistics(self) -> None:
        self.get("/sensors/stats", "GET /sensors/stats")

    @task(1)
    def anomaly_count(self) -> None:
        self.get("/sensors/anomalies/count", "GET /sensors/anomalies/count")


USER_CLASSES = (SingleIngestUser, TelemetryUser, BatchIngestUser, DashboardUser)


def apply_mix(profile_mix: dict[str, int] | Any) -> None:
    """Set each class's weight from the profile (read by the dispatcher on the master when a run starts)."""
    for user_class in USER_CLASSES:
        user_class.weight = int(profile_mix.get(user_class.__name__, 0))
    if not any(user_class.weight for user_class in USER_CLASSES):
        raise ValueError("the profile's mix gives every user class weight 0")


def seed_history_if_master(environment: Any) -> None:
    """Called at test start: the master (or the single local process) seeds the history once."""
    if isinstance(environment.runner, WorkerRunner) or not environment.host:
        return
    try:
        target_guard.check(environment, environment.host)
    except target_guard.TargetNotAllowed as refusal:
        log.error("history not seeded: %s", refusal)
        return
    try:
        count = seed_history(environment.host.rstrip("/"), environment.parsed_options)
        log.info("seeded %d history items for the readers", count)
    except Exception as error:  # the readers then read empty results; the run itself is still valid
        log.error("history seeding failed (readers will read little): %s", error)
