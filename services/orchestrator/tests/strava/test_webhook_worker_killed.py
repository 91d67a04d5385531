"""A worker killed (SIGKILL) in the middle of a batch of webhook events: `orchestrator worker`
as real subprocesses on Redis, the API on loopback as the callback, the emulator delivering over
HTTP, PostgreSQL. The unacknowledged task comes back (short visibility timeout in this module) and
the next worker takes over the dead one's claims: every event is processed, none is lost.

Synchronisation is polling for a condition with a deadline, never a sleep.
"""

from __future__ import annotations

import signal
import subprocess
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from app.clock import utcnow
from app.db import session_scope
from app.inbox.models import EventState, InboxEvent
from app.workouts.models import Workout
from factories import linked_runner
from fastapi.testclient import TestClient
from sqlalchemy import select
from strava_emulator.testing import EmulatorHandle
from waiting import wait_until
from webhook_support import HookServer, serve_hooks, subscribed
from workers import (
    forget_redis_keys,
    orchestrator_processes,
    worker_env_vars,
    worker_environment,
)

if TYPE_CHECKING:
    from app.config import Settings

pytestmark = pytest.mark.worker

VISIBILITY_TIMEOUT_S = 6


@pytest.fixture(scope="module")
def process_settings(
    settings: Settings, redis_url: str, emulator: EmulatorHandle
) -> Iterator[Settings]:
    env = worker_env_vars(
        redis_url,
        BROKER_VISIBILITY_TIMEOUT_SECONDS=str(VISIBILITY_TIMEOUT_S),
        TASK_TIME_LIMIT_SECONDS=str(VISIBILITY_TIMEOUT_S - 1),
    )
    with worker_environment(**env) as process_settings:
        yield process_settings
    forget_redis_keys(redis_url, process_settings)


@pytest.fixture
def spawn(
    process_settings: Settings, tmp_path: Path
) -> Iterator[Callable[..., subprocess.Popen[bytes]]]:
    """Start `orchestrator <args>` with this module's settings; all are stopped at the end."""
    with orchestrator_processes(tmp_path) as start:
        yield start


@pytest.fixture
def hooks(process_settings: Settings, emulator: EmulatorHandle) -> Iterator[HookServer]:
    with serve_hooks(process_settings) as server, subscribed(emulator, server):
        yield server


def _states(runner_id: uuid.UUID) -> list[str]:
    with session_scope() as session:
        return list(
            session.scalars(select(InboxEvent.state).where(InboxEvent.runner_id == runner_id))
        )


def _stored(runner_id: uuid.UUID, activity_ids: list[int]) -> set[int]:
    with session_scope() as session:
        return set(
            session.scalars(
                select(Workout.source_id).where(
                    Workout.runner_id == runner_id, Workout.source_id.in_(activity_ids)
                )
            )
        )


def test_a_worker_killed_mid_batch_loses_no_event(
    process_settings: Settings,
    hooks: HookServer,
    emulator: EmulatorHandle,
    spawn: Callable[..., subprocess.Popen[bytes]],
) -> None:
    from app.main import create_app

    doomed = spawn("worker", "--pool", "solo", "--concurrency", "1", ready="ready.")
    with TestClient(create_app(process_settings)) as api:
        athlete = emulator.admin.create_athlete(history_days=3)
        runner = linked_runner(api, int(athlete["id"]))
        wait_until(lambda: runner.status()["sync"]["last_result"] == "ok", timeout=60)
    runner_id = uuid.UUID(runner.runner_id)

    # Every activity read is slow enough for the worker to die in the middle of the batch (it is
    # killed as soon as it holds a claim); short, so no answer outlives this test.
    emulator.admin.add_fault("/api/v3/activities/*", "latency", count=100, latency_ms=3_000)
    created = [
        emulator.admin.create_activity(
            int(athlete["id"]), sport_type="Run", start_date=utcnow() - timedelta(hours=i + 1)
        )["id"]
        for i in range(3)
    ]
    emulator.admin.wait_for_webhooks()
    wait_until(lambda: EventState.PROCESSING in _states(runner_id), timeout=60)
    doomed.send_signal(signal.SIGKILL)
    doomed.wait(timeout=20)
    assert EventState.PROCESSING in _states(runner_id)
    emulator.admin.clear_faults()

    spawn("worker", "--pool", "solo", "--concurrency", "1", ready="ready.")
    wait_until(lambda: _states(runner_id) == [EventState.DONE] * 3, timeout=120)
    assert _stored(runner_id, created) == set(created)
