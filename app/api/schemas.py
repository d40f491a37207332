"""Response models of the public API (readings, per-tag statistics, anomaly counts, ingest results; the
shapes the seeds' clients expect) and OpenAPI request-body schemas."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from app.readings import DeviceRecordIn, ReadingIn


class ReadingResultOut(BaseModel):
    status: Literal["success", "duplicate", "accepted"] = Field(
        description="success: stored now; duplicate: already stored (same device_id, tag, timestamp); "
        "accepted: kept in the dead-letter store while the database is unavailable, stored later"
    )
    id: int | None = Field(description="reading id; null while the reading waits in the dead-letter store")
    is_anomaly: bool


class BatchResultOut(BaseModel):
    status: Literal["success", "accepted"]
    accepted: int = Field(description="readings stored (or kept for later) by this request")
    duplicates: int
    results: list[ReadingResultOut]


class ReadingOut(BaseModel):
    id: int
    device_id: str
    tag: str
    timestamp: datetime
    value: float
    is_anomaly: bool
    z_score: float | None
    # Seed 004's device record fields, null for plain readings.
    device_type: str | None = None
    latitude: float | None = None
    longitude: float | None = None
    status: str | None = None
    firmware_version: str | None = None


class TagStatsOut(BaseModel):
    tag: str
    count: int
    devices: int
    min: float
    max: float
    mean: float
    anomalies: int
    first_timestamp: datetime
    last_timestamp: datetime


class AnomalyCountOut(BaseModel):
    total: int
    by_tag: dict[str, int]


def _schema(model: type[BaseModel]) -> dict:
    return model.model_json_schema(ref_template="#/components/schemas/{model}")


SINGLE_BODY = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": {"oneOf": [_schema(ReadingIn), _schema(DeviceRecordIn)]},
                                         "example": {"timestamp": "2025-11-23T10:30:45", "tag": "fermenter_temp",
                                                     "value": 37.2, "device_id": "fermenter-1"}}},
    }
}
BATCH_BODY = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {
            "schema": {"oneOf": [
                {"type": "array", "items": {"oneOf": [_schema(ReadingIn), _schema(DeviceRecordIn)]}},
                {"type": "object", "required": ["readings"], "properties": {"readings": {
                    "type": "array", "items": {"oneOf": [_schema(ReadingIn), _schema(DeviceRecordIn)]}}}},
            ]},
            "example": [{"timestamp": "2025-11-23T10:30:45", "tag": "fermenter_temp", "value": 37.2},
                        {"timestamp": "2025-11-23T10:30:45", "tag": "fermenter_ph", "value": 7.1}],
        }},
    }
}
