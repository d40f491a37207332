"""loadtests/bench/accounting.py: CPU of real process trees (a busy child counts, reaped or alive) and the app's
EMF timings cut to a window."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

from loadtests.bench.accounting import CpuMeter, app_timings, cpu_seconds, per_thousand, wait_for_flush

BURN = "import time\nend = time.process_time() + 0.4\nwhile time.process_time() < end: pass\n"


def test_a_busy_grandchild_counts_while_alive_and_after_it_is_reaped() -> None:
    # parent -> child that burns 0.4 s of CPU then exits; the parent waits for it, then sleeps.
    parent_code = (f"import subprocess, sys, time\nsubprocess.run([sys.executable, '-c', {BURN!r}])\n"
                   "time.sleep(30)\n")
    parent = subprocess.Popen([sys.executable, "-c", parent_code])
    try:
        meter = CpuMeter(lambda: {"tree": [parent.pid], "gone": [2**22 + 1]})
        meter.start()
        time.sleep(2.0)  # the child burns and is reaped by now
        meter.stop()
        used = meter.seconds()
        assert used["tree"] >= 0.35  # the reaped child's CPU is in its parent's children_* times
        assert "gone" not in used  # a pid that does not exist has no figure, it is not a zero
        assert cpu_seconds([parent.pid]) >= used["tree"]
    finally:
        parent.kill()
        parent.wait()


def test_per_thousand_divides_by_requests() -> None:
    assert per_thousand({"app workers": 3.0, "Locust": 1.5}, 6000) == {"app workers": 0.5, "Locust": 0.25}
    assert per_thousand({"app workers": 3.0}, 0) == {}


def emf(began: float, distributions: dict) -> str:
    return json.dumps({"_aws": {"Timestamp": int(began * 1000)}, "Distributions": distributions})


def test_app_timings_sum_the_exact_statistics_of_the_overlapping_intervals(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    lag = {"count": 10, "sum": 20.0, "min": 0.0, "max": 9.0}
    commit = {"count": 4, "sum": 40.0, "min": 5.0, "max": 30.0}
    log.write_text("\n".join([
        "uvicorn says hello",
        emf(100.0, {"EventLoopLag": lag}),  # ends before the window
        emf(105.0, {"EventLoopLag": lag, "CommitLatency": commit}),  # overlaps its start
        "{not json",
        emf(110.0, {"EventLoopLag": {**lag, "max": 50.0}, "ReadingsOther": lag}),
        emf(120.0, {"EventLoopLag": lag}),  # starts at the window's end
    ]) + "\n")
    timings = app_timings(log, 107.0, 120.0, interval=5.0)
    assert set(timings) == {"EventLoopLag", "CommitLatency"}
    assert timings["EventLoopLag"].count == 20 and timings["EventLoopLag"].mean == 2.0
    assert timings["EventLoopLag"].maximum == 50.0
    assert timings["CommitLatency"].mean == 10.0
    assert app_timings(tmp_path / "missing.log", 0, 1, interval=5.0) == {}


def _emf_line(began: float) -> str:
    return json.dumps({"_aws": {"Timestamp": int(began * 1000)}, "Distributions": {}}) + "\n"


def test_wait_for_flush_waits_for_the_interval_that_reaches_the_window_end(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    log.write_text("not json\n" + _emf_line(1000.0))  # covers [1000, 1005)
    assert wait_for_flush(log, end=1005.0, interval=5, timeout=0) is True
    assert wait_for_flush(log, end=1006.0, interval=5, timeout=0.3) is False  # the last interval is not written

    def flush_late() -> None:
        with log.open("a") as output:
            output.write(_emf_line(1005.0))

    writer = threading.Timer(0.3, flush_late)
    writer.start()
    try:
        assert wait_for_flush(log, end=1006.0, interval=5, timeout=10) is True
    finally:
        writer.cancel()
    assert wait_for_flush(tmp_path / "missing.log", end=1.0, interval=5, timeout=0) is False


def test_wait_for_flush_is_not_fooled_by_the_per_route_lines_written_first(tmp_path: Path) -> None:
    """A flush writes its per-route lines (stamped at the flush) before the interval's timings line; a reader
    between the two must keep waiting, or the window loses its group-commit timings."""
    log = tmp_path / "app.log"
    route_line = json.dumps({"_aws": {"Timestamp": 1009_500}, "Route": "POST /ingest", "RouteRequests": 10})
    log.write_text(_emf_line(1000.0) + route_line + "\n")  # the flush of [1005, 1010) is half written
    assert wait_for_flush(log, end=1008.0, interval=5, timeout=0.3) is False
    with log.open("a") as output:
        output.write(_emf_line(1005.0))
    assert wait_for_flush(log, end=1008.0, interval=5, timeout=0) is True
