"""The iOS client against the server itself: the OpenAPI document `create_app()` serves, real
error bodies, and the error codes the server's code can emit (contract.py does the comparing).

A deliberately broken copy of the document must make the same checker report exactly the
broken thing, so a real break cannot pass unnoticed.
"""

from __future__ import annotations

import copy
import json
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pytest
from app.config import Settings
from app.main import create_app
from fastapi import FastAPI
from fastapi.testclient import TestClient

from .contract import (
    CONTRACT_ERROR_CODES,
    SERVER_INTERNAL_CODES,
    ClientContract,
    Problem,
    check_contract,
    check_error_bodies,
    check_error_codes,
    components,
    server_error_codes,
)
from .swift_source import FIXTURE_TYPES, FIXTURES_DIR, OPENAPI_SCHEMAS, SwiftSources

if TYPE_CHECKING:
    # The same module pytest imports as `factories` (its pythonpath); mypy knows it by package.
    from factories import new_runner, pkce_pair
else:
    from factories import new_runner, pkce_pair

OpenAPI = dict[str, Any]
# Any key of 32 random bytes: building the app needs one; the schema does not depend on it.
SCHEMA_ONLY_KEY = "q1pEzX0JcDzLm1sXzUTPlTx2sAfE2F1sAlyo3qNQ_5U"


@pytest.fixture(scope="module")
def openapi() -> OpenAPI:
    """The server's OpenAPI document, from `create_app()` (no database needed to build it)."""
    settings = Settings(database_url="sqlite://", token_encryption_keys=SCHEMA_ONLY_KEY)
    app = create_app(settings, enqueue_sync=lambda _: None)
    with TestClient(app):  # runs the lifespan, which closes the app's HTTP client
        document: OpenAPI = app.openapi()
    return document


@pytest.fixture(scope="module")
def client() -> ClientContract:
    return ClientContract.from_sources(SwiftSources.app())


def _report(problems: list[Problem]) -> str:
    return "\n".join(str(problem) for problem in problems)


# --- the live schema ------------------------------------------------------------------------------


def test_the_client_uses_only_what_the_servers_openapi_has(
    openapi: OpenAPI, client: ClientContract
) -> None:
    # The error body has no OpenAPI component: its keys are checked against real error bodies in
    # test_error_body_matches_real_error_responses; here one body in the documented shape.
    documented_error = {"error": "not_found", "message": "Not found."}
    problems = check_contract(openapi, client, [documented_error])
    assert not problems, _report(problems)


def test_the_check_covers_what_the_client_uses(client: ClientContract) -> None:
    # Not vacuous: the six endpoints, the Codable documents and the enums they decode.
    assert len(client.endpoints) == 6
    assert {
        "StravaStatus",
        "StravaStatus.Sync",
        "CallbackRequest",
        "APIError",
        "TrainingLoadDocument.Day",
        "LoadFigures.LoadFlag",
    } <= set(client.documents)
    assert {
        "StravaStatus.LinkStatus",
        "SyncState",
        "StravaStatus.ServerAction",
        "LoadMethod",
        "LoadFigures.FlagCode",
    } <= set(client.enums)


def test_error_body_matches_real_error_responses(
    api: TestClient, openapi: OpenAPI, client: ClientContract
) -> None:
    # The test server's app serves the same document as the one built without a database.
    assert isinstance(api.app, FastAPI)
    assert api.app.openapi() == openapi
    runner = new_runner(api, profile=False)
    _, challenge = pkce_pair()
    link_token = {"code_challenge": challenge, "code_challenge_method": "S256"}
    responses = {
        401: api.get("/api/v1/strava/status"),
        404: api.get(f"/api/v1/no-such-thing/{uuid.uuid4()}"),
        409: runner.post("/api/v1/strava/link-token", link_token),
        422: runner.post("/api/v1/strava/link-token", {}),
        400: runner.post(
            "/api/v1/strava/callback", {"state": "never-issued", "code": "x", "code_verifier": "v"}
        ),
    }
    bodies = []
    for status, response in responses.items():
        assert response.status_code == status, response.text
        bodies.append(response.json())
    problems = check_error_bodies(client, bodies)
    assert not problems, _report(problems)
    # Every code a real error response carried has its own words in the app.
    assert {body["error"] for body in bodies} <= set(client.error_mapping)


