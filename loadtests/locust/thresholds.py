"""Pass/fail thresholds of a load test, evaluated over the hold window only (not the ramps).

The window lies between two snapshots of the aggregated `StatsEntry` (Locust's "Aggregated" row): one
taken when the hold starts, one when it ends. On a master the aggregated entry already holds every
worker's reports, so the same arithmetic works locally and distributed. Counts and rates come from
the entry's per-second counters (keyed by request time, so the workers' 3-second report lag does not
matter); average and percentiles from the difference of Locust's bucketed histograms
(`response_times`: rounded milliseconds -> count), exact to the bucketing Locust itself reports
(about +-5 ms around 150-500 ms).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from locust.stats import StatsEntry, calculate_response_time_percentile, diff_response_time_dicts

UNITS = {"fail_ratio": "", "avg_ms": " ms", "p95_ms": " ms", "p99_ms": " ms", "min_rps": " req/s"}


@dataclass(frozen=True)
class Thresholds:
    """None = not checked. fail_ratio is a fraction (0.002 = 99.8% success); min_rps is a floor,
    the others are ceilings."""

    fail_ratio: float | None = None
    avg_ms: float | None = None
    p95_ms: float | None = None
    p99_ms: float | None = None
    min_rps: float | None = None

    def with_overrides(self, overrides: dict[str, float]) -> Thresholds:
        return replace(self, **overrides)

    def as_dict(self) -> dict[str, float | None]:
        return asdict(self)


THRESHOLD_NAMES = tuple(f.name for f in fields(Thresholds))


def parse_override(text: str) -> tuple[str, float]:
    """`p99_ms=450` -> ("p99_ms", 450.0); a clear ValueError naming the rule otherwise."""
    name, separator, value_text = text.partition("=")
    name = name.strip()
    if not separator:
        raise ValueError(f"threshold {text!r} must be NAME=VALUE, NAME one of {', '.join(THRESHOLD_NAMES)}")
    if name not in THRESHOLD_NAMES:
        raise ValueError(f"unknown threshold {name!r}: use one of {', '.join(THRESHOLD_NAMES)}")
    try:
        value = float(value_text)
    except ValueError:
        raise ValueError(f"threshold {name} must be a number, got {value_text.strip()!r}") from None
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"threshold {name} must be a finite number >= 0, got {value_text.strip()}")
    if name == "fail_ratio" and value > 1:
        raise ValueError(f"threshold fail_ratio is a fraction between 0 and 1 (0.002 = 99.8% success), got {value:g}")
    return name, value


def parse_overrides(text: str | None) -> dict[str, float]:
    """Comma-separated NAME=VALUE pairs (the form Locust's custom argument and web UI carry)."""
    if not text or not text.strip():
        return {}
    return dict(parse_override(part) for part in text.split(",") if part.strip())


def format_overrides(overrides: dict[str, float]) -> str:
    return ",".join(f"{name}={value:g}" for name, value in overrides.items())


# --------------------------------------------------------------------------------------------------
# The window: two snapshots of the aggregated stats, and what happened between them
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Snapshot:
    """The cumulative counters of a StatsEntry at one moment (epoch seconds)."""

    at: float
    num_requests: int
    num_failures: int
    total_response_time: float
    response_times: dict[int, int]

    @classmethod
    def of(cls, entry: StatsEntry, at: float) -> Snapshot:
        return cls(at, entry.num_requests, entry.num_failures, entry.total_response_time, dict(entry.response_times))


@dataclass(frozen=True)
class WindowMetrics:
    duration_s: float
    requests: int
    failures: int
    fail_ratio: float
    avg_ms: float
    p95_ms: float
    p99_ms: float
    rps: float
    p50_ms: float = 0.0  # reported (make bench), not a threshold

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def window_metrics(start: Snapshot, end: Snapshot, per_second: StatsEntry | None = None) -> WindowMetrics:
    """The window's metrics. Average and percentiles come from the histogram difference between the
    snapshots. With `per_second` (the entry at evaluation time), requests, failures and rps come from
    its per-second counters over the whole seconds of the window: exact in time even on a master, whose
    snapshots lag the workers' reports (sent every 3 s) while the counters are keyed by request time."""
    requests = end.num_requests - start.num_requests
    failures = end.num_failures - start.num_failures
    duration = max(end.at - start.at, 1e-9)
    first, last = math.ceil(start.at), math.floor(end.at)
    if per_second is not None and last > first:
        seconds = range(first, last)
        requests = sum(per_second.num_reqs_per_sec.get(second, 0) for second in seconds)
        failures = sum(per_second.num_fail_per_sec.get(second, 0) for second in seconds)
        duration = float(last - first)
    # Requests that failed without a response have no response time: they are in num_requests but not
    # in the histogram, so the percentiles and the average use the histogram's own count.
    timed = {bucket: count for bucket, count in diff_response_time_dicts(end.response_times, start.response_times).items()
             if count > 0}
    timed_count = sum(timed.values())
    total_time = end.total_response_time - start.total_response_time

    def percentile(fraction: float) -> float:
        return float(calculate_response_time_percentile(timed, timed_count, fraction)) if timed_count else 0.0

    return WindowMetrics(
        duration_s=duration,
        requests=requests,
        failures=failures,
        fail_ratio=failures / requests if requests else 0.0,
        avg_ms=total_time / timed_count if timed_count else 0.0,
        p95_ms=percentile(0.95),
        p99_ms=percentile(0.99),
        rps=requests / duration,
        p50_ms=percentile(0.50),
    )


def violations(metrics: WindowMetrics, thresholds: Thresholds) -> list[str]:
    """One message per violated threshold, naming it, e.g.
    `threshold p99_ms violated: 612 ms > 450 ms (hold window 60 s)`."""
    window = f"(hold window {metrics.duration_s:.0f} s)"
    messages = []
    if metrics.requests == 0:
        messages.append(f"no requests completed in the hold window {window}")
    for name in THRESHOLD_NAMES:
        limit = getattr(thresholds, name)
        if limit is None:
            continue
        measured = metrics.rps if name == "min_rps" else getattr(metrics, name)
        unit = UNITS[name]
        if name == "min_rps" and measured < limit:
            messages.append(f"threshold {name} violated: {measured:.1f}{unit} < {limit:g}{unit} {window}")
        elif name == "fail_ratio" and measured > limit:
            messages.append(f"threshold {name} violated: {measured:.4f} > {limit:g} "
                            f"({metrics.failures} of {metrics.requests} requests failed) {window}")
        elif name not in ("min_rps", "fail_ratio") and measured > limit:
            messages.append(f"threshold {name} violated: {measured:.0f}{unit} > {limit:g}{unit} {window}")
    return messages


class HoldWindow:
    """Snapshots taken by the load shape when the hold starts and ends (master or local runner).

    If the run stops before the hold ends (Ctrl-C, UI stop, --run-time), the window ends at the stop;
    if it never started (a run without the shape), the whole run is the window. `bounds` says which.
    """

    def __init__(self) -> None:
        self.start: Snapshot | None = None
        self.end: Snapshot | None = None

    def reset(self) -> None:
        self.start = self.end = None

    def begin(self, entry: StatsEntry, at: float) -> None:
        if self.start is None:
            self.start = Snapshot.of(entry, at)

    def finish(self, entry: StatsEntry, at: float) -> None:
        if self.start is not None and self.end is None:
            self.end = Snapshot.of(entry, at)

    def measure(self, entry: StatsEntry, now: float) -> tuple[WindowMetrics, str]:
        if self.start is None:
            start = Snapshot(entry.start_time, 0, 0, 0.0, {})
            return window_metrics(start, Snapshot.of(entry, now), entry), "whole run (the hold never started)"
        if self.end is None:
            return (window_metrics(self.start, Snapshot.of(entry, now), entry),
                    "hold start to stop (the hold did not finish)")
        return window_metrics(self.start, self.end, entry), "hold"


def hold_window(environment: Any) -> HoldWindow:
    """The run's window, kept on the Locust environment (shared by the shape and the quitting hook)."""
    window = getattr(environment, "loadtest_hold_window", None)
    if window is None:
        window = environment.loadtest_hold_window = HoldWindow()
    return window
