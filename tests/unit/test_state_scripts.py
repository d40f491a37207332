"""The store's EVALSHA commands are written by `Script.evalsha_command`: byte for byte what redis-py
itself writes for the same call (the commands then run against a real redis-server in
tests/integration/test_state_store.py)."""

from __future__ import annotations

import pytest
from redis.asyncio.connection import Connection

from app.state.scripts import ALL, LEAKY_BUCKET, WINDOW


@pytest.mark.parametrize(("script", "key", "args"), [
    (LEAKY_BUCKET, "sensor:rl:client-1", (repr(5.0), 20)),
    (WINDOW, "sensor:w:6:dev-01:temperature", (50, 604800, "score", 0, repr(21.5))),
    (WINDOW, "sensor:w:9:капля-µ:température", (50, 60, "seed", 2, repr(0.1), repr(-1e-300), repr(1.7976931348623157e308))),
    (WINDOW, "sensor:w:1:x:t", (50, 60, "reset", 0)),
    (WINDOW, "", (3.25, -7, "")),
])
def test_a_call_is_written_exactly_as_redis_py_writes_it(script, key, args) -> None:
    expected = b"".join(Connection().pack_command("EVALSHA", script.sha, 1, key, *args))
    assert script.evalsha_command(key, args) == expected


def test_each_script_has_its_own_sha1() -> None:
    shas = [script.sha for script in ALL]
    assert len(set(shas)) == len(shas) and all(len(sha) == 40 for sha in shas)
