"""The documented S3 request bound of the dead-letter store holds for every committed environment:
`max_tasks` tasks, each writing at most 1 / window letters per second, stay under S3's per-prefix
PUT limit even if every letter landed in one prefix; and letters do spread over the shard prefixes."""

from __future__ import annotations

from collections import Counter

import pytest

from app.settings import Settings
from app.storage.dead_letter import DEFAULT_SHARDS, new_name
from app.storage.dead_letter_writer import S3_PUTS_PER_PREFIX, puts_per_second_bound
from environments.config import load_environment
from tests.infra.conftest import committed_context

ENVIRONMENTS = committed_context()["environments"]


@pytest.mark.parametrize("env_name", sorted(ENVIRONMENTS))
def test_max_tasks_times_the_per_task_bound_fits_one_s3_prefix(env_name: str) -> None:
    max_tasks = load_environment(ENVIRONMENTS, env_name).service.scaling.max_tasks
    per_task = puts_per_second_bound(Settings().dead_letter_window_seconds)
    assert per_task == pytest.approx(20.0)
    assert max_tasks * per_task <= S3_PUTS_PER_PREFIX, (env_name, max_tasks, per_task)


def test_letters_spread_evenly_over_the_shard_prefixes() -> None:
    shards = Counter(new_name(10).split("/")[0] for _ in range(8000))
    assert sorted(shards) == [f"{n:02d}" for n in range(DEFAULT_SHARDS)]
    assert min(shards.values()) > 8000 / DEFAULT_SHARDS * 0.8
