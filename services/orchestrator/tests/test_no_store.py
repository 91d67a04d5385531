"""Responses that carry a secret are never cached (issue 10 item 14): the session's bearer token,
the link-token's `state`, the callback that completes a link."""

from __future__ import annotations

from typing import Any

from factories import consent, new_runner, start_link
from fastapi.testclient import TestClient


def test_session_link_token_and_callback_responses_are_no_store(
    api: TestClient, athlete: dict[str, Any]
) -> None:
    session = api.post("/api/v1/auth/sessions", json={})
    assert session.status_code == 201
    assert session.headers["Cache-Control"] == "no-store"

    runner = new_runner(api)
    link = start_link(runner)
    token = runner.post(
        "/api/v1/strava/link-token",
        {
            "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
            "code_challenge_method": "S256",
        },
    )
    assert token.status_code == 201
    assert token.headers["Cache-Control"] == "no-store"

    callback = consent(link.authorize_url, athlete["id"])
    linked = runner.post("/api/v1/strava/callback", {**callback, "code_verifier": link.verifier})
    assert linked.status_code == 200, linked.text
    assert linked.headers["Cache-Control"] == "no-store"
