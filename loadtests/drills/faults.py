"""`make drill`: kill or slow down each part of the full local profile under Locust load and prove
that no acknowledged reading is lost or stored twice, in the database and in the data lake.

    python -m loadtests.drills.faults [--fault-seconds 30] [--users 200] [--only postgres,broker,app,slow-db]

The stack (all on 127.0.0.1): PostgreSQL, moto S3, the tansu broker, two app processes
(`uvicorn app.main:app`, each with the outbox relay and its own dead-letter directory) behind HAProxy,
and the local archiver pipeline consuming the topic into the moto data-lake bucket. The broker drill
gets a stack of its own whose tansu uses the `s3://` storage engine on moto (durable like MSK: a
restarted broker keeps topics and consumer offsets); the others share one with `memory://` storage
(see run_drills for why). HAProxy re-sends a request whose connection failed or whose server closed
it without an answer (`retry-on conn-failure empty-response`) to the other process, and takes a
process out at its first connection error; that is safe only because ingest is idempotent: a
reading already stored is answered 200 and not stored again.

Each drill runs headless Locust (loadtests/drills/ledger_locustfile.py, its own device prefix) for warm-up +
fault + after seconds, with the fault injected after the warm-up:

  postgres  PostgreSQL stopped like a crash (`pg_ctl stop -m immediate`), restarted after the fault;
  broker    tansu SIGKILLed, restarted on the same port and storage after the fault;
  app       one app process SIGKILLed, restarted after the fault (the other keeps serving);
  slow-db   a session holds `LOCK TABLE readings IN ACCESS EXCLUSIVE MODE` for the fault time;
  failover  an RDS Multi-AZ failover (its own stack: primary + synchronous hot standby behind one TCP
            endpoint, loadtests/drills/failover_cluster.py): the primary crashes and is fenced, the endpoint
            leads nowhere for the outage (`--failover-seconds`, default 60), then the standby is
            promoted and the endpoint moves to it. The app processes are not restarted.

Then the reconciliation: the ledger's acknowledged readings (answered 201/200/202) against the
database rows and the lake's Parquet records, waiting until both hold every one of them (time to
drain, from the end of the load). lost = acknowledged but not found; duplicated = found more than
once (database and lake counted separately; in the lake every record of a reading beyond the first
counts, even though readers could deduplicate on `id`). A drill passes with 0 lost, 0 duplicated
and no 5xx or connection error answered to POST /ingest (the dead-letter store works throughout).

Also reported per drill: dead-letter objects written (counted from the apps' one log line per letter)
against requests answered 202, letters per second of fault and per app process (task), the time from
the fault's end to the first POST /ingest answered 201 that started after it (recover s), and for the
failover the app connections the old primary held when it died (all of them discarded by the pools)
and the connections on the new primary after recovery.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import itertools
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterable
from contextlib import ExitStack
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import boto3
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from devstack.local_resources import ARCHIVER_WINDOW_SECONDS, LOCAL_AWS, LOCAL_BUCKET, LOCAL_TOPIC
from devstack.moto_s3 import MotoServer
from devstack.postgres import PostgresServer
from devstack.processes import free_port, stop
from devstack.tansu import TansuBroker, s3_storage_env
from loadtests.drills.failover_cluster import ReplicatedDatabase
from loadtests.drills.ledger_load import start_locust
from loadtests.harness.app_processes import EXIT_TIMEOUT, start_app, wait_ready
from loadtests.harness.haproxy import HAProxy, ensure_haproxy
from loadtests.harness.progress import ticking
from loadtests.harness.provenance import machine, revision

RESULTS = Path("docs/reliability.md")
SECTION = "## Fault drills"
DRILLS = ("postgres", "broker", "app", "slow-db", "failover")
LETTER_LINE = b"dead letter written:"  # app.main logs one such line per dead-letter object
BROKER_BUCKET = "tansu"
TOPIC_PARTITIONS = 3
MICROSECOND = timedelta(microseconds=1)
# The two app processes keep HAProxy's server names from the blue/green drill.
APPS = ("blue", "green")
KILLED_APP = "green"

# A line every 5 s while a drill would otherwise be silent (warm-up, the fault, the drain).
PROGRESS_SECONDS = 5.0


@dataclass(frozen=True)
class FaultConfig:
    """Load shape and phase lengths (seconds): Locust runs warmup + fault_seconds + after."""

    users: int = 200
    spawn_rate: float = 50.0
    warmup: float = 10.0
    fault_seconds: float = 30.0
    after: float = 15.0
    drain_timeout: float = 180.0
    failover_seconds: float = 60.0  # the failover drill's outage (RDS documents 60-120 s)

    @property
    def run_time(self) -> int:
        return int(self.warmup + self.fault_seconds + self.after)

    def for_drill(self, name: str) -> FaultConfig:
        """The failover drill's fault lasts `failover_seconds`."""
        return replace(self, fault_seconds=self.failover_seconds) if name == "failover" else self


