"""A processing task drains its runner's inbox in passes of a bounded claim, deletes without a
read in one transaction, and asks for another task when events are still due (issue 11). The
emulator over HTTP, PostgreSQL; no worker (the task's body is called directly)."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from app.clock import utcnow
from app.db import session_scope
from app.inbox.models import EventState, InboxEvent
from app.strava.runtime import StravaRuntime
from app.strava.webhook_processing import drain_runner_events
from app.workouts.models import Workout
from factories import stored_event, synced_runner
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from strava_emulator.testing import EmulatorHandle


def _states(runner_id: uuid.UUID) -> dict[str, int]:
    with session_scope() as session:
        rows = session.execute(
            select(InboxEvent.state, func.count())
            .where(InboxEvent.runner_id == runner_id)
            .group_by(InboxEvent.state)
        ).all()
    return {state: int(count) for state, count in rows}


def _workouts(runner_id: uuid.UUID) -> set[int]:
    with session_scope() as session:
        return set(session.scalars(select(Workout.source_id).where(Workout.runner_id == runner_id)))


def test_a_task_drains_in_bounded_passes_and_asks_again_for_what_is_left(
    api: TestClient,
    athlete: dict[str, Any],
    enqueued: list[uuid.UUID],
    strava_runtime: StravaRuntime,
    emulator: EmulatorHandle,
) -> None:
    runner = synced_runner(api, athlete, enqueued, strava_runtime)
    runner_id = uuid.UUID(runner.runner_id)
    stored = sorted(_workouts(runner_id))
    assert len(stored) >= 5
    for minute, activity_id in enumerate(stored[:5]):
        stored_event(
            runner_id,
            activity_id,
            aspect="delete",
            event_time=utcnow() - timedelta(minutes=60 - minute),
        )
    emulator.admin.clear_requests()
    asked: list[uuid.UUID] = []

    first = drain_runner_events(
        strava_runtime,
        runner_id,
        enqueue_sync=enqueued.append,
        passes=2,
        batch=2,
        request_more=asked.append,
    )

    assert (first.passes, first.claimed) == (2, 4)
    assert first.outcomes == {"deleted": 4}
    assert _states(runner_id) == {"done": 4, "pending": 1}
    assert asked == [runner_id]  # one event is still due: another task is asked for
    # The oldest events went first, and their workouts with no read.
    assert _workouts(runner_id) == set(stored) - set(stored[:4])
    assert emulator.admin.requests(method="GET") == []

    second = drain_runner_events(
        strava_runtime,
        runner_id,
        enqueue_sync=enqueued.append,
        passes=2,
        batch=2,
        request_more=asked.append,
    )
    assert (second.passes, second.claimed) == (1, 1)
    assert _states(runner_id) == {"done": 5}
    assert asked == [runner_id]  # drained: nothing more to ask for
    assert _workouts(runner_id) == set(stored) - set(stored[:5])
    with session_scope() as session:
        outcomes = set(
            session.scalars(select(InboxEvent.outcome).where(InboxEvent.runner_id == runner_id))
        )
    assert outcomes == {"deleted"}
    assert {EventState.DONE} == set(_states(runner_id))
