"""The beat side of syncing (app/strava/scheduling.py): spread slots, due links, budget-capped
batches, recovery of lost runs."""

from __future__ import annotations

import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import time_machine
from app.clock import as_utc, utcnow
from app.config import Settings
from app.db import session_scope
from app.strava import scheduling, service
from app.strava.models import StravaLink, SyncRun
from app.strava.runtime import StravaRuntime
from app.strava.scheduling import next_slot, slot_offset
from app.strava.sync import run_sync
from factories import Runner, linked_runner
from fastapi.testclient import TestClient
from sqlalchemy import select
from strava_emulator.testing import EmulatorHandle

STALE = timedelta(minutes=10)


def _rid(runner: Runner) -> uuid.UUID:
    return uuid.UUID(runner.runner_id)


def _tick(deps: StravaRuntime, enqueued: list[uuid.UUID], **kwargs: Any) -> scheduling.TickReport:
    return scheduling.tick(
        deps, enqueue=enqueued.append, stale_queued=STALE, reserve=0.05, **kwargs
    )


def _runs(runner: Runner) -> list[SyncRun]:
    with session_scope() as session:
        return list(
            session.scalars(
                select(SyncRun)
                .where(SyncRun.runner_id == _rid(runner))
                .order_by(SyncRun.created_at)
            )
        )


def _link(runner: Runner) -> StravaLink:
    with session_scope() as session:
        link = service.get_link(session, _rid(runner))
        assert link is not None
        return link


