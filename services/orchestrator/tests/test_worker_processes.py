"""Real processes: `orchestrator worker` and `orchestrator beat` as subprocesses on Redis, the API
in this process, the emulator over HTTP, PostgreSQL.

* A worker killed with SIGKILL mid-sync: the unacknowledged message comes back (short visibility
  timeout in this module), another worker takes the run over and finishes it, no duplicate rows.
* End to end: link → first sync → workouts visible → the hourly re-sync by beat → edits and
  deletions on Strava reflected, with nothing but the processes doing the work.
* Retention by beat (every second in this module): a workout that left the window and a grant
  dead for longer than the grace period go; in-window workouts of a live link stay.

Synchronisation is polling for a condition with a deadline, never a sleep.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import time_machine
from app.clock import as_utc, utcnow
from app.codes import Source, StatusCode
from app.db import session_scope
from app.strava import service
from app.strava.models import SyncRun
from app.workouts.models import Workout
from factories import Runner, linked_runner
from fastapi.testclient import TestClient
from faulty_cli import EXIT_STATUS
from sqlalchemy import func, select
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
VISIBILITY_TIMEOUT_S = 6
FAULTY_CLI = [sys.executable, str(Path(__file__).with_name("faulty_cli.py"))]


@pytest.fixture(scope="module")
def process_settings(
    settings: Settings, redis_url: str, emulator: EmulatorHandle
) -> Iterator[Settings]:
    env = worker_env_vars(
        redis_url,
        # Short, so that a killed worker's message comes back within the test; the task time
        # limit stays below it, as in production.
        BROKER_VISIBILITY_TIMEOUT_SECONDS=str(VISIBILITY_TIMEOUT_S),
        TASK_TIME_LIMIT_SECONDS=str(VISIBILITY_TIMEOUT_S - 1),
        SYNC_TICK_SECONDS="1",
        RETENTION_INTERVAL_SECONDS="1",
    )
    with worker_environment(**env) as process_settings:
        yield process_settings
    forget_redis_keys(redis_url, process_settings)


@pytest.fixture
def spawn(
    process_settings: Settings, tmp_path: Path
) -> Iterator[Callable[..., subprocess.Popen[bytes]]]:
    """Start `orchestrator <args>` with this module's settings (with `fault`, planted by
    faulty_cli.py); all are stopped at the end."""
    with orchestrator_processes(tmp_path) as start:

        def start_with_fault(
            *args: str, ready: str | None = None, fault: str | None = None
        ) -> subprocess.Popen[bytes]:
            command = ORCHESTRATOR if fault is None else (*FAULTY_CLI, fault)
            return start(*args, ready=ready, command=command)

        yield start_with_fault


@pytest.fixture
def process_api(process_settings: Settings) -> Iterator[TestClient]:
    from app.main import create_app
    from app.strava import tasks

    tasks.runtime().budget.reset()
    with TestClient(create_app(process_settings)) as client:
        yield client


def _rid(runner: Runner) -> uuid.UUID:
    return uuid.UUID(runner.runner_id)


def _runs(runner: Runner) -> list[SyncRun]:
    with session_scope() as session:
        return list(
            session.scalars(
                select(SyncRun)
                .where(SyncRun.runner_id == _rid(runner))
                .order_by(SyncRun.created_at)
            )
        )


def _finished(runner: Runner, trigger: str) -> SyncRun | None:
    done = [run for run in _runs(runner) if run.trigger == trigger and run.state == "finished"]
    return done[-1] if done else None


def _api_workouts(runner: Runner) -> dict[int, dict[str, Any]]:
    items = runner.get("/api/v1/workouts", params={"limit": 200}).json()["items"]
    return {item["source_id"]: item for item in items}


def _in_window(emulator: EmulatorHandle, athlete_id: int, run: SyncRun) -> set[int]:
    """What Strava listed for the run: uploaded before the run began (an activity still in
    progress, or uploaded since, is not there yet) and started inside its window."""
    from datetime import datetime

    assert run.window_start is not None
    assert run.window_end is not None
    start, at = as_utc(run.window_start), as_utc(run.window_end)

    def ts(value: str) -> datetime:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))

    return {
        act["id"]
        for act in emulator.admin.list_activities(athlete_id)
        if start <= ts(act["start_date"]) and ts(act["available_at"]) <= at
    }


def test_a_worker_killed_mid_sync_is_redelivered_and_finishes_without_duplicates(
    process_api: TestClient,
    athlete: dict[str, Any],
    emulator: EmulatorHandle,
    spawn: Callable[..., subprocess.Popen[bytes]],
) -> None:
    doomed = spawn("worker", "--pool", "solo", "--concurrency", "1", ready="ready.")
    emulator.admin.clear_requests()
    # Page 1 answers; page 2 is held long enough to kill the worker while it waits.
    emulator.admin.add_fault(ACTIVITIES, "latency", latency_ms=60_000, query={"page": "2"})

    runner = linked_runner(process_api, athlete["id"])
    wait_until(lambda: emulator.admin.requests(path=ACTIVITIES))  # page 1 done: mid-sync now
    (run,) = _runs(runner)
    assert run.state == "running"
    doomed.send_signal(signal.SIGKILL)
    doomed.wait()
    emulator.admin.clear_faults()

    spawn("worker", "--pool", "solo", "--concurrency", "1", ready="ready.")
    done = wait_until(lambda: _finished(runner, "link"), timeout=90)

    assert done.result == "ok", done.error_code
    assert done.attempts == 2  # the killed delivery, then the redelivered one
    expected = _in_window(emulator, athlete["id"], done)
    assert set(_api_workouts(runner)) == expected
    with session_scope() as session:
        rows, distinct = session.execute(
            select(func.count(), func.count(func.distinct(Workout.source_id))).where(
                Workout.runner_id == _rid(runner)
            )
        ).one()
    assert rows == distinct == len(expected)


def test_end_to_end_link_first_sync_hourly_resync_edits_and_deletions(
    process_api: TestClient,
    athlete: dict[str, Any],
    emulator: EmulatorHandle,
    spawn: Callable[..., subprocess.Popen[bytes]],
) -> None:
    spawn("worker", "--concurrency", "1", ready="ready.")
    spawn("beat", ready="beat: Starting")

    # Link: the first sync happens by itself.
    runner = linked_runner(process_api, athlete["id"])
    first = wait_until(lambda: _finished(runner, "link"), timeout=60)
    assert first.result == "ok"
    workouts = _api_workouts(runner)
    assert set(workouts) == _in_window(emulator, athlete["id"], first)
    status = runner.status()
    assert status["sync"]["last_result"] == "ok"
    assert status["sync"]["workouts_in_window"] == len(workouts)

    # The athlete edits, deletes and records on Strava.
    edited, removed = sorted(workouts)[:2]
    emulator.admin.update_activity(edited, name="Edited on Strava", distance=12345.0)
    emulator.admin.delete_activity(removed)
    added = emulator.admin.create_activity(
        athlete["id"], sport_type="Run", start_date=utcnow() - timedelta(minutes=50)
    )

    # An hour passes for this link: its slot comes, and beat's tick does the rest.
    with session_scope() as session:
        link = service.get_link(session, _rid(runner))
        assert link is not None
        link.next_sync_at = utcnow() - timedelta(seconds=1)
    resync = wait_until(lambda: _finished(runner, "schedule"), timeout=60)

    assert resync.result == "ok"
    assert (resync.inserted, resync.updated, resync.deleted) == (1, 1, 1)
    after = _api_workouts(runner)
    assert after[edited]["name"] == "Edited on Strava"
    assert after[edited]["distance_m"] == 12345.0
    assert removed not in after
    assert added["id"] in after
    assert set(after) == _in_window(emulator, athlete["id"], resync)


def _link_credentials(runner: Runner, settings: Settings) -> tuple[str, str]:
    """The link's (access token, refresh token), decrypted as the worker would."""
    from app.security import KeyRing
    from app.strava.credentials import open_link

    with session_scope() as session:
        link = service.get_link(session, _rid(runner))
        assert link is not None
        credentials = open_link(link, KeyRing(settings.encryption_keys()))
    return credentials.access_token, credentials.refresh_token