@dataclass
class Reconciliation:
    """Acknowledged readings against what one store holds."""

    found: int = 0  # acknowledged readings present at least once
    lost: int = 0  # acknowledged readings absent
    duplicated: int = 0  # extra rows of a reading under another id: a reading stored twice
    redelivered: int = 0  # extra records of a reading with the same id (the lake's at-least-once copies)


def reconcile(acknowledged: set[int], records: Iterable[tuple[int, int]]) -> Reconciliation:
    """records: one (reading number, stored id) per row or record the store holds."""
    copies = Counter(records)
    ids = Counter(number for number, _ in copies)
    present = acknowledged & ids.keys()
    return Reconciliation(found=len(present), lost=len(acknowledged) - len(present),
                          duplicated=sum(count - 1 for count in ids.values()),
                          redelivered=sum(count - 1 for count in copies.values()))


@dataclass
class FaultDrillResult:
    """One drill's row of the table; `ok` is its verdict."""

    name: str
    requests: int = 0
    fault_2xx: int = 0
    fault_4xx: int = 0
    fault_5xx: int = 0
    fault_errors: int = 0
    ingest_5xx: int = 0
    ingest_errors: int = 0
    read_failures: int = 0
    acknowledged: int = 0
    accepted_202: int = 0
    database: Reconciliation = field(default_factory=Reconciliation)
    lake: Reconciliation = field(default_factory=Reconciliation)
    drain_seconds: float | None = None
    fault_window: tuple[float, float] = (0.0, 0.0)
    answered_202: int = 0  # requests (not readings) answered 202
    letters: dict[str, int] = field(default_factory=dict)  # dead-letter objects written, per app process
    recover_seconds: float | None = None
    stale_connections: int | None = None  # failover: app connections the old primary held
    new_primary_connections: int | None = None  # failover: app connections on the new primary afterwards
    app_restarts: int = 0  # failover: app processes that had to be restarted (must stay 0)

    @property
    def letters_total(self) -> int:
        return sum(self.letters.values())

    @property
    def fault_seconds(self) -> float:
        return self.fault_window[1] - self.fault_window[0]

    @property
    def lost(self) -> int:
        return max(self.database.lost, self.lake.lost)

    @property
    def duplicated(self) -> int:
        return self.database.duplicated + self.lake.duplicated

    @property
    def ok(self) -> bool:
        recovered = self.name != "failover" or (self.recover_seconds is not None and self.app_restarts == 0
                                                 and bool(self.new_primary_connections))
        return (self.acknowledged > 0 and self.lost == 0 and self.duplicated == 0 and self.ingest_5xx == 0
                and self.ingest_errors == 0 and self.drain_seconds is not None and recovered)


# --- the stack -------------------------------------------------------------------------------------


