"""Read side: readings by tag/device/time, per-tag statistics, anomaly counts."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncEngine

from app.storage import repository


class QueryService:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def readings(self, *, tag: str | None, device_id: str | None, since: datetime | None,
                       until: datetime | None, limit: int) -> list[dict]:
        return await repository.query_readings(
            self._engine, tag=tag, device_id=device_id, since=since, until=until, limit=limit
        )

    async def stats(self, *, device_id: str | None) -> list[dict]:
        return await repository.tag_stats(self._engine, device_id=device_id)

    async def anomaly_count(self, *, tag: str | None, since: datetime | None) -> dict:
        by_tag = await repository.anomaly_counts(self._engine, tag=tag, since=since)
        return {"total": sum(by_tag.values()), "by_tag": by_tag}
