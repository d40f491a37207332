"""readings and outbox

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "readings",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("device_id", sa.String(128), nullable=False),
        sa.Column("tag", sa.String(64), nullable=False),
        sa.Column("ts", sa.DateTime(timezone=True), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.Column("is_anomaly", sa.Boolean(), nullable=False),
        sa.Column("z_score", sa.Float(), nullable=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.UniqueConstraint("device_id", "tag", "ts", name="uq_readings_device_tag_ts"),
    )
    op.create_index("ix_readings_tag_ts", "readings", ["tag", "ts"])
    op.create_index("ix_readings_device_ts", "readings", ["device_id", "ts"])
    op.create_index("ix_readings_anomaly_tag", "readings", ["tag", "is_anomaly"])
    op.create_table(
        "outbox",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("reading_id", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    )


def downgrade() -> None:
    op.drop_table("outbox")
    op.drop_index("ix_readings_anomaly_tag", "readings")
    op.drop_index("ix_readings_device_ts", "readings")
    op.drop_index("ix_readings_tag_ts", "readings")
    op.drop_table("readings")
