"""Strava faults through the whole path: the API enqueues on Redis, a real Celery worker (in a
thread of this process) syncs against the emulator over HTTP, PostgreSQL holds the result.

Synchronisation is polling for a condition with a deadline (`wait_until`), never a sleep.
"""

from __future__ import annotations

import threading
import uuid
from datetime import datetime, timedelta
from typing import Any

import pytest
import time_machine
from app.clock import utcnow
from app.db import session_scope
from app.strava import service
from app.strava.models import SyncRun
from app.workouts.models import Workout
from factories import Runner, linked_runner
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from strava_emulator.testing import EmulatorHandle
from waiting import wait_until

pytestmark = pytest.mark.worker

ACTIVITIES = "/api/v3/athlete/activities"
TOKEN = "/oauth/token"


def _rid(runner: Runner) -> uuid.UUID:
    return uuid.UUID(runner.runner_id)


def _finished(run_id: str | uuid.UUID) -> SyncRun | None:
    with session_scope() as session:
        run = session.get(SyncRun, uuid.UUID(str(run_id)))
        return run if run is not None and run.state == "finished" else None


def _wait_run(run_id: str | uuid.UUID) -> SyncRun:
    return wait_until(lambda: _finished(run_id))


def _latest_run(runner: Runner) -> dict[str, Any]:
    items = runner.get("/api/v1/strava/sync-runs").json()["items"]
    assert items
    latest: dict[str, Any] = items[0]
    return latest


def _linked_and_synced(api: TestClient, athlete_id: int) -> Runner:
    """Link through the API; the first sync runs on the worker by itself."""
    runner = linked_runner(api, athlete_id)
    first = _wait_run(_latest_run(runner)["id"])
    assert first.trigger == "link"
    assert first.result == "ok", first.error_code
    return runner


def _manual_sync(runner: Runner) -> SyncRun:
    response = runner.post("/api/v1/strava/sync", {})
    assert response.status_code == 202, response.text
    return _wait_run(response.json()["sync_run_id"])


def _workout_ids(runner: Runner) -> set[int]:
    with session_scope() as session:
        return set(
            session.scalars(select(Workout.source_id).where(Workout.runner_id == _rid(runner)))
        )


def test_link_syncs_on_the_worker_and_workouts_are_visible(
    worker_api: TestClient, athlete: dict[str, Any]
) -> None:
    runner = _linked_and_synced(worker_api, athlete["id"])
    page = runner.get("/api/v1/workouts", params={"limit": 200}).json()
    assert page["items"]
    assert {item["source_id"] for item in page["items"]} == _workout_ids(runner)
    status = runner.status()
    assert status["sync"]["last_result"] == "ok"
    assert status["sync"]["workouts_in_window"] == len(page["items"])


def test_429_with_the_read_limit_spent_stops_every_worker_until_the_window_resets(
    worker_api: TestClient,
    emulator: EmulatorHandle,
    tight_rate_limits: None,
) -> None:
    first = _linked_and_synced(worker_api, emulator.admin.create_athlete()["id"])
    second = _linked_and_synced(worker_api, emulator.admin.create_athlete()["id"])
    emulator.admin.set_rate_limits(read_limit=(100, 1000), read_usage=(100, 400))
    emulator.admin.clear_requests()

    deferred = _manual_sync(first)
    held_back = _manual_sync(second)

    assert (deferred.result, deferred.error_code) == ("deferred", "rate_limited")
    assert (held_back.result, held_back.error_code) == ("deferred", "rate_limited")
    assert [r["status"] for r in emulator.admin.requests()] == [429]  # and nothing after it
    status = first.status()
    assert status["status"] == "linked"
    assert status["error"]["code"] == "rate_limited"
    retry_at = datetime.fromisoformat(status["error"]["retry_at"])
    assert retry_at.minute % 15 == 0
    assert retry_at.second == 0
    assert datetime.fromisoformat(status["sync"]["next_sync_at"]) >= retry_at

    # Until the window resets, no tick and no manual request reaches Strava.
    from app.strava import tasks

    tasks.tick.delay()
    again = _manual_sync(first)
    assert again.error_code == "rate_limited"
    assert [r["status"] for r in emulator.admin.requests()] == [429]

    # Then Strava's window resets, and so does ours.
    emulator.admin.set_rate_limits(read_usage=(0, 400))
    with time_machine.travel(retry_at + timedelta(seconds=1), tick=True):
        resumed = _manual_sync(first)
    assert resumed.result == "ok"
    assert first.status()["error"] is None


