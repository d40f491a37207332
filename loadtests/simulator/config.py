"""The simulator's command line: flags, their rules, and the frozen `SimulatorConfig` they build."""

from __future__ import annotations

import argparse
import math
import os
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx

from loadtests.simulator.generation import Shape

DEFAULT_URL = "http://127.0.0.1:8000"
DEFAULT_CLIENT_ID = "simulator"
LOCAL_CLIENT_SECRET = "simulator-local-secret"  # noqa: S105 - the documented local-only secret
SECRET_ENV_VAR = "SIMULATOR_CLIENT_SECRET"  # noqa: S105 - a variable name, not a secret
DEFAULT_SPOOL = Path("var/simulator-spool.jsonl")
# The service's limit (Settings.max_batch_readings); a larger batch would be refused whole.
MAX_BATCH_SIZE = 1000


@dataclass(frozen=True)
class SimulatorConfig:
    url: str = DEFAULT_URL
    client_id: str = DEFAULT_CLIENT_ID
    client_secret: str = LOCAL_CLIENT_SECRET
    devices: int = 5
    rate: float = 1.0
    shape: Shape = "seed002"
    anomaly_rate: float = 0.05
    batch_size: int = 1
    duration: float | None = None
    seed: int = 0
    spool: Path = DEFAULT_SPOOL
    max_attempts: int = 5
    backoff_base: float = 0.5
    backoff_cap: float = 30.0
    request_timeout: float = 10.0
    report_interval: float = 10.0


def _number(
    kind: type[int] | type[float], minimum: float, maximum: float | None = None, *, inclusive: bool
) -> Callable[[str], int | float]:
    """An argparse `type` that names the rule; argparse prefixes the flag ("argument --rate: ...")."""

    def convert(text: str) -> int | float:
        try:
            value = kind(text)
        except ValueError:
            noun = "an integer" if kind is int else "a number"
            raise argparse.ArgumentTypeError(f"must be {noun}, got {text!r}") from None
        if isinstance(value, float) and not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}")
        too_low = value < minimum if inclusive else value <= minimum
        if too_low or (maximum is not None and value > maximum):
            lower = f">= {minimum:g}" if inclusive else f"> {minimum:g}"
            rule = lower if maximum is None else f"{lower} and <= {maximum:g}"
            raise argparse.ArgumentTypeError(f"must be {rule}, got {text}")
        return value

    return convert


def _base_url(text: str) -> str:
    parsed = httpx.URL(text)
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise argparse.ArgumentTypeError(f"must be an http(s) URL such as {DEFAULT_URL}, got {text!r}")
    return text.rstrip("/")


def build_parser() -> argparse.ArgumentParser:
    defaults = SimulatorConfig()
    parser = argparse.ArgumentParser(
        prog="python -m loadtests.simulator",
        description="Send simulated sensor readings to the ingestion service until Ctrl-C or --duration.",
        epilog=f"The client secret can also come from ${SECRET_ENV_VAR} (keeps it out of the process list).",
    )
    parser.add_argument("--url", type=_base_url, default=defaults.url, help="service base URL (%(default)s)")
    parser.add_argument("--client-id", default=defaults.client_id, help="client id for POST /auth/token (%(default)s)")
    parser.add_argument(
        "--client-secret",
        default=os.environ.get(SECRET_ENV_VAR, defaults.client_secret),
        help=f"client secret (default: ${SECRET_ENV_VAR}, else the local development secret)",
    )
    parser.add_argument("--devices", type=_number(int, 1, 10_000, inclusive=True), default=defaults.devices,
                        help="number of simulated devices (%(default)s)")
    parser.add_argument("--rate", type=_number(float, 0, inclusive=False), default=defaults.rate,
                        help="items per second per device (%(default)s)")
    parser.add_argument("--shape", choices=("seed002", "seed004"), default=defaults.shape,
                        help="seed002: one tag reading per item; seed004: wide device records (%(default)s)")
    parser.add_argument("--anomaly-rate", type=_number(float, 0, 1, inclusive=True), default=defaults.anomaly_rate,
                        help="fraction of items with an in-range spike the service should flag (%(default)s)")
    parser.add_argument("--batch-size", type=_number(int, 1, MAX_BATCH_SIZE, inclusive=True),
                        default=defaults.batch_size,
                        help="1: POST /ingest per item; more: POST /ingest/batch per device batch (%(default)s)")
    parser.add_argument("--duration", type=_number(float, 0, inclusive=False), default=None,
                        help="stop after this many seconds (default: run until Ctrl-C)")
    parser.add_argument("--seed", type=int, default=None, help="random seed for reproducible values (default: random)")
    parser.add_argument("--spool", type=Path, default=defaults.spool,
                        help="JSONL file for undelivered request bodies, replayed on start (%(default)s)")
    parser.add_argument("--max-attempts", type=_number(int, 1, 100, inclusive=True), default=defaults.max_attempts,
                        help="delivery attempts on connection errors and 5xx before spooling (%(default)s)")
    parser.add_argument("--report-interval", type=_number(float, 0, inclusive=False),
                        default=defaults.report_interval, help="seconds between summary lines (%(default)s)")
    return parser


def parse_config(argv: Sequence[str] | None = None) -> SimulatorConfig:
    args = build_parser().parse_args(argv)
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(2**31)
    return SimulatorConfig(
        url=args.url, client_id=args.client_id, client_secret=args.client_secret, devices=args.devices,
        rate=args.rate, shape=args.shape, anomaly_rate=args.anomaly_rate, batch_size=args.batch_size,
        duration=args.duration, seed=seed, spool=args.spool, max_attempts=args.max_attempts,
        report_interval=args.report_interval,
    )
