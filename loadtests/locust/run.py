"""Run a load-test profile and keep everything it produced in a timestamped results folder.

    python -m loadtests.locust.run --profile smoke --host http://127.0.0.1:8000
    python -m loadtests.locust.run --profile benchmark_1000 --host https://api.example.com --workers 2
    python -m loadtests.locust.run --profile step --ui                      (web UI at http://127.0.0.1:8089)
    python -m loadtests.locust.run --profile benchmark_1000 --master --expect-workers 4 --host ...   (remote workers)
    python -m loadtests.locust.run --worker --master-host 10.0.1.5                             (one remote worker)

Creates `results/<UTC time>-<profile>/` (web UI: `results/<UTC time>-<profile>-ui/` per test run, written
when the run stops; loadtests/locust/ui_results.py) with Locust's CSV files (locust_stats.csv, locust_failures.csv,
locust_stats_history.csv), report.html, summary.json (hold-window metrics, thresholds, verdict) and
response_times.png, throughput.png, users.png. The exit code is Locust's: 0 when every threshold of the
profile held over the hold window, 1 when one was violated (each named in the log), 2 for bad flags.

--workers N runs a local master plus N worker processes (Locust uses one CPU core per process).
The load-test client's secret comes from $LOADTEST_CLIENT_SECRET (not a flag: it would show in `ps`).
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from devstack.processes import free_port, stop
from loadtests.locust.profiles import DEFAULT_PROFILE, OVERRIDE_OPTIONS, PROFILES
from loadtests.locust.reports import HISTORY_FILE, new_results_dir, plot_run
from loadtests.locust.target_guard import TARGET_ENV
from loadtests.locust.thresholds import format_overrides, parse_override
from loadtests.locust.users import CLIENT_ID_ENV

REPOSITORY = Path(__file__).resolve().parents[2]
LOCUSTFILE = Path(__file__).with_name("locustfile.py")
DEFAULT_HOST = "http://127.0.0.1:8000"
DEFAULT_RESULTS = Path("results")
CSV_PREFIX = "locust"
WORKER_CONNECT_SECONDS = 60


def _threshold(text: str) -> tuple[str, float]:
    try:
        return parse_override(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _positive(kind: type, *, allow_zero: bool = False):
    def convert(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {'an integer' if kind is int else 'a number'}, got {text!r}") from None
        if value < 0 or (value == 0 and not allow_zero):
            raise argparse.ArgumentTypeError(f"must be {'>= 0' if allow_zero else '> 0'}, got {text}")
        return value

    return convert


def _host(text: str) -> str:
    if not text.startswith(("http://", "https://")) or len(text.split("://", 1)[1].strip("/")) == 0:
        raise argparse.ArgumentTypeError(f"must be an http(s) URL such as {DEFAULT_HOST}, got {text!r}")
    return text.rstrip("/")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m loadtests.locust.run", description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="Profiles:\n" + "\n".join(f"  {p.name:15} {p.description}"
                                                                       for p in PROFILES.values()))
    parser.add_argument("--profile", choices=tuple(PROFILES), default=DEFAULT_PROFILE,
                        help="load shape, thresholds and user mix (%(default)s)")
    parser.add_argument("--host", type=_host, default=DEFAULT_HOST, help="the service's base URL (%(default)s)")
    parser.add_argument("--users", type=_positive(int), help="override the profile's (peak) users")
    parser.add_argument("--ramp", type=_positive(float, allow_zero=True), help="override the ramp-up seconds")
    parser.add_argument("--hold", type=_positive(float), help="override the hold (measured) seconds")
    parser.add_argument("--ramp-down", type=_positive(float, allow_zero=True), help="override the ramp-down seconds")
    parser.add_argument("--threshold", type=_threshold, action="append", default=[], metavar="NAME=VALUE",
                        help="override a threshold (repeatable): fail_ratio, avg_ms, p95_ms, p99_ms, min_rps")
    parser.add_argument("--seed", type=int, default=1, help="seed of the generated data (%(default)s)")
    parser.add_argument("--client-id", default=os.environ.get(CLIENT_ID_ENV),
                        help=f"load-test client id (${CLIENT_ID_ENV}, else the local `loadtest` client)")
    parser.add_argument("--results-dir", type=Path, default=DEFAULT_RESULTS,
                        help="parent of the run's timestamped folder (%(default)s)")
    mode = parser.add_argument_group("mode (default: one headless process)")
    mode.add_argument("--workers", type=_positive(int, allow_zero=True), default=0,
                      help="local worker processes under a local master (0: a single process)")
    mode.add_argument("--ui", action="store_true", help="serve the web UI instead of starting headless")
    mode.add_argument("--web-host", default="127.0.0.1", help="web UI address (%(default)s)")
    mode.add_argument("--web-port", type=_positive(int), default=8089, help="web UI port (%(default)s)")
    mode.add_argument("--master", action="store_true", help="a master for remote workers (with --expect-workers)")
    mode.add_argument("--expect-workers", type=_positive(int), help="remote workers the master waits for")
    mode.add_argument("--master-bind-port", "--master-port", type=_positive(int), default=5557,
                      help="the master's port for its workers (%(default)s)")
    mode.add_argument("--worker", action="store_true", help="a worker of a remote master (with --master-host)")
    mode.add_argument("--master-host", help="the master's address, for --worker")
    return parser


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.master and not args.expect_workers:
        parser.error("--master needs --expect-workers N (the number of remote workers to wait for)")
    if args.expect_workers and not args.master:
        parser.error("--expect-workers goes with --master (local workers: --workers N)")
    if args.worker and not args.master_host:
        parser.error("--worker needs --master-host (the master's address)")
    if sum((bool(args.workers), args.master, args.worker)) > 1:
        parser.error("choose one of --workers, --master and --worker")
    return args


def profile_arguments(args: argparse.Namespace) -> list[str]:
    """The custom Locust arguments of loadtests/locust/locustfile.py for this run."""
    arguments = ["--load-profile", args.profile, "--data-seed", str(args.seed)]
    for option, value in zip(OVERRIDE_OPTIONS, (args.users, args.ramp, args.hold, args.ramp_down), strict=True):
        if value is not None:
            arguments += [f"--{option.replace('_', '-')}", f"{value:g}"]
    if args.threshold:
        arguments += ["--load-thresholds", format_overrides(dict(args.threshold))]
    if args.client_id:
        arguments += ["--loadtest-client-id", args.client_id]
    return arguments


def commands(args: argparse.Namespace, results: Path | None) -> tuple[list[str], list[list[str]]]:
    """The Locust command of the master (or single process) and of each local worker."""
    locust = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE)]
    if args.worker:
        return [*locust, "--worker", "--master-host", args.master_host, "--master-port",
                str(args.master_bind_port)], []
    assert results is not None
    main = [*locust, "--host", args.host, *profile_arguments(args)]
    if args.ui:
        # Each test run started from the UI writes its own folder under `results` (loadtests/locust/ui_results.py).
        main += ["--ui-results-dir", str(results), "--web-host", args.web_host, "--web-port", str(args.web_port)]
    else:
        main += ["--csv", str(results / CSV_PREFIX), "--csv-full-history", "--html", str(results / "report.html"),
                 "--summary-file", str(results / "summary.json"), "--headless"]
    workers: list[list[str]] = []
    if args.master:
        main += ["--master", "--master-bind-port", str(args.master_bind_port), "--expect-workers",
                 str(args.expect_workers)]
    elif args.workers:
        port = free_port()
        main += ["--master", "--master-bind-host", "127.0.0.1", "--master-bind-port", str(port),
                 "--expect-workers", str(args.workers), "--expect-workers-max-wait", str(WORKER_CONNECT_SECONDS)]
        workers = [[*locust, "--worker", "--master-host", "127.0.0.1", "--master-port", str(port)]
                   for _ in range(args.workers)]
    return main, workers


def run(args: argparse.Namespace) -> int:
    if args.worker:
        results = None
    elif args.ui:
        results = args.results_dir.resolve()  # the parent: one folder per test run
    else:
        results = new_results_dir(args.results_dir.resolve(), args.profile)
    main_command, worker_commands = commands(args, results)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, (str(REPOSITORY), os.environ.get("PYTHONPATH"))))}
    if not args.worker:
        # The only host this run (and its local workers) may send the client secret to, whatever the
        # web UI's host field says later (loadtests/locust/target_guard.py).
        env[TARGET_ENV] = args.host
    if args.ui:
        print(f"Locust web UI: http://{args.web_host}:{args.web_port} -> {args.host}; each test run writes "
              f"{results}/<UTC time>-<profile>-ui/ when it stops", flush=True)
    elif results is not None:
        print(f"load test {args.profile} -> {args.host}; results in {results}", flush=True)
    # Own sessions: a terminal's Ctrl-C reaches this process only, which stops Locust exactly once with
    # SIGTERM (Locust's graceful stop: the quitting hooks run and the reports are written).
    main_process = subprocess.Popen(main_command, env=env, cwd=REPOSITORY, start_new_session=True)  # noqa: S603
    workers = [subprocess.Popen(command, env=env, cwd=REPOSITORY, start_new_session=True)  # noqa: S603
               for command in worker_commands]

    def forward(_signum: int, _frame: object) -> None:
        for process in (main_process, *workers):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)

    previous = {signum: signal.signal(signum, forward) for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        exit_code = main_process.wait()
        for worker in workers:  # they quit when the master does
            try:
                worker.wait(timeout=15)
            except subprocess.TimeoutExpired:
                stop(worker)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        for process in (main_process, *workers):
            stop(process)
    if results is not None and not args.ui:
        report(results)
    return exit_code


def report(results: Path) -> None:
    if (results / HISTORY_FILE).exists():
        try:
            for path in plot_run(results):
                print(f"plot: {path}")
        except ValueError as error:
            print(f"no plots: {error}", file=sys.stderr)
    print(f"results: {results}", flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    return run(parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
