"""The link as the runner sees it (app/strava/service.py): unlinking deletes here first and
revokes at Strava now or later; deferred deauthorizations retry until Strava answers."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import time_machine
from app.clock import as_utc, utcnow
from app.db import session_scope
from app.strava import service
from app.strava.models import PendingDeauthorization, StravaLink
from app.strava.runtime import StravaRuntime
from app.workouts.models import Workout
from factories import Runner, link, new_runner
from fastapi.testclient import TestClient
from sqlalchemy import delete, func, select
from strava_emulator.testing import EmulatorHandle


def test_deferred_deauthorizations_retry_with_backoff_until_strava_answers(
    api: TestClient,
    athlete: dict[str, Any],
    emulator: EmulatorHandle,
    strava_runtime: StravaRuntime,
) -> None:
    issued = emulator.admin.issue_tokens(athlete["id"])
    with session_scope() as session:
        session.execute(delete(PendingDeauthorization))
        service.schedule_deauthorization(session, strava_runtime.keyring, issued["access_token"])
    emulator.admin.add_fault("/oauth/deauthorize", "status", method="POST", status=503, count=1)
    assert service.deauthorize_pending(strava_runtime) == 0
    with session_scope() as session:
        (pending,) = session.scalars(select(PendingDeauthorization)).all()
        assert pending.attempts == 1
        retry_at = as_utc(pending.next_attempt_at)
    assert retry_at > utcnow()
    emulator.admin.clear_requests()
    assert service.deauthorize_pending(strava_runtime) == 0  # not due yet: Strava not called
    assert not emulator.admin.requests(path="/oauth/deauthorize")
    with time_machine.travel(retry_at + timedelta(seconds=1), tick=True):
        assert service.deauthorize_pending(strava_runtime) == 1
    assert [r["status"] for r in emulator.admin.requests(path="/oauth/deauthorize")] == [200]
    with session_scope() as session:
        assert not session.scalars(select(PendingDeauthorization)).all()


def test_a_deauthorization_strava_refuses_with_401_is_settled(
    athlete: dict[str, Any], emulator: EmulatorHandle, strava_runtime: StravaRuntime
) -> None:
    issued = emulator.admin.issue_tokens(athlete["id"])
    emulator.admin.revoke(athlete["id"])
    with session_scope() as session:
        session.execute(delete(PendingDeauthorization))
        service.schedule_deauthorization(session, strava_runtime.keyring, issued["access_token"])
    assert service.deauthorize_pending(strava_runtime) == 1
    with session_scope() as session:
        assert not session.scalars(select(PendingDeauthorization)).all()


def test_a_deferred_deauthorization_refreshes_an_expired_token_first(
    athlete: dict[str, Any], emulator: EmulatorHandle, strava_runtime: StravaRuntime
) -> None:
    issued = emulator.admin.issue_tokens(athlete["id"])
    expires_at = datetime.fromtimestamp(int(issued["expires_at"]), UTC)
    with session_scope() as session:
        session.execute(delete(PendingDeauthorization))
        service.schedule_deauthorization(
            session,
            strava_runtime.keyring,
            issued["access_token"],
            refresh_token=issued["refresh_token"],
            access_token_expires_at=expires_at,
        )
    emulator.admin.clear_requests()
    later = timedelta(hours=7)  # Strava stayed down past the access token's 6-hour life
    emulator.admin.advance_clock(later.total_seconds())
    try:
        with time_machine.travel(utcnow() + later, tick=True):
            assert service.deauthorize_pending(strava_runtime) == 1
    finally:
        emulator.admin.advance_clock(-later.total_seconds())
    calls = [(r["path"], r["status"]) for r in emulator.admin.requests(method="POST")]
    assert calls == [("/oauth/token", 200), ("/oauth/deauthorize", 200)]
    with session_scope() as session:
        assert not session.scalars(select(PendingDeauthorization)).all()


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


def test_unlink_deauthorizes_and_deletes_tokens_and_workouts(
    api: TestClient, athlete: dict[str, Any], emulator: EmulatorHandle
) -> None:
    runner = new_runner(api)
    assert link(runner, athlete["id"])[0] == 200
    emulator.admin.clear_requests()

    assert runner.delete("/api/v1/strava/link").status_code == 204

    assert len(emulator.admin.requests(path="/oauth/deauthorize")) == 1
    assert runner.status()["status"] == "not_linked"
    assert _link_count(runner) == 0
    with session_scope() as session:
        assert not session.scalars(
            select(Workout).where(Workout.runner_id == uuid.UUID(runner.runner_id))
        ).all()
    _assert_error(runner.delete("/api/v1/strava/link"), 409, "not_linked")


def test_unlink_with_strava_down_deletes_locally_and_retries_later(
    api: TestClient, athlete: dict[str, Any], emulator: EmulatorHandle
) -> None:
    runner = new_runner(api)
    assert link(runner, athlete["id"])[0] == 200
    with session_scope() as session:
        pending_before = session.scalar(select(func.count()).select_from(PendingDeauthorization))
    emulator.admin.add_fault(
        method="POST", path="/oauth/deauthorize", kind="status", status=503, count=10
    )

    assert runner.delete("/api/v1/strava/link").status_code == 204

    assert _link_count(runner) == 0
    with session_scope() as session:
        pending_after = session.scalar(select(func.count()).select_from(PendingDeauthorization))
    assert pending_after == (pending_before or 0) + 1
