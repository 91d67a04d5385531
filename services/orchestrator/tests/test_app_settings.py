"""`create_app(settings)` is honoured: the routes see the app's own settings, not the globals."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from app.config import Settings
from app.main import create_app
from factories import new_runner, pkce_pair
from fastapi.testclient import TestClient


@pytest.fixture
def short_ttl_api(settings: Settings) -> Iterator[TestClient]:
    own = settings.model_copy(update={"link_attempt_ttl_seconds": 60})
    with TestClient(create_app(own, enqueue_sync=lambda _: None)) as client:
        yield client


def test_routes_use_the_settings_the_app_was_created_with(
    short_ttl_api: TestClient, settings: Settings
) -> None:
    assert settings.link_attempt_ttl_seconds != 60  # the process's settings differ
    runner = new_runner(short_ttl_api)
    _, challenge = pkce_pair()
    now = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)

    with time_machine.travel(now, tick=False):
        response = runner.post(
            "/api/v1/strava/link-token",
            {"code_challenge": challenge, "code_challenge_method": "S256"},
        )

    assert response.status_code == 201, response.text
    assert datetime.fromisoformat(response.json()["expires_at"]) == now + timedelta(seconds=60)
