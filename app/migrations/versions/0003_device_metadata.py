"""readings: seed 004's device metadata (device_type, latitude, longitude, status, firmware_version)

Nullable columns (null for plain readings): PostgreSQL adds them without rewriting the table, so the
migration takes a brief lock only. The statistics trigger of 0002 is unaffected.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

COLUMNS = (
    ("device_type", sa.String(64)),
    ("latitude", sa.Float()),
    ("longitude", sa.Float()),
    ("status", sa.String(32)),
    ("firmware_version", sa.String(32)),
)


def upgrade() -> None:
    for name, column_type in COLUMNS:
        op.add_column("readings", sa.Column(name, column_type, nullable=True))


def downgrade() -> None:
    for name, _ in reversed(COLUMNS):
        op.drop_column("readings", name)
