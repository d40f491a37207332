"""A fault drill's verdict: reconciling acknowledged readings with what was stored, the result of one
drill, and the table and entry written to docs/reliability.md.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from loadtests.harness.provenance import machine, revision

if TYPE_CHECKING:  # the drill's entry point imports this module
    from loadtests.drills.faults import FaultConfig

SECTION = "## Fault drills"


@dataclass
class Reconciliation:
    """Acknowledged readings against what one store holds."""

    found: int = 0  # acknowledged readings present at least once
    lost: int = 0  # acknowledged readings absent
    duplicated: int = 0  # extra rows of a reading under another id: a reading stored twice
    redelivered: int = 0  # extra records of a reading with the same id (the lake's at-least-once copies)


def reconcile(acknowledged: set[int], records: Iterable[tuple[int, int]]) -> Reconciliation:
    """records: one (reading number, stored id) per row or record the store holds."""
    copies = Counter(records)
    ids = Counter(number for number, _ in copies)
    present = acknowledged & ids.keys()
    return Reconciliation(found=len(present), lost=len(acknowledged) - len(present),
                          duplicated=sum(count - 1 for count in ids.values()),
                          redelivered=sum(count - 1 for count in copies.values()))


@dataclass
class FaultDrillResult:
    """One drill's row of the table; `ok` is its verdict."""

    name: str
    requests: int = 0
    fault_2xx: int = 0
    fault_4xx: int = 0
    fault_5xx: int = 0
    fault_errors: int = 0
    ingest_5xx: int = 0
    ingest_errors: int = 0
    read_failures: int = 0
    acknowledged: int = 0
    accepted_202: int = 0
    database: Reconciliation = field(default_factory=Reconciliation)
    lake: Reconciliation = field(default_factory=Reconciliation)
    drain_seconds: float | None = None
    fault_window: tuple[float, float] = (0.0, 0.0)
    answered_202: int = 0  # requests (not readings) answered 202
    letters: dict[str, int] = field(default_factory=dict)  # dead-letter objects written, per app process
    recover_seconds: float | None = None
    stale_connections: int | None = None  # failover: app connections the old primary held
    new_primary_connections: int | None = None  # failover: app connections on the new primary afterwards
    app_restarts: int = 0  # failover: app processes that had to be restarted (must stay 0)

    @property
    def letters_total(self) -> int:
        return sum(self.letters.values())

    @property
    def fault_seconds(self) -> float:
        return self.fault_window[1] - self.fault_window[0]

    @property
    def lost(self) -> int:
        return max(self.database.lost, self.lake.lost)

    @property
    def duplicated(self) -> int:
        return self.database.duplicated + self.lake.duplicated

    @property
    def ok(self) -> bool:
        recovered = self.name != "failover" or (self.recover_seconds is not None and self.app_restarts == 0
                                                 and bool(self.new_primary_connections))
        return (self.acknowledged > 0 and self.lost == 0 and self.duplicated == 0 and self.ingest_5xx == 0
                and self.ingest_errors == 0 and self.drain_seconds is not None and recovered)


def _seconds(value: float | None, missing: str = "-") -> str:
    return missing if value is None else f"{value:.1f}"


def table(results: Iterable[FaultDrillResult]) -> str:
    """One Markdown row per drill."""
    rows = ["| drill | fault s | requests | during the fault: 2xx / 4xx / 5xx / conn. errors | POST /ingest 5xx / conn. "
            "errors (whole run) | acknowledged (of them 202) | in DB | in lake | lost (DB / lake) "
            "| duplicated (DB / lake) | lake redelivered copies (same id) | recover s | drain s "
            "| dead-letter objects (per task) | letters/s | 202 answers per letter | stale conn. discarded "
            "| verdict |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        per_task = " / ".join(str(count) for count in r.letters.values())
        rate = f"{r.letters_total / r.fault_seconds:.1f}" if r.fault_seconds > 0 else "-"
        per_letter = f"{r.answered_202 / r.letters_total:.0f}" if r.letters_total else "-"
        stale = "-" if r.stale_connections is None else \
            f"{r.stale_connections} (then {r.new_primary_connections} on the new primary, {r.app_restarts} restarts)"
        rows.append(
            f"| {r.name} | {r.fault_seconds:.0f} | {r.requests} | {r.fault_2xx} / {r.fault_4xx} / {r.fault_5xx} "
            f"/ {r.fault_errors} | {r.ingest_5xx} / {r.ingest_errors} | {r.acknowledged} ({r.accepted_202}) "
            f"| {r.database.found} | {r.lake.found} | {r.database.lost} / {r.lake.lost} "
            f"| {r.database.duplicated} / {r.lake.duplicated} | {r.lake.redelivered} "
            f"| {_seconds(r.recover_seconds, 'never')} | {_seconds(r.drain_seconds, 'not drained')} "
            f"| {r.letters_total} ({per_task}) | {rate} | {per_letter} | {stale} | {'PASS' if r.ok else 'FAIL'} |")
    return "\n".join(rows)


def record(results: list[FaultDrillResult], config: FaultConfig, command: str) -> str:
    """The entry appended to docs/reliability.md."""
    today = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    failed_reads = ", ".join(f"{r.name}: {r.read_failures}" for r in results)
    return (f"\n### Fault drills {today} — revision {revision()}\n\nMachine: {machine()}. Command: `{command}`. "
            f"{config.users} users, fault {config.fault_seconds:g} s (failover outage {config.failover_seconds:g} s) "
            f"after {config.warmup:g} s of warm-up, "
            f"{config.after:g} s of load after it. Locust, HAProxy, both app processes, PostgreSQL, tansu, moto "
            f"and the archiver share this machine. GET /data answered non-2xx (reads need the database; not "
            f"part of the verdict): {failed_reads}.\n\n{table(results)}\n")


def insert_entry(document: str, entry: str) -> str:
    """The entry at the end of the "## Fault drills" section (before the next "## " heading, which other
    drills append to), or at the end when the section is last or missing."""
    start = document.find(f"\n{SECTION}\n")
    following = document.find("\n## ", start + 1) if start >= 0 else -1
    if following < 0:
        return document.rstrip("\n") + "\n" + entry
    return document[:following].rstrip("\n") + "\n" + entry + document[following:]
