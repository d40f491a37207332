"""Property-based: no generated body makes the ingest endpoints answer 5xx, and a rejected body
stores nothing."""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

TAGS = ["fermenter_temp", "fermenter_ph", "agitator_rpm", "temperature", "humidity", "battery_level",
        "energy_consumption", "", "x" * 70, "FERMENTER_TEMP"]
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=40),
    st.sampled_from(["2025-11-23T10:30:45", "2025-11-23T10:30:45Z", "2025-11-23", "now", "9999-12-31T23:59:59"]),
)
reading_like = st.fixed_dictionaries(
    {},
    optional={
        "timestamp": scalars, "tag": st.one_of(st.sampled_from(TAGS), scalars), "value": scalars,
        "device_id": st.one_of(st.text(max_size=140), scalars), "temperature": scalars, "humidity": scalars,
        "device_type": scalars,
    },
)
bodies = st.one_of(reading_like, st.lists(reading_like, max_size=5), scalars,
                   st.recursive(scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3), max_leaves=10))


def test_no_body_yields_a_5xx(serve, settings_for) -> None:
    with serve(settings_for()) as client:

        @settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
        @given(body=bodies, path=st.sampled_from(["/ingest", "/ingest/batch"]))
        def check(body, path: str) -> None:
            before = len(client.get("/data", params={"limit": 1000}).json())
            response = client.post(path, content=json.dumps(body), headers={"Content-Type": "application/json"})
            assert response.status_code < 500, (body, response.text)
            if response.status_code >= 400:
                assert response.json()["error"]["message"]
                assert len(client.get("/data", params={"limit": 1000}).json()) == before

        check()
