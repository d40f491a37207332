"""`make bench`: the 1000-user benchmark of the app against this machine's ceiling, in one run.

    python -m loadtests.bench [--users 1000] [--ramp 30] [--hold 60] [--app-workers 2]
                              [--locust-workers 0] [--no-broker] [--no-state-store] [--doc docs/benchmarks.md]
                              [--no-record] [--results-dir results]

One run, four measurements with the same Locust mix and the same generator set-up
(loadtests/run.py, profiles in loadtests/profiles.py):
  1. ceiling: `benchmark_1000` (closed loop) against loadtests/ceiling.py, a bare ASGI app with canned
     answers, served by the SAME uvicorn command line as the app (same workers, same flags);
  1b. ceiling, light load: `light_1000` (every user sends 1 request/s) against the same ceiling;
  2. app: `benchmark_1000` against `uvicorn app.main:app` on the full local profile: a throw-away
     PostgreSQL cluster and the tansu broker, so the outbox relay publishes every reading as on ECS,
     and a redis-server as the shared state store (rate limits, anomaly windows; `--no-state-store`
     measures the per-process state instead, for the before/after ratio);
  3. light load: `light_1000` against the same app.
Each measurement is Locust's hold window (after the ramp); server logs and Locust's reports stay in
results/<UTC time>-bench/. For each window the run also records where the core-seconds went
(loadtests/accounting.py): CPU seconds per 1,000 requests of every process group (server workers,
PostgreSQL, relay, broker, redis, Locust) and, from the app's EMF lines, event-loop lag, group-commit
size and wait, and commit latency. The rows are appended to the section "1000-user benchmark
(make bench)" of docs/benchmarks.md next to the seed's figures, the accounting to "Core-seconds per
phase (make bench)", with date, machine and git revision, and a verdict is printed: PASS when the app
failed no request and reached at least 0.60 of the ceiling's throughput; light load passes when the
app's p50 is at most 3x and its p99 at most 2x the ceiling's under the same light load.
Exit status: 0 when the run completed (whatever the verdict), 1 when it broke (a server or Locust
failed, no results), 2 for bad flags.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from app.devstack.postgres import DATABASE, PostgresServer
from app.devstack.processes import free_port, stop
from app.devstack.redis import RedisServer
from app.devstack.tansu import TansuBroker
from loadtests.accounting import GROUPS, TIMINGS, CpuMeter, Timing, app_timings, per_thousand
from loadtests.drill_bluegreen import wait_ready
from loadtests.progress import locust_progress, ticking
from loadtests.provenance import machine, revision

DOC = Path("docs/benchmarks.md")
# loadtests.run's default too; not imported from there: that would import Locust (and its gevent
# monkey-patching) into this process, which only starts Locust as subprocesses.
DEFAULT_RESULTS = Path("results")
SECTION = "## 1000-user benchmark (make bench)"
BENCH_PROFILE = "benchmark_1000"
LIGHT_PROFILE = "light_1000"
APP = "app.main:app"
CEILING_APP = "loadtests.ceiling:app"
TARGET_RATIO = 0.6
LIGHT_P50_FACTOR = 3.0  # app p50 <= 3x the ceiling's p50 under the same light load
LIGHT_P99_FACTOR = 2.0  # app p99 <= 2x the ceiling's p99
METRICS_FLUSH_SECONDS = 5  # the app's EMF interval during a bench: fine enough to cut out each window
CPU_SECTION = "## Core-seconds per phase (make bench)"
CPU_COLUMNS = ("date (UTC)", "revision", "phase", "requests", *(f"{group} CPU s/1k" for group in GROUPS),
               "total CPU s/1k", "loop lag ms avg/max", "group rows avg/max", "group wait ms avg/max",
               "commit ms avg/max")
CPU_INTRO = """\
Per measured window (Locust's hold window) of each `make bench` run: CPU seconds per 1,000 requests of
each process group, from /proc via psutil (a group is a process and all its descendants, plus its
reaped children), and the app's own timings from its EMF lines (5 s intervals overlapping the window):
event-loop lag (how late a 100 ms timer fired on a worker's loop), group-commit size in readings, how
long a group's oldest request waited before its transaction began, and the commit's duration as the
writer sees it (PostgreSQL commit latency: the one statement, its commit included). `-`: no such process in that
phase (the relay runs inside the app workers unless a separate relay process is listed).
"""
READY_TIMEOUT = 90.0
OUTBOX_DRAIN_TIMEOUT = 600.0
COLUMNS = ("date (UTC)", "machine", "revision", "target", "users", "req/s", "avg ms", "p50 ms", "p95 ms",
           "p99 ms", "failures", "ratio to ceiling", "notes")
SEED_ROW = ("seed's claim", "AWS, 1→20 Fargate tasks", "—", "app (seed)", "1000", "5000", "185", "—", "320",
            "450", "0.2 %", "—", "99.8 % success; not measured here")
INTRO = """\
`make bench` (loadtests/bench.py) runs the same Locust mix (loadtests/profiles.py) at 1000 users
against a bare ASGI app with canned answers (loadtests/ceiling.py: the ceiling of this machine and
this load generator) and against the app on PostgreSQL, in one run, with the same uvicorn command
line and the same Locust set-up for both; then 1000 users at 1 request/s each against the app
(light load), and the same light load against the ceiling. Figures are Locust's hold window after
the ramp. Targets: 0 failed requests and app throughput ≥ 0.60 of the ceiling measured in the same
run; under light load app p50 ≤ 3x and p99 ≤ 2x the ceiling's (rows before 2026-12-03 were judged
against ≥ 50 % and p99 ≤ 50 ms, and have no ceiling light-load row). Load generator,
servers and PostgreSQL share the machine's cores, so the absolute numbers are a floor; the ratio is
the comparable figure. The seed's row is its own claim (20 Fargate tasks behind an ALB), for reference.
"""
PHASES = ("ceiling", "ceiling_light", "app", "light")


@dataclass(frozen=True)
class BenchConfig:
    """Load shape and set-up; the same for both targets."""

    users: int = 1000
    ramp: float = 30.0
    hold: float = 60.0
    app_workers: int = 2
    locust_workers: int = 0

    @property
    def generator(self) -> str:
        if self.locust_workers == 0:
            return "Locust 1 process"
        return f"Locust master + {self.locust_workers} worker{'s' if self.locust_workers > 1 else ''}"


@dataclass(frozen=True)
class Measurement:
    """One target's hold window, from loadtests.run's summary.json."""

    target: str
    users: int
    requests: int
    failures: int
    rps: float
    avg_ms: float
    p50_ms: float
    p95_ms: float
    p99_ms: float

    @property
    def failure_percent(self) -> float:
        return 100.0 * self.failures / self.requests if self.requests else 0.0


@dataclass(frozen=True)
class Accounting:
    """Where one window's core-seconds went: CPU s per 1,000 requests by group, and the app's timings."""

    cpu_per_thousand: dict[str, float]
    timings: dict[str, Timing]


@dataclass(frozen=True)
class BenchResult:
    ceiling: Measurement
    app: Measurement
    light: Measurement
    ceiling_light: Measurement
    accounting: dict[str, Accounting] = field(default_factory=dict)  # keyed by PHASES
    outbox_drain_seconds: float | None = None  # the relay's catch-up between the heavy and light phases

    @property
    def ratio(self) -> float:
        return self.app.rps / self.ceiling.rps if self.ceiling.rps else 0.0

    @property
    def light_p50_factor(self) -> float:
        return self.light.p50_ms / self.ceiling_light.p50_ms if self.ceiling_light.p50_ms else float("inf")

    @property
    def light_p99_factor(self) -> float:
        return self.light.p99_ms / self.ceiling_light.p99_ms if self.ceiling_light.p99_ms else float("inf")

    @property
    def light_within_target(self) -> bool:
        return (self.light.failures == 0 and self.light_p50_factor <= LIGHT_P50_FACTOR
                and self.light_p99_factor <= LIGHT_P99_FACTOR)


# --- servers ---------------------------------------------------------------------------------------


def uvicorn_command(asgi_app: str, port: int, workers: int) -> list[str]:
    """The one command line both targets are served with, so only the application differs."""
    return [sys.executable, "-m", "uvicorn", asgi_app, "--host", "127.0.0.1", "--port", str(port),
            "--workers", str(workers), "--backlog", "4096", "--no-access-log", "--log-level", "warning"]


def serve(asgi_app: str, workers: int, env: dict[str, str], log: Path) -> tuple[subprocess.Popen, str]:
    """Start uvicorn and wait for GET /ready (the app: migrated and accepting); returns (process, base URL)."""
    port = free_port()
    process = subprocess.Popen(uvicorn_command(asgi_app, port, workers), env=env,  # noqa: S603 - fixed command
                               stdout=log.open("ab"), stderr=subprocess.STDOUT)
    try:
        wait_ready(port, process, timeout=READY_TIMEOUT)
    except Exception:
        stop(process, timeout=30)
        raise
    return process, f"http://127.0.0.1:{port}"


def app_environment(postgres: PostgresServer, broker: TansuBroker | None, results: Path,
                    state_store: RedisServer | None = None, *, relay_process: bool = False) -> dict[str, str]:
    """The full local profile: PostgreSQL, the broker (the relay publishes), the shared state store, temp dead
    letters, loadtest client."""
    env = {**os.environ, "SENSOR_DATABASE_URL": postgres.url, "SENSOR_DB_POOL_SIZE": "20",
           "SENSOR_DEAD_LETTER_DIR": str(results / "dead-letter"), "SENSOR_LOG_LEVEL": "WARNING",
           "SENSOR_METRICS_FLUSH_SECONDS": str(METRICS_FLUSH_SECONDS)}
    if broker is not None:
        env["SENSOR_KAFKA_BOOTSTRAP"] = broker.bootstrap
        env["SENSOR_RELAY_IN_PROCESS"] = "false" if relay_process else "true"
    if state_store is not None:
        env["SENSOR_STATE_STORE_URL"] = state_store.url
    return env


# --- load ------------------------------------------------------------------------------------------


def locust_command(profile: str, host: str, config: BenchConfig, results: Path) -> list[str]:
    """loadtests.run with the profile shrunk or kept by the flags; no ramp-down (it is not measured)."""
    command = [sys.executable, "-m", "loadtests.run", "--profile", profile, "--host", host,
               "--users", str(config.users), "--ramp", f"{config.ramp:g}", "--hold", f"{config.hold:g}",
               "--ramp-down", "0", "--results-dir", str(results)]
    if config.locust_workers:
        command += ["--workers", str(config.locust_workers)]
    return command


Groups = Callable[[], Mapping[str, list[int]]]


def run_load(target: str, profile: str, host: str, config: BenchConfig, results: Path, *,
             groups: Groups | None = None, app_log: Path | None = None) -> tuple[Measurement, Accounting]:
    """One Locust run through loadtests.run into `results`; its summary.json gives the hold window.
    `groups` names the server-side processes whose CPU is accounted over the hold window (Locust's own
    process tree is added); `app_log` holds the app's EMF lines for its timings.
    Locust exits 1 when the profile's own thresholds (the seed's figures) were missed: not a broken run."""
    results.mkdir(parents=True, exist_ok=True)
    log = results / "run.log"
    timeout = config.ramp + config.hold + 300
    with log.open("w") as output:
        locust = subprocess.Popen(locust_command(profile, host, config, results),  # noqa: S603 - fixed command
                                  stdout=output, stderr=subprocess.STDOUT)
        meter = CpuMeter(lambda: {**(groups() if groups else {}), "Locust": [locust.pid]})
        window_start = time.time() + config.ramp
        timers = meter.start_and_stop_after(config.ramp, config.ramp + config.hold)
        try:
            with ticking(lambda: f"bench {target}: {locust_progress(results)}"):
                locust.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            stop(locust, timeout=30)  # SIGTERM: loadtests.run forwards it to Locust, which then quits
            raise RuntimeError(f"Locust ({profile} against {target}) still running after {timeout:.0f} s; "
                               f"see {log}") from None
        finally:
            for timer in timers:
                timer.cancel()
    summaries = sorted(results.glob("*/summary.json"))
    if not summaries:
        raise RuntimeError(f"Locust ({profile} against {target}) exited with {locust.returncode} "
                           f"and wrote no summary.json; see {log}")
    result = measurement(target, json.loads(summaries[-1].read_text()))
    timings = app_timings(app_log, window_start, window_start + config.hold, METRICS_FLUSH_SECONDS) if app_log else {}
    return result, Accounting(per_thousand(meter.seconds(), result.requests), timings)


def measurement(target: str, summary: dict) -> Measurement:
    """summary.json of loadtests.run (hold-window metrics of all requests) -> Measurement."""
    if summary.get("window") != "hold":
        raise RuntimeError(f"Locust against {target} measured the {summary.get('window')!r}, not the hold window")
    metrics = summary["metrics"]
    return Measurement(
        target=target, users=int(summary["profile"]["timeline"]["users"]), requests=int(metrics["requests"]),
        failures=int(metrics["failures"]), rps=float(metrics["rps"]), avg_ms=float(metrics["avg_ms"]),
        p50_ms=float(metrics["p50_ms"]), p95_ms=float(metrics["p95_ms"]), p99_ms=float(metrics["p99_ms"]),
    )


def run_bench(config: BenchConfig, results: Path, *, broker: bool = True, state_store: bool = True,
              relay_process: bool = False) -> BenchResult:
    """Ceiling, then the app on PostgreSQL (+ broker), then light load on the same app. Everything the
    run produces stays in `results`: server logs (the app's holds its EMF metrics: commit latency and
    batch sizes, outbox backlog) and Locust's reports in {ceiling,app,light}/."""
    results = results.resolve()  # the app's dead-letter directory must not depend on its working directory
    results.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as cleanup:
        accounting: dict[str, Accounting] = {}
        ceiling_process, ceiling_url = serve(CEILING_APP, config.app_workers, dict(os.environ),
                                             results / "ceiling.log")
        with contextlib.ExitStack() as ceiling_only:
            ceiling_only.callback(stop, ceiling_process, timeout=30)
            servers = lambda: {"app workers": [ceiling_process.pid]}  # noqa: E731 - the server's tree
            ceiling, accounting["ceiling"] = run_load("ceiling", BENCH_PROFILE, ceiling_url, config,
                                                      results / "ceiling", groups=servers)
            ceiling_light, accounting["ceiling_light"] = run_load(
                "ceiling, light load", LIGHT_PROFILE, ceiling_url, config, results / "ceiling-light", groups=servers)
            _still_running(ceiling_process, "the ceiling app", results / "ceiling.log")

        postgres = PostgresServer().start()
        cleanup.callback(postgres.destroy)
        tansu = TansuBroker(log_path=results / "tansu.log").start() if broker else None
        if tansu is not None:
            cleanup.callback(tansu.stop)
        store = RedisServer(log_path=results / "redis.log").start() if state_store else None
        if store is not None:
            cleanup.callback(store.stop)
        environment = app_environment(postgres, tansu, results, store, relay_process=relay_process and broker)
        app_process, app_url = serve(APP, config.app_workers, environment, results / "app.log")
        cleanup.callback(stop, app_process, timeout=60)
        relay = None
        if relay_process and tansu is not None:  # the relay's own process (app/outbox/standalone.py)
            relay = subprocess.Popen([sys.executable, "-m", "app.outbox.standalone"], env=environment,
                                     stdout=(results / "relay.log").open("ab"), stderr=subprocess.STDOUT)
            cleanup.callback(stop, relay, timeout=30)

        def app_groups() -> dict[str, list[int]]:
            return {"app workers": [app_process.pid], "PostgreSQL": _postmaster(postgres),
                    "broker": [tansu.process.pid] if tansu is not None and tansu.process else [],
                    "redis": [store.process.pid] if store is not None and store.process else [],
                    "relay": [relay.pid] if relay is not None else []}

        app, accounting["app"] = run_load("app", BENCH_PROFILE, app_url, config, results / "app",
                                          groups=app_groups, app_log=results / "app.log")
        drain_seconds = wait_for_outbox_drained(postgres) if tansu is not None else None
        light, accounting["light"] = run_load("app, light load", LIGHT_PROFILE, app_url, config,
                                              results / "light", groups=app_groups, app_log=results / "app.log")
        _still_running(app_process, "the app", results / "app.log")
        if relay is not None:
            _still_running(relay, "the relay process", results / "relay.log")
    return BenchResult(ceiling=ceiling, app=app, light=light, ceiling_light=ceiling_light, accounting=accounting,
                       outbox_drain_seconds=drain_seconds)


