"""OpenAPI-driven fuzzing: schemathesis generates requests for every operation in the service's own
schema (positive and negative: wrong types, missing fields, out-of-range numbers, odd strings with NUL
and other control characters) and sends them, with a real token, to the real application on PostgreSQL.

Checks: no 5xx (`not_a_server_error`), only documented status codes, responses that match their schema
and content type, and schema-violating input rejected. Two built-in checks are left out on purpose:
- `positive_data_acceptance`: per-tag value ranges and the timestamp window are business rules the
  schema cannot express, so schema-valid readings are legitimately refused with 422;
- `ignored_auth`: its probe needs a network base URL; tests/api/test_auth_abuse.py checks instead that
  every secured operation refuses missing, forged and wrong-scope tokens.

The number of generated cases per operation is counted, printed and written to
var/reports/openapi_fuzz.json (`make fuzz` shows it).

The schema is loaded with `from_dict(app.openapi())` and each case is sent in-process with
`call_and_validate(app=...)`: `from_asgi` would start the app's lifespan at import (collection) time,
and `schemathesis.pytest.from_fixture` fails under pytest 9.2 (schemathesis 4.32.5 reads the removed
`Function._nodeid`).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, settings
from schemathesis.python import asgi
from schemathesis.specs.openapi.checks import ignored_auth, positive_data_acceptance

from app.main import create_app
from app.settings import Settings
from tests.conftest import REPO_ROOT
from tests.support.app import LOADTEST

# The schema is the app's own; building it needs no lifespan (no database, no background tasks).
OPENAPI = create_app(Settings()).openapi()
OPERATIONS = {f"{method.upper()} {path}" for path, methods in OPENAPI["paths"].items() for method in methods}
# Extra query parameters are ignored by design (clients may add tracing parameters), and the bearer
# token is sent by the test rather than generated, so neither is mutated into "negative" cases.
CONFIG = schemathesis.Config.from_dict(
    {"generation": {"allow-extra-parameters": False, "with-security-parameters": False}}
)
schema = schemathesis.openapi.from_dict(OPENAPI, config=CONFIG)
REPORT = REPO_ROOT / "var" / "reports" / "openapi_fuzz.json"
# Up to 100 examples per operation plus the example and coverage phases (an operation without inputs
# gets about 10); far fewer means generation silently broke (e.g. a filter rejecting everything).
MIN_CASES_PER_OPERATION = 5
MIN_TOTAL_CASES = 500

cases: Counter[str] = Counter()


@pytest.fixture
def app(settings_for, postgres_url: str) -> Iterator[FastAPI]:
    """One application per operation; its lifespan starts with the first request."""
    application = create_app(settings_for(postgres_url))
    try:
        yield application
    finally:
        asgi.shutdown_lifespans()


@pytest.fixture
def bearer(app: FastAPI) -> dict[str, str]:
    """A real token of the load-test client (all scopes, limits high enough for the fuzzer)."""
    with asgi.get_client(app) as client:
        response = client.post("/auth/token", json=LOADTEST)
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


@schema.parametrize()
# The app fixture is shared by all examples of one operation on purpose: reads see what ingests stored.
@settings(suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None)
def test_operation_survives_generated_requests(case, app: FastAPI, bearer: dict[str, str]) -> None:
    cases[f"{case.operation.method.upper()} {case.operation.path}"] += 1
    case.call_and_validate(app=app, headers=bearer, excluded_checks=[ignored_auth, positive_data_acceptance])


def test_every_operation_was_fuzzed() -> None:
    """Runs after the fuzzing above (pytest keeps definition order): records and checks the counts."""
    if not cases:
        pytest.skip("the fuzz tests were not selected in this run")
    total = sum(cases.values())
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    REPORT.write_text(json.dumps({"total_cases": total, "by_operation": dict(sorted(cases.items()))}, indent=2))
    print(f"\nschemathesis generated {total} cases over {len(cases)} operations: {dict(sorted(cases.items()))}")
    assert set(cases) == OPERATIONS
    thin = {operation: count for operation, count in cases.items() if count < MIN_CASES_PER_OPERATION}
    assert not thin, f"too few generated cases: {thin}"
    assert total >= MIN_TOTAL_CASES
