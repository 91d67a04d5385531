"""DELETE /api/v1/profile (issue 10 item 12): the runner and everything derived from them are
erased, Strava deauthorized first (or later, when Strava is down); the emulator over HTTP."""

from __future__ import annotations

import uuid
from typing import Any

import structlog
from app.db import Base, session_scope
from app.models import import_all_models
from app.strava.models import PendingDeauthorization, StravaLink
from app.strava.runtime import StravaRuntime
from app.strava.sync import run_sync
from app.workouts.models import Workout
from factories import Runner, linked_runner, new_runner
from fastapi.testclient import TestClient
from sqlalchemy import Uuid, func, select
from strava_emulator.testing import EmulatorHandle

DEAUTHORIZE = "/oauth/deauthorize"


def _rows_naming(runner_id: uuid.UUID) -> dict[str, int]:
    """Rows of every table with a UUID column holding the runner's id: what erasure must empty."""
    import_all_models()
    found: dict[str, int] = {}
    with session_scope() as session:
        for table in Base.metadata.sorted_tables:
            for column in table.columns:
                if not isinstance(column.type, Uuid):
                    continue
                count = session.scalar(
                    select(func.count()).select_from(table).where(column == runner_id)
                )
                if count:
                    found[f"{table.name}.{column.name}"] = count
    return found


def _pending_deauthorizations() -> int:
    with session_scope() as session:
        return session.scalar(select(func.count()).select_from(PendingDeauthorization)) or 0


def _synced_runner(
    api: TestClient, athlete: dict[str, Any], enqueued: list[uuid.UUID], deps: StravaRuntime
) -> Runner:
    runner = linked_runner(api, athlete["id"])
    run_sync(deps, enqueued[-1])
    assert runner.get("/api/v1/workouts").json()["items"], "the window has workouts to erase"
    return runner


def test_delete_profile_deauthorizes_at_strava_and_erases_every_row_of_the_runner(
    api: TestClient,
    athlete: dict[str, Any],
    emulator: EmulatorHandle,
    enqueued: list[uuid.UUID],
    strava_runtime: StravaRuntime,
) -> None:
    runner = _synced_runner(api, athlete, enqueued, strava_runtime)
    bystander = _synced_runner(api, emulator.admin.create_athlete(), enqueued, strava_runtime)
    runner_id = uuid.UUID(runner.runner_id)
    before = _rows_naming(runner_id)
    assert {"runners.id", "profiles.runner_id", "strava_links.runner_id"} <= set(before)
    assert {"workouts.runner_id", "sync_runs.runner_id", "runner_sessions.runner_id"} <= set(before)
    emulator.admin.clear_requests()

    response = runner.delete("/api/v1/profile")

    assert response.status_code == 204, response.text
    [deauthorized] = emulator.admin.requests(path=DEAUTHORIZE)
    assert deauthorized["status"] == 200
    assert deauthorized["athlete_id"] == athlete["id"]
    assert _rows_naming(runner_id) == {}
    assert runner.get("/api/v1/strava/status").status_code == 401
    assert runner.delete("/api/v1/profile").status_code == 401
    # Nobody else lost anything.
    assert bystander.status()["status"] == "linked"
    assert bystander.get("/api/v1/workouts").json()["items"]


def test_delete_profile_with_strava_down_erases_now_and_deauthorizes_later(
    api: TestClient, athlete: dict[str, Any], emulator: EmulatorHandle
) -> None:
    runner = linked_runner(api, athlete["id"])
    pending = _pending_deauthorizations()
    emulator.admin.add_fault(method="POST", path=DEAUTHORIZE, kind="status", status=503, count=10)

    assert runner.delete("/api/v1/profile").status_code == 204

    assert _rows_naming(uuid.UUID(runner.runner_id)) == {}
    assert _pending_deauthorizations() == pending + 1
    assert runner.get("/api/v1/strava/status").status_code == 401


def test_delete_profile_of_a_runner_who_never_linked_strava(
    api: TestClient, emulator: EmulatorHandle
) -> None:
    runner = new_runner(api)
    emulator.admin.clear_requests()

    assert runner.delete("/api/v1/profile").status_code == 204

    assert _rows_naming(uuid.UUID(runner.runner_id)) == {}
    assert not emulator.admin.requests(path=DEAUTHORIZE)
    assert runner.get("/api/v1/strava/status").status_code == 401


def test_delete_profile_erases_even_when_the_credentials_cannot_be_decrypted(
    api: TestClient, athlete: dict[str, Any], emulator: EmulatorHandle
) -> None:
    runner = linked_runner(api, athlete["id"])
    runner_id = uuid.UUID(runner.runner_id)
    with session_scope() as session:
        link = session.scalars(select(StravaLink).where(StravaLink.runner_id == runner_id)).one()
        link.key_id = "retired-key"  # as if its key was removed from TOKEN_ENCRYPTION_KEYS
    emulator.admin.clear_requests()

    with structlog.testing.capture_logs() as logs:
        response = runner.delete("/api/v1/profile")

    assert response.status_code == 204, response.text
    assert _rows_naming(runner_id) == {}
    assert not emulator.admin.requests(path=DEAUTHORIZE)  # nothing to deauthorize with
    [skipped] = [e for e in logs if e["event"] == "strava.deauthorize_skipped"]
    assert skipped["reason"] == "key_unavailable"
    with session_scope() as session:
        assert not session.scalars(select(Workout).where(Workout.runner_id == runner_id)).all()