def outbox_backlog(postgres: PostgresServer) -> int:
    """Readings committed but not yet published by the relay."""
    completed = postgres.run("psql", "-At", "-d", f"host=127.0.0.1 port={postgres.port} user=postgres "
                             f"dbname={DATABASE}", "-c", "SELECT count(*) FROM outbox")
    return int(completed.stdout.strip() or 0)


def wait_for_outbox_drained(postgres: PostgresServer, timeout: float = OUTBOX_DRAIN_TIMEOUT) -> float:
    """Seconds until the relay has published the heavy phase's backlog. The light phase measures latency
    on a steady system, not the relay catching up on the closed-loop phase's backlog (that time is
    reported on its own). Raises when the backlog outlives `timeout`: the relay is stuck."""
    started = time.monotonic()
    with ticking(lambda: f"bench: waiting for the outbox relay, {outbox_backlog(postgres):,} readings to publish"):
        while (backlog := outbox_backlog(postgres)) > 0:
            if time.monotonic() - started > timeout:
                raise RuntimeError(f"the outbox still held {backlog:,} readings {timeout:.0f} s after the "
                                   f"heavy phase: the relay is not keeping up or is stuck")
            time.sleep(1.0)
    return time.monotonic() - started


def _postmaster(postgres: PostgresServer) -> list[int]:
    """The postmaster's pid (first line of postmaster.pid); its backends are its children."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        return [int((postgres.data_dir / "postmaster.pid").read_text().splitlines()[0])]
    return []


def _still_running(process: subprocess.Popen, what: str, log: Path) -> None:
    """A server that died under load makes the figures meaningless: the run broke."""
    if process.poll() is not None:
        raise RuntimeError(f"{what} exited with {process.returncode} during the load; see {log}")


# --- the record ------------------------------------------------------------------------------------


def _row(cells: tuple[str, ...] | list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def result_rows(result: BenchResult, config: BenchConfig, *, when: datetime, host_machine: str,
                git_revision: str, broker: bool = True, relay_process: bool = False) -> list[str]:
    """The four rows of one run (ceiling, ceiling light load, app, app light load)."""
    relay_note = "outbox relay to tansu in its own process" if relay_process else "outbox relay to tansu"
    setup = f"uvicorn --workers {config.app_workers}, {config.generator}, ramp {config.ramp:g} s, hold {config.hold:g} s"
    notes = {
        "ceiling": f"bare ASGI, no database; {setup}",
        "ceiling_light": "1 req/s per user; the light-load floor of this machine",
        "app": f"PostgreSQL, {relay_note if broker else 'no broker (outbox kept)'}; "
               f"verdict {verdict(result)[0]}",
        "light": f"1 req/s per user{_drain_note(result)}; p50 {result.light_p50_factor:.1f}x (target ≤ {LIGHT_P50_FACTOR:g}x), "
                 f"p99 {result.light_p99_factor:.1f}x (target ≤ {LIGHT_P99_FACTOR:g}x) the ceiling's light load: "
                 f"{'PASS' if result.light_within_target else 'MISS'}",
    }
    ratios = {"ceiling": "1.00", "ceiling_light": "—", "app": f"{result.ratio:.2f}", "light": "—"}
    rows = []
    for key, item in (("ceiling", result.ceiling), ("ceiling_light", result.ceiling_light), ("app", result.app),
                      ("light", result.light)):
        rows.append(_row([
            when.strftime("%Y-%m-%d %H:%M"), host_machine, git_revision, item.target, str(item.users),
            f"{item.rps:.0f}", f"{item.avg_ms:.0f}", f"{item.p50_ms:.0f}", f"{item.p95_ms:.0f}", f"{item.p99_ms:.0f}",
            f"{item.failures} ({item.failure_percent:.3f} %)", ratios[key], notes[key],
        ]))
    return rows


def _drain_note(result: BenchResult) -> str:
    if result.outbox_drain_seconds is None:
        return ""
    return f", started after the relay drained the heavy phase's outbox ({result.outbox_drain_seconds:.0f} s)"


def cpu_rows(result: BenchResult, *, when: datetime, git_revision: str) -> list[str]:
    """One accounting row per measured window (CPU_COLUMNS)."""
    names = {"ceiling": result.ceiling, "ceiling_light": result.ceiling_light, "app": result.app,
             "light": result.light}
    rows = []
    for key in PHASES:
        account = result.accounting.get(key)
        if account is None:
            continue
        cpu = account.cpu_per_thousand
        timings = [account.timings.get(name) for name in TIMINGS]
        rows.append(_row([
            when.strftime("%Y-%m-%d %H:%M"), git_revision, names[key].target, str(names[key].requests),
            *(f"{cpu[group]:.2f}" if group in cpu else "-" for group in GROUPS), f"{sum(cpu.values()):.2f}",
            *(f"{timing.mean:.1f} / {timing.maximum:.0f}" if timing else "-" for timing in timings),
        ]))
    return rows


def append_rows(doc: Path, rows: list[str], cpu: list[str] | None = None) -> None:
    """Add rows at the end of the section's table, creating the section (header + seed row) if absent;
    `cpu` rows likewise at the end of the accounting section's table."""
    lines = (doc.read_text() if doc.exists() else "# Benchmarks\n").splitlines()
    if SECTION not in lines:
        lines += ["", SECTION, "", *INTRO.splitlines(), "", _row(COLUMNS), _row(["---"] * len(COLUMNS)),
                  _row(SEED_ROW), *rows]
    else:
        _, end = _table_span(lines)
        lines = [*lines[:end], *rows, *lines[end:]]
    if cpu:
        if CPU_SECTION not in lines:
            lines += ["", CPU_SECTION, "", *CPU_INTRO.splitlines(), "", _row(CPU_COLUMNS),
                      _row(["---"] * len(CPU_COLUMNS)), *cpu]
        else:
            _, end = _table_span(lines, CPU_SECTION)
            lines = [*lines[:end], *cpu, *lines[end:]]
    doc.write_text("\n".join(lines) + "\n")


