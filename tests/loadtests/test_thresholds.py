"""The hold-window arithmetic on real Locust statistics (RequestStats, StatsEntry, a master's extend),
the threshold messages, and the parsing of threshold overrides."""

from __future__ import annotations

import time

import pytest
from locust.stats import RequestStats, StatsEntry

from loadtests.locust.thresholds import (
    HoldWindow,
    Snapshot,
    Thresholds,
    WindowMetrics,
    parse_override,
    parse_overrides,
    violations,
    window_metrics,
)


def log(stats: RequestStats, times_ms: list[int], *, failed: int = 0) -> None:
    for index, response_time in enumerate(times_ms):
        stats.log_request("POST", "/ingest", response_time, 100)
        if index < failed:
            stats.log_error("POST", "/ingest", "HTTP 503")


def test_the_window_holds_only_what_happened_between_the_snapshots() -> None:
    stats = RequestStats()
    log(stats, [5000] * 50)  # the ramp: slow, must not count
    start = Snapshot.of(stats.total, at=100.0)
    log(stats, list(range(1, 101)), failed=2)  # the hold: 1..100 ms
    end = Snapshot.of(stats.total, at=110.0)
    log(stats, [9000] * 50, failed=50)  # the ramp down

    metrics = window_metrics(start, end)

    assert (metrics.requests, metrics.failures, metrics.duration_s) == (100, 2, 10.0)
    assert metrics.fail_ratio == 0.02
    assert metrics.avg_ms == pytest.approx(50.5)
    assert metrics.rps == 10.0
    # The window's percentiles are what Locust reports for the hold's requests alone ...
    hold_only = RequestStats()
    log(hold_only, list(range(1, 101)))
    assert (metrics.p50_ms, metrics.p95_ms, metrics.p99_ms) == (51, 96, 100) == tuple(
        hold_only.total.get_response_time_percentile(p) for p in (0.5, 0.95, 0.99))
    # ... and very different from its figures over the whole run.
    assert stats.total.get_response_time_percentile(0.99) == 9000


def test_percentiles_use_locusts_buckets() -> None:
    stats = RequestStats()
    start = Snapshot.of(stats.total, at=0.0)
    log(stats, [100] * 90 + [447] * 10)  # 447 ms is counted in Locust's 450 ms bucket
    metrics = window_metrics(start, Snapshot.of(stats.total, at=1.0))
    assert (metrics.p95_ms, metrics.p99_ms) == (450, 450)


def test_counts_come_from_per_second_counters_aggregated_by_a_master() -> None:
    """A master's snapshots lag its workers' reports, so counts are taken by request time."""
    master = RequestStats()
    for _worker in range(2):
        worker = RequestStats()
        log(worker, [10] * 30, failed=3)
        # What a master does with a worker's report (locust.stats, on_worker_report).
        master.total.extend(StatsEntry.unserialize(worker.total.get_stripped_report(), master))
    now = time.time()
    start = Snapshot(now - 5, 0, 0, 0.0, {})
    end = Snapshot.of(master.total, at=now + 5)

    metrics = window_metrics(start, end, per_second=master.total)

    assert (metrics.requests, metrics.failures) == (60, 6)
    assert metrics.duration_s == float(int(now + 5) - (int(now - 5) + 1))
    assert metrics.rps == pytest.approx(60 / metrics.duration_s)
    # The same requests, but the window's seconds come later than them: not counted.
    later = window_metrics(Snapshot(now + 2, 0, 0, 0.0, {}), Snapshot.of(master.total, at=now + 6), master.total)
    assert (later.requests, later.failures) == (0, 0)


def test_an_empty_window_is_a_violation_of_its_own() -> None:
    stats = RequestStats()
    metrics = window_metrics(Snapshot.of(stats.total, at=0.0), Snapshot.of(stats.total, at=30.0))
    assert metrics.requests == 0 and metrics.avg_ms == 0.0
    assert violations(metrics, Thresholds()) == ["no requests completed in the hold window (hold window 30 s)"]


def test_each_violated_threshold_is_named() -> None:
    metrics = WindowMetrics(duration_s=60, requests=1000, failures=5, fail_ratio=0.005, avg_ms=200, p95_ms=300,
                            p99_ms=612, rps=16.7, p50_ms=150)
    thresholds = Thresholds(fail_ratio=0.002, avg_ms=185, p95_ms=320, p99_ms=450, min_rps=5000)

    assert violations(metrics, thresholds) == [
        "threshold fail_ratio violated: 0.0050 > 0.002 (5 of 1000 requests failed) (hold window 60 s)",
        "threshold avg_ms violated: 200 ms > 185 ms (hold window 60 s)",
        "threshold p99_ms violated: 612 ms > 450 ms (hold window 60 s)",
        "threshold min_rps violated: 16.7 req/s < 5000 req/s (hold window 60 s)",
    ]
    assert violations(metrics, Thresholds(p95_ms=300, p99_ms=612)) == []  # limits are inclusive


def test_hold_window_measures_what_the_run_reached() -> None:
    stats = RequestStats()
    log(stats, [20] * 10)
    window = HoldWindow()
    metrics, label = window.measure(stats.total, time.time())
    assert label == "whole run (the hold never started)" and metrics.requests == 10

    window.begin(stats.total, time.time())
    log(stats, [30] * 4)
    metrics, label = window.measure(stats.total, time.time())
    assert label == "hold start to stop (the hold did not finish)" and metrics.avg_ms == 30

    window.finish(stats.total, time.time())
    log(stats, [40] * 4)
    metrics, label = window.measure(stats.total, time.time())
    assert label == "hold" and metrics.avg_ms == 30


def test_threshold_overrides() -> None:
    assert parse_override("p99_ms=450") == ("p99_ms", 450.0)
    assert parse_overrides(" p95_ms=300 , fail_ratio=0.002,") == {"p95_ms": 300.0, "fail_ratio": 0.002}
    assert parse_overrides("") == {}
    assert Thresholds(p99_ms=450).with_overrides({"p99_ms": 0.001}).p99_ms == 0.001


@pytest.mark.parametrize(("text", "message"), [
    ("p100_ms=3", "unknown threshold 'p100_ms': use one of fail_ratio, avg_ms, p95_ms, p99_ms, min_rps"),
    ("p99_ms", "threshold 'p99_ms' must be NAME=VALUE"),
    ("p99_ms=fast", "threshold p99_ms must be a number, got 'fast'"),
    ("avg_ms=-1", "threshold avg_ms must be a finite number >= 0, got -1"),
    ("fail_ratio=2", "threshold fail_ratio is a fraction between 0 and 1"),
])
def test_bad_threshold_overrides_name_the_rule(text: str, message: str) -> None:
    with pytest.raises(ValueError) as error:
        parse_override(text)
    assert str(error.value).startswith(message)
