"""Liveness: answers as long as the process serves HTTP."""

from __future__ import annotations

from fastapi import APIRouter

from app import __version__

router = APIRouter(tags=["health"])


@router.get("/health", summary="Liveness probe (ALB target health check)")
async def health() -> dict[str, str]:
    return {"status": "ok", "version": __version__}