def read_rows(doc: Path, section: str = SECTION) -> list[dict[str, str]]:
    """The section's table as dicts keyed by its header (the seed row included)."""
    lines = doc.read_text().splitlines()
    first, end = _table_span(lines, section)
    table = lines[first:end]
    header = [cell.strip() for cell in table[0].strip("|").split("|")]
    return [dict(zip(header, (cell.strip() for cell in line.strip("|").split("|")), strict=True))
            for line in table[2:]]


def _table_span(lines: list[str], section: str = SECTION) -> tuple[int, int]:
    """[first, end) line indexes of the table under `section`."""
    start = lines.index(section)
    first = next(i for i in range(start + 1, len(lines)) if lines[i].startswith("|"))
    end = first
    while end < len(lines) and lines[end].startswith("|"):
        end += 1
    return first, end


def verdict(result: BenchResult) -> tuple[str, list[str]]:
    """("PASS" | "MISS", the targets missed)."""
    missed = []
    if result.app.failures:
        missed.append(f"{result.app.failures} failed requests at {result.app.users} users (target 0)")
    if result.ratio < TARGET_RATIO:
        missed.append(f"app throughput {result.ratio:.0%} of the ceiling (target ≥ {TARGET_RATIO:.0%})")
    if result.light.failures:
        missed.append(f"{result.light.failures} failed requests under light load (target 0)")
    if result.light_p50_factor > LIGHT_P50_FACTOR:
        missed.append(f"light load p50 {result.light_p50_factor:.1f}x the ceiling's (target ≤ {LIGHT_P50_FACTOR:g}x)")
    if result.light_p99_factor > LIGHT_P99_FACTOR:
        missed.append(f"light load p99 {result.light_p99_factor:.1f}x the ceiling's (target ≤ {LIGHT_P99_FACTOR:g}x)")
    return ("MISS" if missed else "PASS"), missed


