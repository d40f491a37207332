"""The `make bench` tables in docs/benchmarks.md: the rows of one run, appended under their section, and
read back.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from loadtests.bench.accounting import GROUPS, TIMINGS
from loadtests.bench.results import (
    LIGHT_P50_FACTOR,
    LIGHT_P99_FACTOR,
    PHASES,
    BenchConfig,
    BenchResult,
    verdict,
)

SECTION = "## 1000-user benchmark (make bench)"
CPU_SECTION = "## Core-seconds per phase (make bench)"
CPU_COLUMNS = ("date (UTC)", "revision", "phase", "requests", *(f"{group} CPU s/1k" for group in GROUPS),
               "total CPU s/1k", "loop lag ms avg/max", "group rows avg/max", "group wait ms avg/max",
               "commit ms avg/max")
CPU_INTRO = """\
Per measured window (Locust's hold window) of each `make bench` run: CPU seconds per 1,000 requests of
each process group, from /proc via psutil (a group is a process and all its descendants, plus its
reaped children), and the app's own timings from its EMF lines (5 s intervals overlapping the window):
event-loop lag (how late a 100 ms timer fired on a worker's loop), group-commit size in readings, how
long a group's oldest request waited before its transaction began, and the commit's duration as the
writer sees it (PostgreSQL commit latency: the one statement, its commit included). `-`: no such process in that
phase (the relay runs inside the app workers unless a separate relay process is listed).
"""
COLUMNS = ("date (UTC)", "machine", "revision", "target", "users", "req/s", "avg ms", "p50 ms", "p95 ms",
           "p99 ms", "failures", "ratio to ceiling", "notes")
SEED_ROW = ("seed's claim", "AWS, 1→20 Fargate tasks", "—", "app (seed)", "1000", "5000", "185", "—", "320",
            "450", "0.2 %", "—", "99.8 % success; not measured here")
INTRO = """\
`make bench` (loadtests/bench/throughput.py) runs the same Locust mix (loadtests/locust/profiles.py) at 1000 users
against a bare ASGI app with canned answers (loadtests/bench/ceiling.py: the ceiling of this machine and
this load generator) and against the app on PostgreSQL, in one run, with the same uvicorn command
line and the same Locust set-up for both; then 1000 users at 1 request/s each against the app
(light load), and the same light load against the ceiling. Figures are Locust's hold window after
the ramp. Targets: 0 failed requests and app throughput ≥ 0.60 of the ceiling measured in the same
run; under light load app p50 ≤ 3x and p99 ≤ 2x the ceiling's (rows before 2026-12-03 were judged
against ≥ 50 % and p99 ≤ 50 ms, and have no ceiling light-load row). Load generator,
servers and PostgreSQL share the machine's cores, so the absolute numbers are a floor; the ratio is
the comparable figure. The seed's row is its own claim (20 Fargate tasks behind an ALB), for reference.
"""


def markdown_row(cells: tuple[str, ...] | list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def result_rows(result: BenchResult, config: BenchConfig, *, when: datetime, host_machine: str,
                git_revision: str, broker: bool = True, relay_process: bool = False) -> list[str]:
    """The four rows of one run (ceiling, ceiling light load, app, app light load)."""
    relay_note = "outbox relay to tansu in its own process" if relay_process else "outbox relay to tansu"
    setup = f"uvicorn --workers {config.app_workers}, {config.generator}, ramp {config.ramp:g} s, hold {config.hold:g} s"
    notes = {
        "ceiling": f"bare ASGI, no database; {setup}",
        "ceiling_light": "1 req/s per user; the light-load floor of this machine",
        "app": f"PostgreSQL, {relay_note if broker else 'no broker (outbox kept)'}; "
               f"verdict {verdict(result)[0]}",
        "light": f"1 req/s per user{_drain_note(result)}; p50 {result.light_factor_text('p50')} (target ≤ {LIGHT_P50_FACTOR:g}x), "
                 f"p99 {result.light_factor_text('p99')} (target ≤ {LIGHT_P99_FACTOR:g}x) the ceiling's light load: "
                 f"{'PASS' if result.light_within_target else 'MISS'}",
    }
    ratios = {"ceiling": "1.00", "ceiling_light": "—", "app": f"{result.ratio:.2f}", "light": "—"}
    rows = []
    for key, item in (("ceiling", result.ceiling), ("ceiling_light", result.ceiling_light), ("app", result.app),
                      ("light", result.light)):
        rows.append(markdown_row([
            when.strftime("%Y-%m-%d %H:%M"), host_machine, git_revision, item.target, str(item.users),
            f"{item.rps:.0f}", f"{item.avg_ms:.0f}", f"{item.p50_ms:.0f}", f"{item.p95_ms:.0f}", f"{item.p99_ms:.0f}",
            f"{item.failures} ({item.failure_percent:.3f} %)", ratios[key], notes[key],
        ]))
    return rows


def _drain_note(result: BenchResult) -> str:
    if result.outbox_drain_seconds is None:
        return ""
    return f", started after the relay drained the heavy phase's outbox ({result.outbox_drain_seconds:.0f} s)"


def cpu_rows(result: BenchResult, *, when: datetime, git_revision: str) -> list[str]:
    """One accounting row per measured window (CPU_COLUMNS)."""
    names = {"ceiling": result.ceiling, "ceiling_light": result.ceiling_light, "app": result.app,
             "light": result.light}
    rows = []
    for key in PHASES:
        account = result.accounting.get(key)
        if account is None:
            continue
        cpu = account.cpu_per_thousand
        timings = [account.timings.get(name) for name in TIMINGS]
        rows.append(markdown_row([
            when.strftime("%Y-%m-%d %H:%M"), git_revision, names[key].target, str(names[key].requests),
            *(f"{cpu[group]:.2f}" if group in cpu else "-" for group in GROUPS), f"{sum(cpu.values()):.2f}",
            *(f"{timing.mean:.1f} / {timing.maximum:.0f}" if timing else "-" for timing in timings),
        ]))
    return rows


def append_rows(doc: Path, rows: list[str], cpu: list[str] | None = None) -> None:
    """Add rows at the end of the section's table, creating the section (header + seed row) if absent;
    `cpu` rows likewise at the end of the accounting section's table."""
    append_table_rows(doc, SECTION, INTRO, COLUMNS, rows, first_rows=[markdown_row(SEED_ROW)])
    if cpu:
        append_table_rows(doc, CPU_SECTION, CPU_INTRO, CPU_COLUMNS, cpu)


def append_table_rows(doc: Path, section: str, intro: str, columns: tuple[str, ...], rows: list[str], *,
                      first_rows: list[str] | None = None) -> None:
    """Add `rows` at the end of the table under `section`. A missing section is created at the end of the
    doc: `intro`, the header, `first_rows` (e.g. a reference row), then `rows`."""
    lines = (doc.read_text() if doc.exists() else "# Benchmarks\n").splitlines()
    if section not in lines:
        lines += ["", section, "", *intro.splitlines(), "", markdown_row(columns),
                  markdown_row(["---"] * len(columns)), *(first_rows or []), *rows]
    else:
        _, end = _table_span(lines, section)
        lines = [*lines[:end], *rows, *lines[end:]]
    doc.write_text("\n".join(lines) + "\n")


def insert_in_section(document: str, section: str, entry: str) -> str:
    """`entry` at the end of `section` (before the next "## " heading, which other benchmarks write
    under), or, when the section is missing, the section heading and the entry at the end."""
    start = document.find(f"\n{section}\n")
    if start < 0:
        return document.rstrip("\n") + f"\n\n{section}\n" + entry
    following = document.find("\n## ", start + 1)
    if following < 0:
        return document.rstrip("\n") + "\n" + entry
    return document[:following].rstrip("\n") + "\n" + entry + document[following:]


def add_entry(doc: Path, section: str, entry: str) -> None:
    """Write `entry` into `doc` at the end of `section` (`insert_in_section`)."""
    doc.write_text(insert_in_section(doc.read_text(), section, entry))


def read_rows(doc: Path, section: str = SECTION) -> list[dict[str, str]]:
    """The section's table as dicts keyed by its header (the seed row included)."""
    lines = doc.read_text().splitlines()
    first, end = _table_span(lines, section)
    table = lines[first:end]
    header = [cell.strip() for cell in table[0].strip("|").split("|")]
    return [dict(zip(header, (cell.strip() for cell in line.strip("|").split("|")), strict=True))
            for line in table[2:]]


def _table_span(lines: list[str], section: str = SECTION) -> tuple[int, int]:
    """[first, end) line indexes of the table under `section`."""
    start = lines.index(section)
    first = next(i for i in range(start + 1, len(lines)) if lines[i].startswith("|"))
    end = first
    while end < len(lines) and lines[end].startswith("|"):
        end += 1
    return first, end