def test_slots_spread_links_evenly_over_the_interval() -> None:
    interval = 3600
    offsets = [slot_offset(uuid.uuid4(), interval) for _ in range(6000)]
    per_minute = Counter(offset // 60 for offset in offsets)
    assert len(per_minute) == 60  # every minute of the hour gets some links
    assert max(per_minute.values()) < 3 * 6000 / 60  # and none gets a burst


def test_next_slot_is_half_to_one_and_a_half_intervals_away_and_stable() -> None:
    link_id = uuid.uuid4()
    now = datetime(2026, 11, 24, 10, 7, 3, tzinfo=UTC)
    slot = next_slot(link_id, now, 3600)
    assert timedelta(minutes=30) <= slot - now <= timedelta(minutes=90)
    assert int(slot.timestamp()) % 3600 == slot_offset(link_id, 3600)
    assert next_slot(link_id, slot, 3600) == slot + timedelta(hours=1)


def test_the_hourly_tick_resyncs_a_due_link(
    api: TestClient,
    athlete: dict[str, Any],
    enqueued: list[uuid.UUID],
    emulator: EmulatorHandle,
    strava_runtime: StravaRuntime,
) -> None:
    runner = linked_runner(api, athlete["id"])
    assert run_sync(strava_runtime, enqueued[-1]).result == "ok"
    due_at = as_utc(_link(runner).next_sync_at or utcnow())

    before = len(enqueued)
    _tick(strava_runtime, enqueued)  # not yet due
    assert all(run.state == "finished" for run in _runs(runner))

    added = emulator.admin.create_activity(
        athlete["id"], sport_type="Run", start_date=utcnow() - timedelta(minutes=40)
    )
    with time_machine.travel(due_at + timedelta(seconds=1), tick=True):
        report = _tick(strava_runtime, enqueued)
        assert report.scheduled >= 1
        mine = [run for run in _runs(runner) if run.state == "queued"]
        assert len(mine) == 1
        assert mine[0].trigger == "schedule"
        assert mine[0].id in enqueued[before:]
        outcome = run_sync(strava_runtime, mine[0].id)
    assert outcome.result == "ok"
    # At least the added run: the emulator shares this process's (travelled) clock, so one of
    # the athlete's generated activities may have come due in the same hour.
    assert outcome.inserted >= 1
    link = _link(runner)
    assert link.next_sync_at is not None
    assert as_utc(link.next_sync_at) > due_at
    assert added["id"] in {
        workout["source_id"]
        for workout in runner.get("/api/v1/workouts", params={"limit": 200}).json()["items"]
    }


def test_links_waiting_for_a_reconnect_are_not_scheduled(
    api: TestClient,
    athlete: dict[str, Any],
    enqueued: list[uuid.UUID],
    strava_runtime: StravaRuntime,
) -> None:
    runner = linked_runner(api, athlete["id"])
    with session_scope() as session:
        run = session.get(SyncRun, enqueued[-1])
        assert run is not None
        run.state, run.result = "finished", "failed"
        link = service.get_link(session, _rid(runner))
        assert link is not None
        link.error_code = "reauth_required"
        link.next_sync_at = utcnow() - timedelta(hours=1)
    with session_scope() as session:
        due = scheduling.due_runner_ids(session, utcnow(), 10_000)
    assert _rid(runner) not in due


def test_a_spent_budget_schedules_nothing(
    api: TestClient,
    athlete: dict[str, Any],
    enqueued: list[uuid.UUID],
    strava_runtime: StravaRuntime,
) -> None:
    runner = linked_runner(api, athlete["id"])
    run_sync(strava_runtime, enqueued[-1])
    with time_machine.travel(as_utc(_link(runner).next_sync_at or utcnow()), tick=True):
        strava_runtime.budget.block(utcnow() + timedelta(minutes=5), "short")
        report = _tick(strava_runtime, enqueued)
    assert report.scheduled == 0
    assert report.budget_blocked_until is not None


def test_a_forgotten_queued_run_is_enqueued_again_once_per_stale_period(
    api: TestClient,
    athlete: dict[str, Any],
    enqueued: list[uuid.UUID],
    strava_runtime: StravaRuntime,
) -> None:
    linked_runner(api, athlete["id"])
    lost_message = enqueued[-1]  # pretend the broker lost it
    with time_machine.travel(utcnow() + STALE + timedelta(minutes=1), tick=True):
        first = _tick(strava_runtime, enqueued)
        _tick(strava_runtime, enqueued)  # within the next stale period: not sent again
    assert first.requeued >= 1
    assert enqueued.count(lost_message) == 2  # the link's enqueue, then the recovery's one
    assert run_sync(strava_runtime, lost_message).result == "ok"


def test_a_run_whose_worker_died_is_failed_and_rescheduled(
    api: TestClient,
    athlete: dict[str, Any],
    enqueued: list[uuid.UUID],
    strava_runtime: StravaRuntime,
    settings: Settings,
) -> None:
    runner = linked_runner(api, athlete["id"])
    with session_scope() as session:
        run = session.get(SyncRun, enqueued[-1])
        assert run is not None
        run.state, run.started_at = "running", utcnow()
    later = utcnow() + timedelta(seconds=settings.task_time_limit_seconds + 120)
    with time_machine.travel(later, tick=True):
        report = _tick(strava_runtime, enqueued)
    assert report.lost >= 1
    (run,) = _runs(runner)
    assert (run.state, run.result, run.error_code) == ("finished", "failed", "sync_failed")
    link = _link(runner)
    assert link.next_sync_at is not None
    assert runner.status()["sync"]["state"] == "idle"


def test_a_running_run_whose_lease_expired_is_failed_long_before_the_time_limit(
    api: TestClient,
    athlete: dict[str, Any],
    enqueued: list[uuid.UUID],
    strava_runtime: StravaRuntime,
    settings: Settings,
) -> None:
    runner = linked_runner(api, athlete["id"])
    started = utcnow()
    with session_scope() as session:
        run = session.get(SyncRun, enqueued[-1])
        assert run is not None
        run.state, run.started_at, run.heartbeat_at = "running", started, started
    lease = timedelta(seconds=strava_runtime.lease_seconds)
    with time_machine.travel(started + lease - timedelta(seconds=5), tick=True):
        assert _tick(strava_runtime, enqueued).lost == 0  # its worker may still be alive
    later = started + lease + timedelta(seconds=1)
    assert later < started + timedelta(seconds=settings.task_time_limit_seconds)
    with time_machine.travel(later, tick=True):
        report = _tick(strava_runtime, enqueued)
    assert report.lost >= 1
    (run,) = _runs(runner)
    assert (run.state, run.result, run.error_code) == ("finished", "failed", "sync_failed")
    assert runner.status()["sync"]["state"] == "idle"


def test_a_redelivered_task_takes_over_its_running_run(
    api: TestClient,
    athlete: dict[str, Any],
    enqueued: list[uuid.UUID],
    strava_runtime: StravaRuntime,
) -> None:
    linked_runner(api, athlete["id"])
    with session_scope() as session:
        run = session.get(SyncRun, enqueued[-1])
        assert run is not None
        run.state, run.started_at, run.attempts = "running", utcnow(), 1
    assert run_sync(strava_runtime, enqueued[-1]).result == "skipped"  # a live duplicate
    outcome = run_sync(strava_runtime, enqueued[-1], redelivered=True)
    assert outcome.result == "ok"
    with session_scope() as session:
        finished = session.get(SyncRun, enqueued[-1])
        assert finished is not None
        assert finished.attempts == 2


def test_a_manual_sync_inside_the_cooldown_is_refused_with_retry_at(
    api: TestClient,
    athlete: dict[str, Any],
    enqueued: list[uuid.UUID],
    strava_runtime: StravaRuntime,
) -> None:
    from app.codes import Trigger
    from app.errors import SyncTooSoon

    runner = linked_runner(api, athlete["id"])
    run_sync(strava_runtime, enqueued[-1])
    cooldown = timedelta(minutes=5)

    def manual() -> SyncRun:
        with session_scope() as session:
            return scheduling.request_sync(
                session, _rid(runner), Trigger.MANUAL, enqueue=enqueued.append, cooldown=cooldown
            )

    first = manual()
    assert manual().id == first.id  # still queued: coalesced, not refused
    run_sync(strava_runtime, first.id)
    with pytest.raises(SyncTooSoon) as refused:
        manual()
    assert refused.value.detail is not None
    assert refused.value.detail["retry_at"] == (as_utc(first.created_at) + cooldown).isoformat()
    with time_machine.travel(as_utc(first.created_at) + cooldown, tick=False):
        assert manual().id != first.id


def test_the_embedded_database_coalesces_on_its_partial_unique_index(
    tmp_path: Any,
) -> None:
    """SQLite takes the same INSERT .. ON CONFLICT DO NOTHING on the active-run index."""
    from app.codes import Trigger
    from app.db import make_engine
    from app.migrations import upgrade
    from app.runners.models import Runner as RunnerRow
    from sqlalchemy.orm import sessionmaker

    url = f"sqlite:///{tmp_path / 'orchestrator.db'}"
    upgrade(url)
    sessions = sessionmaker(bind=make_engine(url), expire_on_commit=False)
    runner_id = uuid.uuid4()
    with sessions.begin() as session:
        session.add(RunnerRow(id=runner_id))
    with sessions.begin() as session:
        first = scheduling.insert_active_run(session, runner_id, Trigger.MANUAL, utcnow())
    with sessions.begin() as session:
        second = scheduling.insert_active_run(session, runner_id, Trigger.SCHEDULE, utcnow())
        runs = list(session.scalars(select(SyncRun.id).where(SyncRun.runner_id == runner_id)))
    assert first is not None
    assert second is None
    assert runs == [first]


def test_the_active_run_insert_survives_psycopg_preparing_it(database_url: str) -> None:
    """psycopg prepares a statement on a connection after its fifth execution; PostgreSQL then
    plans it generically and must still match ON CONFLICT to the partial unique index, which it
    cannot do with the index's predicate sent as bound parameters."""
    from app.codes import RunState, Trigger
    from app.db import make_engine
    from app.runners.models import Runner as RunnerRow
    from sqlalchemy import update
    from sqlalchemy.orm import sessionmaker

    engine = make_engine(database_url)
    try:
        with engine.connect() as connection:
            session = sessionmaker(bind=connection)()
            runner_id = uuid.uuid4()
            session.add(RunnerRow(id=runner_id))
            inserted = []
            for _ in range(15):  # prepared after 5, then generic plans after 5 more
                inserted.append(
                    scheduling.insert_active_run(session, runner_id, Trigger.MANUAL, utcnow())
                )
                session.execute(
                    update(SyncRun)
                    .where(SyncRun.runner_id == runner_id)
                    .values(state=RunState.FINISHED)
                )
            session.rollback()
    finally:
        engine.dispose()
    assert all(run_id is not None for run_id in inserted)
    assert len(set(inserted)) == 15


def test_a_manual_sync_that_failed_does_not_start_the_cooldown(
    api: TestClient,
    athlete: dict[str, Any],
    enqueued: list[uuid.UUID],
    strava_runtime: StravaRuntime,
    emulator: EmulatorHandle,
) -> None:
    from app.codes import Trigger

    runner = linked_runner(api, athlete["id"])
    run_sync(strava_runtime, enqueued[-1])

    def manual() -> SyncRun:
        with session_scope() as session:
            return scheduling.request_sync(
                session,
                _rid(runner),
                Trigger.MANUAL,
                enqueue=enqueued.append,
                cooldown=timedelta(minutes=5),
            )

    first = manual()
    emulator.admin.add_fault("/api/v3/athlete/activities", status=503, count=10)
    assert run_sync(strava_runtime, first.id).result == "failed"
    emulator.admin.clear_faults()
    again = manual()  # the runner may retry at once: the failed run cost them their share only
    assert again.id != first.id
    assert run_sync(strava_runtime, again.id).result == "ok"
