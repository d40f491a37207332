"""make bench-ingest's COPY ceiling (loadtests/bench/ingest.py): it writes real rows into a migrated
PostgreSQL, the per-series statistics trigger counts them, and the record states the app's ratio to it."""

from __future__ import annotations

import argparse
import asyncio
import json
from datetime import UTC, datetime, timedelta

import asyncpg

from app.settings import Settings
from app.storage.database import create_engine, migrate
from loadtests.bench.benchmarks_doc import insert_in_section
from loadtests.bench.ingest import (
    COPY_CHUNK,
    RESULTS,
    SECTION,
    Bodies,
    Phase,
    copy_ceiling,
    ratio_to_copy,
    record,
)

COUNTED = "SELECT (SELECT count(*) FROM readings WHERE ts >= $1 AND ts < $1 + interval '1 hour'), " \
          "(SELECT coalesce(sum(count), 0) FROM series_stats WHERE device_id LIKE 'bench-%')"


def test_the_copy_ceiling_stores_every_row_and_the_statistics_count_them(postgres_url: str) -> None:
    async def scenario() -> tuple[Phase, int, int, int]:
        engine = create_engine(Settings(database_url=postgres_url))
        await migrate(engine)
        await engine.dispose()
        bodies = Bodies(datetime(2001, 2, 3, tzinfo=UTC))  # a range no other test writes
        dsn = postgres_url.replace("postgresql+asyncpg://", "postgresql://")
        connection = await asyncpg.connect(dsn)
        try:
            _, stats_before = await connection.fetchrow(COUNTED, bodies.start)
            phase = await copy_ceiling(dsn, duration=0.5, bodies=bodies)
            stored, stats_after = await connection.fetchrow(COUNTED, bodies.start)
        finally:
            await connection.close()
        return phase, stored, stats_before, stats_after

    phase, stored, stats_before, stats_after = asyncio.run(scenario())
    assert phase.readings > 0 and phase.readings % COPY_CHUNK == 0 and phase.failures == 0
    assert stored == phase.readings
    assert stats_after - stats_before == phase.readings  # the statistics trigger ran for the COPY too


def test_the_record_states_the_ratio_to_copy() -> None:
    batch = Phase("batch of 100", requests=100, readings=10_000, seconds=1.0, latencies_ms=[5.0] * 100)
    single = Phase("single reading", requests=10, readings=10, seconds=1.0, latencies_ms=[1.0] * 10)
    copy = Phase("COPY ceiling", requests=40, readings=40_000, seconds=1.0, latencies_ms=[2.0] * 40)
    assert ratio_to_copy(batch, copy) == 0.25
    text = record(batch, single, argparse.Namespace(duration=1.0, concurrency=1, batch_size=100), copy)
    assert "| COPY ceiling | 40 | 40000 | 0 | 40,000 |" in text
    assert "**0.25**" in text


def test_a_rendered_reading_is_the_row_copy_writes_for_the_same_index() -> None:
    """The HTTP phases and the COPY ceiling write the same rows: reading k of one equals record k of the other,
    across second boundaries (the rendered text is assembled from cached pieces)."""
    start = datetime(2001, 2, 3, 4, 5, 6, 789, tzinfo=UTC)
    rendered, recorded = Bodies(start), Bodies(start)
    for index in (0, 1, 2, 999_999, 1_000_000, 1_000_001, 2_500_003):
        rendered.counter = recorded.counter = index
        reading = json.loads(rendered.reading())
        device_id, tag, ts, value, is_anomaly, _ = recorded.record()
        assert (reading["device_id"], reading["tag"], reading["value"]) == (device_id, tag, value)
        assert datetime.fromisoformat(reading["timestamp"]) == ts == start.replace(microsecond=0) + timedelta(
            microseconds=index)
        assert is_anomaly is False


def test_an_entry_lands_at_the_end_of_the_ingest_section_of_the_real_doc() -> None:
    document = RESULTS.read_text()
    updated = insert_in_section(document, SECTION, "\n### new run\n")
    ingest_section = updated[updated.index(f"\n{SECTION}\n"):updated.index("\n## Dead-letter replay")]
    assert ingest_section.rstrip().endswith("### new run")
    assert updated.count("\n### ") == document.count("\n### ") + 1  # nothing else moved or lost