def test_an_unexpected_exception_inside_refresh_and_list_activities_logs_no_secret(
    process_api: TestClient,
    process_settings: Settings,
    emulator: EmulatorHandle,
    spawn: Callable[..., subprocess.Popen[bytes]],
    tmp_path: Path,
) -> None:
    # Both links are made before any worker runs, so their first syncs wait on the queue.
    listing = linked_runner(process_api, emulator.admin.create_athlete()["id"])
    refreshing = linked_runner(process_api, emulator.admin.create_athlete()["id"])
    with session_scope() as session:
        link = service.get_link(session, _rid(refreshing))
        assert link is not None
        link.access_token_expires_at = utcnow() - timedelta(minutes=1)  # the sync refreshes first
    secrets = {
        "client secret": process_settings.client_secret,
        **{
            f"{name} {kind}": value
            for name, runner in (("listing", listing), ("refreshing", refreshing))
            for kind, value in zip(
                ("access token", "refresh token"),
                _link_credentials(runner, process_settings),
                strict=True,
            )
        },
    }

    # Every request the worker makes raises inside the HTTP transport, below the client's frames.
    spawn("worker", "--concurrency", "2", ready="ready.", fault="raise-in-transport")
    for runner in (listing, refreshing):
        run = wait_until(partial(_finished, runner, "link"), timeout=60)
        assert (run.result, run.error_code) == ("failed", "sync_failed")

    logs = "\n".join(path.read_text(errors="replace") for path in tmp_path.glob("*.log"))
    assert logs.count("strava.sync_crashed") == 2, logs
    assert "fault planted by the test" in logs  # the tracebacks themselves were logged
    leaked = [name for name, value in secrets.items() if value in logs]
    assert leaked == [], logs
    assert "Bearer" not in logs


