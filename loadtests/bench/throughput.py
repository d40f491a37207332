"""`make bench`: the 1000-user benchmark of the app against this machine's ceiling, in one run.

    python -m loadtests.bench.throughput [--users 1000] [--ramp 30] [--hold 60] [--app-workers 2]
                              [--locust-workers 0] [--no-broker] [--no-state-store] [--doc docs/benchmarks.md]
                              [--no-record] [--results-dir results]

One run, four measurements with the same Locust mix and the same generator set-up
(loadtests/locust/run.py, profiles in loadtests/locust/profiles.py):
  1. ceiling: `benchmark_1000` (closed loop) against loadtests/bench/ceiling.py, a bare ASGI app with canned
     answers, served by the SAME uvicorn command line as the app (same workers, same flags);
  1b. ceiling, light load: `light_1000` (every user sends 1 request/s) against the same ceiling;
  2. app: `benchmark_1000` against `uvicorn app.main:app` on the full local profile: a throw-away
     PostgreSQL cluster and the tansu broker, so the outbox relay publishes every reading as on ECS,
     and a redis-server as the shared state store (rate limits, anomaly windows; `--no-state-store`
     measures the per-process state instead, for the before/after ratio);
  3. light load: `light_1000` against the same app.
Each measurement is Locust's hold window (after the ramp); server logs and Locust's reports stay in
results/<UTC time>-bench/. For each window the run also records where the core-seconds went
(loadtests/bench/accounting.py): CPU seconds per 1,000 requests of every process group (server workers,
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
from datetime import UTC, datetime
from pathlib import Path

from devstack.local_resources import LOCAL_APP_ENV
from devstack.postgres import PostgresServer
from devstack.processes import free_port, stop
from devstack.redis import RedisServer
from devstack.tansu import TansuBroker
from loadtests.bench.accounting import CpuMeter, app_timings, per_thousand, wait_for_flush
from loadtests.bench.benchmarks_doc import (
    COLUMNS,
    CPU_COLUMNS,
    append_rows,
    cpu_rows,
    markdown_row,
    result_rows,
)
from loadtests.bench.flags import add_load_shape, add_outputs, check_shared
from loadtests.bench.results import (
    LIGHT_P50_FACTOR,
    LIGHT_P99_FACTOR,
    Accounting,
    BenchConfig,
    BenchResult,
    Measurement,
    ratio_budget,
    verdict,
)
from loadtests.harness.app_processes import wait_ready
from loadtests.harness.progress import locust_progress, ticking
from loadtests.harness.provenance import machine, revision

BENCH_PROFILE = "benchmark_1000"
LIGHT_PROFILE = "light_1000"
APP = "app.main:app"
CEILING_APP = "loadtests.bench.ceiling:app"
METRICS_FLUSH_SECONDS = 5  # the app's EMF interval during a bench: fine enough to cut out each window
READY_TIMEOUT = 90.0
OUTBOX_DRAIN_TIMEOUT = 600.0
# --- servers ---------------------------------------------------------------------------------------


def uvicorn_command(asgi_app: str, port: int, workers: int) -> list[str]:
    """The one command line both targets are served with, so only the application differs."""
    return [sys.executable, "-m", "uvicorn", asgi_app, "--host", "127.0.0.1", "--port", str(port),
            "--workers", str(workers), "--backlog", "4096", "--no-access-log", "--log-level", "warning"]


def serve(asgi_app: str, workers: int, env: dict[str, str], log: Path) -> tuple[subprocess.Popen, str]:
    """Start uvicorn and wait for GET /ready (the app: migrated and accepting); returns (process, base URL)."""
    port = free_port()
    process = subprocess.Popen(uvicorn_command(asgi_app, port, workers), env=env,
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
    env = {**os.environ, **LOCAL_APP_ENV, "SENSOR_DATABASE_URL": postgres.url, "SENSOR_DB_POOL_SIZE": "20",
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
    """loadtests.locust.run with the profile shrunk or kept by the flags; no ramp-down (it is not measured)."""
    command = [sys.executable, "-m", "loadtests.locust.run", "--profile", profile, "--host", host,
               "--users", str(config.users), "--ramp", f"{config.ramp:g}", "--hold", f"{config.hold:g}",
               "--ramp-down", "0", "--results-dir", str(results)]
    if config.locust_workers:
        command += ["--workers", str(config.locust_workers)]
    return command


Groups = Callable[[], Mapping[str, list[int]]]


def run_load(target: str, profile: str, host: str, config: BenchConfig, results: Path, *,
             groups: Groups | None = None, app_log: Path | None = None) -> tuple[Measurement, Accounting]:
    """One Locust run through loadtests.locust.run into `results`; its summary.json gives the hold window.
    `groups` names the server-side processes whose CPU is accounted over the hold window (Locust's own
    process tree is added); `app_log` holds the app's EMF lines for its timings.
    Locust exits 1 when the profile's own thresholds (the seed's figures) were missed: not a broken run."""
    results.mkdir(parents=True, exist_ok=True)
    log = results / "run.log"
    timeout = config.ramp + config.hold + 300
    with log.open("w") as output:
        locust = subprocess.Popen(locust_command(profile, host, config, results),
                                  stdout=output, stderr=subprocess.STDOUT)
        meter = CpuMeter(lambda: {**(groups() if groups else {}), "Locust": [locust.pid]})
        timers = meter.start_and_stop_after(config.ramp, config.ramp + config.hold)
        try:
            with ticking(lambda: f"bench {target}: {locust_progress(results)}"):
                locust.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            stop(locust, timeout=30)  # SIGTERM: loadtests.locust.run forwards it to Locust, which then quits
            raise RuntimeError(f"Locust ({profile} against {target}) still running after {timeout:.0f} s; "
                               f"see {log}") from None
        finally:
            for timer in timers:
                timer.cancel()
    summaries = sorted(results.glob("*/summary.json"))
    if not summaries:
        raise RuntimeError(f"Locust ({profile} against {target}) exited with {locust.returncode} "
                           f"and wrote no summary.json; see {log}")
    summary = json.loads(summaries[-1].read_text())
    result = measurement(target, summary)
    timings = {}
    # Locust's own hold window: Locust may take seconds to start on a busy machine, so the window counted
    # from its launch (the CPU meter's) can end before the load's last seconds.
    window_start, window_end = summary.get("hold_started_at"), summary.get("hold_ended_at")
    if app_log and window_start and window_end:
        wait_for_flush(app_log, window_end, METRICS_FLUSH_SECONDS, timeout=2 * METRICS_FLUSH_SECONDS + 5)
        timings = app_timings(app_log, window_start, window_end, METRICS_FLUSH_SECONDS)
    return result, Accounting(per_thousand(meter.seconds(), result.requests), timings)


def measurement(target: str, summary: dict) -> Measurement:
    """summary.json of loadtests.locust.run (hold-window metrics of all requests) -> Measurement."""
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
            return {"app workers": [app_process.pid], "PostgreSQL": postmaster_pids(postgres),
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
    return int(postgres.psql("SELECT count(*) FROM outbox").strip() or 0)


def wait_for_outbox_drained(postgres: PostgresServer, timeout: float = OUTBOX_DRAIN_TIMEOUT) -> float:
    """Seconds until the relay has published the heavy phase's backlog. The light phase measures latency
    on a steady system, not the relay catching up on the closed-loop phase's backlog (that time is
    reported on its own). Raises when the backlog outlives `timeout`: the relay is stuck."""
    started = time.monotonic()
    backlog = outbox_backlog(postgres)
    # The progress line reports the last count taken here: no query of its own.
    with ticking(lambda: f"bench: waiting for the outbox relay, {backlog:,} readings to publish"):
        while backlog > 0:
            if time.monotonic() - started > timeout:
                raise RuntimeError(f"the outbox still held {backlog:,} readings {timeout:.0f} s after the "
                                   f"heavy phase: the relay is not keeping up or is stuck")
            time.sleep(1.0)
            backlog = outbox_backlog(postgres)
    return time.monotonic() - started


def postmaster_pids(postgres: PostgresServer) -> list[int]:
    """The postmaster's pid (first line of postmaster.pid); its backends are its children."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        return [int((postgres.data_dir / "postmaster.pid").read_text().splitlines()[0])]
    return []


