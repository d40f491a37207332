"""PNG plots of a run from Locust's `<prefix>_stats_history.csv` (written with --csv-full-history).

    python -m loadtests.locust.reports results/20261122T203000Z-smoke [--csv-prefix locust]

Three plots of the "Aggregated" rows, seconds since the start on the x axis, the hold window shaded
(from summary.json when there is one): response-time percentiles (50/95/99%, Locust's "current"
values over its last seconds), requests and failures per second, and users.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display on servers and in tests
import matplotlib.pyplot as plt

CSV_PREFIX = "locust"  # Locust's --csv prefix: <prefix>_stats_history.csv
HISTORY_FILE = f"{CSV_PREFIX}_stats_history.csv"
PLOTS = ("response_times.png", "throughput.png", "users.png")
PERCENTILES = ("50%", "95%", "99%")


@dataclass
class History:
    seconds: list[float] = field(default_factory=list)
    users: list[int] = field(default_factory=list)
    rps: list[float] = field(default_factory=list)
    failures_per_s: list[float] = field(default_factory=list)
    percentiles: dict[str, list[float | None]] = field(default_factory=lambda: {p: [] for p in PERCENTILES})
    started_at: float = 0.0


def read_history(path: Path) -> History:
    with path.open(newline="") as history_file:
        rows = [row for row in csv.DictReader(history_file) if row["Name"] == "Aggregated"]
    if not rows:
        raise ValueError(f"{path} has no Aggregated rows (was the run shorter than a second?)")
    history = History(started_at=float(rows[0]["Timestamp"]))
    for row in rows:
        history.seconds.append(float(row["Timestamp"]) - history.started_at)
        history.users.append(int(row["User Count"]))
        history.rps.append(float(row["Requests/s"]))
        history.failures_per_s.append(float(row["Failures/s"]))
        for percentile in PERCENTILES:
            value = row[percentile]
            history.percentiles[percentile].append(None if value == "N/A" else float(value))
    return history


def plot_run(results_dir: Path, csv_prefix: str = CSV_PREFIX) -> list[Path]:
    """Write the PNGs next to the CSV files; returns their paths."""
    history = read_history(results_dir / f"{csv_prefix}_stats_history.csv")
    hold = _hold_window(results_dir / "summary.json", history.started_at)
    written = []
    for name, draw in zip(PLOTS, (_response_times, _throughput, _users), strict=True):
        figure, axes = plt.subplots(figsize=(10, 4), layout="constrained")
        try:
            draw(axes, history)
            if hold:
                axes.axvspan(*hold, color="tab:green", alpha=0.1, label="hold window (thresholds)")
            axes.set_xlabel("seconds since start")
            axes.grid(alpha=0.3)
            axes.legend(loc="upper left")
            path = results_dir / name
            figure.savefig(path, dpi=100)
            written.append(path)
        finally:
            plt.close(figure)
    return written


def _response_times(axes, history: History) -> None:
    for percentile, values in history.percentiles.items():
        axes.plot(history.seconds, [float("nan") if v is None else v for v in values], label=f"p{percentile[:-1]}")
    axes.set_ylabel("response time (ms)")
    axes.set_title("Response-time percentiles")


def _throughput(axes, history: History) -> None:
    axes.plot(history.seconds, history.rps, label="requests/s")
    axes.plot(history.seconds, history.failures_per_s, label="failures/s", color="tab:red")
    axes.set_ylabel("per second")
    axes.set_title("Throughput")


def _users(axes, history: History) -> None:
    axes.plot(history.seconds, history.users, label="users", drawstyle="steps-post")
    axes.set_ylabel("users")
    axes.set_title("Users")


def _hold_window(summary_path: Path, started_at: float) -> tuple[float, float] | None:
    if not summary_path.exists():
        return None
    summary = json.loads(summary_path.read_text())
    start, end = summary.get("hold_started_at"), summary.get("hold_ended_at")
    if start is None:
        return None
    return start - started_at, (end if end is not None else start) - started_at


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtests.locust.reports", description=__doc__.splitlines()[0])
    parser.add_argument("results_dir", type=Path, help="a folder holding <prefix>_stats_history.csv")
    parser.add_argument("--csv-prefix", default=CSV_PREFIX, help="Locust's --csv file prefix (%(default)s)")
    args = parser.parse_args(argv)
    history = args.results_dir / f"{args.csv_prefix}_stats_history.csv"
    if not history.exists():
        parser.error(f"{history} not found (run Locust with --csv <dir>/{args.csv_prefix} --csv-full-history)")
    for path in plot_run(args.results_dir, args.csv_prefix):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())


def new_results_dir(parent: Path, name: str, now: datetime | None = None) -> Path:
    """A new `<UTC time>-<name>` folder under `parent` (suffixed -2, -3... when one exists already)."""
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
    parent.mkdir(parents=True, exist_ok=True)
    for attempt in range(1, 100):
        candidate = parent / (f"{stamp}-{name}" + (f"-{attempt}" if attempt > 1 else ""))
        try:
            candidate.mkdir()
            return candidate
        except FileExistsError:
            continue
    raise RuntimeError(f"could not create a results folder under {parent}")
