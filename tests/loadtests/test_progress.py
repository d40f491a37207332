"""Progress lines for make bench / make drill: one line per interval while the block runs, and the newest
Locust figures read from a stats history CSV written by Locust's own CSV writer."""

from __future__ import annotations

import io
import time
from pathlib import Path

from locust.env import Environment
from locust.stats import PERCENTILES_TO_REPORT, StatsCSVFileWriter

from loadtests.harness.progress import locust_progress, ticking


def test_ticking_prints_a_line_per_interval_until_the_block_ends() -> None:
    out = io.StringIO()
    calls = []
    with ticking(lambda: calls.append(1) or f"phase {len(calls)}", interval=0.1, out=out):
        time.sleep(0.55)
    lines = out.getvalue().splitlines()
    assert 4 <= len(lines) <= 6, lines
    assert lines[0].endswith("phase 1") and "+" in lines[0]
    time.sleep(0.3)
    assert len(out.getvalue().splitlines()) == len(lines), "no line after the block"


def test_a_failing_description_does_not_break_the_run() -> None:
    out = io.StringIO()
    with ticking(lambda: 1 / 0, interval=0.05, out=out):
        time.sleep(0.2)
    assert "no progress figures" in out.getvalue()


def test_locust_progress_reads_the_newest_aggregated_row(tmp_path: Path) -> None:
    assert locust_progress(tmp_path) == "Locust starting"
    environment = Environment()
    environment.create_local_runner()
    run = tmp_path / "app" / "20261203T000000Z-benchmark_1000"
    run.mkdir(parents=True)
    writer = StatsCSVFileWriter(environment, PERCENTILES_TO_REPORT, str(run / "locust"), full_history=True)
    writer.stats_history_csv_writer.writerow(writer.stats_history_csv_columns)
    for _ in range(7):
        environment.stats.log_request("GET", "/data", 12, 100)
    environment.stats.log_error("GET", "/data", "boom")
    writer._stats_history_data_rows(writer.stats_history_csv_writer, time.time())
    writer.stats_history_csv_filehandle.close()
    line = locust_progress(tmp_path)
    assert "7 requests" in line and "1 failures" in line and "users" in line and "s old" in line
    environment.runner.quit()