def test_the_daily_limit_spent_defers_until_midnight(
    worker_api: TestClient,
    athlete: dict[str, Any],
    emulator: EmulatorHandle,
    tight_rate_limits: None,
) -> None:
    runner = _linked_and_synced(worker_api, athlete["id"])
    emulator.admin.set_rate_limits(read_limit=(100, 1000), read_usage=(5, 1000))
    emulator.admin.clear_requests()

    run = _manual_sync(runner)

    assert (run.result, run.error_code) == ("deferred", "rate_limited")
    retry_at = datetime.fromisoformat(runner.status()["error"]["retry_at"])
    assert (retry_at.hour, retry_at.minute, retry_at.second) == (0, 0, 0)
    assert retry_at > utcnow()
    assert len(emulator.admin.requests()) == 1


def test_5xx_for_a_while_then_recovery_via_a_later_task(
    worker_api: TestClient, athlete: dict[str, Any], emulator: EmulatorHandle
) -> None:
    runner = _linked_and_synced(worker_api, athlete["id"])
    emulator.admin.add_fault(ACTIVITIES, "status", status=503, count=3)

    failed = _manual_sync(runner)

    assert (failed.result, failed.error_code) == ("failed", "strava_unavailable")
    status = runner.status()
    assert status["status"] == "linked"
    assert status["error"]["code"] == "strava_unavailable"
    retry_at = datetime.fromisoformat(status["error"]["retry_at"])
    assert retry_at > utcnow()
    # The retry is a later task: beat's tick finds the link due at retry_at and enqueues it.
    from app.strava import tasks

    with time_machine.travel(retry_at + timedelta(seconds=1), tick=True):
        tasks.tick.delay()
        recovered = wait_until(
            lambda: (
                (run := _latest_run(runner))["trigger"] == "schedule"
                and run["state"] == "finished"
                and run
            )
        )
    assert recovered["result"] == "ok"
    assert runner.status()["error"] is None


def test_a_timeout_is_strava_unavailable(
    worker_api: TestClient, athlete: dict[str, Any], emulator: EmulatorHandle
) -> None:
    runner = _linked_and_synced(worker_api, athlete["id"])
    emulator.admin.add_fault(ACTIVITIES, "timeout", count=3)

    run = _manual_sync(runner)

    assert (run.result, run.error_code) == ("failed", "strava_unavailable")
    assert runner.status()["error"]["action"] == "wait"


def test_malformed_json_is_sync_failed(
    worker_api: TestClient, athlete: dict[str, Any], emulator: EmulatorHandle
) -> None:
    runner = _linked_and_synced(worker_api, athlete["id"])
    stored = _workout_ids(runner)
    emulator.admin.add_fault(ACTIVITIES, "malformed_json", count=1)

    run = _manual_sync(runner)

    assert (run.result, run.error_code) == ("failed", "sync_failed")
    assert _workout_ids(runner) == stored
    assert runner.status()["error"]["code"] == "sync_failed"


def test_page_two_failing_after_page_one_is_partial(
    worker_api: TestClient, athlete: dict[str, Any], emulator: EmulatorHandle
) -> None:
    runner = _linked_and_synced(worker_api, athlete["id"])
    vanished = min(_workout_ids(runner))
    emulator.admin.delete_activity(vanished)
    added = emulator.admin.create_activity(
        athlete["id"], sport_type="Run", start_date=utcnow() - timedelta(hours=1)
    )
    emulator.admin.add_fault(ACTIVITIES, "status", status=502, count=3, query={"page": "2"})

    run = _manual_sync(runner)

    assert (run.result, run.error_code) == ("partial", "strava_unavailable")
    assert run.deleted == 0
    ids = _workout_ids(runner)
    assert added["id"] in ids  # page 1 kept
    assert vanished in ids  # nothing deleted
    assert runner.status()["sync"]["last_result"] == "partial"


def test_a_short_page_that_is_not_the_last(
    worker_api: TestClient, emulator: EmulatorHandle
) -> None:
    athlete = emulator.admin.create_athlete(history_days=0)
    now = utcnow()
    for index in range(230):
        emulator.admin.create_activity(
            athlete["id"], sport_type="Run", start_date=now - timedelta(minutes=150 * index + 60)
        )
    emulator.admin.add_fault(ACTIVITIES, "short_page", count=1, query={"page": "1"})
    emulator.admin.clear_requests()

    runner = _linked_and_synced(worker_api, athlete["id"])

    pages = [r["query"]["page"] for r in emulator.admin.requests(path=ACTIVITIES)]
    assert pages == ["1", "2", "3"]
    assert len(_workout_ids(runner)) == 100 + 30