def test_the_error_component_is_the_one_api_error_maps_to(openapi: OpenAPI) -> None:
    # The server documents its error body (ErrorBody); APIError is checked against it and, since
    # the error handler writes the bodies, against real error responses too.
    shaped = [
        name
        for name, schema in components(openapi).items()
        if {"error", "message"} <= set(schema.get("properties", {}))
    ]
    assert shaped == [OPENAPI_SCHEMAS["APIError"]]


def test_status_fixtures_cover_the_servers_link_states(openapi: OpenAPI) -> None:
    values = openapi["components"]["schemas"]["StravaStatus"]["properties"]["status"]["enum"]
    states = {
        json.loads((FIXTURES_DIR / f"{name}.json").read_text())["status"]
        for name, type_name in FIXTURE_TYPES.items()
        if type_name == "StravaStatus"
    }
    assert states == set(values)


# --- error codes ----------------------------------------------------------------------------------


def test_error_mapping_handles_the_contracts_and_the_servers_codes(client: ClientContract) -> None:
    problems = check_error_codes(client.error_mapping)
    assert not problems, _report(problems)
    # Exactly: docs/contract.md §3's codes plus what the server emits beyond them, each once.
    server = server_error_codes()
    expected = (set(CONTRACT_ERROR_CODES) | set(server)) - set(SERVER_INTERNAL_CODES)
    assert sorted(client.error_mapping) == sorted(expected)


def test_server_error_codes_are_read_from_the_servers_code() -> None:
    codes = server_error_codes()
    assert codes["profile_required"] == "app.errors.ProfileRequired"
    # A 503 with Retry-After when the broker or database is down (also BrokerUnavailable's).
    assert codes["service_unavailable"] == "app.errors.ServiceUnavailable"
    assert "service_unavailable" not in CONTRACT_ERROR_CODES
    # Status-document codes that no exception carries.
    assert codes["revoked"] == "app.strava.service.ERROR_ACTIONS"


@pytest.mark.parametrize(
    ("mapped_change", "server_change", "internal", "expected"),
    [
        pytest.param(
            lambda m: [c for c in m if c != "revoked"],
            None,
            {},
            [("revoked", "a contract code")],
            id="contract-code-unhandled",
        ),
        pytest.param(
            lambda m: [*m, "not_found"],
            None,
            {},
            [("not_found", "handled twice")],
            id="duplicate",
        ),
        pytest.param(
            None,
            {"teapot": "app.errors.Teapot"},
            {},
            [("teapot", "the server emits it")],
            id="server-code-unhandled",
        ),
        pytest.param(
            None,
            {"teapot": "app.errors.Teapot"},
            {"teapot": "never reaches the app: admin only"},
            [],
            id="server-code-listed-internal",
        ),
        pytest.param(
            lambda m: [*m, "made_up"],
            None,
            {},
            [("made_up", "neither the contract")],
            id="code-nobody-emits",
        ),
        pytest.param(
            None,
            None,
            {"gone": "was internal"},
            [("gone", "server lacks it")],
            id="stale-internal-entry",
        ),
    ],
)
def test_error_code_check_reports_exactly_the_broken_code(
    client: ClientContract,
    mapped_change: Callable[[list[str]], list[str]] | None,
    server_change: dict[str, str] | None,
    internal: dict[str, str],
    expected: list[tuple[str, str]],
) -> None:
    mapped = list(client.error_mapping)
    server = server_error_codes()
    problems = check_error_codes(
        mapped_change(mapped) if mapped_change else mapped,
        server={**server, **(server_change or {})},
        # The real list stays in force: each case adds its own entries to it.
        internal={**SERVER_INTERNAL_CODES, **internal},
    )
    assert [problem.item for problem in problems] == [code for code, _ in expected], _report(
        problems
    )
    for problem, (_, words) in zip(problems, expected, strict=True):
        assert words in problem.message


# --- a deliberate contract break is reported, exactly ---------------------------------------------


def _schema(document: OpenAPI, name: str) -> dict[str, Any]:
    found: dict[str, Any] = document["components"]["schemas"][name]
    return found


