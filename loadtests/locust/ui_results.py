"""Complete results for every test run started from the Locust web UI.

Headless runs get their results folder from `python -m loadtests.locust.run`. A web-UI session may run many tests,
and Locust's own --csv/--html files cover the whole session (the HTML report is only written when Locust
quits). So in UI mode each test run gets its own `results/<UTC time>-<profile>-ui/` when it starts, and
when it stops (Stop button, or the profile's timeline ends) that folder receives what a headless run
leaves: locust_stats.csv, locust_failures.csv, locust_exceptions.csv, locust_stats_history.csv (sampled
every second during the run, Locust's own columns), report.html, summary.json and the PNG plots.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import gevent
from locust.html import get_html_report
from locust.stats import PERCENTILES_TO_REPORT, StatsCSVFileWriter

from loadtests.locust.reports import CSV_PREFIX, new_results_dir, plot_run

log = logging.getLogger("loadtests")
SAMPLE_SECONDS = 1.0


class UiRunRecorder:
    """One test run of a web-UI session: started on test_start, finished on test_stop."""

    def __init__(self, environment: Any, parent: Path, profile_name: str) -> None:
        self.environment = environment
        self.folder = new_results_dir(parent, f"{profile_name}-ui")
        self.writer = StatsCSVFileWriter(environment, PERCENTILES_TO_REPORT, str(self.folder / CSV_PREFIX),
                                         full_history=True)
        self.writer.stats_history_csv_writer.writerow(self.writer.stats_history_csv_columns)
        self.sampler = gevent.spawn(self._sample)
        log.info("web UI test run: results in %s", self.folder)

    def _sample(self) -> None:
        while True:
            gevent.sleep(SAMPLE_SECONDS)
            self.writer._stats_history_data_rows(self.writer.stats_history_csv_writer, time.time())
            self.writer.stats_history_flush()

    def finish(self, summary: dict[str, Any]) -> Path:
        self.sampler.kill(block=True)
        # One last history row, so a run shorter than a sample still has one.
        self.writer._stats_history_data_rows(self.writer.stats_history_csv_writer, time.time())
        writer = self.writer
        for columns, rows, handle, csv_writer in (
            (writer.requests_csv_columns, writer._requests_data_rows, writer.requests_csv_filehandle,
             writer.requests_csv_writer),
            (writer.failures_columns, writer._failures_data_rows, writer.failures_csv_filehandle,
             writer.failures_csv_writer),
            (writer.exceptions_columns, writer._exceptions_data_rows, writer.exceptions_csv_filehandle,
             writer.exceptions_csv_writer),
        ):
            csv_writer.writerow(columns)
            rows(csv_writer)
            handle.close()
        writer.stats_history_csv_filehandle.close()
        (self.folder / "report.html").write_text(get_html_report(self.environment, show_download_link=False))
        (self.folder / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
        try:
            plot_run(self.folder)
        except ValueError as error:
            log.warning("no plots for %s: %s", self.folder, error)
        log.info("web UI test run finished: results in %s", self.folder)
        return self.folder