def test_401_on_a_revoked_athlete_is_one_refresh_then_reauth_required(
    worker_api: TestClient, athlete: dict[str, Any], emulator: EmulatorHandle
) -> None:
    runner = _linked_and_synced(worker_api, athlete["id"])
    emulator.admin.revoke(athlete["id"])
    emulator.admin.clear_requests()

    run = _manual_sync(runner)

    assert (run.result, run.error_code) == ("failed", "reauth_required")
    assert len(emulator.admin.requests(path=TOKEN)) == 1
    status = runner.status()
    assert status["status"] == "action_required"
    assert status["error"]["action"] == "reconnect"


def test_a_token_expiring_during_a_sync(
    worker_api: TestClient, athlete: dict[str, Any], emulator: EmulatorHandle
) -> None:
    runner = _linked_and_synced(worker_api, athlete["id"])
    emulator.admin.clear_requests()
    emulator.admin.add_fault(ACTIVITIES, "status", status=401, count=1, query={"page": "2"})

    run = _manual_sync(runner)

    assert run.result == "ok"
    assert len(emulator.admin.requests(path=TOKEN)) == 1
    assert runner.status()["error"] is None


def test_two_workers_refreshing_one_link_at_once(
    worker_api: TestClient, athlete: dict[str, Any], emulator: EmulatorHandle
) -> None:
    """The Celery worker's sync and a second worker (a thread with its own session, as another
    process would be) both find the token about to expire: one refresh call, both proceed."""
    from app.strava import tasks, tokens

    runner = _linked_and_synced(worker_api, athlete["id"])
    with session_scope() as session:
        link = service.get_link(session, _rid(runner))
        assert link is not None
        link.access_token_expires_at = utcnow() + timedelta(minutes=2)
        link_id, version = link.id, link.token_version
    emulator.admin.clear_requests()
    emulator.admin.add_fault(TOKEN, "latency", method="POST", latency_ms=700, count=2)
    deps = tasks.runtime()
    grants: list[tokens.AccessGrant] = []

    other = threading.Thread(
        target=lambda: grants.append(
            tokens.access_grant(
                deps.sessions,
                link_id,
                client=deps.client_for(lambda _: None),
                keyring=deps.keyring,
                budget=deps.budget,
            )
        )
    )
    response = runner.post("/api/v1/strava/sync", {})
    other.start()
    run = _wait_run(response.json()["sync_run_id"])
    other.join()

    assert run.result == "ok"
    assert len(emulator.admin.requests(path=TOKEN)) == 1
    assert [grant.token_version for grant in grants] == [version + 1]


def test_unlink_while_a_sync_runs_leaves_no_workouts(
    worker_api: TestClient, athlete: dict[str, Any], emulator: EmulatorHandle
) -> None:
    runner = _linked_and_synced(worker_api, athlete["id"])
    added = emulator.admin.create_activity(
        athlete["id"], sport_type="Run", start_date=utcnow() - timedelta(hours=1)
    )
    emulator.admin.clear_requests()
    emulator.admin.add_fault(ACTIVITIES, "latency", latency_ms=1500, query={"page": "2"})
    response = runner.post("/api/v1/strava/sync", {})
    wait_until(lambda: emulator.admin.requests(path=ACTIVITIES))  # page 1 is in hand

    assert runner.delete("/api/v1/strava/link").status_code == 204
    run = _wait_run(response.json()["sync_run_id"])

    assert (run.result, run.error_code) == ("failed", "not_linked")
    assert _workout_ids(runner) == set()
    assert added["id"]
    with session_scope() as session:
        assert not session.scalar(
            select(func.count()).select_from(Workout).where(Workout.runner_id == _rid(runner))
        )
    assert runner.status()["status"] == "not_linked"


def test_manual_syncs_coalesce_while_one_is_queued(
    worker_api: TestClient, athlete: dict[str, Any], emulator: EmulatorHandle
) -> None:
    runner = _linked_and_synced(worker_api, athlete["id"])
    emulator.admin.add_fault(ACTIVITIES, "latency", latency_ms=1000, query={"page": "1"})
    ids = {runner.post("/api/v1/strava/sync", {}).json()["sync_run_id"] for _ in range(3)}
    assert len(ids) == 1
    assert _wait_run(ids.pop()).result == "ok"
