"""`make bench-store-cost`: what the shared state store costs the app's throughput, both ways in one run.

    python -m loadtests.bench.store_cost [--rounds 2] [--users 1000] [--ramp 30] [--hold 45]
                                         [--app-workers 2] [--doc docs/benchmarks.md] [--no-record]

Between two `make bench` runs this machine's own speed moves by more than the 10 % the question is about
(the ceiling of the same code measured 3,577 and 5,492 req/s twenty minutes apart), so a store-on run
compared with a store-off run mostly measures the machine. This runs the app's closed-loop phase
(`benchmark_1000`) with the store on and off in one go, on one PostgreSQL, broker and redis-server, in
ABBA order (on, off, off, on, then again), so that a steady drift (tables growing, the machine warming or
cooling) weighs on both sides alike. Each phase starts on a vacuumed database with a fresh app (and, store
on, an empty store, so both sides rebuild their windows from PostgreSQL) and waits for the outbox to drain
before the next.

Reported per phase: req/s, failures, CPU seconds per 1,000 requests of the app workers, PostgreSQL,
redis and Locust; then the store's cost, 1 - mean(on req/s) / mean(off req/s), with the cost of each
adjacent on/off pair as its spread, and the extra core-seconds per 1,000 requests. Rows go to the section
"State store cost (make bench-store-cost)" of docs/benchmarks.md with date, machine and revision.
Exit status: 0 when the run completed, 1 when it broke, 2 for bad flags.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import itertools
import subprocess
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from statistics import fmean

import redis

from devstack.postgres import PostgresServer
from devstack.processes import stop
from devstack.redis import RedisServer
from devstack.tansu import TansuBroker
from loadtests.bench.benchmarks_doc import append_table_rows, markdown_row
from loadtests.bench.flags import add_load_shape, add_outputs, check_shared
from loadtests.bench.results import Accounting, BenchConfig, Measurement
from loadtests.bench.throughput import (
    APP,
    BENCH_PROFILE,
    app_environment,
    postmaster_pids,
    run_load,
    serve,
    wait_for_outbox_drained,
)
from loadtests.harness.provenance import machine, revision

SECTION = "## State store cost (make bench-store-cost)"
INTRO = """\
The app's closed-loop phase with the shared state store on and off, alternating in one run (ABBA order,
one PostgreSQL, broker and redis-server; each phase a vacuumed database, a fresh app and, store on, an
empty store):
`python -m loadtests.bench.store_cost`. Cost = 1 - mean(on req/s) / mean(off req/s); the spread is the
cost of each adjacent on/off pair. The bound (issue 12): at most 10 %."""
COLUMNS = ("date (UTC)", "machine", "revision", "phase", "store", "users", "req/s", "p50 ms", "p99 ms",
           "failures", "app workers CPU s/1k", "PostgreSQL CPU s/1k", "redis CPU s/1k", "Locust CPU s/1k",
           "notes")


@dataclass(frozen=True)
class Phase:
    store_on: bool
    measurement: Measurement
    accounting: Accounting

    @property
    def total_cpu_per_thousand(self) -> float:
        return sum(self.accounting.cpu_per_thousand.values())


@dataclass(frozen=True)
class StoreCost:
    cost: float  # fraction of the store-off throughput lost with the store on
    pair_costs: tuple[float, ...]
    extra_cpu_per_thousand: float

    def describe(self) -> str:
        spread = ", ".join(f"{100 * cost:+.1f} %" for cost in self.pair_costs)
        return (f"state store cost: {100 * self.cost:.1f} % of the throughput (pairs: {spread}); "
                f"{self.extra_cpu_per_thousand:+.3f} core-seconds per 1,000 requests")


def phase_order(rounds: int) -> list[bool]:
    """True = store on. ABBA per round: on, off, off, on."""
    if rounds < 1:
        raise ValueError(f"rounds must be >= 1, got {rounds}")
    return [True, False, False, True] * rounds


def summarise(phases: list[Phase]) -> StoreCost:
    on = [phase for phase in phases if phase.store_on]
    off = [phase for phase in phases if not phase.store_on]
    if not on or not off:
        raise ValueError("need at least one phase with the store on and one with it off")
    pair_costs = []
    for first, second in itertools.pairwise(phases):
        if first.store_on != second.store_on:
            with_store, without = (first, second) if first.store_on else (second, first)
            pair_costs.append(1 - with_store.measurement.rps / without.measurement.rps)
    return StoreCost(
        cost=1 - fmean(p.measurement.rps for p in on) / fmean(p.measurement.rps for p in off),
        pair_costs=tuple(pair_costs),
        extra_cpu_per_thousand=fmean(p.total_cpu_per_thousand for p in on)
        - fmean(p.total_cpu_per_thousand for p in off),
    )


def run_phases(config: BenchConfig, rounds: int, results: Path) -> list[Phase]:
    results = results.resolve()
    results.mkdir(parents=True, exist_ok=True)
    phases = []
    with contextlib.ExitStack() as cleanup:
        postgres = PostgresServer().start()
        cleanup.callback(postgres.destroy)
        broker = TansuBroker(log_path=results / "tansu.log").start()
        cleanup.callback(broker.stop)
        store = RedisServer(log_path=results / "redis.log").start()
        cleanup.callback(store.stop)
        for number, store_on in enumerate(phase_order(rounds), start=1):
            name = f"phase-{number}-store-{'on' if store_on else 'off'}"
            # A vacuumed database each time: an autovacuum of the growing tables inside one phase cost it
            # 40 % of its throughput in an early run (PostgreSQL 0.74 instead of 0.15 CPU s per 1,000).
            postgres.psql("VACUUM ANALYZE")
            if store_on:  # both sides start with no windows and rebuild them from PostgreSQL
                with redis.Redis.from_url(store.url) as client:
                    client.flushall()
            environment = app_environment(postgres, broker, results / name, store if store_on else None)
            app_log = results / f"{name}.log"
            process, url = serve(APP, config.app_workers, environment, app_log)
            try:
                groups = functools.partial(_phase_groups, process, postgres, store if store_on else None)
                measurement, accounting = run_load(f"app, store {'on' if store_on else 'off'} ({number})",
                                                   BENCH_PROFILE, url, config, results / name,
                                                   groups=groups, app_log=app_log)
                wait_for_outbox_drained(postgres)
            finally:
                stop(process, timeout=60)
            phases.append(Phase(store_on, measurement, accounting))
    return phases


def _phase_groups(app: subprocess.Popen, postgres: PostgresServer, store: RedisServer | None) -> dict[str, list[int]]:
    return {"app workers": [app.pid], "PostgreSQL": postmaster_pids(postgres),
            "redis": [store.process.pid] if store is not None and store.process else []}


def rows(phases: list[Phase], summary: StoreCost, *, when: datetime, host_machine: str,
         git_revision: str) -> list[str]:
    lines = []
    for number, phase in enumerate(phases, start=1):
        m, cpu = phase.measurement, phase.accounting.cpu_per_thousand
        note = summary.describe() if number == len(phases) else ""
        lines.append(markdown_row([
            when.strftime("%Y-%m-%d %H:%M"), host_machine, git_revision, str(number),
            "on" if phase.store_on else "off", str(m.users), f"{m.rps:.0f}", f"{m.p50_ms:.0f}", f"{m.p99_ms:.0f}",
            str(m.failures), *(f"{cpu[group]:.2f}" if group in cpu else "-"
                               for group in ("app workers", "PostgreSQL", "redis", "Locust")),
            note,
        ]))
    return lines


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m loadtests.bench.store_cost", description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2, help="ABBA rounds of 4 phases each (1-5)")
    add_load_shape(parser, hold=45.0, app_workers_help="uvicorn --workers of the app (1-16)")
    add_outputs(parser, results_help="logs and Locust's reports go to DIR/<UTC time>-store-cost/ (default %(default)s)")
    args = parser.parse_args(argv)
    if not 1 <= args.rounds <= 5:
        parser.error(f"--rounds must be between 1 and 5, got {args.rounds}")
    check_shared(parser, args)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    config = BenchConfig(users=args.users, ramp=args.ramp, hold=args.hold, app_workers=args.app_workers)
    results = args.results_dir / f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-store-cost"
    print(f"bench-store-cost: {config}, {args.rounds} ABBA round(s); logs in {results}", flush=True)
    try:
        phases = run_phases(config, args.rounds, results)
    except Exception as error:
        print(f"bench-store-cost broke: {error}\nlogs in {results}", file=sys.stderr)
        return 1
    summary = summarise(phases)
    table = rows(phases, summary, when=datetime.now(UTC), host_machine=machine(), git_revision=revision())
    print("\n".join([markdown_row(COLUMNS), *table]))
    print(summary.describe())
    if not args.no_record:
        append_table_rows(args.doc, SECTION, INTRO, COLUMNS, table)
        print(f"rows appended to {args.doc}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
