"""A refused link attempt stays refused and says why (issue 10 item 7 and the "Also" messages)."""

from __future__ import annotations

from typing import Any

import pytest
from app.strava.service import ERROR_MESSAGES
from factories import Runner, consent, link, new_runner, start_link
from fastapi.testclient import TestClient
from strava_emulator.testing import EmulatorHandle

TOKEN_PATH = "/oauth/token"
DEAUTHORIZE_PATH = "/oauth/deauthorize"
FALLBACK = "Something went wrong"


def _callback(runner: Runner, body: dict[str, str]) -> Any:
    return runner.post("/api/v1/strava/callback", body)


def test_a_state_refused_as_athlete_already_linked_is_spent(
    api: TestClient, athlete: dict[str, Any], emulator: EmulatorHandle
) -> None:
    holder, other = new_runner(api), new_runner(api)
    assert link(holder, athlete["id"])[0] == 200
    start = start_link(other)
    refused = _callback(
        other, {**consent(start.authorize_url, athlete["id"]), "code_verifier": start.verifier}
    )
    assert refused.status_code == 409, refused.text
    assert refused.json()["error"] == "athlete_already_linked"

    # The same state again, with a fresh code from a second consent: refused before Strava.
    emulator.admin.clear_requests()
    replay = _callback(
        other, {**consent(start.authorize_url, athlete["id"]), "code_verifier": start.verifier}
    )
    assert replay.status_code == 400, replay.text
    assert replay.json()["error"] == "invalid_state"
    assert emulator.admin.requests(path=TOKEN_PATH) == []  # no second code exchange

    status = other.status()
    assert status["status"] == "not_linked"
    assert status["error"]["code"] == "athlete_already_linked"
    assert status["error"]["action"] == "none"
    assert "another Coach George account" in status["error"]["message"]


def test_a_refused_link_leaves_the_holders_grant_alone(
    api: TestClient, athlete: dict[str, Any], emulator: EmulatorHandle
) -> None:
    # Strava's deauthorize revokes every token of the athlete (docs/strava.md §1.9): revoking the
    # refused exchange would disconnect the runner who holds the link.
    holder, other = new_runner(api), new_runner(api)
    assert link(holder, athlete["id"])[0] == 200
    emulator.admin.clear_requests()
    assert link(other, athlete["id"])[0] == 409
    assert emulator.admin.requests(path=DEAUTHORIZE_PATH) == []
    assert holder.status()["status"] == "linked"


def test_an_unknown_callback_error_is_not_reported_as_a_cancel(
    api: TestClient, emulator: EmulatorHandle
) -> None:
    runner = new_runner(api)
    start = start_link(runner)
    emulator.admin.clear_requests()
    response = _callback(
        runner,
        {"state": start.state, "error": "server_error", "code_verifier": start.verifier},
    )
    assert response.status_code == 502, response.text
    assert response.json()["error"] == "strava_unavailable"
    assert "server_error" not in response.text
    assert emulator.admin.requests(path=TOKEN_PATH) == []
    error = runner.status()["error"]
    assert error["code"] == "strava_unavailable"
    assert "cancel" not in error["message"].lower()


def test_a_cancel_on_the_consent_page_is_access_denied(api: TestClient) -> None:
    runner = new_runner(api)
    start = start_link(runner)
    response = _callback(
        runner, {"state": start.state, "error": "access_denied", "code_verifier": start.verifier}
    )
    assert response.status_code == 400
    assert response.json()["error"] == "access_denied"
    assert "cancelled" in runner.status()["error"]["message"]


def test_a_pkce_mismatch_has_its_own_message_in_the_status(
    api: TestClient, athlete: dict[str, Any]
) -> None:
    runner = new_runner(api)
    start = start_link(runner)
    callback = consent(start.authorize_url, athlete["id"])
    response = _callback(runner, {**callback, "code_verifier": "x" * 64})
    assert response.json()["error"] == "pkce_mismatch"
    error = runner.status()["error"]
    assert error == {
        "code": "pkce_mismatch",
        "message": ERROR_MESSAGES["pkce_mismatch"],
        "action": "retry",
        "retry_at": None,
    }


@pytest.mark.parametrize(
    "code", ["invalid_state", "state_expired", "pkce_mismatch", "athlete_already_linked"]
)
def test_every_link_failure_has_a_message_of_its_own(code: str) -> None:
    from app.strava.service import status_error

    assert FALLBACK not in status_error(code).message


@pytest.mark.parametrize("field", ["scope", "code", "error"])
def test_control_characters_in_the_callback_are_refused_before_any_exchange(
    api: TestClient, athlete: dict[str, Any], emulator: EmulatorHandle, field: str
) -> None:
    runner = new_runner(api)
    start = start_link(runner)
    callback = consent(start.authorize_url, athlete["id"])
    emulator.admin.clear_requests()
    callback[field] = callback.get(field, "x") + (",\x00" if field == "scope" else "\x00")
    response = _callback(runner, {**callback, "code_verifier": start.verifier})
    assert response.status_code == 422, response.text
    assert response.json()["error"] == "invalid_request"
    assert emulator.admin.requests(path=TOKEN_PATH) == []
    # The attempt was not spent: the same consent still links.
    del callback[field]
    callback.update(consent(start.authorize_url, athlete["id"]))
    linked = _callback(runner, {**callback, "code_verifier": start.verifier})
    assert linked.status_code == 200, linked.text
