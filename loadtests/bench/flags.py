"""The flags `make bench` (throughput.py) and `make bench-store-cost` (store_cost.py) share: the load
shape of a measurement and where its rows and reports go, with the checks that name a bad flag."""

from __future__ import annotations

import argparse
from pathlib import Path

DOC = Path("docs/benchmarks.md")
# loadtests.locust.run's default too; not imported from there: that would import Locust (and its gevent
# monkey-patching) into this process, which only starts Locust as subprocesses.
DEFAULT_RESULTS = Path("results")


def add_load_shape(parser: argparse.ArgumentParser, *, hold: float, app_workers_help: str) -> None:
    parser.add_argument("--users", type=int, default=1000, help="Locust users per measurement (>= 1)")
    parser.add_argument("--ramp", type=float, default=30.0, help="seconds to start all users (> 0)")
    parser.add_argument("--hold", type=float, default=hold, help="seconds measured at full load (> 0)")
    parser.add_argument("--app-workers", type=int, default=2, help=app_workers_help)


def add_outputs(parser: argparse.ArgumentParser, *, results_help: str) -> None:
    parser.add_argument("--doc", type=Path, default=DOC, help=f"where the rows are appended (default {DOC})")
    parser.add_argument("--no-record", action="store_true", help="print the rows, append nothing")
    parser.add_argument("--results-dir", type=Path, default=DEFAULT_RESULTS, help=results_help)


def check_shared(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Stops with exit status 2 and a message naming the flag, like argparse's own errors."""
    if args.users < 1:
        parser.error(f"--users must be >= 1, got {args.users}")
    if args.ramp <= 0:
        parser.error(f"--ramp must be > 0 seconds, got {args.ramp:g}")
    if args.hold <= 0:
        parser.error(f"--hold must be > 0 seconds, got {args.hold:g}")
    if not 1 <= args.app_workers <= 16:
        parser.error(f"--app-workers must be between 1 and 16, got {args.app_workers}")
    if not args.doc.parent.is_dir():
        parser.error(f"--doc: directory {args.doc.parent} does not exist")
