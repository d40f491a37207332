"""The collector settings a serving process runs with (app/observability/gc_tuning.py), and their undo."""

from __future__ import annotations

import gc
from pathlib import Path

import pytest

from app.main import create_app
from app.observability.gc_tuning import GEN0_THRESHOLD, tune_for_serving
from app.settings import Settings


def test_serving_freezes_the_start_up_heap_and_raises_the_threshold_then_undoes_both() -> None:
    before_threshold, before_frozen = gc.get_threshold(), gc.get_freeze_count()
    restore = tune_for_serving()
    try:
        assert gc.get_threshold()[0] == GEN0_THRESHOLD
        assert gc.get_freeze_count() > before_frozen
    finally:
        restore()
    assert gc.get_threshold() == before_threshold
    assert gc.get_freeze_count() == 0


@pytest.mark.anyio
async def test_the_service_serves_tuned_and_leaves_the_process_as_it_found_it(tmp_path: Path) -> None:
    before = gc.get_threshold()
    app = create_app(Settings(database_url=f"sqlite+aiosqlite:///{tmp_path}/db.sqlite",
                              dead_letter_dir=str(tmp_path / "dead-letter")))
    async with app.router.lifespan_context(app):
        assert gc.get_threshold()[0] == GEN0_THRESHOLD
        assert gc.get_freeze_count() > 0
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0