def test_a_sync_that_kills_its_pool_process_fails_after_the_attempt_cap(
    process_api: TestClient,
    process_settings: Settings,
    emulator: EmulatorHandle,
    spawn: Callable[..., subprocess.Popen[bytes]],
    tmp_path: Path,
) -> None:
    # Every listing kills the pool process running it: a poison task, rejected back to the
    # queue by the dying worker and delivered again at once.
    spawn("worker", "--concurrency", "1", ready="ready.", fault="exit-in-listing")
    runner = linked_runner(process_api, emulator.admin.create_athlete()["id"])

    run = wait_until(lambda: _finished(runner, "link"), timeout=60)

    cap = process_settings.sync_max_attempts
    assert (run.result, run.error_code, run.attempts) == ("failed", "sync_failed", cap)
    logs = "\n".join(path.read_text(errors="replace") for path in tmp_path.glob("*.log"))
    assert logs.count(f"exited with 'exitcode {EXIT_STATUS}'") == cap  # then it stopped
    status = runner.status()
    assert status["sync"]["state"] == "idle"
    assert status["sync"]["last_result"] == "failed"
    assert status["error"]["code"] == "sync_failed"
    assert status["error"]["action"] == "retry"
    assert status["error"]["retry_at"] is not None  # the link backs off, then tries again


def test_after_a_worker_dies_mid_sync_a_manual_sync_gets_a_new_run_once_the_lease_expires(
    process_api: TestClient,
    process_settings: Settings,
    emulator: EmulatorHandle,
    spawn: Callable[..., subprocess.Popen[bytes]],
) -> None:
    doomed = spawn("worker", "--pool", "solo", "--concurrency", "1", ready="ready.")
    emulator.admin.clear_requests()
    emulator.admin.add_fault(ACTIVITIES, "latency", latency_ms=60_000, query={"page": "2"})
    runner = linked_runner(process_api, emulator.admin.create_athlete()["id"])
    wait_until(lambda: emulator.admin.requests(path=ACTIVITIES))  # mid-sync now
    doomed.send_signal(signal.SIGKILL)
    doomed.wait()
    emulator.admin.clear_faults()
    (dead,) = _runs(runner)
    assert dead.state == "running"
    assert dead.heartbeat_at is not None
    assert dead.started_at is not None
    assert as_utc(dead.heartbeat_at) > as_utc(dead.started_at)  # renewed before page 2

    # Within the lease the worker may be alive (a slow page): a manual sync joins its run.
    joined = runner.post("/api/v1/strava/sync", {})
    assert joined.status_code == 202, joined.text
    assert joined.json()["sync_run_id"] == str(dead.id)

    # No worker renews the lease: once it expires (travelled to, not slept), the run is lost and
    # a manual sync starts a new one at once, minutes before the task time limit would allow.
    expired = as_utc(dead.heartbeat_at) + timedelta(seconds=process_settings.sync_lease_seconds + 1)
    with time_machine.travel(expired, tick=True):
        fresh = runner.post("/api/v1/strava/sync", {})
    assert fresh.status_code == 202, fresh.text
    assert fresh.json()["sync_run_id"] != str(dead.id)
    runs = {str(run.id): run for run in _runs(runner)}
    assert (runs[str(dead.id)].state, runs[str(dead.id)].result) == ("finished", "failed")
    assert runs[str(dead.id)].error_code == "sync_failed"
    assert runs[fresh.json()["sync_run_id"]].state == "queued"


def test_beat_applies_the_retention_policy(
    process_api: TestClient,
    emulator: EmulatorHandle,
    spawn: Callable[..., subprocess.Popen[bytes]],
    process_settings: Settings,
) -> None:
    spawn("worker", "--concurrency", "1", ready="ready.")
    live = linked_runner(process_api, emulator.admin.create_athlete()["id"])
    dead = linked_runner(process_api, emulator.admin.create_athlete()["id"])
    assert wait_until(lambda: _finished(live, "link"), timeout=60).result == "ok"
    assert wait_until(lambda: _finished(dead, "link"), timeout=60).result == "ok"
    kept = set(_api_workouts(live))
    assert kept
    window = timedelta(days=process_settings.sync_window_days)
    grace = timedelta(days=process_settings.retention_workout_grace_days)
    old_id = uuid.uuid4()
    with session_scope() as session:
        session.add(
            Workout(
                id=old_id,
                runner_id=_rid(live),
                source=Source.STRAVA,
                source_id=uuid.uuid4().int >> 66,
                sport_type="Run",
                is_run=True,
                start_date=utcnow() - window - grace - timedelta(hours=1),
                raw={},
            )
        )
        link = service.get_link(session, _rid(dead))
        assert link is not None
        link.error_code = StatusCode.REAUTH_REQUIRED
        link.error_since = utcnow() - timedelta(days=process_settings.retention_dead_link_days + 1)

    spawn("beat", ready="beat: Starting")

    def purged() -> bool:
        with session_scope() as session:
            return (
                session.get(Workout, old_id) is None
                and service.get_link(session, _rid(dead)) is None
            )

    wait_until(purged, timeout=60)
    assert set(_api_workouts(live)) == kept
    assert _api_workouts(dead) == {}
    assert live.status()["status"] == "linked"
    assert dead.status()["status"] == "not_linked"