def _rename_property(document: OpenAPI, schema: str, old: str, new: str) -> None:
    target = _schema(document, schema)
    target["properties"] = {
        (new if key == old else key): value for key, value in target["properties"].items()
    }
    target["required"] = [new if key == old else key for key in target.get("required", [])]


def _rename_sync_key(document: OpenAPI) -> None:
    _rename_property(document, "SyncStatusOut", "workouts_in_window", "workouts_in_range")


def _rename_verifier(document: OpenAPI) -> None:
    _rename_property(document, "CallbackIn", "code_verifier", "verifier")


def _add_sync_state(document: OpenAPI) -> None:
    _schema(document, "SyncStatusOut")["properties"]["state"]["enum"].append("paused")


def _drop_wait_action(document: OpenAPI) -> None:
    _schema(document, "StatusErrorOut")["properties"]["action"]["enum"].remove("wait")


def _nullable_scopes(document: OpenAPI) -> None:
    scopes = _schema(document, "StravaStatus")["properties"]["scopes"]
    _schema(document, "StravaStatus")["properties"]["scopes"] = {
        "anyOf": [scopes, {"type": "null"}]
    }


def _plain_string_run_id(document: OpenAPI) -> None:
    del _schema(document, "SyncQueuedOut")["properties"]["sync_run_id"]["format"]


def _move_sync_path(document: OpenAPI) -> None:
    document["paths"]["/api/v1/strava/syncs"] = document["paths"].pop("/api/v1/strava/sync")


def _athlete_is_another_schema(document: OpenAPI) -> None:
    properties = _schema(document, "StravaStatus")["properties"]
    properties["athlete"] = {
        "anyOf": [{"$ref": "#/components/schemas/StatusErrorOut"}, {"type": "null"}]
    }


@pytest.mark.parametrize(
    ("tamper", "expected"),
    [
        pytest.param(
            _rename_sync_key, [("StravaStatus.Sync", "workouts_in_window")], id="renamed-key"
        ),
        pytest.param(
            _rename_verifier,
            [("CallbackRequest", "code_verifier"), ("CallbackRequest", "verifier")],
            id="renamed-request-key",
        ),
        pytest.param(_add_sync_state, [("SyncState", "paused")], id="new-enum-value"),
        pytest.param(
            _drop_wait_action, [("StravaStatus.ServerAction", "wait")], id="dropped-enum-value"
        ),
        pytest.param(_nullable_scopes, [("StravaStatus", "scopes")], id="newly-nullable"),
        pytest.param(
            _plain_string_run_id, [("SyncQueuedResponse", "sync_run_id")], id="lost-uuid-format"
        ),
        pytest.param(
            _move_sync_path,
            [("POST /api/v1/strava/sync", ""), ("SyncQueuedResponse", "")],
            id="moved-path",
        ),
        pytest.param(
            _athlete_is_another_schema,
            [("StravaStatus", "athlete"), ("StravaStatus.Athlete", "")],
            id="nested-schema-swapped",
        ),
    ],
)
def test_a_broken_contract_is_reported_exactly(
    openapi: OpenAPI,
    client: ClientContract,
    tamper: Callable[[OpenAPI], None],
    expected: list[tuple[str, str]],
) -> None:
    tampered = copy.deepcopy(openapi)
    tamper(tampered)
    problems = check_contract(tampered, client, [{"error": "not_found", "message": "Not found."}])
    assert [(problem.subject, problem.item) for problem in problems] == expected, _report(problems)


def test_the_renamed_key_is_named_in_the_message(openapi: OpenAPI, client: ClientContract) -> None:
    tampered = copy.deepcopy(openapi)
    _rename_sync_key(tampered)
    [problem] = check_contract(tampered, client, [{"error": "x", "message": "y"}])
    assert str(problem).startswith(
        "StravaStatus.Sync 'workouts_in_window': not a property of the server's SyncStatusOut"
    )
    assert "workouts_in_range" in problem.message


def test_an_error_body_without_message_is_reported(client: ClientContract) -> None:
    problems = check_error_bodies(client, [{"error": "not_found", "detail": {}}])
    assert [(p.subject, p.item) for p in problems] == [("APIError", "message")]
