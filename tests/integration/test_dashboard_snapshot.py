"""The dashboard's snapshot of a long range (1 h, 24 h) on SQLite and real PostgreSQL: a busy tag is thinned
evenly over the whole range (not cut to its newest minutes), every anomaly is kept, and a short range keeps
every reading."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from app.api.dashboard import SNAPSHOT_POINTS_PER_TAG, sample_every

STEP = timedelta(seconds=10)
ROWS = 240  # per device: 40 minutes of one reading every 10 s


def test_thinning_spans_the_range_and_keeps_anomalies(serve, backend_settings) -> None:
    start = datetime.now(UTC).replace(microsecond=0) - ROWS * STEP
    with serve(backend_settings) as client:
        for device in ("thin-1", "thin-2"):
            batch = [{"timestamp": (start + index * STEP).isoformat(), "tag": "humidity", "device_id": device,
                      "value": 40.0 + (index % 5) * 0.1} for index in range(ROWS)]
            assert client.post("/ingest/batch", json=batch).status_code == 201
        spike = client.post("/ingest", json={"timestamp": (start + ROWS * STEP).isoformat(), "tag": "humidity",
                                             "device_id": "thin-1", "value": 95.0}).json()
        assert spike["is_anomaly"]
        queries = client.app.state.services.queries

        async def read(every: int) -> list[dict]:
            return await queries.readings(tag="humidity", device_id=None, since=start, until=None, limit=5000,
                                          sample_every=every)

        everything = client.portal.call(read, 1)
        thinned = client.portal.call(read, 10)
    assert len(everything) == 2 * ROWS + 1
    assert 2 * ROWS / 25 < len(thinned) < 2 * ROWS / 4, len(thinned)
    assert any(row["id"] == spike["id"] for row in thinned), "anomalies are always kept"
    assert {row["device_id"] for row in thinned} == {"thin-1", "thin-2"}
    times = sorted(row["timestamp"] for row in thinned)
    assert times[0] - start < ROWS * STEP / 5 and (start + ROWS * STEP) - times[-1] < ROWS * STEP / 5, \
        "spread over the whole range, not bunched at one end"


def test_sample_rate_follows_the_tag_rate_and_the_range() -> None:
    now = datetime.now(UTC)
    busy = {"count": 86_400 * 5, "first_timestamp": now - timedelta(days=1), "last_timestamp": now}
    assert sample_every(busy, now - timedelta(minutes=5)) == 2  # 1,500 readings in 5 min
    assert sample_every(busy, now - timedelta(hours=24)) == 432  # -> ~1,000 points over the day
    quiet = {"count": 50, "first_timestamp": now - timedelta(hours=2), "last_timestamp": now}
    assert sample_every(quiet, now - timedelta(hours=24)) == 1
    assert SNAPSHOT_POINTS_PER_TAG == 1000
