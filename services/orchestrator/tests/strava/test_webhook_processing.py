"""Processing inbox events directly (no worker): Strava failing, and an event that never
settles. The emulator over HTTP, PostgreSQL; the worker-level behaviour is test_webhooks.py."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import time_machine
from app.clock import as_utc, utcnow
from app.db import session_scope
from app.inbox.models import EventState, InboxEvent
from app.strava.runtime import StravaRuntime
from app.strava.webhook_processing import MAX_ATTEMPTS, process_runner_events
from app.workouts.models import Workout
from factories import stored_event, synced_runner
from fastapi.testclient import TestClient
from sqlalchemy import select, update
from strava_emulator.testing import EmulatorHandle


def _event(event_id: uuid.UUID) -> InboxEvent:
    with session_scope() as session:
        event = session.get(InboxEvent, event_id)
        assert event is not None
        return event


def _new_activity(emulator: EmulatorHandle, athlete: dict[str, Any]) -> int:
    created = emulator.admin.create_activity(
        athlete["id"], sport_type="Run", start_date=utcnow() - timedelta(hours=1)
    )
    return int(created["id"])


def test_strava_down_defers_the_event_and_a_later_pass_lands_it(
    api: TestClient,
    athlete: dict[str, Any],
    enqueued: list[uuid.UUID],
    strava_runtime: StravaRuntime,
    emulator: EmulatorHandle,
) -> None:
    runner = synced_runner(api, athlete, enqueued, strava_runtime)
    runner_id = uuid.UUID(runner.runner_id)
    activity_id = _new_activity(emulator, athlete)
    event_id = stored_event(runner_id, activity_id)
    emulator.admin.add_fault("/api/v3/activities/*", count=10, status=503)

    report = process_runner_events(strava_runtime, runner_id, enqueue_sync=enqueued.append)

    assert report.outcomes == {"strava_unavailable": 1}
    waiting = _event(event_id)
    assert waiting.state == EventState.DEFERRED
    assert waiting.outcome == "strava_unavailable"
    assert as_utc(waiting.next_attempt_at) > utcnow()
    emulator.admin.clear_faults()
    with time_machine.travel(as_utc(waiting.next_attempt_at) + timedelta(seconds=1), tick=True):
        again = process_runner_events(strava_runtime, runner_id, enqueue_sync=enqueued.append)
    assert again.outcomes == {"upserted": 1}
    assert _event(event_id).state == EventState.DONE
    with session_scope() as session:
        assert session.scalar(select(Workout.id).where(Workout.source_id == activity_id))


def test_an_event_that_never_settles_is_given_up_visibly(
    api: TestClient,
    athlete: dict[str, Any],
    enqueued: list[uuid.UUID],
    strava_runtime: StravaRuntime,
    emulator: EmulatorHandle,
) -> None:
    runner = synced_runner(api, athlete, enqueued, strava_runtime)
    runner_id = uuid.UUID(runner.runner_id)
    event_id = stored_event(runner_id, _new_activity(emulator, athlete))
    with session_scope() as session:  # as after MAX_ATTEMPTS claims whose workers all died
        session.execute(
            update(InboxEvent).where(InboxEvent.id == event_id).values(attempts=MAX_ATTEMPTS)
        )
    emulator.admin.clear_requests()

    report = process_runner_events(strava_runtime, runner_id, enqueue_sync=enqueued.append)

    assert report.outcomes == {"gave_up": 1}
    given_up = _event(event_id)
    assert given_up.state == EventState.FAILED
    assert given_up.processed_at is not None
    assert emulator.admin.requests(method="GET") == []


def test_a_deauthorization_waits_for_a_spent_budget_and_deletes_nothing_meanwhile(
    api: TestClient,
    athlete: dict[str, Any],
    enqueued: list[uuid.UUID],
    strava_runtime: StravaRuntime,
) -> None:
    runner = synced_runner(api, athlete, enqueued, strava_runtime)
    runner_id = uuid.UUID(runner.runner_id)
    event_id = stored_event(
        runner_id,
        int(athlete["id"]),
        object_type="athlete",
        aspect="update",
        updates={"authorized": "false"},
    )
    reset_at = utcnow() + timedelta(minutes=15)
    strava_runtime.budget.block(reset_at, "short")

    report = process_runner_events(strava_runtime, runner_id, enqueue_sync=enqueued.append)

    assert report.outcomes == {"rate_limited": 1}
    assert _event(event_id).state == EventState.DEFERRED
    assert runner.status()["status"] == "linked"
    with session_scope() as session:
        assert session.scalar(select(Workout.id).where(Workout.runner_id == runner_id))


def test_the_beat_tick_resends_a_runner_whose_pending_event_lost_its_task(
    api: TestClient,
    athlete: dict[str, Any],
    enqueued: list[uuid.UUID],
    strava_runtime: StravaRuntime,
    emulator: EmulatorHandle,
) -> None:
    from app.strava import scheduling

    runner = synced_runner(api, athlete, enqueued, strava_runtime)
    runner_id = uuid.UUID(runner.runner_id)
    stored_event(runner_id, _new_activity(emulator, athlete))  # stored; its task never arrived
    resent: list[uuid.UUID] = []

    def tick() -> scheduling.TickReport:
        return scheduling.tick(
            strava_runtime,
            enqueue=enqueued.append,
            stale_queued=timedelta(minutes=10),
            reserve=0.05,
            enqueue_webhooks=resent.append,
            webhook_stale_pending=timedelta(minutes=2),
        )

    tick()
    assert runner_id not in resent  # just stored: its own task may still come
    with time_machine.travel(utcnow() + timedelta(minutes=3), tick=True):
        report = tick()
    assert runner_id in resent
    assert report.webhook_runners >= 1
