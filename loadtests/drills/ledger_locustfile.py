"""A ledger-keeping ingest user for the drills (make drill-bluegreen, make drill): every acknowledged reading is recorded.

    locust -f loadtests/drills/ledger_locustfile.py --headless -u 200 -r 50 --run-time 60s --host http://127.0.0.1:8080

Each user obtains its own token from POST /auth/token with the local `loadtest` client, then posts
single readings with unique timestamps to POST /ingest and now and then reads GET /data. Only a 2xx
answer counts as a success. Reading number `n` has the timestamp `BASE + n microseconds`, so a stored
row maps back to the request that sent it.

DRILL_DEVICE_PREFIX (default `drill-`) names the devices (`<prefix><0..49>`), so several drills can share
one database and data lake and each finds its own readings.

With DRILL_LEDGER=<path> the run writes a JSON ledger when Locust quits (used by
`loadtests.drills.bluegreen` and `loadtests.drills.faults` to check the database): the base timestamp, how many readings were
sent, the numbers of the readings answered at all (any status or error), answered 201/200 (stored or
already stored) and answered 202 (dead-lettered), and every request as [name, start, end, status, ok] (epoch seconds; status 0 = no response).
"""

from __future__ import annotations

import itertools
import json
import os
import random
from datetime import UTC, datetime, timedelta

from locust import FastHttpUser, between, events, task

CREDENTIALS = {"client_id": "loadtest", "client_secret": "loadtest-local-secret"}
DEVICES = 50
DEVICE_PREFIX = os.environ.get("DRILL_DEVICE_PREFIX", "drill-")
TAGS = ("fermenter_temp", "fermenter_ph", "agitator_rpm")
VALUES = {"fermenter_temp": 37.0, "fermenter_ph": 7.0, "agitator_rpm": 450.0}
BASE = (datetime.now(UTC) - timedelta(hours=1)).replace(microsecond=0)


class Ledger:
    """What this Locust process sent and what the service acknowledged."""

    def __init__(self) -> None:
        self.numbers = itertools.count()
        self.sent = 0
        self.acknowledged: list[int] = []
        self.accepted: list[int] = []
        self.answered: list[int] = []
        self.requests: list[tuple[str, float, float, int, bool]] = []

    def next_reading(self) -> tuple[int, str]:
        """A new reading number and its JSON body (series cycle over devices x tags)."""
        number = next(self.numbers)
        self.sent += 1
        tag = TAGS[number % len(TAGS)]
        moment = (BASE + timedelta(microseconds=number)).isoformat()
        value = VALUES[tag] + (number % 7 - 3) * 0.01
        body = f'{{"timestamp":"{moment}","tag":"{tag}","value":{value},"device_id":"{DEVICE_PREFIX}{number % DEVICES}"}}'
        return number, body

    def write(self, path: str) -> None:
        document = {"base": BASE.isoformat(), "sent": self.sent, "acknowledged": self.acknowledged,
                    "accepted": self.accepted, "answered": self.answered, "requests": self.requests}
        with open(path, "w") as file:
            json.dump(document, file)


LEDGER = Ledger()


class IngestUser(FastHttpUser):
    """Posts single readings (20 : 1) and reads recent data of one device."""

    wait_time = between(0.1, 0.3)

    def on_start(self) -> None:
        with self.client.post("/auth/token", json=CREDENTIALS, name="POST /auth/token",
                              catch_response=True) as response:
            if response.status_code != 200:
                response.failure(f"token: HTTP {response.status_code}")
                self.stop()
                return
            token = response.json()["access_token"]
        self.headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}

    @task(20)
    def ingest(self) -> None:
        number, body = LEDGER.next_reading()
        with self.client.post("/ingest", data=body, headers=self.headers, name="POST /ingest",
                              catch_response=True) as response:
            LEDGER.answered.append(number)
            if response.status_code in (200, 201):
                LEDGER.acknowledged.append(number)
            elif response.status_code == 202:
                LEDGER.accepted.append(number)
            _judge(response)

    @task(1)
    def read(self) -> None:
        device = f"{DEVICE_PREFIX}{random.randrange(DEVICES)}"
        with self.client.get(f"/data?device_id={device}&limit=10", headers=self.headers, name="GET /data",
                             catch_response=True) as response:
            _judge(response)


def _judge(response) -> None:
    """Only 2xx is a success (connection errors have status 0)."""
    if 200 <= response.status_code < 300:
        response.success()
    else:
        response.failure(f"HTTP {response.status_code}")


@events.request.add_listener
def _log_request(name, start_time, response_time, response, exception, **_kwargs) -> None:
    status = getattr(response, "status_code", 0) or 0
    LEDGER.requests.append((name, start_time, start_time + response_time / 1000, status, exception is None))


@events.quitting.add_listener
def _write_ledger(**_kwargs) -> None:
    path = os.environ.get("DRILL_LEDGER")
    if path:
        LEDGER.write(path)
