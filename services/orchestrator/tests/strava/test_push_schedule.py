"""Scheduling with a push subscription (issue 11): links covered by push are reconciled every
SYNC_RECONCILE_SECONDS instead of polled hourly, go back to hourly polling when the subscription
is gone, and the status says which (`sync.updates`). The real beat tick, the emulator over HTTP."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
import time_machine
from app.clock import as_utc, utcnow
from app.codes import Trigger
from app.db import session_scope
from app.strava import scheduling, service
from app.strava.models import PushSubscriptionRecord, StravaLink, SyncRun
from app.strava.runtime import StravaRuntime
from app.strava.sync import run_sync
from factories import Runner, synced_runner
from fastapi.testclient import TestClient
from sqlalchemy import delete, select

STALE = timedelta(minutes=10)


@pytest.fixture
def push_subscription() -> Iterator[None]:
    """An active subscription on record (made at Strava by `orchestrator strava-webhook
    subscribe`; recorded directly here), removed afterwards so other tests poll as before."""
    with session_scope() as session:
        session.execute(delete(PushSubscriptionRecord))
        session.add(
            PushSubscriptionRecord(
                id=424242,
                callback_url="http://127.0.0.1:8000/api/v1/strava/webhook",
                created_at=utcnow(),
                recorded_at=utcnow(),
            )
        )
    yield
    _unsubscribed()


def _unsubscribed() -> None:
    with session_scope() as session:
        session.execute(delete(PushSubscriptionRecord))


def _rid(runner: Runner) -> uuid.UUID:
    return uuid.UUID(runner.runner_id)


def _link(runner: Runner) -> StravaLink:
    with session_scope() as session:
        link = service.get_link(session, _rid(runner))
        assert link is not None
        return link


def _queued(runner: Runner) -> list[SyncRun]:
    with session_scope() as session:
        return list(
            session.scalars(
                select(SyncRun).where(SyncRun.runner_id == _rid(runner), SyncRun.state == "queued")
            )
        )


def _tick(runtime: StravaRuntime, enqueued: list[uuid.UUID]) -> scheduling.TickReport:
    return scheduling.tick(runtime, enqueue=enqueued.append, stale_queued=STALE, reserve=0.05)


@pytest.mark.usefixtures("push_subscription")
def test_links_covered_by_push_are_reconciled_every_reconcile_interval(
    api: TestClient,
    athlete: dict[str, Any],
    enqueued: list[uuid.UUID],
    strava_runtime: StravaRuntime,
) -> None:
    reconcile = timedelta(seconds=strava_runtime.reconcile_seconds)
    assert reconcile > 2 * timedelta(seconds=strava_runtime.interval_seconds)
    started = utcnow()
    runner = synced_runner(api, athlete, enqueued, strava_runtime)

    due_at = as_utc(_link(runner).next_sync_at or started)
    assert started + reconcile / 2 <= due_at <= utcnow() + reconcile * 3 / 2
    assert runner.status()["sync"]["updates"] == "live"

    # Where hourly polling would have synced it (at most 1.5 intervals on), nothing happens.
    hourly = timedelta(seconds=strava_runtime.interval_seconds) * 3 / 2
    with time_machine.travel(utcnow() + hourly + timedelta(minutes=1), tick=True):
        _tick(strava_runtime, enqueued)
        assert _queued(runner) == []
    with time_machine.travel(due_at + timedelta(seconds=1), tick=True):
        _tick(strava_runtime, enqueued)
        (run,) = _queued(runner)
        assert run.trigger == "schedule"
        assert run_sync(strava_runtime, run.id).result == "ok"
        assert as_utc(_link(runner).next_sync_at or due_at) >= due_at + reconcile / 2


def test_links_go_back_to_hourly_polling_when_the_subscription_is_gone(
    api: TestClient,
    athlete: dict[str, Any],
    enqueued: list[uuid.UUID],
    strava_runtime: StravaRuntime,
    push_subscription: None,
) -> None:
    hourly = timedelta(seconds=strava_runtime.interval_seconds)
    runner = synced_runner(api, athlete, enqueued, strava_runtime)
    assert as_utc(_link(runner).next_sync_at or utcnow()) > utcnow() + hourly * 3 / 2

    _unsubscribed()
    _tick(strava_runtime, enqueued)
    due_at = as_utc(_link(runner).next_sync_at or utcnow())
    assert utcnow() + hourly / 2 - timedelta(seconds=5) <= due_at <= utcnow() + hourly * 3 / 2
    assert runner.status()["sync"]["updates"] == "polling"
    with time_machine.travel(due_at + timedelta(seconds=1), tick=True):
        _tick(strava_runtime, enqueued)
        assert len(_queued(runner)) == 1


def test_without_a_subscription_a_sync_schedules_the_hourly_slot(
    api: TestClient,
    athlete: dict[str, Any],
    enqueued: list[uuid.UUID],
    strava_runtime: StravaRuntime,
) -> None:
    hourly = timedelta(seconds=strava_runtime.interval_seconds)
    runner = synced_runner(api, athlete, enqueued, strava_runtime)
    assert as_utc(_link(runner).next_sync_at or utcnow()) <= utcnow() + hourly * 3 / 2
    assert runner.status()["sync"]["updates"] == "polling"


@pytest.mark.usefixtures("push_subscription")
def test_updates_are_live_only_for_links_strava_still_honours(
    api: TestClient,
    athlete: dict[str, Any],
    enqueued: list[uuid.UUID],
    strava_runtime: StravaRuntime,
) -> None:
    from factories import new_runner

    assert new_runner(api).status()["sync"]["updates"] is None  # not linked
    runner = synced_runner(api, athlete, enqueued, strava_runtime)
    assert runner.status()["sync"]["updates"] == "live"
    with session_scope() as session:
        link = service.get_link(session, _rid(runner))
        assert link is not None
        link.error_code = "reauth_required"
    assert runner.status()["sync"]["updates"] == "polling"


def _listings_by(api: TestClient, purpose: str) -> float:
    """strava_requests_total of the activity listing for this purpose, from the /metrics text."""
    sample = (
        f'strava_requests_total{{endpoint="GET /athlete/activities",purpose="{purpose}",'
        'status="200"} '
    )
    return sum(
        float(line.removeprefix(sample))
        for line in api.get("/metrics").text.splitlines()
        if line.startswith(sample)
    )


def _scheduled_sync(runner: Runner, strava_runtime: StravaRuntime) -> None:
    with session_scope() as session:
        run = scheduling.request_sync(
            session, _rid(runner), Trigger.SCHEDULE, enqueue=lambda _run_id: None
        )
        run_id = run.id
    assert run_sync(strava_runtime, run_id).result == "ok"


@pytest.mark.parametrize(("subscribed", "purpose"), [(True, "reconcile"), (False, "poll")])
def test_scheduled_listings_are_labelled_reconcile_while_push_covers_the_links(
    api: TestClient,
    athlete: dict[str, Any],
    enqueued: list[uuid.UUID],
    strava_runtime: StravaRuntime,
    request: pytest.FixtureRequest,
    subscribed: bool,
    purpose: str,
) -> None:
    if subscribed:
        request.getfixturevalue("push_subscription")
    runner = synced_runner(api, athlete, enqueued, strava_runtime)
    other = "poll" if purpose == "reconcile" else "reconcile"
    before, other_before = _listings_by(api, purpose), _listings_by(api, other)

    _scheduled_sync(runner, strava_runtime)

    assert _listings_by(api, purpose) > before
    assert _listings_by(api, other) == other_before
