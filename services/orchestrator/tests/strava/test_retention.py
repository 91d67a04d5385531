"""The retention policy (issue 10 item 12; docs/retention.md) on PostgreSQL, the emulator over
real HTTP where Strava is involved. Tests share the database, so each asserts on its own runner's
rows; `apply_retention` is called the way the beat's task calls it."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

import pytest
import structlog
import time_machine
from app.clock import as_utc, utcnow
from app.codes import Trigger
from app.config import Settings
from app.db import get_sessionmaker, session_scope
from app.strava import scheduling, service
from app.strava.models import LinkAttempt, PendingDeauthorization, StravaLink, SyncRun
from app.strava.retention import RetentionPolicy, RetentionReport, apply_retention
from app.strava.runtime import StravaRuntime
from app.strava.sync import run_sync
from app.workouts.models import Workout
from factories import Runner, linked_runner, new_runner, start_link
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from strava_emulator.testing import EmulatorHandle


@pytest.fixture
def policy(settings: Settings) -> RetentionPolicy:
    return RetentionPolicy.from_settings(settings)


def _apply(policy: RetentionPolicy, *, after: timedelta = timedelta(0)) -> RetentionReport:
    """Apply retention as the beat would, `after` from now."""
    with time_machine.travel(utcnow() + after, tick=False):
        return apply_retention(get_sessionmaker(), policy, batch_size=3)


def _rid(runner: Runner) -> uuid.UUID:
    return uuid.UUID(runner.runner_id)


def _workout(runner_id: uuid.UUID, start_date: datetime) -> Workout:
    return Workout(
        id=uuid.uuid4(),
        runner_id=runner_id,
        source="strava",
        source_id=uuid.uuid4().int >> 66,
        sport_type="Run",
        is_run=True,
        start_date=start_date,
        raw={},
    )


def _workout_starts(runner_id: uuid.UUID) -> list[datetime]:
    with session_scope() as session:
        rows = session.scalars(
            select(Workout.start_date)
            .where(Workout.runner_id == runner_id)
            .order_by(Workout.start_date)
        )
        return [as_utc(start) for start in rows]


def _link(runner_id: uuid.UUID) -> StravaLink | None:
    with session_scope() as session:
        return service.get_link(session, runner_id)


@pytest.fixture
def synced(
    api: TestClient,
    athlete: dict[str, Any],
    enqueued: list[uuid.UUID],
    strava_runtime: StravaRuntime,
) -> Runner:
    runner = linked_runner(api, athlete["id"])
    assert run_sync(strava_runtime, enqueued[-1]).result == "ok"
    assert _workout_starts(_rid(runner)), "the generated athlete trains"
    return runner


def test_workouts_that_left_the_sync_window_are_purged(
    api: TestClient, policy: RetentionPolicy
) -> None:
    runner_id = _rid(new_runner(api))
    now = utcnow()
    window = timedelta(days=policy.window_days)
    grace = timedelta(days=policy.workout_grace_days)
    starts = [
        now - window - grace - timedelta(days=3),
        now - window - grace - timedelta(minutes=1),
        now - window - grace + timedelta(minutes=1),  # out of the window, within the grace
        now - window + timedelta(hours=1),
        now - timedelta(days=1),
    ]
    with session_scope() as session:
        session.add_all(_workout(runner_id, start) for start in starts)

    report = _apply(policy)

    assert _workout_starts(runner_id) == starts[2:]
    assert report.workouts_out_of_window >= 2


def test_a_dead_grant_loses_tokens_and_workouts_after_the_grace_period(
    synced: Runner,
    athlete: dict[str, Any],
    emulator: EmulatorHandle,
    strava_runtime: StravaRuntime,
    policy: RetentionPolicy,
) -> None:
    runner_id = _rid(synced)
    emulator.admin.revoke(athlete["id"])  # the athlete removed our app on Strava
    assert run_sync(strava_runtime, _request_sync(runner_id)).error_code == "reauth_required"
    emulator.admin.clear_requests()

    _apply(policy, after=timedelta(days=policy.dead_link_days) - timedelta(hours=1))
    assert _link(runner_id) is not None, "still within the grace period"
    assert _workout_starts(runner_id), "(only the ones that left the window went)"

    report = _apply(policy, after=timedelta(days=policy.dead_link_days, hours=1))

    assert _link(runner_id) is None
    assert _workout_starts(runner_id) == []
    assert report.dead_links >= 1
    assert report.dead_link_workouts >= 1
    status = synced.status()
    assert status["status"] == "not_linked"
    assert status["error"]["code"] == "revoked"  # the runner sees why, and Reconnect
    assert status["error"]["action"] == "reconnect"
    assert not emulator.admin.requests()  # a dead grant has nothing to deauthorize


def test_a_link_with_a_passing_error_or_a_live_grant_is_kept(
    synced: Runner, policy: RetentionPolicy
) -> None:
    runner_id = _rid(synced)
    with session_scope() as session:
        link = service.get_link(session, runner_id)
        assert link is not None
        link.error_code = "sync_failed"  # Strava was down: the grant itself is fine

    _apply(policy, after=timedelta(days=policy.dead_link_days + 1))

    assert _link(runner_id) is not None
    assert _workout_starts(runner_id)


def test_error_since_is_when_the_current_error_began(synced: Runner) -> None:
    runner_id = _rid(synced)
    first = utcnow()
    with time_machine.travel(first, tick=False), session_scope() as session:
        link = service.get_link(session, runner_id)
        assert link is not None
        assert link.error_since is None
        link.error_code = "sync_failed"
    with time_machine.travel(first + timedelta(hours=1), tick=False), session_scope() as session:
        link = service.get_link(session, runner_id)
        assert link is not None
        link.error_code = "sync_failed"  # the same error again: it began an hour ago
        assert link.error_since is not None
        assert as_utc(link.error_since) == first
        link.error_code = "reauth_required"  # another error begins now
        assert as_utc(link.error_since) == first + timedelta(hours=1)
    with session_scope() as session:
        link = service.get_link(session, runner_id)
        assert link is not None
        link.error_code = None
    link = _link(runner_id)
    assert link is not None
    assert link.error_since is None


def test_pending_deauthorizations_have_a_maximum_age(
    api: TestClient, athlete: dict[str, Any], emulator: EmulatorHandle, policy: RetentionPolicy
) -> None:
    runner = linked_runner(api, athlete["id"])
    emulator.admin.add_fault(
        method="POST", path="/oauth/deauthorize", kind="status", status=503, count=10
    )
    with session_scope() as session:
        before = set(session.scalars(select(PendingDeauthorization.id)))
    assert runner.delete("/api/v1/strava/link").status_code == 204
    with session_scope() as session:
        [mine] = set(session.scalars(select(PendingDeauthorization.id))) - before

    _apply(policy, after=timedelta(days=policy.pending_deauthorization_days - 1))
    with session_scope() as session:
        assert session.get(PendingDeauthorization, mine) is not None

    with structlog.testing.capture_logs() as logs:
        report = _apply(policy, after=timedelta(days=policy.pending_deauthorization_days + 1))

    with session_scope() as session:
        assert session.get(PendingDeauthorization, mine) is None
    assert report.pending_deauthorizations_dropped >= 1
    [dropped] = [e for e in logs if e["event"] == "strava.pending_deauthorizations_dropped"]
    assert dropped["log_level"] == "warning"
    assert dropped["count"] == report.pending_deauthorizations_dropped


def test_old_sync_runs_and_link_attempts_are_pruned_and_active_runs_kept(
    synced: Runner, policy: RetentionPolicy
) -> None:
    runner_id = _rid(synced)
    start_link(synced)
    active = _request_sync(runner_id)

    report = _apply(policy, after=timedelta(days=policy.history_days + 1))

    with session_scope() as session:
        runs = session.scalars(select(SyncRun.id).where(SyncRun.runner_id == runner_id)).all()
        attempts = session.scalar(select(func.count()).where(LinkAttempt.runner_id == runner_id))
    assert runs == [active], "the finished link sync went, the queued one stays"
    assert attempts == 0
    assert report.sync_runs >= 1
    assert report.link_attempts >= 2
    assert _link(runner_id) is not None


def _request_sync(runner_id: uuid.UUID) -> uuid.UUID:
    ids: list[uuid.UUID] = []
    with session_scope() as session:
        scheduling.request_sync(session, runner_id, Trigger.MANUAL, enqueue=ids.append)
    return ids[0]
