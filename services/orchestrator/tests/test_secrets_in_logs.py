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