def _still_running(process: subprocess.Popen, what: str, log: Path) -> None:
    """A server that died under load makes the figures meaningless: the run broke."""
    if process.poll() is not None:
        raise RuntimeError(f"{what} exited with {process.returncode} during the load; see {log}")


# --- command line ----------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m loadtests.bench.throughput", description=__doc__.splitlines()[0])
    add_load_shape(parser, hold=60.0, app_workers_help="uvicorn --workers for both the app and the ceiling (1-16)")
    parser.add_argument("--locust-workers", type=int, default=0,
                        help="Locust worker processes under a master; 0 = one Locust process (0-16)")
    parser.add_argument("--no-broker", action="store_true",
                        help="run the app without tansu (the outbox stays in PostgreSQL, no relay)")
    parser.add_argument("--relay-process", action="store_true",
                        help="run the outbox relay as its own process instead of inside every app worker")
    parser.add_argument("--no-state-store", action="store_true",
                        help="run the app without redis-server (per-process rate limits and anomaly windows)")
    add_outputs(parser, results_help="Locust's reports go to DIR/<UTC time>-bench/{ceiling,app,light}/ "
                                     "(default %(default)s)")
    args = parser.parse_args(argv)
    check_shared(parser, args)
    if not 0 <= args.locust_workers <= 16:
        parser.error(f"--locust-workers must be between 0 and 16, got {args.locust_workers}")
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
    print("\n".join([markdown_row(COLUMNS), *rows]))
    print("\nwhere the core-seconds went (per 1,000 requests of each hold window):")
    print("\n".join([markdown_row(CPU_COLUMNS), *cpu]))
    outcome, missed = verdict(result)
    print(f"verdict: {outcome}" + "".join(f"\n  missed: {item}" for item in missed))
    budget = ratio_budget(result, os.cpu_count() or 1)
    if budget:
        print(budget)
    print(f"light load: app p50 {result.light.p50_ms:.0f} ms vs ceiling {result.ceiling_light.p50_ms:.0f} ms "
          f"({result.light_factor_text('p50')}, target ≤ {LIGHT_P50_FACTOR:g}x); app p99 {result.light.p99_ms:.0f} ms "
          f"vs ceiling {result.ceiling_light.p99_ms:.0f} ms ({result.light_factor_text('p99')}, target ≤ "
          f"{LIGHT_P99_FACTOR:g}x): {'PASS' if result.light_within_target else 'MISS'}")
    if not args.no_record:
        append_rows(args.doc, rows, cpu)
        print(f"rows appended to {args.doc}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
