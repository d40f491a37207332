"""`make drill-bluegreen`: prove that a blue -> green switch of the app loses no request under load.

    python -m loadtests.drills.bluegreen [--users 200] [--spawn-rate 50] [--warmup 15] [--after 20]

Everything runs on 127.0.0.1: a throw-away PostgreSQL cluster shared by both colours (like two ECS
task sets sharing RDS), `uvicorn app.main:app` as blue and later as green, HAProxy in front, and
Locust (headless, loadtests/drills/ledger_locustfile.py) driving the proxy. The sequence:

  1. proxy -> blue only (green is declared but in maintenance);
  2. Locust starts; after the warm-up green starts and we wait for its /ready;
  3. green is enabled (both serve), then blue is set to DRAIN (no new requests) and we wait until
     the proxy holds no session to blue; blue gets SIGTERM, drains and exits;
  4. load continues on green only, then Locust stops on its --run-time.

Then: Locust's ledger (every request with its status, every reading answered 201/200) is compared
with the database, which must hold every acknowledged reading exactly once.

Why HAProxy (Debian package `haproxy`): its runtime API on a stats socket changes server states
(`enable server`, `set server ... state drain`) in place, without a reload, so the switch itself
touches no connection; `show stat` reports the live sessions per server, so blue is only stopped
once nothing is in flight to it; health checks on /ready (`rise 2 fall 3`, 2 s timeout) take a draining
or dead instance out of the pool like an ALB target group does; a per-server `maxconn` keeps the
excess load queued in the proxy, so the app answers its checks promptly; and `option redispatch` with
`retries 3` re-sends a request whose connection to a server failed (never sent, so never
stored) to another server. nginx (open source) has no runtime API and no active health checks:
it would need a config rewrite plus reload per step and passive failure detection only.
"""


from __future__ import annotations

import argparse
import asyncio
import collections
import json
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg

from devstack.postgres import PostgresServer
from devstack.processes import free_port, stop
from loadtests.drills.ledger_load import start_locust
from loadtests.harness.app_processes import EXIT_TIMEOUT, start_app, wait_ready
from loadtests.harness.haproxy import HAProxy, ensure_haproxy
from loadtests.harness.provenance import machine, revision

RESULTS = Path("docs/reliability.md")
MICROSECOND = timedelta(microseconds=1)


@dataclass
class DrillConfig:
    """Load shape and phase lengths (seconds). Locust runs warmup + switch_budget + after."""

    users: int = 200
    spawn_rate: float = 50.0
    warmup: float = 15.0
    switch_budget: float = 20.0
    after: float = 20.0

    @property
    def run_time(self) -> int:
        return int(self.warmup + self.switch_budget + self.after)


