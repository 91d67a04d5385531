"""One runner must not spend everyone's Strava budget (issue 10 item 3): manual syncs have a
per-runner cooldown (429 rate_limited with retry_at), and each runner has a share of the
15-minute window. Through the whole path: the API, a real Celery worker on Redis, the emulator
over HTTP (its request log counts what reached Strava), PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from functools import partial
from typing import Any

import pytest
from app.clock import as_utc
from app.codes import Trigger
from app.config import Settings
from app.db import session_scope
from app.strava import scheduling, tasks
from app.strava.models import SyncRun
from factories import Runner, linked_runner
from fastapi.testclient import TestClient
from sqlalchemy import select
from strava_emulator.testing import EmulatorHandle
from waiting import wait_until

pytestmark = pytest.mark.worker

ACTIVITIES = "/api/v3/athlete/activities"


@pytest.fixture(scope="module")
def worker_settings(
    settings: Settings, redis_url: str, emulator: EmulatorHandle
) -> Iterator[Settings]:
    """The module's worker: each runner may use a quarter of a window (default cooldown)."""
    from workers import forget_redis_keys, worker_env_vars, worker_environment

    env = worker_env_vars(redis_url, RATE_BUDGET_RUNNER_SHARE="0.25")
    with worker_environment(**env) as worker_settings:
        yield worker_settings
    forget_redis_keys(redis_url, worker_settings)


def _finished(run_id: str | uuid.UUID) -> SyncRun | None:
    with session_scope() as session:
        run = session.get(SyncRun, uuid.UUID(str(run_id)))
        return run if run is not None and run.state == "finished" else None


def _runs(runner: Runner, trigger: Trigger) -> list[SyncRun]:
    with session_scope() as session:
        return list(
            session.scalars(
                select(SyncRun).where(
                    SyncRun.runner_id == uuid.UUID(runner.runner_id), SyncRun.trigger == trigger
                )
            )
        )


def _linked_and_synced(api: TestClient, athlete_id: int) -> Runner:
    runner = linked_runner(api, athlete_id)
    latest = runner.get("/api/v1/strava/sync-runs").json()["items"][0]
    assert wait_until(lambda: _finished(latest["id"])).result == "ok"
    return runner


def test_twenty_manual_syncs_cost_one_sync_and_defer_nobody_else(
    worker_api: TestClient,
    worker_settings: Settings,
    emulator: EmulatorHandle,
    tight_rate_limits: None,
) -> None:
    # A window small enough for twenty syncs of one runner to spend it (38 requests for syncs).
    emulator.admin.set_rate_limits(
        overall_limit=(80, 2000),
        read_limit=(40, 1000),
        overall_usage=(0, 0),
        read_usage=(0, 0),
    )
    greedy_athlete: dict[str, Any] = emulator.admin.create_athlete()
    greedy = _linked_and_synced(worker_api, greedy_athlete["id"])
    other = _linked_and_synced(worker_api, emulator.admin.create_athlete()["id"])
    emulator.admin.clear_requests()

    answers = []
    for _ in range(20):
        response = greedy.post("/api/v1/strava/sync", {})
        answers.append(response)
        if response.status_code == 202:
            wait_until(partial(_finished, response.json()["sync_run_id"]))
    assert answers[0].status_code == 202, answers[0].text
    (manual,) = _runs(greedy, Trigger.MANUAL)
    assert manual.result == "ok"
    next_allowed = as_utc(manual.created_at) + timedelta(
        seconds=worker_settings.manual_sync_cooldown_seconds
    )
    for refused in answers[1:]:
        assert refused.status_code == 429, refused.text
        assert refused.json()["error"] == "rate_limited"
        assert datetime.fromisoformat(refused.json()["detail"]["retry_at"]) == next_allowed
        assert int(refused.headers["retry-after"]) >= 1

    # Strava saw the one manual sync's requests, no more.
    listed = [
        request
        for request in emulator.admin.requests(path=ACTIVITIES)
        if request["athlete_id"] == greedy_athlete["id"]
    ]
    assert len(listed) == manual.strava_requests

    # Another runner's scheduled sync still gets its share.
    with session_scope() as session:
        scheduled = scheduling.request_sync(
            session, uuid.UUID(other.runner_id), Trigger.SCHEDULE, enqueue=tasks.enqueue_sync
        ).id
    finished = wait_until(lambda: _finished(scheduled))
    assert (finished.result, finished.error_code) == ("ok", None)
