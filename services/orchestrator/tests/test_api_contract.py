"""Bad input on every endpoint: a clear JSON error with a stable code and a 4xx, never a 500."""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from app.config import Settings
from app.main import create_app
from factories import Runner, new_runner
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given
from hypothesis import settings as settings_

JSON_ENDPOINTS = [
    ("POST", "/api/v1/auth/sessions"),
    ("PUT", "/api/v1/profile"),
    ("POST", "/api/v1/strava/link-token"),
    ("POST", "/api/v1/strava/callback"),
    ("POST", "/api/v1/strava/sync"),
]
# `null` is "no body" for the endpoints whose body is optional, so it is tested separately below.
MALFORMED_BODIES = [b"{", b"[]", b'"text"', b"\xff\xfe", b'{"a": 1', b"1e999999"]


@pytest.fixture
def runner(api: TestClient) -> Runner:
    return new_runner(api)


@pytest.mark.parametrize(("method", "path"), JSON_ENDPOINTS)
@pytest.mark.parametrize("body", MALFORMED_BODIES)
def test_malformed_json_is_a_clear_4xx(runner: Runner, method: str, path: str, body: bytes) -> None:
    response = runner.api.request(
        method,
        path,
        content=body,
        headers={**runner.headers, "Content-Type": "application/json"},
    )
    assert 400 <= response.status_code < 500, response.text
    assert response.json()["error"] in {"invalid_request", "not_linked"}


@pytest.mark.parametrize(("method", "path"), JSON_ENDPOINTS[1:4])
def test_a_null_body_where_one_is_required_is_a_clear_4xx(
    runner: Runner, method: str, path: str
) -> None:
    response = runner.api.request(
        method,
        path,
        content=b"null",
        headers={**runner.headers, "Content-Type": "application/json"},
    )
    assert response.status_code == 422, response.text
    assert response.json()["error"] == "invalid_request"


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("PUT", "/api/v1/profile", {"display_name": 42}),
        ("PUT", "/api/v1/profile", {"display_name": ""}),
        ("PUT", "/api/v1/profile", {"display_name": "x" * 81}),
        ("PUT", "/api/v1/profile", {"display_name": "Jane", "weekly_distance_goal_km": "lots"}),
        ("PUT", "/api/v1/profile", {"display_name": "Jane", "unknown": True}),
        ("POST", "/api/v1/strava/link-token", {"code_challenge": 1, "code_challenge_method": []}),
        ("POST", "/api/v1/strava/link-token", {}),
        ("POST", "/api/v1/strava/callback", {"state": None, "code_verifier": "x"}),
        ("POST", "/api/v1/strava/callback", {"state": ["a"], "code": {}, "code_verifier": 3}),
        ("POST", "/api/v1/strava/sync", {"unexpected": 1}),
    ],
)
def test_wrong_types_are_invalid_request(
    runner: Runner, method: str, path: str, body: dict[str, Any]
) -> None:
    response = runner.api.request(method, path, json=body, headers=runner.headers)
    assert response.status_code == 422, response.text
    payload = response.json()
    assert payload["error"] == "invalid_request"
    assert "problems" in payload["detail"]


def test_validation_errors_do_not_echo_submitted_values(runner: Runner) -> None:
    secret = "sEcReT-verifier-value-that-must-not-echo"
    response = runner.post("/api/v1/strava/callback", {"state": 5, "code_verifier": [secret]})
    assert response.status_code == 422
    assert secret not in response.text


@pytest.mark.parametrize(
    "query",
    ["limit=0", "limit=201", "limit=abc", "since=yesterday", "cursor=%%%", "cursor=bm9wZQ"],
)
def test_bad_workout_queries_are_4xx(runner: Runner, query: str) -> None:
    response = runner.get(f"/api/v1/workouts?{query}")
    assert 400 <= response.status_code < 500, response.text
    assert response.json()["error"] == "invalid_request"


def test_no_generated_input_makes_a_server_error(settings: Settings, runner: Runner) -> None:
    """Schemathesis walks every operation of our OpenAPI schema with generated input."""
    app = create_app(settings, enqueue_sync=lambda _: None)
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    headers = {"Authorization": f"Bearer {runner.token}"}
    # An operation schemathesis cannot read is an Err, whose .ok() raises: that fails the test.
    operations = [result.ok() for result in schema.get_all_operations()]  # type: ignore[union-attr]
    assert len(operations) >= 12

    for operation in operations:

        @given(case=operation.as_strategy())
        @settings_(max_examples=20, deadline=None, suppress_health_check=list(HealthCheck))
        def check(case: Any) -> None:
            response = case.call(headers=headers)
            assert response.status_code < 500, (case.operation.label, response.text)
            if response.status_code >= 400:
                assert "error" in response.json()

        check()
