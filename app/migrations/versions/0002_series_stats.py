"""series_stats: per-series aggregates of readings, maintained by the database (PostgreSQL)

`GET /sensors/stats` and `GET /sensors/anomalies/count` (without `since`) read these instead of
scanning `readings`. A statement-level trigger with a transition table adds every inserted row, so
the aggregates follow whatever inserts readings (group commit, dead-letter replays, an older version of
the service during a blue/green deploy). Readings are never updated or deleted by the service.

Upgrade: creating the trigger locks `readings` against concurrent inserts until the migration
commits, so the backfill below sees every committed reading and every later insert fires the trigger.
The backfill is one aggregate scan of `readings` (writes wait for it; they retry or dead-letter).

SQLite (local development) keeps computing the statistics from `readings`; nothing here.

Revision ID: 0002
Revises: 0001
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

CREATE_TABLE = """
CREATE TABLE series_stats (
    device_id varchar(128) NOT NULL,
    tag varchar(64) NOT NULL,
    count bigint NOT NULL,
    sum double precision NOT NULL,
    min double precision NOT NULL,
    max double precision NOT NULL,
    anomalies bigint NOT NULL,
    first_ts timestamptz NOT NULL,
    last_ts timestamptz NOT NULL,
    PRIMARY KEY (device_id, tag)
)
"""

# Series in key order: concurrent transactions lock their series rows in the same order (no deadlock).
CREATE_FUNCTION = """
CREATE FUNCTION series_stats_add() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO series_stats AS s (device_id, tag, count, sum, min, max, anomalies, first_ts, last_ts)
    SELECT device_id, tag, count(*), sum(value), min(value), max(value), count(*) FILTER (WHERE is_anomaly),
           min(ts), max(ts)
    FROM inserted_readings
    GROUP BY device_id, tag
    ORDER BY device_id, tag
    ON CONFLICT (device_id, tag) DO UPDATE SET
        count = s.count + excluded.count,
        sum = s.sum + excluded.sum,
        min = least(s.min, excluded.min),
        max = greatest(s.max, excluded.max),
        anomalies = s.anomalies + excluded.anomalies,
        first_ts = least(s.first_ts, excluded.first_ts),
        last_ts = greatest(s.last_ts, excluded.last_ts);
    RETURN NULL;
END
$$
"""

CREATE_TRIGGER = """
CREATE TRIGGER readings_series_stats AFTER INSERT ON readings
REFERENCING NEW TABLE AS inserted_readings
FOR EACH STATEMENT EXECUTE FUNCTION series_stats_add()
"""

BACKFILL = """
INSERT INTO series_stats (device_id, tag, count, sum, min, max, anomalies, first_ts, last_ts)
SELECT device_id, tag, count(*), sum(value), min(value), max(value), count(*) FILTER (WHERE is_anomaly),
       min(ts), max(ts)
FROM readings
GROUP BY device_id, tag
"""


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(CREATE_TABLE)
    op.execute(CREATE_FUNCTION)
    op.execute(CREATE_TRIGGER)
    op.execute(BACKFILL)


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP TRIGGER readings_series_stats ON readings")
    op.execute("DROP FUNCTION series_stats_add()")
    op.execute("DROP TABLE series_stats")
