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
import itertools
import json
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path

from devstack.local_resources import LOCAL_BUCKET
from devstack.processes import stop
from loadtests.drills.fault_actions import FAULTS
from loadtests.drills.fault_results import FaultDrillResult, insert_entry, reconcile, record, table
from loadtests.drills.full_stack import APPS, FullStack, letters_written
from loadtests.drills.ledger_load import start_locust
from loadtests.drills.stored_records import LakeReader, database_records
from loadtests.harness.progress import ticking

RESULTS = Path("docs/reliability.md")
DRILLS = ("postgres", "broker", "app", "slow-db", "failover")

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
