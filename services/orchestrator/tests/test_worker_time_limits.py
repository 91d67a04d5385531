"""Task time limits in a real `orchestrator worker` (prefork pool, subprocess) on Redis, with the
API in this process and the emulator slowing Strava down over HTTP.

The API that queues a task keeps the default TASK_TIME_LIMIT_SECONDS; only the worker is started
with a short one, as an operator tuning the workers alone would. The worker's limit is the one
that applies (worker.WorkerTimeLimits): its soft limit stops a sync whose Strava answers too
slowly, the run is recorded (not left `running` until its lease expires) and the status says
what to do; a webhook pass stopped the same way puts its events back to wait.

Strava is slow but never down for long: a page is answered on its third try, after two tries
time out (STRAVA_TIMEOUT_SECONDS=1) and two backoff waits (≥ 0.5 s, ≥ 1 s), i.e. never within
4 s, while the worker's soft limit is 3 s (the shortest limit the settings accept for a 1 s
timeout). Without the limit every request would succeed. Synchronisation is polling for the
outcome, never a sleep.
"""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from app.clock import utcnow
from app.db import session_scope
from app.inbox.models import EventState, InboxEvent
from app.strava.models import SyncRun
from factories import linked_runner, stored_event
from fastapi.testclient import TestClient
from sqlalchemy import select
from strava_emulator.testing import EmulatorHandle
from waiting import wait_until
from workers import (
    ORCHESTRATOR,
    forget_redis_keys,
    orchestrator_processes,
    worker_env_vars,
    worker_environment,
)

if TYPE_CHECKING:
    from app.config import Settings

pytestmark = pytest.mark.worker

ACTIVITIES = "/api/v3/athlete/activities"
# The worker's hard limit; its soft limit is 85 % of it, rounded down: 3 s.
WORKER_TIME_LIMIT_S = 4


@pytest.fixture(scope="module")
def api_settings(
    settings: Settings, redis_url: str, emulator: EmulatorHandle
) -> Iterator[Settings]:
    """This process (the API) keeps the default time limit (600 s)."""
    with worker_environment(**worker_env_vars(redis_url)) as api_settings:
        assert api_settings.task_time_limit_seconds > 10 * WORKER_TIME_LIMIT_S
        yield api_settings
    forget_redis_keys(redis_url, api_settings)


@pytest.fixture
def worker(api_settings: Settings, tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """`orchestrator worker` (prefork) with a short time limit of its own."""
    command = ("env", f"TASK_TIME_LIMIT_SECONDS={WORKER_TIME_LIMIT_S}", *ORCHESTRATOR)
    with orchestrator_processes(tmp_path) as start:
        yield start("worker", "--concurrency", "1", ready="ready.", command=command)


def _slow_strava(emulator: EmulatorHandle, path: str, query: dict[str, str] | None = None) -> None:
    """The next request to `path` times out twice, then answers after half a second."""
    emulator.admin.add_fault(path, "timeout", count=2, query=query)
    emulator.admin.add_fault(path, "latency", latency_ms=500, query=query)


def test_soft_time_limit_fails_a_slow_sync(
    api_settings: Settings,
    worker: subprocess.Popen[bytes],
    emulator: EmulatorHandle,
    athlete: dict[str, Any],
    tmp_path: Path,
) -> None:
    from app.main import create_app
    from app.strava import tasks

    tasks.runtime().budget.reset()
    # Page 1 answers at once, the (empty) page 2 slowly: the listing is cut after page 1.
    _slow_strava(emulator, ACTIVITIES, query={"page": "2"})
    with TestClient(create_app(api_settings)) as api:
        runner = linked_runner(api, athlete["id"])  # its first sync goes to the worker

        def finished() -> SyncRun | None:
            with session_scope() as session:
                return session.scalar(
                    select(SyncRun).where(
                        SyncRun.runner_id == uuid.UUID(runner.runner_id),
                        SyncRun.state == "finished",
                    )
                )

        run = wait_until(finished, timeout=60)
        status = runner.status()

    # Stopped by the soft limit during page 2: what page 1 brought is kept, nothing deleted,
    # and the run is over (a failure to retry), not `running` until its lease expires.
    assert (run.result, run.error_code) == ("partial", "sync_failed")
    assert run.attempts == 1
    assert run.fetched > 0
    assert run.inserted == run.fetched
    assert status["sync"]["state"] == "idle"
    assert status["sync"]["last_result"] == "partial"
    assert status["sync"]["workouts_in_window"] == run.fetched
    assert status["error"]["code"] == "sync_failed"
    assert status["error"]["action"] == "retry"
    assert status["error"]["retry_at"] is not None
    # The worker's log says why.
    log = tmp_path / "worker-0.log"
    wait_until(lambda: "strava.sync_time_limit" in log.read_text(errors="replace"))


def _stored_event(runner_id: uuid.UUID, activity_id: int) -> uuid.UUID:
    from app.strava import tasks

    event_id = stored_event(runner_id, activity_id)
    tasks.enqueue_webhook_processing(runner_id)
    return event_id


def test_soft_time_limit_defers_the_events_of_a_slow_webhook_pass(
    api_settings: Settings,
    worker: subprocess.Popen[bytes],
    emulator: EmulatorHandle,
    athlete: dict[str, Any],
    enqueued: list[uuid.UUID],
) -> None:
    from app.main import create_app

    with TestClient(create_app(api_settings, enqueue_sync=enqueued.append)) as api:
        runner = linked_runner(api, athlete["id"])  # no sync: only the webhook pass runs
    runner_id = uuid.UUID(runner.runner_id)
    activity = emulator.admin.create_activity(
        int(athlete["id"]), sport_type="Run", start_date=utcnow() - timedelta(hours=1)
    )
    _slow_strava(emulator, f"/api/v3/activities/{activity['id']}")
    event_id = _stored_event(runner_id, int(activity["id"]))

    def settled_or_waiting() -> InboxEvent | None:
        with session_scope() as session:
            event = session.get(InboxEvent, event_id)
            assert event is not None
            return None if event.state in (EventState.PENDING, EventState.PROCESSING) else event

    event = wait_until(settled_or_waiting, timeout=60)

    # Stopped by the soft limit while reading the activity: the event waits for another try
    # (not `done`, not left `processing` until its claim expires).
    assert event.state == EventState.DEFERRED
    assert event.outcome == "strava_unavailable"
    assert event.claimed_at is None
    assert event.next_attempt_at > event.received_at


def test_a_queued_task_carries_no_time_limit_of_the_process_that_sent_it(
    api_settings: Settings, redis_url: str
) -> None:
    """Celery would put this process's limits (600 s here) in the message, and a worker prefers
    the message's limits to its own: the `timelimit` header must be empty."""
    import redis
    from app.strava import tasks

    tasks.enqueue_sync(uuid.uuid4())
    tasks.enqueue_webhook_processing(uuid.uuid4())
    client = redis.Redis.from_url(redis_url)
    try:
        raw = [client.rpop(api_settings.sync_queue) for _ in range(2)]  # oldest first
    finally:
        client.close()
    headers = [json.loads(message)["headers"] for message in raw if message is not None]
    assert [h["task"] for h in headers] == ["strava.sync_runner", "strava.process_webhooks"]
    assert [h["timelimit"] for h in headers] == [[None, None], [None, None]]
