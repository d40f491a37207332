"""The fault drills, reduced: all five faults (PostgreSQL crash, broker SIGKILL, app process SIGKILL, locked
readings table, an RDS-style failover to a synchronous standby behind a moving endpoint) for 4 s each under 30 Locust users on the full local profile (PostgreSQL, tansu on S3
storage, moto, two app processes behind HAProxy, the archiver). Every acknowledged reading must be in
the database and in the lake exactly once, with no 5xx. `make drill` runs the full size (30 s, 200 users).

The reconciliation itself is checked on real Parquet objects holding a lost, a redelivered and a
duplicated reading, so a broken count cannot make the drill pass."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from pathlib import Path

import boto3
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from moto import mock_aws

from loadtests.drills.fault_results import Reconciliation, insert_entry, reconcile, table
from loadtests.drills.faults import DRILLS, FaultConfig, count_requests, main, run_drills
from loadtests.drills.stored_records import LakeReader
from loadtests.harness.haproxy import ensure_haproxy

BASE = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)


def parquet(rows: list[tuple[int, str, int]]) -> bytes:
    """Lake records (id, device_id, reading number) with the archiver's column types."""
    buffer = io.BytesIO()
    pq.write_table(pa.table({
        "id": pa.array([row[0] for row in rows], pa.int64()),
        "device_id": pa.array([row[1] for row in rows], pa.string()),
        "timestamp": pa.array([BASE + timedelta(microseconds=row[2]) for row in rows], pa.timestamp("us", tz="UTC")),
        "value": pa.array([37.0] * len(rows), pa.float64()),
    }), buffer)
    return buffer.getvalue()


def test_reconciliation_counts_lost_duplicated_and_redelivered_lake_records() -> None:
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket="lake")
        # Readings 0..3 acknowledged. 0: once. 1: twice with the same id (a redelivered batch). 2: under two
        # ids (stored twice). 3: missing. Another drill's device (same number) must not count.
        client.put_object(Bucket="lake", Key="raw/year=2026/a.parquet",
                          Body=parquet([(10, "fault-x-1", 0), (11, "fault-x-2", 1), (12, "fault-x-3", 2)]))
        client.put_object(Bucket="lake", Key="raw/year=2026/b.parquet",
                          Body=parquet([(11, "fault-x-2", 1), (99, "fault-x-3", 2), (50, "fault-y-1", 3)]))
        client.put_object(Bucket="lake", Key="dead-letter/archiver/c.json", Body=b"{}")  # not under raw/
        records = LakeReader(client, "lake").records(BASE, "fault-x-")

    result = reconcile({0, 1, 2, 3}, records)

    assert sorted(records) == [(0, 10), (1, 11), (1, 11), (2, 12), (2, 99)]
    assert (result.found, result.lost, result.duplicated, result.redelivered) == (3, 1, 1, 1)
    assert reconcile({0, 1, 2}, [(0, 1), (1, 2), (2, 3)]) == Reconciliation(found=3)


def test_requests_are_counted_in_and_out_of_the_fault_window() -> None:
    ledger = [
        ["POST /ingest", 1.0, 1.1, 201, True],  # before the fault
        ["POST /ingest", 1.9, 2.2, 202, True],  # overlaps its start
        ["POST /ingest", 2.5, 2.6, 503, False],  # during
        ["GET /data", 2.5, 2.6, 500, False],  # during, a read
        ["POST /ingest", 2.9, 3.5, 0, False],  # overlaps its end, no answer
        ["POST /ingest", 3.5, 3.6, 422, False],  # after
    ]
    result = count_requests("postgres", ledger, (2.0, 3.0))
    assert (result.requests, result.fault_2xx, result.fault_4xx, result.fault_5xx, result.fault_errors) == \
        (6, 1, 0, 2, 1)
    assert (result.ingest_5xx, result.ingest_errors, result.read_failures) == (1, 1, 1)


def test_recovery_is_the_first_201_started_after_the_fault_and_202_answers_are_counted() -> None:
    ledger = [
        ["POST /ingest", 2.5, 2.6, 202, True],
        ["POST /ingest", 2.9, 3.4, 201, True],  # started during the fault: not a sign of recovery
        ["POST /ingest", 3.1, 3.3, 202, True],  # after, still dead-lettered
        ["POST /ingest", 3.2, 3.9, 201, True],
        ["POST /ingest", 3.5, 3.7, 201, True],  # the first 201 answered after the fault
    ]
    result = count_requests("failover", ledger, (2.0, 3.0))
    assert result.answered_202 == 2
    assert result.recover_seconds == pytest.approx(0.7)
    assert count_requests("failover", ledger[:3], (2.0, 3.0)).recover_seconds is None


@pytest.mark.slow
@pytest.mark.timeout(480)
def test_every_fault_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    ensure_haproxy()
    # 8 s after the fault: longer than the breaker's 5 s reset, so the failover's recovery (a 201 after the
    # endpoint moved, part of its verdict) falls inside the load.
    config = FaultConfig(users=30, spawn_rate=30, warmup=3, fault_seconds=4, after=8, drain_timeout=90,
                         failover_seconds=4)
    results = run_drills(DRILLS, config, tmp_path, verbose=False)
    report = table(results)

    assert [result.name for result in results] == list(DRILLS), report
    for result in results:
        assert result.acknowledged > 100, report
        assert result.fault_2xx > 0, report  # the service kept answering during the fault
        assert result.database.lost == 0 and result.lake.lost == 0, report
        assert result.database.duplicated == 0 and result.lake.duplicated == 0, report
        assert result.ingest_5xx == 0 and result.ingest_errors == 0, report
        assert result.drain_seconds is not None, report
        assert result.ok, report
    by_name = {result.name: result for result in results}
    assert by_name["postgres"].accepted_202 > 0, report  # the dead-letter store took readings and they came back
    failover = by_name["failover"]
    assert failover.accepted_202 > 0 and failover.letters_total > 0, report
    # Coalesced: fewer letters than requests answered 202, at most 1/window letters/s per app process.
    assert failover.letters_total < failover.answered_202, report
    assert failover.recover_seconds is not None, report  # 201 again after the endpoint moved, no restart
    assert failover.stale_connections and failover.new_primary_connections and failover.app_restarts == 0, report


def test_entries_go_to_the_end_of_the_fault_drills_section() -> None:
    document = "# Reliability\n\n## Fault drills\n\ntext\n\n### old run\n\n## Blue/green drill\n\nmore\n"
    updated = insert_entry(document, "\n### new run\n")
    assert updated == ("# Reliability\n\n## Fault drills\n\ntext\n\n### old run\n\n### new run\n"
                       "\n## Blue/green drill\n\nmore\n")
    assert insert_entry("# Reliability\n", "\n### new run\n") == "# Reliability\n\n### new run\n"


@pytest.mark.parametrize("flags, message", [
    (["--only", "postgres,disk"], "--only takes a comma-separated list of postgres, broker, app, slow-db, failover"),
    (["--failover-seconds", "-1"], "--failover-seconds must be > 0"),
    (["--fault-seconds", "0"], "--fault-seconds must be > 0"),
    (["--users", "0"], "--users must be >= 1"),
])
def test_bad_flags_are_refused_with_the_rule(flags: list[str], message: str, capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(flags)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err
