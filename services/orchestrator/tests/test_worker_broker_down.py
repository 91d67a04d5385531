"""Redis (the broker) down: the status still answers from the database, a manual sync answers
503 with Retry-After, and no run is left stuck in `queued`."""

from __future__ import annotations

import socket
import uuid
from typing import Any

import pytest
from app.db import session_scope
from app.strava.models import SyncRun
from app.strava.runtime import StravaRuntime
from app.strava.sync import run_sync
from factories import linked_runner
from fastapi.testclient import TestClient
from sqlalchemy import select
from workers import worker_environment

pytestmark = pytest.mark.worker


def _closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port  # nothing listens there once the socket is closed


def test_redis_down_status_answers_and_manual_sync_is_503(
    api: TestClient,
    athlete: dict[str, Any],
    enqueued: list[uuid.UUID],
    strava_runtime: StravaRuntime,
) -> None:
    from app.main import create_app

    runner = linked_runner(api, athlete["id"])
    assert run_sync(strava_runtime, enqueued[-1]).result == "ok"
    dead = f"redis://127.0.0.1:{_closed_port()}/0"

    with worker_environment(REDIS_URL=dead) as settings, TestClient(create_app(settings)) as down:
        headers = runner.headers
        status = down.get("/api/v1/strava/status", headers=headers)
        assert status.status_code == 200
        assert status.json()["status"] == "linked"
        assert status.json()["sync"]["last_result"] == "ok"
        assert down.get("/api/v1/workouts", headers=headers).status_code == 200

        response = down.post("/api/v1/strava/sync", json={}, headers=headers)

        assert response.status_code == 503, response.text
        assert response.json()["error"] == "service_unavailable"
        assert response.json()["message"]
        assert int(response.headers["Retry-After"]) > 0
        assert down.get("/readyz").status_code == 503
        after = down.get("/api/v1/strava/status", headers=headers).json()
        assert after["sync"]["state"] == "idle"

    with session_scope() as session:
        states = session.scalars(
            select(SyncRun.state).where(SyncRun.runner_id == uuid.UUID(runner.runner_id))
        ).all()
    assert set(states) == {"finished"}  # nothing stuck in queued
