"""`make bench-ingest`: ingest throughput of ONE app process into PostgreSQL, over real HTTP.

    python -m loadtests.bench.ingest [--duration 20] [--concurrency 64] [--batch-size 100]

Starts a throw-away PostgreSQL cluster and `uvicorn app.main:app` (one worker), then drives it
from this process with closed-loop clients (each sends its next request when the previous one
was answered):
  1. batch ingest: POST /ingest/batch with `--batch-size` readings per request -> readings/s;
  2. single readings: POST /ingest -> requests/s and latency percentiles;
  3. the database's own ceiling: the same kind of rows (same series, unique timestamps) written straight
     into the same PostgreSQL with COPY (asyncpg `copy_records_to_table`, COPY_CHUNK rows per
     transaction over COPY_CONNECTIONS connections, for as long as a phase), so the per-series statistics
     trigger and the indexes cost what they cost the app. The app's batch rate is printed as a ratio to
     it: on a noisy machine the ratio is the comparable figure. (COPY writes no outbox rows: the
     outbox is the app's own cost.)
Results are printed and appended to docs/benchmarks.md with date, machine and git revision.
Client, server and PostgreSQL share this machine's cores: the numbers are a floor.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import asyncpg

from devstack.local_resources import LOCAL_APP_ENV
from devstack.postgres import PostgresServer
from devstack.processes import free_port, stop, wait_for_port
from loadtests.bench.benchmarks_doc import add_entry
from loadtests.bench.flags import DOC
from loadtests.harness.provenance import machine, revision

RESULTS = DOC
SECTION = "## Ingest throughput: `make bench-ingest`"
CREDENTIALS = {"client_id": "loadtest", "client_secret": "loadtest-local-secret"}
DEVICES = 50
TAGS = ("fermenter_temp", "fermenter_ph", "agitator_rpm")
VALUES = {"fermenter_temp": 37.0, "fermenter_ph": 7.0, "agitator_rpm": 450.0}
VALUE_STEPS = 7  # each series cycles through 7 values 0.01 apart: a steady spread, no anomaly
# Enough closed-loop clients to load the machine: at 32 the app process ran at ~67 % of a core and PostgreSQL
# at ~89 % (the rate was in-flight readings / commit latency); at 64 the two cores are busy (docs/benchmarks.md).
CLIENTS = 64
COPY_CHUNK = 1000  # rows per COPY (one transaction each)
COPY_CONNECTIONS = 2  # one per core of the reference machine
COPY_COLUMNS = ("device_id", "tag", "ts", "value", "is_anomaly", "z_score")


@dataclass
class Phase:
    name: str
    requests: int = 0
    readings: int = 0
    failures: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    seconds: float = 0.0

    def percentile(self, q: float) -> float:
        if not self.latencies_ms:
            return float("nan")
        return statistics.quantiles(self.latencies_ms, n=1000, method="inclusive")[int(q * 10) - 1]


class Bodies:
    """Unique readings (distinct timestamps) over a fixed set of series, pre-rendered cheaply.

    Reading `index` is at `start` + `index` microseconds; its text is assembled from cached pieces
    (the second's ISO prefix, the value's repr), so the client spends its CPU on HTTP, not on
    formatting: it shares the machine with the server it measures."""

    def __init__(self, start: datetime | None = None) -> None:
        self.start = (start or datetime.now(UTC) - timedelta(hours=6)).replace(microsecond=0)
        self.counter = 0
        self._seconds: list[str] = []  # ISO-8601 of start + n seconds, without the fraction and offset
        self._values = {(tag, step): repr(self.value(tag, step)) for tag in TAGS for step in range(VALUE_STEPS)}

    @staticmethod
    def value(tag: str, step: int) -> float:
        return VALUES[tag] + (step - 3) * 0.01

    def reading(self) -> str:
        index = self.counter
        self.counter += 1
        tag = TAGS[index % len(TAGS)]
        second, micros = divmod(index, 1_000_000)
        while len(self._seconds) <= second:
            self._seconds.append((self.start + timedelta(seconds=len(self._seconds))).strftime("%Y-%m-%dT%H:%M:%S"))
        return (f'{{"timestamp":"{self._seconds[second]}.{micros:06d}+00:00","tag":"{tag}",'
                f'"value":{self._values[tag, index % VALUE_STEPS]},"device_id":"bench-{index % DEVICES}"}}')

    def record(self) -> tuple:
        """The row the app would store for `reading()`: same series, a unique timestamp, not anomalous."""
        index = self.counter
        self.counter += 1
        tag = TAGS[index % len(TAGS)]
        return (f"bench-{index % DEVICES}", tag, self.start + timedelta(microseconds=index),
                self.value(tag, index % VALUE_STEPS), False, 0.0)

    def batch(self, size: int) -> bytes:
        return ("[" + ",".join(self.reading() for _ in range(size)) + "]").encode()


async def run_phase(base: str, token: str, *, name: str, path: str, batch_size: int, concurrency: int,
                    duration: float, bodies: Bodies) -> Phase:
    phase = Phase(name)
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    deadline = time.perf_counter() + duration
    # aiohttp: a fraction of httpx's CPU per request, so the client does not cap the measurement.
    connector = aiohttp.TCPConnector(limit=concurrency)
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(base, connector=connector, timeout=timeout) as client:

        async def worker() -> None:
            while time.perf_counter() < deadline:
                body = bodies.batch(batch_size) if batch_size > 1 else bodies.reading().encode()
                sent = time.perf_counter()
                try:
                    async with client.post(path, data=body, headers=headers) as response:
                        await response.read()
                        ok = response.status in (200, 201, 202)
                except aiohttp.ClientError:
                    ok = False
                phase.latencies_ms.append((time.perf_counter() - sent) * 1000)
                phase.requests += 1
                if ok:
                    phase.readings += batch_size
                else:
                    phase.failures += 1

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        phase.seconds = time.perf_counter() - started
    return phase


async def copy_ceiling(dsn: str, *, duration: float, bodies: Bodies) -> Phase:
    """COPY rows into `readings` for `duration` seconds: the database's ingest ceiling on this machine."""
    phase = Phase(f"COPY ceiling ({COPY_CONNECTIONS} connections, {COPY_CHUNK} rows per COPY)")
    pool = await asyncpg.create_pool(dsn, min_size=COPY_CONNECTIONS, max_size=COPY_CONNECTIONS)
    deadline = time.perf_counter() + duration
    try:
        async def worker() -> None:
            async with pool.acquire() as connection:
                while time.perf_counter() < deadline:
                    records = [bodies.record() for _ in range(COPY_CHUNK)]
                    sent = time.perf_counter()
                    await connection.copy_records_to_table("readings", records=records, columns=COPY_COLUMNS)
                    phase.latencies_ms.append((time.perf_counter() - sent) * 1000)
                    phase.requests += 1
                    phase.readings += COPY_CHUNK

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(COPY_CONNECTIONS)))
        phase.seconds = time.perf_counter() - started
    finally:
        await pool.close()
    return phase