@dataclass
class DrillResult:
    """What the drill measured; `ok` is the verdict."""

    total: int = 0
    failed: int = 0
    statuses: dict[str, int] = field(default_factory=dict)
    by_name: dict[str, int] = field(default_factory=dict)
    switch_requests: int = 0
    switch_failed: int = 0
    switch_seconds: float = 0.0
    green_only_seconds: float = 0.0
    sent: int = 0
    acknowledged: int = 0
    accepted: int = 0
    stored: int = 0
    unanswered: int = 0
    unanswered_stored: int = 0
    missing: int = 0
    unexpected: int = 0
    duplicates: int = 0
    locust_total: int = 0
    locust_failures: int = 0
    served: dict[str, int] = field(default_factory=dict)
    proxy_retries: int = 0
    proxy_redispatches: int = 0
    blue_exit: int | None = None
    blue_stopped_cleanly: bool = False
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    max_ms: float = 0.0
    timeline: list[tuple[float, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return (self.failed == 0 and self.locust_failures == 0 and self.missing == 0 and self.unexpected == 0
                and self.duplicates == 0 and self.blue_exit in (0, -15)
                and self.blue_stopped_cleanly)


def switch(proxy: HAProxy, blue: subprocess.Popen, green: subprocess.Popen, green_port: int, mark) -> None:
    """Once green (just started) is ready: add it to the pool, then drain and stop blue."""
    wait_ready(green_port, green)
    mark("green ready")
    proxy.command("enable server app/green")
    proxy.wait_for("green", lambda row: row["status"] == "UP", "UP", timeout=15)
    mark("green in pool (blue + green)")
    time.sleep(2)  # both colours serve for a moment, as in a real canary step
    proxy.command("set server app/blue state drain")
    mark("blue draining (green only)")
    proxy.wait_for("blue", lambda row: row["scur"] == "0" and row["qcur"] == "0", "idle", timeout=30)
    mark("blue idle")
    blue.send_signal(signal.SIGTERM)
    mark("blue SIGTERM")
    blue.wait(timeout=EXIT_TIMEOUT)
    mark(f"blue exited ({blue.returncode})")


def run_drill(config: DrillConfig, workdir: Path, database_url: str | None = None, verbose: bool = True) \
        -> DrillResult:
    """The whole drill; every process it starts is stopped, even on failure."""
    started = time.time()
    timeline: list[tuple[float, str]] = []

    def mark(event: str) -> None:
        timeline.append((time.time(), event))
        if verbose:
            print(f"  +{time.time() - started:6.1f}s  {event}", flush=True)

    binary = ensure_haproxy()
    with ExitStack() as cleanup:
        if database_url is None:
            postgres = PostgresServer().start()
            cleanup.callback(postgres.destroy)
            database_url = postgres.url
        blue_port, green_port = free_port(), free_port()
        blue = start_app("blue", blue_port, database_url, workdir)
        cleanup.callback(stop, blue, timeout=EXIT_TIMEOUT)
        wait_ready(blue_port, blue)
        proxy = HAProxy(binary, workdir, blue_port, green_port)
        cleanup.callback(proxy.stop)
        proxy.wait_for("blue", lambda row: row["status"] == "UP", "UP", timeout=15)
        mark("proxy -> blue only")
        locust = start_locust(f"http://127.0.0.1:{proxy.port}", config, workdir)
        cleanup.callback(stop, locust, timeout=10)
        load_end = time.time() + config.run_time
        mark(f"locust: {config.users} users, {config.run_time}s")
        time.sleep(config.warmup)
        mark("green starting")
        green = start_app("green", green_port, database_url, workdir)
        cleanup.callback(stop, green, timeout=EXIT_TIMEOUT)
        switch(proxy, blue, green, green_port, mark)
        if load_end - time.time() < config.after / 2:
            raise RuntimeError("the switch overran its budget: too little load left on green alone")
        locust.wait(timeout=config.run_time + 120)
        mark(f"locust finished ({locust.returncode})")
        served = {name: int(row["hrsp_2xx"] or 0) for name, row in proxy.servers().items()}
        rows = proxy.servers().values()
        retries = sum(int(row["wretr"] or 0) for row in rows)
        redispatches = sum(int(row["wredis"] or 0) for row in rows)
        result = analyse(workdir, timeline, database_url)
        result.served, result.proxy_retries, result.proxy_redispatches = served, retries, redispatches
        # uvicorn re-raises the handled SIGTERM after a complete graceful shutdown: -15 is clean.
        result.blue_exit = blue.returncode
        result.blue_stopped_cleanly = "ingestion service stopped" in (workdir / "blue.log").read_text()
        return result


# --- verdict ---------------------------------------------------------------------------------------


def analyse(workdir: Path, timeline: list[tuple[float, str]], database_url: str) -> DrillResult:
    """Requests from the ledger, Locust's own totals, and the database check."""
    ledger = json.loads((workdir / "ledger.json").read_text())
    requests = ledger["requests"]
    result = DrillResult(timeline=timeline, sent=ledger["sent"], accepted=len(ledger["accepted"]))
    result.total = len(requests)
    result.failed = sum(1 for _, _, _, status, ok in requests if not ok or not 200 <= status < 300)
    result.statuses = dict(collections.Counter(str(status) for *_, status, _ in requests))
    result.by_name = dict(collections.Counter(name for name, *_ in requests))
    window_start = next(moment for moment, event in timeline if event.startswith("green in pool"))
    window_end = next(moment for moment, event in timeline if event.startswith("blue exited"))
    in_window = [r for r in requests if r[2] >= window_start and r[1] <= window_end]
    result.switch_requests = len(in_window)
    result.switch_failed = sum(1 for _, _, _, status, ok in in_window if not ok or not 200 <= status < 300)
    result.switch_seconds = window_end - window_start
    result.green_only_seconds = max(r[2] for r in requests) - window_end if requests else 0.0
    latencies = sorted((end - begin) * 1000 for _, begin, end, _, _ in requests)
    if latencies:
        result.p50_ms = latencies[len(latencies) // 2]
        result.p99_ms = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
        result.max_ms = latencies[-1]
    endpoints = json.loads((workdir / "locust.json").read_text())
    result.locust_total = sum(endpoint["num_requests"] for endpoint in endpoints)
    result.locust_failures = sum(endpoint["num_failures"] for endpoint in endpoints)
    acknowledged = set(ledger["acknowledged"])
    # Sent but never answered: Locust stopped that user mid-request at the end of the run.
    unanswered = set(range(ledger["sent"])) - set(ledger["answered"])
    stored, rows, distinct = asyncio.run(stored_numbers(database_url, datetime.fromisoformat(ledger["base"])))
    result.acknowledged, result.stored = len(acknowledged), len(stored)
    result.unanswered, result.unanswered_stored = len(unanswered), len(stored & unanswered)
    result.missing = len(acknowledged - stored)
    result.unexpected = len(stored - acknowledged - unanswered)
    result.duplicates = rows - distinct
    return result


async def stored_numbers(database_url: str, base: datetime) -> tuple[set[int], int, int]:
    """Reading numbers of the drill's stored rows (ts - base in microseconds), row and distinct counts."""
    connection = await asyncpg.connect(database_url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        records = await connection.fetch(
            "SELECT device_id, tag, ts FROM readings WHERE device_id LIKE 'drill-%'")
    finally:
        await connection.close()
    numbers = {(record["ts"] - base) // MICROSECOND for record in records}
    distinct = len({(record["device_id"], record["tag"], record["ts"]) for record in records})
    return numbers, len(records), distinct


def summary(result: DrillResult) -> str:
    """The summary table (Markdown)."""
    statuses = ", ".join(f"{code}: {count}" for code, count in sorted(result.statuses.items()))
    names = ", ".join(f"{name}: {count}" for name, count in sorted(result.by_name.items()))
    served = ", ".join(f"{name}: {count}" for name, count in sorted(result.served.items()))
    rows = [
        ("verdict", "PASS" if result.ok else "FAIL"),
        ("total requests (ledger / Locust)", f"{result.total} / {result.locust_total}"),
        ("failed requests (non-2xx or error / Locust failures)", f"{result.failed} / {result.locust_failures}"),
        ("by endpoint", names),
        ("status codes", statuses),
        ("switch window (green joins -> blue exited)", f"{result.switch_seconds:.1f} s"),
        ("requests during the switch window (failed)", f"{result.switch_requests} ({result.switch_failed})"),
        ("load on green alone after blue exited", f"{result.green_only_seconds:.1f} s"),
        ("2xx answered per server (HAProxy)", served),
        ("HAProxy connection retries / redispatches", f"{result.proxy_retries} / {result.proxy_redispatches}"),
        ("latency p50 / p99 / max", f"{result.p50_ms:.0f} / {result.p99_ms:.0f} / {result.max_ms:.0f} ms"),
        ("readings sent / acknowledged 201|200 / accepted 202", f"{result.sent} / {result.acknowledged} / "
         f"{result.accepted}"),
        ("readings never answered (Locust stopped mid-request at the end) / of them stored",
         f"{result.unanswered} / {result.unanswered_stored}"),
        ("rows stored / acknowledged but missing / stored but answered non-2xx / duplicate",
         f"{result.stored} / {result.missing} / {result.unexpected} / {result.duplicates}"),
        ("blue exit status / lifespan shutdown complete", f"{result.blue_exit} / {result.blue_stopped_cleanly}"),
    ]
    return "\n".join(["| measure | value |", "|---|---|", *(f"| {name} | {value} |" for name, value in rows)])


def record(result: DrillResult, command: str) -> str:
    """The entry appended to docs/reliability.md."""
    today = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return (f"\n### {today} — revision {revision()}\n\nMachine: {machine()}. Command: `{command}`. "
            "Client, proxy, both app processes and PostgreSQL share this machine.\n\n" + summary(result) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtests.drills.bluegreen", description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=200, help="Locust users (>= 1)")
    parser.add_argument("--spawn-rate", type=float, default=50.0, help="users started per second")
    parser.add_argument("--warmup", type=float, default=15.0, help="seconds of load on blue alone")
    parser.add_argument("--switch-budget", type=float, default=20.0, help="seconds allowed for the switch")
    parser.add_argument("--after", type=float, default=20.0, help="seconds of load on green alone (at least)")
    parser.add_argument("--no-record", action="store_true", help=f"do not append to {RESULTS}")
    args = parser.parse_args(argv)
    if args.users < 1 or args.spawn_rate <= 0 or min(args.warmup, args.switch_budget, args.after) <= 0:
        parser.error("--users must be >= 1 and --spawn-rate, --warmup, --switch-budget, --after > 0")
    config = DrillConfig(users=args.users, spawn_rate=args.spawn_rate, warmup=args.warmup,
                         switch_budget=args.switch_budget, after=args.after)
    workdir = Path(tempfile.mkdtemp(prefix="drill-bluegreen-"))
    print(f"blue/green drill: {config}, work directory {workdir}", flush=True)
    result = run_drill(config, workdir)
    print(summary(result))
    command = ("make drill-bluegreen (python -m loadtests.drills.bluegreen " + " ".join(argv or sys.argv[1:])).strip() + ")"
    if not args.no_record:
        with RESULTS.open("a") as results:
            results.write(record(result, command))
    if result.ok:
        shutil.rmtree(workdir, ignore_errors=True)
    else:
        print(f"logs kept in {workdir}")
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