class FullStack:
    """The full local profile behind HAProxy; every process it starts is stopped by `close()`."""

    def __init__(self, workdir: Path, durable_broker: bool, replicated_database: bool = False) -> None:
        self.workdir = workdir
        self.durable_broker = durable_broker
        self.replicated_database = replicated_database
        self.cleanup = ExitStack()
        self.notes: dict[str, int] = {}  # what a fault observed (failover: stale connections)

    def start(self) -> FullStack:
        binary = ensure_haproxy()
        self.s3 = MotoServer().start()
        self.cleanup.callback(self.s3.stop)
        self.s3_client = boto3.client(
            "s3", endpoint_url=self.s3.endpoint_url, region_name=LOCAL_AWS["AWS_DEFAULT_REGION"],
            aws_access_key_id=LOCAL_AWS["AWS_ACCESS_KEY_ID"], aws_secret_access_key=LOCAL_AWS["AWS_SECRET_ACCESS_KEY"])
        for bucket in (LOCAL_BUCKET, BROKER_BUCKET):
            self.s3_client.create_bucket(Bucket=bucket, CreateBucketConfiguration={
                "LocationConstraint": LOCAL_AWS["AWS_DEFAULT_REGION"]})
        # Its own mkdtemp: the postgres user must reach it. The failover drill's database is a replicated pair.
        self.postgres = ReplicatedDatabase(binary, self.workdir).start() if self.replicated_database \
            else PostgresServer().start()
        self.cleanup.callback(self.postgres.destroy)
        storage = {"storage": f"s3://{BROKER_BUCKET}/", "storage_env": s3_storage_env(self.s3.endpoint_url)} \
            if self.durable_broker else {}
        self.broker = TansuBroker(log_path=self.workdir / "tansu.log", **storage).start()
        self.cleanup.callback(self.broker.stop)
        asyncio.run(create_topic(self.broker.bootstrap))
        self.app_env = {"SENSOR_KAFKA_BOOTSTRAP": self.broker.bootstrap, "SENSOR_KAFKA_TOPIC": LOCAL_TOPIC,
                        **LOCAL_AWS}
        self.ports = {name: free_port() for name in APPS}
        self.apps = {name: self.start_app(name) for name in APPS}
        self.cleanup.callback(lambda: [stop(process, timeout=EXIT_TIMEOUT) for process in self.apps.values()])
        for name in APPS:
            wait_ready(self.ports[name], self.apps[name])
        self.proxy = HAProxy(binary, self.workdir, *self.ports.values(), green_enabled=True,
                             retry_on="conn-failure empty-response", failover=True, log_requests=True)
        self.cleanup.callback(self.proxy.stop)
        for name in APPS:
            self.proxy.wait_for(name, lambda row: row["status"] == "UP", "UP", timeout=15)
        self.pipeline = self.start_pipeline()
        self.cleanup.callback(stop, self.pipeline, timeout=30)
        return self

    def start_app(self, name: str) -> subprocess.Popen:
        return start_app(name, self.ports[name], self.postgres.url, self.workdir, extra_env=self.app_env)

    def start_pipeline(self) -> subprocess.Popen:
        command = [sys.executable, "-m", "devstack.pipeline", "kafka", "--bootstrap", self.broker.bootstrap,
                   "--topic", LOCAL_TOPIC, "--group", "archiver", "--bucket", LOCAL_BUCKET,
                   "--s3-endpoint", self.s3.endpoint_url, "--batching-window-seconds", ARCHIVER_WINDOW_SECONDS]
        return subprocess.Popen(command, env={**os.environ, **LOCAL_AWS},
                                stdout=open(self.workdir / "archiver.log", "ab"), stderr=subprocess.STDOUT)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.proxy.port}"

    def close(self) -> None:
        self.cleanup.close()


async def create_topic(bootstrap: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(LOCAL_TOPIC, num_partitions=TOPIC_PARTITIONS, replication_factor=1)])
    finally:
        await admin.close()


# --- the faults: each returns the function that ends it --------------------------------------------


def kill_postgres(stack: FullStack) -> Callable[[], None]:
    stack.postgres.stop("immediate")  # SIGQUIT to the postmaster: no checkpoint, crash recovery on start
    return stack.postgres.start


def kill_broker(stack: FullStack) -> Callable[[], None]:
    stack.broker.process.send_signal(signal.SIGKILL)
    stack.broker.process.wait(timeout=10)
    return stack.broker.start


