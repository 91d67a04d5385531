"""No token, code, state, verifier or client secret in logs, access logs or error bodies."""

from __future__ import annotations

from typing import Any

import pytest
from app.config import Settings
from factories import RecordingClient, consent, new_runner, start_link
from fastapi.testclient import TestClient


def test_a_whole_link_and_unlink_logs_no_secret(
    capfd: pytest.CaptureFixture[str],
    recording_api: tuple[TestClient, RecordingClient],
    athlete: dict[str, Any],
    settings: Settings,
) -> None:
    api, client = recording_api
    runner = new_runner(api)
    start = start_link(runner)
    callback = consent(start.authorize_url, athlete["id"])
    # The web client lands here with `code` and `state` in the query: the access log sees it.
    page = api.get(
        "/onboarding/strava/callback", params={"code": callback["code"], "state": callback["state"]}
    )
    assert page.status_code == 200
    linked = runner.post("/api/v1/strava/callback", {**callback, "code_verifier": start.verifier})
    assert linked.status_code == 200
    replay = runner.post("/api/v1/strava/callback", {**callback, "code_verifier": start.verifier})
    assert replay.status_code == 400
    assert runner.delete("/api/v1/strava/link").status_code == 204

    (tokens,) = client.received
    secrets = {
        "access token": tokens.access_token.get_secret_value(),
        "refresh token": tokens.refresh_token.get_secret_value(),
        "code": callback["code"],
        "state": callback["state"],
        "code verifier": start.verifier,
        "client secret": settings.client_secret,
        "runner token": runner.token,
    }
    captured = capfd.readouterr()
    logs = captured.out + captured.err
    assert "http.request" in logs  # the access log was captured
    assert "/onboarding/strava/callback" in logs
    leaked = [name for name, value in secrets.items() if value in logs]
    assert leaked == []
    for response in (linked, replay):
        assert not [name for name, value in secrets.items() if value in response.text]
    assert repr(tokens).count("**********") == 2


@pytest.mark.parametrize("json", [False, True], ids=["console", "json"])
def test_a_logged_traceback_carries_no_frame_locals(
    json: bool, capsys: pytest.CaptureFixture[str]
) -> None:
    import secrets

    import structlog
    from app.logging import configure_logging

    token = secrets.token_hex(16)  # not a literal: the traceback quotes source lines

    def call_strava(access_token: str) -> None:
        headers = {"Authorization": f"Bearer {access_token}"}
        raise RuntimeError(f"failed with {len(headers)} headers")

    configure_logging(json=json)
    try:
        call_strava(token)
    except RuntimeError:
        structlog.get_logger("test").exception("strava.sync_crashed")
    logs = capsys.readouterr().err
    assert "call_strava" in logs  # the traceback is there...
    assert "failed with 1 headers" in logs
    assert token not in logs  # ...without the frames' locals
    assert "Bearer" not in logs
