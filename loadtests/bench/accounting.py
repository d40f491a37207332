"""Where a benchmark phase's core-seconds went: CPU per process group and the app's own timings.

`cpu_seconds(roots)` sums user + system CPU of each root process and all its descendants, plus what the
roots' already-reaped children used (so short-lived PostgreSQL backends still count). `CpuMeter` takes
one snapshot of every named group at the start of a measured window and one at its end; the
difference, divided by the window's requests, is CPU seconds per 1,000 requests per group.

`app_timings(log, start, end, interval)` reads the app's EMF metric lines (app/observability/metrics.py)
whose interval overlaps [start, end) and sums their exact distribution statistics: event-loop lag, group
commit size, the wait before a group's transaction and the commit's own duration (PostgreSQL commit
latency as the writer sees it: the one statement, its commit included).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import psutil

# Column order of the printed and recorded table; a group with no process is shown as "-".
GROUPS = ("app workers", "PostgreSQL", "relay", "broker", "redis", "Locust")
TIMINGS = {"EventLoopLag": "loop lag ms", "CommitBatchSize": "group rows", "CommitWait": "group wait ms",
           "CommitLatency": "commit ms"}


def cpu_seconds(roots: list[int]) -> float:
    """user + system seconds of `roots`, their live descendants and their reaped children."""
    total = 0.0
    seen: set[int] = set()
    for pid in roots:
        try:
            root = psutil.Process(pid)
            times = root.cpu_times()
            total += times.user + times.system + times.children_user + times.children_system
            seen.add(pid)
            descendants = root.children(recursive=True)
        except psutil.Error:  # exited: its CPU is in its parent's children_* once reaped
            continue
        for child in descendants:
            if child.pid in seen:
                continue
            seen.add(child.pid)
            try:
                times = child.cpu_times()
            except psutil.Error:
                continue
            # children_* of a descendant is already inside its own parent's live total or will be
            # when reaped; count only its own time to avoid counting a reaped grandchild twice.
            total += times.user + times.system
    return total


@dataclass
class CpuMeter:
    """Snapshots of named process groups; `groups()` returns {name: root pids} at snapshot time."""

    groups: Callable[[], Mapping[str, list[int]]]
    started: dict[str, float] = field(default_factory=dict)
    ended: dict[str, float] = field(default_factory=dict)

    def snapshot(self) -> dict[str, float]:
        # A group without a live root (not started, or gone) has no figure rather than a zero.
        return {name: cpu_seconds(pids) for name, pids in self.groups().items()
                if any(psutil.pid_exists(pid) for pid in pids)}

    def start(self) -> None:
        self.started = self.snapshot()

    def stop(self) -> None:
        self.ended = self.snapshot()

    def seconds(self) -> dict[str, float]:
        """CPU seconds per group over the window (groups seen at both ends)."""
        return {name: max(0.0, self.ended[name] - self.started[name])
                for name in self.ended if name in self.started}

    def start_and_stop_after(self, start_in: float, stop_in: float) -> list[threading.Timer]:
        """Snapshot at `start_in` and `stop_in` seconds from now (the hold window of a Locust run)."""
        timers = [threading.Timer(start_in, self.start), threading.Timer(stop_in, self.stop)]
        for timer in timers:
            timer.daemon = True
            timer.start()
        return timers


def per_thousand(seconds: Mapping[str, float], requests: int) -> dict[str, float]:
    """CPU seconds per 1,000 requests for each group."""
    if requests <= 0:
        return {}
    return {name: value * 1000 / requests for name, value in seconds.items()}


@dataclass(frozen=True)
class Timing:
    """Exact count/mean/max of one distribution over a window."""

    count: int
    mean: float
    maximum: float


def wait_for_flush(log: Path, end: float, interval: float, timeout: float) -> bool:
    """Until the app has written an EMF line whose interval reaches `end` (Unix seconds), at most `timeout`
    seconds. The app flushes every `interval` seconds: the interval holding the window's last seconds
    is written after the load stopped, and reading the log before that drops its timings."""
    deadline = time.monotonic() + timeout
    while True:
        if any(began + interval >= end for began in _emf_starts(log)):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.2)


def _emf_starts(log: Path) -> Iterator[float]:
    """Interval starts of the lines that carry the timings. The per-route lines of the same flush are
    written before them, stamped later: waiting on those let a reader under load see a flush half
    written and miss its group-commit timings."""
    if not log.exists():
        return
    for line in log.read_text(errors="replace").splitlines():
        if '"_aws"' in line and '"Distributions"' in line:
            try:
                yield json.loads(line)["_aws"]["Timestamp"] / 1000
            except (ValueError, KeyError, TypeError):
                continue


def app_timings(log: Path, start: float, end: float, interval: float) -> dict[str, Timing]:
    """Distributions of the app's EMF lines (each covering `interval` seconds from its timestamp) that
    overlap [start, end) (Unix seconds): at most one partial interval at each edge is included."""
    sums: dict[str, list[float]] = {}
    if not log.exists():
        return {}
    for line in log.read_text(errors="replace").splitlines():
        if '"_aws"' not in line:
            continue
        try:
            document = json.loads(line)
            began = document["_aws"]["Timestamp"] / 1000
        except (ValueError, KeyError, TypeError):
            continue
        if not (began < end and began + interval > start):
            continue
        for name, stats in document.get("Distributions", {}).items():
            if name in TIMINGS and stats.get("count"):
                count, total, maximum = sums.setdefault(name, [0, 0.0, 0.0])
                sums[name] = [count + stats["count"], total + stats["sum"], max(maximum, stats["max"])]
    return {name: Timing(int(count), total / count, maximum) for name, (count, total, maximum) in sums.items()}