def kill_app(stack: FullStack) -> Callable[[], None]:
    process = stack.apps[KILLED_APP]
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=10)

    def restart() -> None:
        # Same port and dead-letter directory: the new process replays what the killed one dead-lettered.
        stack.apps[KILLED_APP] = stack.start_app(KILLED_APP)
        wait_ready(stack.ports[KILLED_APP], stack.apps[KILLED_APP])

    return restart


def slow_database(stack: FullStack) -> Callable[[], None]:
    """A session takes the readings table's strongest lock: every insert waits for it (until the
    app's statement timeout), like a long migration or a stuck vacuum full."""
    loop = asyncio.new_event_loop()
    dsn = stack.postgres.url.replace("postgresql+asyncpg://", "postgresql://")
    connection = loop.run_until_complete(asyncpg.connect(dsn))
    transaction = connection.transaction()
    loop.run_until_complete(transaction.start())
    loop.run_until_complete(connection.execute("LOCK TABLE readings IN ACCESS EXCLUSIVE MODE"))

    def release() -> None:
        try:
            loop.run_until_complete(transaction.rollback())
            loop.run_until_complete(connection.close())
        finally:
            loop.close()

    return release


def fail_over(stack: FullStack) -> Callable[[], None]:
    """The primary crashes and is fenced; at the fault's end the standby is promoted and the endpoint
    moves to it (the app is left alone: it must find the new primary by itself)."""
    stack.notes["stale_connections"] = stack.postgres.fail()
    return stack.postgres.promote


FAULTS: dict[str, Callable[[FullStack], Callable[[], None]]] = {
    "postgres": kill_postgres, "broker": kill_broker, "app": kill_app, "slow-db": slow_database,
    "failover": fail_over,
}


def letters_written(workdir: Path) -> dict[str, int]:
    """Dead-letter objects each app process has written so far (its log's one line per letter)."""
    counts = {}
    for name in APPS:
        log = workdir / f"{name}.log"
        counts[name] = log.read_bytes().count(LETTER_LINE) if log.exists() else 0
    return counts


# --- one drill -------------------------------------------------------------------------------------


def run_fault_drill(stack: FullStack, name: str, config: FaultConfig, verbose: bool = True) -> FaultDrillResult:
    """Load, the fault after the warm-up, recovery, then the reconciliation once the load ended."""
    config = config.for_drill(name)
    workdir = stack.workdir / name
    workdir.mkdir()
    prefix = f"fault-{name}-"
    started = time.time()
    letters_before = letters_written(stack.workdir)
    app_pids = {app: process.pid for app, process in stack.apps.items()}
    phase = ["starting Locust"]

    def mark(event: str) -> None:
        phase[0] = event
        if verbose:
            print(f"  [{name}] +{time.time() - started:6.1f}s  {event}", flush=True)

    with ticking(lambda: f"[{name}] current phase: {phase[0]}", interval=PROGRESS_SECONDS if verbose else 1e9):
        return _run_fault_drill(stack, name, config, workdir=workdir, prefix=prefix, mark=mark, phase=phase,
                                letters_before=letters_before, app_pids=app_pids)


