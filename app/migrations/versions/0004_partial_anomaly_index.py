"""readings: the anomaly index holds anomalies only

0001's `ix_readings_anomaly_tag` indexed (tag, is_anomaly) for every reading, so every insert paid a
B-tree insertion for a column that is false for nearly every row. The anomaly queries filter on
`is_anomaly AND ts >= since [AND tag = t]`: a partial index on (tag, ts) WHERE is_anomaly serves them
and only an anomalous reading touches it.

On PostgreSQL both steps run CONCURRENTLY (outside a transaction), so ingest keeps writing while the
new index builds on a large table. The new index is created first and the old one dropped after, so
the anomaly queries are never without an index. A build that failed half-way leaves an INVALID index
behind; the next attempt drops it and builds again. On a large table the build can outlast the 30 s
that start-up waits for migrations (app/main.py): the service then starts serving on the old index and
the same build finishes in the background. Tasks starting meanwhile wait for the migration lock without
holding a snapshot (app/storage/database.py), which the concurrent build would wait for.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

NEW_INDEX = "ix_readings_anomalies"
OLD_INDEX = "ix_readings_anomaly_tag"
INVALID = "SELECT 1 FROM pg_index WHERE indexrelid = to_regclass(:name) AND NOT indisvalid"


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        op.create_index(NEW_INDEX, "readings", ["tag", "ts"], sqlite_where=sa.text("is_anomaly"))
        op.drop_index(OLD_INDEX, "readings")
        return
    with op.get_context().autocommit_block():
        bind = op.get_bind()
        if bind.execute(sa.text(INVALID), {"name": NEW_INDEX}).first() is not None:
            bind.exec_driver_sql(f"DROP INDEX CONCURRENTLY {NEW_INDEX}")
        bind.exec_driver_sql(
            f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {NEW_INDEX} ON readings (tag, ts) WHERE is_anomaly")
        bind.exec_driver_sql(f"DROP INDEX CONCURRENTLY IF EXISTS {OLD_INDEX}")


def downgrade() -> None:
    op.create_index(OLD_INDEX, "readings", ["tag", "is_anomaly"])
    op.drop_index(NEW_INDEX, "readings")
