"""One progress line every few seconds while a long run (make bench, make drill) would otherwise be silent.

`ticking(describe)` prints `describe()` every `interval` seconds from a background thread until the block
ends; `locust_progress(folder)` describes the newest Locust run under `folder` from its stats history CSV
(users, requests/s, failures so far) — Locust flushes that file every few seconds, so the line says how
old its figures are.
"""

from __future__ import annotations

import csv
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO

INTERVAL_SECONDS = 5.0
TAIL_BYTES = 64 * 1024


@contextmanager
def ticking(describe: Callable[[], str], interval: float = INTERVAL_SECONDS, out: TextIO | None = None) -> Iterator[None]:
    stop = threading.Event()
    started = time.monotonic()
    stream = out or sys.stdout

    def run() -> None:
        while not stop.wait(interval):
            try:
                line = describe()
            except Exception as error:  # a progress line must never break the run it reports on
                line = f"(no progress figures: {error})"
            print(f"  ... +{time.monotonic() - started:5.0f}s  {line}", file=stream, flush=True)

    thread = threading.Thread(target=run, name="progress", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=interval + 1)


def locust_progress(folder: Path) -> str:
    """'412 users, 1,650 req/s, 52,100 requests, 0 failures (figures 3 s old)' from the newest history CSV."""
    histories = sorted(folder.glob("**/locust_stats_history.csv"), key=lambda path: path.stat().st_mtime)
    if not histories:
        return "Locust starting"
    path = histories[-1]
    with path.open("rb") as handle:
        header = handle.readline().decode()
        size = path.stat().st_size
        handle.seek(max(len(header), size - TAIL_BYTES))
        tail = handle.read().decode(errors="replace").splitlines()
    columns = next(csv.reader([header]))
    rows = [row for row in csv.reader(tail) if len(row) == len(columns)]
    aggregated = [dict(zip(columns, row, strict=True)) for row in rows if row[columns.index("Name")] == "Aggregated"]
    if not aggregated:
        return "Locust running (no figures yet)"
    last = aggregated[-1]
    age = max(0.0, time.time() - float(last["Timestamp"]))
    return (f"{int(last['User Count']):,} users, {float(last['Requests/s']):,.0f} req/s, "
            f"{int(last['Total Request Count']):,} requests, {int(last['Total Failure Count']):,} failures "
            f"(figures {age:.0f} s old)")