def _run_fault_drill(stack: FullStack, name: str, config: FaultConfig, *, workdir: Path, prefix: str,
                     mark: Callable[[str], None], phase: list[str], letters_before: dict[str, int],
                     app_pids: dict[str, int]) -> FaultDrillResult:

    locust = start_locust(stack.url, config, workdir, extra_env={"DRILL_DEVICE_PREFIX": prefix})
    try:
        mark(f"locust: {config.users} users, {config.run_time}s")
        time.sleep(config.warmup)
        fault_start = time.time()
        end_fault = FAULTS[name](stack)
        mark("fault injected")
        time.sleep(max(0.0, fault_start + config.fault_seconds - time.time()))
        end_fault()
        fault_end = time.time()
        mark("fault ended (recovered)")
        locust.wait(timeout=config.run_time + 120)
        mark(f"locust finished ({locust.returncode})")
    finally:
        stop(locust, timeout=10)
    load_end = time.time()
    ledger = json.loads((workdir / "ledger.json").read_text())
    result = count_requests(name, ledger["requests"], (fault_start, fault_end))
    acknowledged = set(ledger["acknowledged"]) | set(ledger["accepted"])
    result.acknowledged, result.accepted_202 = len(acknowledged), len(ledger["accepted"])
    base = datetime.fromisoformat(ledger["base"])
    lake = LakeReader(stack.s3_client, LOCAL_BUCKET)
    deadline = load_end + config.drain_timeout
    while True:
        in_database = asyncio.run(database_records(stack.postgres.url, base, prefix))
        in_lake = lake.records(base, prefix)
        drained = (acknowledged <= {number for number, _ in in_database}
                   and acknowledged <= {number for number, _ in in_lake})
        if drained or time.time() > deadline:
            break
        phase[0] = (f"draining: {len(acknowledged & {n for n, _ in in_database}):,} of {len(acknowledged):,} "
                    f"acknowledged in the database, {len(acknowledged & {n for n, _ in in_lake}):,} in the lake")
        time.sleep(1.0)
    result.drain_seconds = time.time() - load_end if drained else None
    result.database, result.lake = reconcile(acknowledged, in_database), reconcile(acknowledged, in_lake)
    observe_recovery(stack, result, letters_before, app_pids)
    mark("drained" if drained else f"NOT drained after {config.drain_timeout:.0f}s")
    return result


def observe_recovery(stack: FullStack, result: FaultDrillResult, letters_before: dict[str, int],
                     app_pids: dict[str, int]) -> None:
    """Dead-letter objects written during the drill; after a failover, the connections the app held to the
    old primary, those it opened on the new one, and whether any app process had to be restarted."""
    letters_after = letters_written(stack.workdir)
    result.letters = {app: letters_after[app] - letters_before[app] for app in APPS}
    if result.name == "failover":
        result.stale_connections = stack.notes.get("stale_connections")
        result.new_primary_connections = stack.postgres.app_connections(stack.postgres.current_primary_port())
        result.app_restarts = sum(process.pid != app_pids[app] or process.poll() is not None
                                  for app, process in stack.apps.items())


def count_requests(name: str, requests: Iterable[list], window: tuple[float, float]) -> FaultDrillResult:
    """Ledger rows [name, start, end, status, ok]: answers during the fault window (requests overlapping it),
    and POST /ingest 5xx / connection errors and GET /data failures over the whole run."""
    result = FaultDrillResult(name=name, fault_window=window)
    first_201_after: float | None = None
    for endpoint, begin, end, status, _ok in requests:
        result.requests += 1
        result.answered_202 += status == 202
        if endpoint == "POST /ingest" and status == 201 and begin >= window[1]:
            first_201_after = end if first_201_after is None else min(first_201_after, end)
        if begin <= window[1] and end >= window[0]:
            if status == 0:
                result.fault_errors += 1
            elif status < 300:
                result.fault_2xx += 1
            elif status < 500:
                result.fault_4xx += 1
            else:
                result.fault_5xx += 1
        if endpoint == "POST /ingest":
            result.ingest_5xx += status >= 500
            result.ingest_errors += status == 0
        else:
            result.read_failures += not 200 <= status < 300
    result.recover_seconds = None if first_201_after is None else first_201_after - window[1]
    return result


