"""Tables: `readings` (the system of record) and `outbox` (readings waiting for Kafka).

A reading and its outbox row are inserted in the same transaction; the relay publishes outbox
rows and deletes them only after the broker acknowledged.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    Float,
    Index,
    Integer,
    String,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# SQLite only auto-increments an INTEGER PRIMARY KEY.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    pass


class Reading(Base):
    __tablename__ = "readings"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    device_id: Mapped[str] = mapped_column(String(128), nullable=False)
    tag: Mapped[str] = mapped_column(String(64), nullable=False)
    ts: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    value: Mapped[float] = mapped_column(Float, nullable=False)
    is_anomaly: Mapped[bool] = mapped_column(Boolean, nullable=False)
    z_score: Mapped[float | None] = mapped_column(Float, nullable=True)
    # Seed 004's device record fields (app.readings.DEVICE_METADATA); null for plain readings.
    device_type: Mapped[str | None] = mapped_column(String(64), nullable=True)
    latitude: Mapped[float | None] = mapped_column(Float, nullable=True)
    longitude: Mapped[float | None] = mapped_column(Float, nullable=True)
    status: Mapped[str | None] = mapped_column(String(32), nullable=True)
    firmware_version: Mapped[str | None] = mapped_column(String(32), nullable=True)
    received_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now()
    )

    __table_args__ = (
        # A reading repeated with the same (device_id, tag, timestamp) is stored once.
        UniqueConstraint("device_id", "tag", "ts", name="uq_readings_device_tag_ts"),
        Index("ix_readings_tag_ts", "tag", "ts"),
        Index("ix_readings_device_ts", "device_id", "ts"),
        # Anomalies only (migration 0004): the other ~99 % of inserts do not touch it.
        Index("ix_readings_anomalies", "tag", "ts", postgresql_where=text("is_anomaly"),
              sqlite_where=text("is_anomaly")),
    )


class OutboxEntry(Base):
    __tablename__ = "outbox"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    reading_id: Mapped[int] = mapped_column(BigInteger, nullable=False)
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now()
    )


readings = Reading.__table__
outbox = OutboxEntry.__table__