# --- command line ----------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m loadtests.bench", description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=1000, help="Locust users per measurement (>= 1)")
    parser.add_argument("--ramp", type=float, default=30.0, help="seconds to start all users (> 0)")
    parser.add_argument("--hold", type=float, default=60.0, help="seconds measured at full load (> 0)")
    parser.add_argument("--app-workers", type=int, default=2,
                        help="uvicorn --workers for both the app and the ceiling (1-16)")
    parser.add_argument("--locust-workers", type=int, default=0,
                        help="Locust worker processes under a master; 0 = one Locust process (0-16)")
    parser.add_argument("--no-broker", action="store_true",
                        help="run the app without tansu (the outbox stays in PostgreSQL, no relay)")
    parser.add_argument("--relay-process", action="store_true",
                        help="run the outbox relay as its own process instead of inside every app worker")
    parser.add_argument("--no-state-store", action="store_true",
                        help="run the app without redis-server (per-process rate limits and anomaly windows)")
    parser.add_argument("--doc", type=Path, default=DOC, help=f"where the rows are appended (default {DOC})")
    parser.add_argument("--no-record", action="store_true", help="print the rows, append nothing")
    parser.add_argument("--results-dir", type=Path, default=DEFAULT_RESULTS,
                        help="Locust's reports go to DIR/<UTC time>-bench/{ceiling,app,light}/ (default %(default)s)")
    args = parser.parse_args(argv)
    if args.users < 1:
        parser.error(f"--users must be >= 1, got {args.users}")
    if args.ramp <= 0:
        parser.error(f"--ramp must be > 0 seconds, got {args.ramp:g}")
    if args.hold <= 0:
        parser.error(f"--hold must be > 0 seconds, got {args.hold:g}")
    if not 1 <= args.app_workers <= 16:
        parser.error(f"--app-workers must be between 1 and 16, got {args.app_workers}")
    if not 0 <= args.locust_workers <= 16:
        parser.error(f"--locust-workers must be between 0 and 16, got {args.locust_workers}")
    if not args.doc.parent.is_dir():
        parser.error(f"--doc: directory {args.doc.parent} does not exist")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    config = BenchConfig(users=args.users, ramp=args.ramp, hold=args.hold, app_workers=args.app_workers,
                         locust_workers=args.locust_workers)
    results = args.results_dir / f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-bench"
    print(f"bench: {config}, broker {'off' if args.no_broker else 'on'}, relay "
          f"{'own process' if args.relay_process else 'in the app workers'}, state store "
          f"{'off' if args.no_state_store else 'on'}; logs and Locust reports in {results}", flush=True)
    try:
        result = run_bench(config, results, broker=not args.no_broker, state_store=not args.no_state_store,
                           relay_process=args.relay_process)
    except Exception as error:
        print(f"bench broke: {error}\nlogs in {results}", file=sys.stderr)
        return 1
    when, git_revision = datetime.now(UTC), revision()
    rows = result_rows(result, config, when=when, host_machine=machine(), git_revision=git_revision,
                       broker=not args.no_broker, relay_process=args.relay_process)
    cpu = cpu_rows(result, when=when, git_revision=git_revision)
    print("\n".join([_row(COLUMNS), *rows]))
    print("\nwhere the core-seconds went (per 1,000 requests of each hold window):")
    print("\n".join([_row(CPU_COLUMNS), *cpu]))
    outcome, missed = verdict(result)
    print(f"verdict: {outcome}" + "".join(f"\n  missed: {item}" for item in missed))
    print(f"light load: app p50 {result.light.p50_ms:.0f} ms vs ceiling {result.ceiling_light.p50_ms:.0f} ms "
          f"({result.light_p50_factor:.1f}x, target ≤ {LIGHT_P50_FACTOR:g}x); app p99 {result.light.p99_ms:.0f} ms "
          f"vs ceiling {result.ceiling_light.p99_ms:.0f} ms ({result.light_p99_factor:.1f}x, target ≤ "
          f"{LIGHT_P99_FACTOR:g}x): {'PASS' if result.light_within_target else 'MISS'}")
    if not args.no_record:
        append_rows(args.doc, rows, cpu)
        print(f"rows appended to {args.doc}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