async def database_records(database_url: str, base: datetime, prefix: str) -> list[tuple[int, int]]:
    """(reading number, id) of the drill's rows; the number is ts - base in microseconds."""
    connection = await asyncpg.connect(database_url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        rows = await connection.fetch("SELECT id, ts FROM readings WHERE device_id LIKE $1", prefix + "%")
    finally:
        await connection.close()
    return [((row["ts"] - base) // MICROSECOND, row["id"]) for row in rows]


class LakeReader:
    """(reading number, id) of every record in the lake's raw Parquet objects (each object version read once)."""

    def __init__(self, client, bucket: str) -> None:
        self.client = client
        self.bucket = bucket
        self.objects: dict[str, tuple[str, pa.Table]] = {}

    def records(self, base: datetime, prefix: str) -> list[tuple[int, int]]:
        found: list[tuple[int, int]] = []
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix="raw/"):
            for item in page.get("Contents", []):
                key, etag = item["Key"], item["ETag"]
                if key not in self.objects or self.objects[key][0] != etag:
                    body = self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()
                    columns = ["id", "device_id", "timestamp"]
                    self.objects[key] = (etag, pq.read_table(io.BytesIO(body), columns=columns))
                table = self.objects[key][1]
                mine = table.filter(pc.starts_with(table.column("device_id"), prefix))
                found += [((moment - base) // MICROSECOND, reading_id) for moment, reading_id in
                          zip(mine.column("timestamp").to_pylist(), mine.column("id").to_pylist(), strict=True)]
        return found


# --- the run ---------------------------------------------------------------------------------------


def run_drills(names: Iterable[str], config: FaultConfig, workdir: Path, verbose: bool = True) \
        -> list[FaultDrillResult]:
    """Run the drills in order, each group of consecutive drills on one stack, stopped (even on failure)
    before the next starts. The broker drill gets a stack of its own with tansu's `s3://` storage: that
    engine writes an object per produced batch and moto lists them on every fetch, so it slows down as
    objects accumulate (after ~2,400 objects the archiver's fetches no longer returned in time); the
    other drills never restart the broker and use the devstack's `memory://` storage. The failover drill
    gets a stack of its own too: its database is a replicated pair whose primary is gone afterwards."""
    results: list[FaultDrillResult] = []
    for kind, group in itertools.groupby(names, key=lambda name: name if name in ("broker", "failover") else ""):
        stack_dir = workdir / f"stack-{len(results) + 1}"
        stack_dir.mkdir()
        stack = FullStack(stack_dir, durable_broker=kind == "broker", replicated_database=kind == "failover")
        try:
            stack.start()
            results += [run_fault_drill(stack, name, config, verbose) for name in group]
        finally:
            stack.close()
    return results


def _seconds(value: float | None, missing: str = "-") -> str:
    return missing if value is None else f"{value:.1f}"


def table(results: Iterable[FaultDrillResult]) -> str:
    """One Markdown row per drill."""
    rows = ["| drill | fault s | requests | during the fault: 2xx / 4xx / 5xx / conn. errors | POST /ingest 5xx / conn. "
            "errors (whole run) | acknowledged (of them 202) | in DB | in lake | lost (DB / lake) "
            "| duplicated (DB / lake) | lake redelivered copies (same id) | recover s | drain s "
            "| dead-letter objects (per task) | letters/s | 202 answers per letter | stale conn. discarded "
            "| verdict |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        per_task = " / ".join(str(count) for count in r.letters.values())
        rate = f"{r.letters_total / r.fault_seconds:.1f}" if r.fault_seconds > 0 else "-"
        per_letter = f"{r.answered_202 / r.letters_total:.0f}" if r.letters_total else "-"
        stale = "-" if r.stale_connections is None else \
            f"{r.stale_connections} (then {r.new_primary_connections} on the new primary, {r.app_restarts} restarts)"
        rows.append(
            f"| {r.name} | {r.fault_seconds:.0f} | {r.requests} | {r.fault_2xx} / {r.fault_4xx} / {r.fault_5xx} "
            f"/ {r.fault_errors} | {r.ingest_5xx} / {r.ingest_errors} | {r.acknowledged} ({r.accepted_202}) "
            f"| {r.database.found} | {r.lake.found} | {r.database.lost} / {r.lake.lost} "
            f"| {r.database.duplicated} / {r.lake.duplicated} | {r.lake.redelivered} "
            f"| {_seconds(r.recover_seconds, 'never')} | {_seconds(r.drain_seconds, 'not drained')} "
            f"| {r.letters_total} ({per_task}) | {rate} | {per_letter} | {stale} | {'PASS' if r.ok else 'FAIL'} |")
    return "\n".join(rows)


def record(results: list[FaultDrillResult], config: FaultConfig, command: str) -> str:
    """The entry appended to docs/reliability.md."""
    today = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    failed_reads = ", ".join(f"{r.name}: {r.read_failures}" for r in results)
    return (f"\n### Fault drills {today} — revision {revision()}\n\nMachine: {machine()}. Command: `{command}`. "
            f"{config.users} users, fault {config.fault_seconds:g} s (failover outage {config.failover_seconds:g} s) "
            f"after {config.warmup:g} s of warm-up, "
            f"{config.after:g} s of load after it. Locust, HAProxy, both app processes, PostgreSQL, tansu, moto "
            f"and the archiver share this machine. GET /data answered non-2xx (reads need the database; not "
            f"part of the verdict): {failed_reads}.\n\n{table(results)}\n")


def insert_entry(document: str, entry: str) -> str:
    """The entry at the end of the "## Fault drills" section (before the next "## " heading, which other
    drills append to), or at the end when the section is last or missing."""
    start = document.find(f"\n{SECTION}\n")
    following = document.find("\n## ", start + 1) if start >= 0 else -1
    if following < 0:
        return document.rstrip("\n") + "\n" + entry
    return document[:following].rstrip("\n") + "\n" + entry + document[following:]


def parse_only(value: str) -> list[str]:
    names = [name.strip() for name in value.split(",") if name.strip()]
    unknown = [name for name in names if name not in DRILLS]
    if not names or unknown:
        raise argparse.ArgumentTypeError(f"--only takes a comma-separated list of {', '.join(DRILLS)}; "
                                         f"got {value!r}")
    return list(dict.fromkeys(names))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtests.drills.faults", description=__doc__.splitlines()[0])
    parser.add_argument("--fault-seconds", type=float, default=30.0, help="how long each fault lasts (> 0)")
    parser.add_argument("--failover-seconds", type=float, default=60.0,
                        help="the failover drill's outage: primary dead until the standby is promoted (> 0)")
    parser.add_argument("--users", type=int, default=200, help="Locust users (>= 1)")
    parser.add_argument("--spawn-rate", type=float, default=50.0, help="users started per second (> 0)")
    parser.add_argument("--warmup", type=float, default=10.0, help="seconds of load before the fault (> 0)")
    parser.add_argument("--after", type=float, default=15.0, help="seconds of load after the fault (> 0)")
    parser.add_argument("--drain-timeout", type=float, default=180.0,
                        help="seconds allowed after the load for the database and lake to hold everything (> 0)")
    parser.add_argument("--only", type=parse_only, default=list(DRILLS), metavar="NAME[,NAME]",
                        help=f"drills to run, in order (default: all of {','.join(DRILLS)})")
    parser.add_argument("--no-record", action="store_true", help=f"do not append to {RESULTS}")
    args = parser.parse_args(argv)
    for flag in ("fault_seconds", "failover_seconds", "spawn_rate", "warmup", "after", "drain_timeout"):
        if getattr(args, flag) <= 0:
            parser.error(f"--{flag.replace('_', '-')} must be > 0, got {getattr(args, flag)}")
    if args.users < 1:
        parser.error(f"--users must be >= 1, got {args.users}")
    config = FaultConfig(users=args.users, spawn_rate=args.spawn_rate, warmup=args.warmup,
                         fault_seconds=args.fault_seconds, after=args.after, drain_timeout=args.drain_timeout,
                         failover_seconds=args.failover_seconds)
    workdir = Path(tempfile.mkdtemp(prefix="drill-faults-"))
    print(f"fault drills {', '.join(args.only)}: {config}, work directory {workdir}", flush=True)
    results = run_drills(args.only, config, workdir)
    print(table(results))
    command = ("make drill (python -m loadtests.drills.faults " + " ".join(argv or sys.argv[1:])).strip() + ")"
    if not args.no_record:
        RESULTS.write_text(insert_entry(RESULTS.read_text(), record(results, config, command)))
    ok = all(result.ok for result in results)
    if ok:
        shutil.rmtree(workdir, ignore_errors=True)
    else:
        print(f"logs kept in {workdir}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
