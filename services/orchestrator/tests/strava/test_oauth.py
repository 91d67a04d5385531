"""The link flow (issue 2; docs/contract.md §2): PKCE, state, the code exchange and every bad
input."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import httpx2
import pytest
import structlog
import time_machine
from app.clock import utcnow
from app.db import session_scope
from app.security import s256_challenge
from app.strava.models import LinkAttempt, StravaLink
from factories import Runner, consent, link, new_runner, pkce_pair, start_link
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from strava_emulator.testing import EmulatorHandle

TOKEN_PATH = "/oauth/token"


def _callback(runner: Runner, **body: Any) -> Any:
    return runner.post("/api/v1/strava/callback", body)


def _assert_error(response: Any, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"] == code
    assert body["message"]


def _link_count(runner: Runner) -> int:
    with session_scope() as session:
        return (
            session.scalar(
                select(func.count()).where(StravaLink.runner_id == uuid.UUID(runner.runner_id))
            )
            or 0
        )


def test_rfc7636_appendix_b_vector() -> None:
    assert (
        s256_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk")
        == "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
    )


def test_link_stores_tokens_and_queues_the_first_sync(
    api: TestClient, athlete: dict[str, Any], enqueued: list[uuid.UUID]
) -> None:
    runner = new_runner(api)
    assert runner.status()["status"] == "not_linked"

    status, body = link(runner, athlete["id"])

    assert status == 200, body
    assert body["status"] == "linked"
    assert body["athlete"] == {
        "id": athlete["id"],
        "firstname": athlete["firstname"],
        "lastname": athlete["lastname"],
    }
    assert body["scopes"] == ["read", "activity:read_all"]
    assert body["error"] is None
    assert body["sync"]["state"] == "queued"
    assert len(enqueued) == 1
    assert runner.status()["linked_at"] == body["linked_at"]


def test_link_token_requires_a_profile(api: TestClient) -> None:
    runner = new_runner(api, profile=False)
    _, challenge = pkce_pair()
    response = runner.post(
        "/api/v1/strava/link-token", {"code_challenge": challenge, "code_challenge_method": "S256"}
    )
    _assert_error(response, 409, "profile_required")


def test_authorize_url_carries_state_scopes_and_the_default_redirect(api: TestClient) -> None:
    runner = new_runner(api)
    start = start_link(runner)
    assert "/oauth/mobile/authorize?" in start.authorize_url
    assert f"state={start.state}" in start.authorize_url
    assert "response_type=code" in start.authorize_url
    assert "scope=read%2Cactivity%3Aread_all" in start.authorize_url
    assert "redirect_uri=coachai%3A%2F%2Foauth%2Fstrava" in start.authorize_url
    assert len(start.state) >= 43  # 256 bits, base64url


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/strava/status",
        "/api/v1/profile/summary",
        "/api/v1/workouts",
        "/api/v1/strava/sync-runs",
    ],
)
@pytest.mark.parametrize("header", [None, "Bearer nope", "Basic abc", "Bearer "])
def test_runner_endpoints_need_a_valid_bearer_token(
    api: TestClient, path: str, header: str | None
) -> None:
    headers = {"Authorization": header} if header is not None else {}
    _assert_error(api.get(path, headers=headers), 401, "unauthenticated")


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"code_challenge_method": "plain"}, "invalid_request"),
        ({"code_challenge": "short"}, "invalid_request"),
        ({"code_challenge": "A" * 44}, "invalid_request"),
        ({"code_challenge": "+" * 43}, "invalid_request"),
        ({"code_challenge": "é" * 43}, "invalid_request"),
        ({"redirect_uri": "https://evil.example/callback"}, "redirect_uri_not_allowed"),
        ({"redirect_uri": "coachai://oauth/strava/../x"}, "redirect_uri_not_allowed"),
    ],
)
def test_link_token_rejects_bad_pkce_and_redirects(
    api: TestClient, body: dict[str, str], code: str
) -> None:
    runner = new_runner(api)
    _, challenge = pkce_pair()
    payload = {"code_challenge": challenge, "code_challenge_method": "S256", **body}
    _assert_error(runner.post("/api/v1/strava/link-token", payload), 400, code)


@pytest.mark.parametrize(
    "state",
    ["", "unknown-state-value", "x" * 10_000, "état-non-ascii-ünïcödé"],
)
def test_callback_refuses_unknown_states(api: TestClient, state: str) -> None:
    runner = new_runner(api)
    start_link(runner)
    verifier, _ = pkce_pair()
    response = _callback(runner, state=state, code="abc", scope="read", code_verifier=verifier)
    _assert_error(response, 400, "invalid_state")


def test_callback_refuses_another_runners_state(api: TestClient, athlete: dict[str, Any]) -> None:
    alice, mallory = new_runner(api), new_runner(api)
    start = start_link(alice)
    callback = consent(start.authorize_url, athlete["id"])
    response = _callback(mallory, **callback, code_verifier=start.verifier)
    _assert_error(response, 400, "invalid_state")
    assert _link_count(mallory) == 0


def test_replayed_state_is_refused(api: TestClient, athlete: dict[str, Any]) -> None:
    runner = new_runner(api)
    start = start_link(runner)
    callback = consent(start.authorize_url, athlete["id"])
    assert _callback(runner, **callback, code_verifier=start.verifier).status_code == 200
    replay = _callback(runner, **callback, code_verifier=start.verifier)
    _assert_error(replay, 400, "invalid_state")
    assert runner.status()["status"] == "linked"


def test_expired_state_is_refused(api: TestClient, athlete: dict[str, Any]) -> None:
    runner = new_runner(api)
    start = start_link(runner)
    callback = consent(start.authorize_url, athlete["id"])
    with time_machine.travel(utcnow() + timedelta(minutes=10, seconds=1), tick=False):
        response = _callback(runner, **callback, code_verifier=start.verifier)
    _assert_error(response, 400, "state_expired")
    assert _link_count(runner) == 0


@pytest.mark.parametrize("verifier", ["a" * 42, "a" * 129, "wrong-" * 10])
def test_callback_refuses_a_verifier_that_does_not_match(
    api: TestClient, athlete: dict[str, Any], verifier: str
) -> None:
    runner = new_runner(api)
    start = start_link(runner)
    callback = consent(start.authorize_url, athlete["id"])
    _assert_error(_callback(runner, **callback, code_verifier=verifier), 400, "pkce_mismatch")
    assert _link_count(runner) == 0


def test_callback_needs_code_or_error(api: TestClient) -> None:
    runner = new_runner(api)
    start = start_link(runner)
    response = _callback(runner, state=start.state, code_verifier=start.verifier)
    _assert_error(response, 400, "invalid_request")


def test_access_denied_stores_nothing_and_the_status_explains(
    api: TestClient, athlete: dict[str, Any]
) -> None:
    runner = new_runner(api)
    start = start_link(runner)
    callback = consent(start.authorize_url, athlete["id"], cancel=True)
    assert callback["error"] == "access_denied"
    _assert_error(_callback(runner, **callback, code_verifier=start.verifier), 400, "access_denied")
    status = runner.status()
    assert status["status"] == "not_linked"
    assert status["error"]["code"] == "access_denied"
    assert status["error"]["action"] == "retry"
    assert _link_count(runner) == 0


def test_scope_without_activity_read_keeps_no_tokens(
    api: TestClient, athlete: dict[str, Any], emulator: EmulatorHandle
) -> None:
    runner = new_runner(api)
    emulator.admin.clear_requests()
    status, body = link(runner, athlete["id"], scope="read")
    assert status == 400
    assert body["error"] == "insufficient_scope"
    assert _link_count(runner) == 0
    assert runner.status()["error"]["action"] == "reconnect"
    assert not emulator.admin.requests(path=TOKEN_PATH)  # the code was never exchanged


def test_activity_read_without_read_all_links_but_says_private_runs_are_missing(
    api: TestClient, athlete: dict[str, Any]
) -> None:
    runner = new_runner(api)
    status, body = link(runner, athlete["id"], scope="read,activity:read")
    assert status == 200, body
    assert body["status"] == "linked"
    assert body["scopes"] == ["read", "activity:read"]
    assert body["error"]["code"] == "insufficient_scope"
    assert body["error"]["action"] == "reconnect"
    assert "private" in body["error"]["message"].lower()


def test_athlete_already_linked_to_another_runner_is_refused(
    api: TestClient, athlete: dict[str, Any]
) -> None:
    first, second = new_runner(api), new_runner(api)
    assert link(first, athlete["id"])[0] == 200
    status, body = link(second, athlete["id"])
    assert status == 409
    assert body["error"] == "athlete_already_linked"
    assert _link_count(second) == 0
    assert first.status()["status"] == "linked"


def test_reconnect_replaces_the_tokens_of_the_same_runner(
    api: TestClient, athlete: dict[str, Any]
) -> None:
    runner = new_runner(api)
    assert link(runner, athlete["id"])[0] == 200
    with session_scope() as session:
        before = session.scalars(
            select(StravaLink).where(StravaLink.runner_id == uuid.UUID(runner.runner_id))
        ).one()
        before_blob, before_version = before.access_token_ciphertext, before.token_version
    assert link(runner, athlete["id"])[0] == 200
    with session_scope() as session:
        after = session.scalars(
            select(StravaLink).where(StravaLink.runner_id == uuid.UUID(runner.runner_id))
        ).one()
        assert after.access_token_ciphertext != before_blob
        assert after.token_version == before_version + 1
    assert _link_count(runner) == 1


def test_linking_a_different_athlete_replaces_the_old_link(
    api: TestClient, emulator: EmulatorHandle
) -> None:
    first, second = emulator.admin.create_athlete(), emulator.admin.create_athlete()
    runner = new_runner(api)
    assert link(runner, first["id"])[0] == 200
    status, body = link(runner, second["id"])
    assert status == 200
    assert body["athlete"]["id"] == second["id"]
    assert _link_count(runner) == 1
    # the first athlete is free again for anyone
    other = new_runner(api)
    assert link(other, first["id"])[0] == 200


@pytest.mark.parametrize(
    ("fault", "code"),
    [
        ({"kind": "status", "status": 401}, "strava_unavailable"),
        ({"kind": "status", "status": 503}, "strava_unavailable"),
        ({"kind": "timeout"}, "strava_unavailable"),
        ({"kind": "malformed_json"}, "strava_unavailable"),
    ],
)
def test_token_endpoint_faults_spend_the_attempt_and_a_fresh_one_succeeds(
    api: TestClient,
    athlete: dict[str, Any],
    emulator: EmulatorHandle,
    fault: dict[str, Any],
    code: str,
) -> None:
    runner = new_runner(api)
    start = start_link(runner)
    callback = consent(start.authorize_url, athlete["id"])
    emulator.admin.add_fault(method="POST", path=TOKEN_PATH, count=1, **fault)

    response = _callback(runner, **callback, code_verifier=start.verifier)

    assert response.status_code in (400, 502), response.text
    assert response.json()["error"] == code
    assert _link_count(runner) == 0
    _assert_error(_callback(runner, **callback, code_verifier=start.verifier), 400, "invalid_state")
    assert link(runner, athlete["id"])[0] == 200


def test_a_link_that_strava_failed_asks_to_connect_again_and_promises_no_automatic_retry(
    api: TestClient, athlete: dict[str, Any], emulator: EmulatorHandle
) -> None:
    runner = new_runner(api)
    start = start_link(runner)
    callback = consent(start.authorize_url, athlete["id"])
    emulator.admin.add_fault(method="POST", path=TOKEN_PATH, count=1, kind="status", status=503)

    assert _callback(runner, **callback, code_verifier=start.verifier).status_code == 502

    status = runner.status()
    assert status["status"] == "not_linked"
    assert status["error"]["code"] == "strava_unavailable"
    assert status["error"]["action"] == "retry"  # no link: nothing retries by itself
    assert "automatically" not in status["error"]["message"]
    assert "Connect again" in status["error"]["message"]


def test_strava_athlete_capacity_refusal_is_its_own_honest_error(
    api: TestClient, athlete: dict[str, Any], emulator: EmulatorHandle
) -> None:
    runner = new_runner(api)
    start = start_link(runner)
    callback = consent(start.authorize_url, athlete["id"])
    emulator.admin.set_athlete_capacity(emulator.admin.get_settings()["connected_athletes"])
    try:
        with structlog.testing.capture_logs() as logs:
            response = _callback(runner, **callback, code_verifier=start.verifier)
    finally:
        emulator.admin.set_athlete_capacity(None)

    _assert_error(response, 409, "strava_athlete_limit")
    assert "limit of connected athletes" in response.json()["message"]
    assert _link_count(runner) == 0
    status = runner.status()
    assert status["status"] == "not_linked"
    assert status["error"]["code"] == "strava_athlete_limit"
    assert status["error"]["action"] == "none"
    # An operator line that says what happened, and no secret in it.
    [line] = [e for e in logs if e["event"] == "strava.athlete_capacity_reached"]
    assert line["log_level"] == "error"
    assert line["status"] == 403
    assert callback["code"] not in repr(logs)
    assert emulator.config.client_secret not in repr(logs)
    # The cap lifted, the runner connects with a fresh attempt.
    assert link(runner, athlete["id"])[0] == 200


def test_a_used_code_is_a_clear_error_and_a_fresh_attempt_succeeds(
    api: TestClient, athlete: dict[str, Any], emulator: EmulatorHandle
) -> None:
    runner = new_runner(api)
    start = start_link(runner)
    callback = consent(start.authorize_url, athlete["id"])
    # Someone (a retry, an attacker) used the code first: Strava answers 400 RequestToken/code.
    used = httpx2.post(
        f"{emulator.oauth_base_url}/token",
        data={
            "client_id": emulator.config.client_id,
            "client_secret": emulator.config.client_secret,
            "code": callback["code"],
            "grant_type": "authorization_code",
        },
    )
    assert used.status_code == 200

    response = _callback(runner, **callback, code_verifier=start.verifier)

    _assert_error(response, 400, "reauth_required")
    assert _link_count(runner) == 0
    assert link(runner, athlete["id"])[0] == 200


def test_two_concurrent_callbacks_exchange_the_code_once(
    api: TestClient, athlete: dict[str, Any], emulator: EmulatorHandle
) -> None:
    runner = new_runner(api)
    start = start_link(runner)
    callback = consent(start.authorize_url, athlete["id"])
    emulator.admin.clear_requests()
    with ThreadPoolExecutor(max_workers=2) as pool:
        responses = list(
            pool.map(
                lambda _: _callback(runner, **callback, code_verifier=start.verifier), range(2)
            )
        )
    assert sorted(response.status_code for response in responses) == [200, 400]
    assert len(emulator.admin.requests(path=TOKEN_PATH)) == 1


def test_link_attempt_state_is_stored_hashed(api: TestClient) -> None:
    runner = new_runner(api)
    start = start_link(runner)
    with session_scope() as session:
        attempt = session.scalars(
            select(LinkAttempt).where(LinkAttempt.runner_id == uuid.UUID(runner.runner_id))
        ).one()
    assert attempt.state_hash != start.state
    assert start.state not in attempt.state_hash
