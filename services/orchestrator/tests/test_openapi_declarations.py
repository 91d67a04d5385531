"""OpenAPI declares the validation the API really does (issue 10 item 18): a client generated
from /openapi.json learns every limit it can hit, and each declared limit is the real one."""

from __future__ import annotations

import re
from typing import Any

import pytest
from factories import Runner, new_runner, pkce_pair, start_link
from fastapi.testclient import TestClient


@pytest.fixture
def openapi(api: TestClient) -> dict[str, Any]:
    schema: dict[str, Any] = api.get("/openapi.json").json()
    return schema


def _component(openapi: dict[str, Any], name: str) -> dict[str, Any]:
    properties: dict[str, Any] = openapi["components"]["schemas"][name]["properties"]
    return properties


def test_link_flow_fields_declare_their_formats(openapi: dict[str, Any]) -> None:
    challenge = _component(openapi, "LinkTokenIn")["code_challenge"]
    assert challenge["minLength"] == 43
    assert challenge["pattern"].endswith("{43}$")
    assert _component(openapi, "LinkTokenIn")["code_challenge_method"]["enum"] == ["S256"]
    state = _component(openapi, "CallbackIn")["state"]
    assert state["minLength"] == 1
    assert state["pattern"].endswith("{1,256}$")
    verifier = _component(openapi, "CallbackIn")["code_verifier"]
    assert verifier["minLength"] == 43
    assert verifier["pattern"].endswith("{43,128}$")


def test_the_declared_link_formats_are_the_real_ones(
    openapi: dict[str, Any], api: TestClient
) -> None:
    runner = new_runner(api)
    pattern = _component(openapi, "LinkTokenIn")["code_challenge"]["pattern"]
    _, challenge = pkce_pair()
    assert re.fullmatch(pattern, challenge)
    for bad in ("", challenge[:-1], challenge[:-1] + "="):
        assert not re.fullmatch(pattern, bad)
        response = runner.post(
            "/api/v1/strava/link-token", {"code_challenge": bad, "code_challenge_method": "S256"}
        )
        assert response.status_code == 400, response.text
        assert response.json()["error"] == "invalid_request"

    start = start_link(runner)
    state_pattern = _component(openapi, "CallbackIn")["state"]["pattern"]
    assert re.fullmatch(state_pattern, start.state)
    assert not re.fullmatch(state_pattern, "a" * 257)
    assert re.fullmatch(
        _component(openapi, "CallbackIn")["code_verifier"]["pattern"], start.verifier
    )
    empty = runner.post(
        "/api/v1/strava/callback", {"state": "", "code": "c", "code_verifier": start.verifier}
    )
    assert empty.status_code == 400
    assert empty.json()["error"] == "invalid_state"


def test_profile_fields_declare_control_characters_and_types(
    openapi: dict[str, Any], api: TestClient
) -> None:
    fields = _component(openapi, "ProfileIn")
    pattern = fields["display_name"]["pattern"]
    for bad in ("Jane\u202e", "Jane\u0085", "Jane\x1b"):
        assert not re.fullmatch(pattern, bad)
        runner: Runner = new_runner(api)
        assert runner.put("/api/v1/profile", {"display_name": bad}).status_code == 422
    goal = fields["weekly_distance_goal_km"]["anyOf"][0]
    assert goal["type"] == "number"  # `false` is not a JSON Schema number, and is refused


def test_every_body_operation_declares_413_and_sessions_declare_429(
    openapi: dict[str, Any],
) -> None:
    for path, operations in openapi["paths"].items():
        for method, operation in operations.items():
            if "requestBody" in operation:
                assert "413" in operation["responses"], (method, path)
    assert "429" in openapi["paths"]["/api/v1/auth/sessions"]["post"]["responses"]