def ratio_to_copy(batch: Phase, copy: Phase) -> float:
    """The app's batch readings/s as a fraction of COPY's readings/s."""
    copy_rate = copy.readings / copy.seconds if copy.seconds else 0.0
    return (batch.readings / batch.seconds) / copy_rate if copy_rate and batch.seconds else 0.0


def record(batch: Phase, single: Phase, args: argparse.Namespace, copy: Phase | None = None) -> str:
    today = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    command = (f"make bench-ingest (python -m loadtests.bench.ingest --duration {args.duration} "
               f"--concurrency {args.concurrency} --batch-size {args.batch_size})")
    rows = [
        f"\n### {today} — revision {revision()}\n",
        f"Machine: {machine()}. Command: `{command}`. One uvicorn worker, PostgreSQL 15 on the same machine, "
        "clients in the benchmark process.\n",
        "| phase | requests | readings | failures | readings/s | requests/s | p50 ms | p95 ms | p99 ms |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for phase in (batch, single, *([copy] if copy else [])):
        rows.append(
            f"| {phase.name} | {phase.requests} | {phase.readings} | {phase.failures} | "
            f"{phase.readings / phase.seconds:,.0f} | {phase.requests / phase.seconds:,.0f} | "
            f"{phase.percentile(50):.1f} | {phase.percentile(95):.1f} | {phase.percentile(99):.1f} |"
        )
    if copy is not None:
        rows.append(f"\nApp batch ingest / COPY ceiling of the same rows into the same PostgreSQL (statistics "
                    f"trigger included): **{ratio_to_copy(batch, copy):.2f}** (COPY rows: latencies are per "
                    f"{COPY_CHUNK}-row COPY).")
    return "\n".join(rows) + "\n"


async def benchmark(args: argparse.Namespace) -> tuple[Phase, Phase, Phase]:
    postgres = PostgresServer().start()
    port = free_port()
    env = {**os.environ, **LOCAL_APP_ENV, "SENSOR_DATABASE_URL": postgres.url, "SENSOR_DB_POOL_SIZE": "20",
           "SENSOR_DEAD_LETTER_DIR": str(Path(postgres.root) / "dead-letter"), "SENSOR_LOG_LEVEL": "WARNING"}
    server = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "app.main:app", "--host", "127.0.0.1", "--port", str(port),
         "--no-access-log", "--backlog", "2048", "--log-level", "warning"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port, timeout=60, process=server)
        base = f"http://127.0.0.1:{port}"
        async with aiohttp.ClientSession(base) as client, client.post("/auth/token", json=CREDENTIALS) as response:
            token = (await response.json())["access_token"]
        bodies = Bodies()
        # Warm-up: windows of every series and the connection pool.
        await run_phase(base, token, name="warm-up", path="/ingest/batch", batch_size=args.batch_size,
                        concurrency=4, duration=2, bodies=bodies)
        batch = await run_phase(base, token, name=f"batch of {args.batch_size}", path="/ingest/batch",
                                batch_size=args.batch_size, concurrency=args.concurrency,
                                duration=args.duration, bodies=bodies)
        single = await run_phase(base, token, name="single reading", path="/ingest", batch_size=1,
                                 concurrency=args.concurrency, duration=args.duration, bodies=bodies)
        # The app stays up (idle) so PostgreSQL has the same neighbours; its relay is off (no broker).
        copy = await copy_ceiling(postgres.url.replace("postgresql+asyncpg://", "postgresql://"),
                                  duration=args.duration, bodies=bodies)
        return batch, single, copy
    finally:
        server.send_signal(signal.SIGTERM)
        stop(server, timeout=30)
        postgres.destroy()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtests.bench.ingest", description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=20.0, help="seconds per phase (> 0)")
    parser.add_argument("--concurrency", type=int, default=CLIENTS, help=f"closed-loop clients ({CLIENTS}; >= 1)")
    parser.add_argument("--batch-size", type=int, default=100, help="readings per batch request (1-1000)")
    parser.add_argument("--no-record", action="store_true", help=f"do not add the entry to {RESULTS}")
    args = parser.parse_args(argv)
    if args.duration <= 0:
        parser.error(f"--duration must be > 0, got {args.duration}")
    if args.concurrency < 1:
        parser.error(f"--concurrency must be >= 1, got {args.concurrency}")
    if not 1 <= args.batch_size <= 1000:
        parser.error(f"--batch-size must be between 1 and 1000, got {args.batch_size}")
    batch, single, copy = asyncio.run(benchmark(args))
    text = record(batch, single, args, copy)
    print(text)
    print(json.dumps({"batch_readings_per_second": round(batch.readings / batch.seconds),
                      "single_requests_per_second": round(single.requests / single.seconds),
                      "copy_readings_per_second": round(copy.readings / copy.seconds),
                      "batch_ratio_to_copy": round(ratio_to_copy(batch, copy), 3)}))
    if not args.no_record:
        add_entry(RESULTS, SECTION, text)
    return 0 if batch.failures == 0 and single.failures == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
