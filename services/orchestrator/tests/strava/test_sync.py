"""Window ingest (app/strava/sync.py) in-process: the emulator over real HTTP, PostgreSQL, and
`run_sync` called the way the Celery task calls it. Worker-level faults are in test_worker*.py."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import time_machine
from app.clock import as_utc, utcnow
from app.codes import Trigger
from app.db import session_scope
from app.strava import scheduling, service
from app.strava.client import ResponseInfo, StravaClient
from app.strava.models import StravaLink, SyncRun
from app.strava.runtime import StravaRuntime
from app.strava.sync import run_sync
from app.workouts.models import Workout
from factories import Runner, linked_runner
from fastapi.testclient import TestClient
from sqlalchemy import func, select, update
from strava_emulator.testing import EmulatorHandle

ACTIVITIES = "/api/v3/athlete/activities"
TOKEN = "/oauth/token"


def _link(api: TestClient, athlete: dict[str, Any], enqueued: list[uuid.UUID]) -> Runner:
    runner = linked_runner(api, athlete["id"])
    assert enqueued, "linking queues the first sync"
    return runner


def _rid(runner: Runner) -> uuid.UUID:
    return uuid.UUID(runner.runner_id)


def _workouts(runner: Runner) -> dict[int, Workout]:
    with session_scope() as session:
        rows = session.scalars(select(Workout).where(Workout.runner_id == _rid(runner))).all()
        return {row.source_id: row for row in rows}


def _link_row(runner: Runner) -> StravaLink:
    with session_scope() as session:
        link = service.get_link(session, _rid(runner))
        assert link is not None
        return link


def _run(run_id: uuid.UUID) -> SyncRun:
    with session_scope() as session:
        run = session.get(SyncRun, run_id)
        assert run is not None
        return run


def _request_sync(runner: Runner, trigger: Trigger = Trigger.MANUAL) -> uuid.UUID:
    ids: list[uuid.UUID] = []
    with session_scope() as session:
        scheduling.request_sync(session, _rid(runner), trigger, enqueue=ids.append)
    return ids[0]


def _in_window(emulator: EmulatorHandle, athlete: dict[str, Any], run: SyncRun) -> set[int]:
    """What Strava listed for the run: uploaded before the run began (the admin view also shows
    what is still in progress or not done yet) and started inside its window."""
    assert run.window_start is not None
    assert run.window_end is not None
    start, at = as_utc(run.window_start), as_utc(run.window_end)

    def ts(value: str) -> datetime:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))

    return {
        act["id"]
        for act in emulator.admin.list_activities(athlete["id"])
        if start <= ts(act["start_date"]) and ts(act["available_at"]) <= at
    }


def _first_sync(
    api: TestClient,
    athlete: dict[str, Any],
    enqueued: list[uuid.UUID],
    deps: StravaRuntime,
) -> Runner:
    runner = _link(api, athlete, enqueued)
    outcome = run_sync(deps, enqueued[-1])
    assert outcome.result == "ok", outcome
    return runner


def test_a_nul_character_in_strava_text_does_not_break_the_sync(
    api: TestClient,
    athlete: dict[str, Any],
    enqueued: list[uuid.UUID],
    emulator: EmulatorHandle,
    strava_runtime: StravaRuntime,
) -> None:
    """PostgreSQL refuses U+0000 in text and JSON: Strava's free text is stored without it, rather
    than every sync of the athlete failing on the one activity."""
    odd = emulator.admin.create_activity(
        athlete["id"],
        name="Morning\u0000Run",
        sport_type="Run",
        start_date=utcnow() - timedelta(hours=3),
    )
    runner = _link(api, athlete, enqueued)
    outcome = run_sync(strava_runtime, enqueued[-1])
    assert outcome.result == "ok", outcome
    workouts = _workouts(runner)
    assert workouts[odd["id"]].name == "MorningRun"


# --- the happy path ---------------------------------------------------------------------------


def test_first_sync_ingests_the_28_day_window(
    api: TestClient,
    athlete: dict[str, Any],
    enqueued: list[uuid.UUID],
    emulator: EmulatorHandle,
    strava_runtime: StravaRuntime,
) -> None:
    runner = _link(api, athlete, enqueued)
    emulator.admin.clear_requests()
    started = utcnow()

    outcome = run_sync(strava_runtime, enqueued[-1])

    expected = _in_window(emulator, athlete, _run(enqueued[-1]))
    assert expected, "the generated athlete trains"
    assert outcome.result == "ok"
    assert set(_workouts(runner)) == expected
    requests = emulator.admin.requests(path=ACTIVITIES)
    after = int(requests[0]["query"]["after"])
    assert abs(after - int((started - timedelta(days=28)).timestamp())) <= 2
    assert all(r["query"]["per_page"] == "200" for r in requests)
    assert [r["query"]["page"] for r in requests] == ["1", "2"]  # until the empty page

    run = _run(enqueued[-1])
    assert run.state == "finished"
    assert run.result == "ok"
    assert run.trigger == "link"
    assert run.fetched == run.inserted == len(expected)
    assert run.updated == run.deleted == 0
    assert run.strava_requests == 2
    assert run.duration_ms is not None
    assert run.duration_ms >= 0
    assert run.window_start is not None
    assert int(as_utc(run.window_start).timestamp()) == after
    assert run.rate_limit is not None
    assert set(run.rate_limit) == {
        "overall_usage",
        "overall_limit",
        "read_usage",
        "read_limit",
    }
    status = runner.status()
    assert status["sync"]["state"] == "idle"
    assert status["sync"]["last_result"] == "ok"
    assert status["sync"]["last_success_at"] is not None
    assert status["sync"]["workouts_in_window"] == len(expected)
    next_sync = datetime.fromisoformat(status["sync"]["next_sync_at"])
    assert timedelta(minutes=30) <= next_sync - utcnow() <= timedelta(minutes=91)
    assert status["error"] is None


def test_workouts_keep_raw_json_and_normalise_fields(
    api: TestClient,
    athlete: dict[str, Any],
    enqueued: list[uuid.UUID],
    emulator: EmulatorHandle,
    strava_runtime: StravaRuntime,
) -> None:
    runner = _first_sync(api, athlete, enqueued, strava_runtime)
    served = {act["id"]: act for act in emulator.admin.list_activities(athlete["id"])}
    for source_id, workout in _workouts(runner).items():
        act = served[source_id]
        assert workout.raw["id"] == source_id
        assert workout.sport_type == act["sport_type"]
        assert workout.is_run == (act["sport_type"] in {"Run", "TrailRun", "VirtualRun"})
        assert workout.distance_m == act["distance"]
        assert workout.moving_time_s == act["moving_time"]


def test_odd_activities_survive(
    api: TestClient,
    athlete: dict[str, Any],
    enqueued: list[uuid.UUID],
    emulator: EmulatorHandle,
    strava_runtime: StravaRuntime,
) -> None:
    """Unknown sport types, hidden start times, no heart rate, no map, ids past 2**53."""
    now = utcnow()
    hidden_day = (now - timedelta(days=3)).replace(hour=0, minute=0, second=1, microsecond=0)
    unknown = emulator.admin.create_activity(
        athlete["id"], sport_type="Hyrox", start_date=now - timedelta(days=2), distance=8000.0
    )
    hidden = emulator.admin.create_activity(
        athlete["id"],
        sport_type="TrailRun",
        start_date=hidden_day,
        start_date_local=hidden_day.replace(tzinfo=None),
        has_heartrate=False,
        map=None,
        start_latlng=[],
    )
    runner = _first_sync(api, athlete, enqueued, strava_runtime)

    workouts = _workouts(runner)
    assert workouts[unknown["id"]].sport_type == "Hyrox"
    assert workouts[unknown["id"]].is_run is False
    odd = workouts[hidden["id"]]
    assert odd.is_run is True
    assert as_utc(odd.start_date) == hidden_day
    assert odd.average_heartrate is None
    assert odd.max_heartrate is None
    assert odd.summary_polyline in (None, "")
    assert max(workouts) > 2**53 or all(isinstance(key, int) for key in workouts)


def test_a_64_bit_id_round_trips(
    api: TestClient,
    athlete: dict[str, Any],
    enqueued: list[uuid.UUID],
    strava_runtime: StravaRuntime,
) -> None:
    from app.strava.ingest import upsert_workouts
    from app.strava.payloads import SummaryActivity

    runner = _link(api, athlete, enqueued)
    big = 2**63 - 7
    activity = SummaryActivity.model_validate(
        {
            "id": big,
            "sport_type": "Run",
            "start_date": "2026-01-01T07:00:00Z",
            "elapsed_time": 1800,
            "map": None,
        }
    )
    with session_scope() as session:
        result = upsert_workouts(session, _rid(runner), [activity], utcnow())
    assert result.inserted == 1
    workout = _workouts(runner)[big]
    assert workout.raw["id"] == big
    assert workout.summary_polyline is None


def test_a_second_sync_reflects_edits_and_deletions(
    api: TestClient,
    athlete: dict[str, Any],
    enqueued: list[uuid.UUID],
    emulator: EmulatorHandle,
    strava_runtime: StravaRuntime,
) -> None:
    runner = _first_sync(api, athlete, enqueued, strava_runtime)
    ids = sorted(_workouts(runner))
    edited, removed = ids[0], ids[1]
    emulator.admin.update_activity(edited, name="Renamed on Strava")
    emulator.admin.delete_activity(removed)
    added = emulator.admin.create_activity(
        athlete["id"], sport_type="Run", start_date=utcnow() - timedelta(hours=2)
    )

    outcome = run_sync(strava_runtime, _request_sync(runner))

    assert (outcome.result, outcome.inserted, outcome.updated, outcome.deleted) == ("ok", 1, 1, 1)
    workouts = _workouts(runner)
    assert workouts[edited].name == "Renamed on Strava"
    assert workouts[edited].raw["name"] == "Renamed on Strava"
    assert removed not in workouts
    assert added["id"] in workouts
    # A sync with nothing new changes nothing.
    again = run_sync(strava_runtime, _request_sync(runner))
    assert (again.inserted, again.updated, again.deleted) == (0, 0, 0)


def test_activities_older_than_the_window_are_not_deleted(
    api: TestClient,
    athlete: dict[str, Any],
    enqueued: list[uuid.UUID],
    strava_runtime: StravaRuntime,
) -> None:
    from app.strava.ingest import upsert_workouts
    from app.strava.payloads import SummaryActivity

    runner = _first_sync(api, athlete, enqueued, strava_runtime)
    old = SummaryActivity.model_validate(
        {"id": 777_000_000_001, "sport_type": "Run", "start_date": "2020-01-01T07:00:00Z"}
    )
    with session_scope() as session:
        upsert_workouts(session, _rid(runner), [old], utcnow())
    outcome = run_sync(strava_runtime, _request_sync(runner))
    assert outcome.deleted == 0
    assert old.id in _workouts(runner)


# --- partial listings -------------------------------------------------------------------------


def test_page_two_failing_keeps_page_one_and_deletes_nothing(
    api: TestClient,
    athlete: dict[str, Any],
    enqueued: list[uuid.UUID],
    emulator: EmulatorHandle,
    strava_runtime: StravaRuntime,
) -> None:
    runner = _first_sync(api, athlete, enqueued, strava_runtime)
    before = _link_row(runner)
    vanished = sorted(_workouts(runner))[0]
    emulator.admin.delete_activity(vanished)
    added = emulator.admin.create_activity(
        athlete["id"], sport_type="Run", start_date=utcnow() - timedelta(hours=1)
    )
    emulator.admin.add_fault(ACTIVITIES, "status", status=503, count=10, query={"page": "2"})

    outcome = run_sync(strava_runtime, _request_sync(runner))

    assert outcome.result == "partial"
    assert outcome.error_code == "strava_unavailable"
    workouts = _workouts(runner)
    assert added["id"] in workouts  # page 1 kept
    assert vanished in workouts  # nothing deleted after a partial listing
    after = _link_row(runner)
    assert after.last_success_at == before.last_success_at  # nothing advanced
    assert after.last_result == "partial"
    status = runner.status()
    assert status["status"] == "linked"
    assert status["sync"]["last_result"] == "partial"
    assert status["error"]["code"] == "strava_unavailable"
    assert status["error"]["action"] == "wait"
    assert status["error"]["retry_at"] is not None


def test_a_short_page_is_not_the_end(
    api: TestClient,
    emulator: EmulatorHandle,
    enqueued: list[uuid.UUID],
    strava_runtime: StravaRuntime,
) -> None:
    athlete = emulator.admin.create_athlete(history_days=0)
    now = utcnow()
    for index in range(260):
        emulator.admin.create_activity(
            athlete["id"], sport_type="Walk", start_date=now - timedelta(minutes=90 * index + 60)
        )
    runner = _link(api, athlete, enqueued)
    emulator.admin.clear_requests()
    emulator.admin.add_fault(ACTIVITIES, "short_page", count=1, query={"page": "1"})

    outcome = run_sync(strava_runtime, enqueued[-1])

    pages = [r["query"]["page"] for r in emulator.admin.requests(path=ACTIVITIES)]
    assert pages == ["1", "2", "3"]
    assert outcome.result == "ok"
    assert outcome.fetched == 100 + 60  # half of page 1 (the fault), all of page 2
    assert len(_workouts(runner)) == 160


# --- tokens -----------------------------------------------------------------------------------


def _expire_soon(runner: Runner, seconds: int = 120) -> int:
    with session_scope() as session:
        link = service.get_link(session, _rid(runner))
        assert link is not None
        link.access_token_expires_at = utcnow() + timedelta(seconds=seconds)
        return link.token_version


def test_a_token_expiring_within_five_minutes_is_refreshed_and_rotated_first(
    api: TestClient,
    athlete: dict[str, Any],
    enqueued: list[uuid.UUID],
    emulator: EmulatorHandle,
    strava_runtime: StravaRuntime,
) -> None:
    runner = _link(api, athlete, enqueued)
    version = _expire_soon(runner)
    before = _link_row(runner)
    emulator.admin.clear_requests()

    outcome = run_sync(strava_runtime, enqueued[-1])

    assert outcome.result == "ok"
    assert len(emulator.admin.requests(path=TOKEN)) == 1
    after = _link_row(runner)
    assert after.token_version == version + 1
    assert after.refresh_token_ciphertext != before.refresh_token_ciphertext
    assert as_utc(after.access_token_expires_at) > utcnow() + timedelta(hours=1)


def test_a_token_that_expires_during_the_sync_is_refreshed_once(
    api: TestClient,
    athlete: dict[str, Any],
    enqueued: list[uuid.UUID],
    emulator: EmulatorHandle,
    strava_runtime: StravaRuntime,
) -> None:
    runner = _link(api, athlete, enqueued)
    emulator.admin.clear_requests()
    # Page 1 passes; page 2 finds the token expired (as Strava answers it: 401).
    emulator.admin.add_fault(ACTIVITIES, "status", status=401, count=1, query={"page": "2"})

    outcome = run_sync(strava_runtime, enqueued[-1])

    assert outcome.result == "ok"
    assert len(emulator.admin.requests(path=TOKEN)) == 1
    assert [r["query"]["page"] for r in emulator.admin.requests(path=ACTIVITIES)] == [
        "1",
        "2",
        "2",
    ]
    assert runner.status()["error"] is None


def test_a_revoked_athlete_gets_one_refresh_attempt_then_reauth_required(
    api: TestClient,
    athlete: dict[str, Any],
    enqueued: list[uuid.UUID],
    emulator: EmulatorHandle,
    strava_runtime: StravaRuntime,
) -> None:
    runner = _link(api, athlete, enqueued)
    emulator.admin.revoke(athlete["id"])
    emulator.admin.clear_requests()

    outcome = run_sync(strava_runtime, enqueued[-1])

    assert outcome.result == "failed"
    assert outcome.error_code == "reauth_required"
    assert len(emulator.admin.requests(path=TOKEN)) == 1
    assert len(emulator.admin.requests(path=ACTIVITIES)) == 1
    status = runner.status()
    assert status["status"] == "action_required"
    assert status["error"]["code"] == "reauth_required"
    assert status["error"]["action"] == "reconnect"
    assert status["sync"]["next_sync_at"] is None
    # Nothing more reaches Strava for this link until the runner reconnects.
    emulator.admin.clear_requests()
    blocked = run_sync(strava_runtime, _request_sync(runner))
    assert blocked.error_code == "reauth_required"
    assert not emulator.admin.requests()


def test_refresh_refused_marks_reauth_required(
    api: TestClient,
    athlete: dict[str, Any],
    enqueued: list[uuid.UUID],
    emulator: EmulatorHandle,
    strava_runtime: StravaRuntime,
) -> None:
    from app.strava.credentials import LinkCredentials, open_link, seal_link

    runner = _link(api, athlete, enqueued)
    with session_scope() as session:
        link = service.get_link(session, _rid(runner))
        assert link is not None
        held = open_link(link, strava_runtime.keyring)
        # A refresh token Strava does not know (say, rotated away by someone else).
        seal_link(
            link,
            strava_runtime.keyring,
            LinkCredentials(held.athlete, held.access_token, "0" * 40),
            access_token_expires_at=utcnow() + timedelta(minutes=2),
        )
    emulator.admin.clear_requests()

    outcome = run_sync(strava_runtime, enqueued[-1])

    assert outcome.error_code == "reauth_required"
    assert [r["status"] for r in emulator.admin.requests(path=TOKEN)] == [400]
    assert not emulator.admin.requests(path=ACTIVITIES)
    assert runner.status()["status"] == "action_required"


def test_refresh_with_strava_down_is_retried_later_and_the_link_stays_linked(
    api: TestClient,
    athlete: dict[str, Any],
    enqueued: list[uuid.UUID],
    emulator: EmulatorHandle,
    strava_runtime: StravaRuntime,
) -> None:
    runner = _link(api, athlete, enqueued)
    version = _expire_soon(runner)
    emulator.admin.add_fault(TOKEN, "status", method="POST", status=502, count=1)

    outcome = run_sync(strava_runtime, enqueued[-1])

    assert (outcome.result, outcome.error_code) == ("failed", "strava_unavailable")
    link = _link_row(runner)
    assert link.token_version == version  # untouched: the old refresh token is still good
    status = runner.status()
    assert status["status"] == "linked"
    assert status["error"]["code"] == "strava_unavailable"
    retry_at = datetime.fromisoformat(status["error"]["retry_at"])
    assert retry_at == datetime.fromisoformat(status["sync"]["next_sync_at"])
    # Later, Strava is back: the same refresh token works.
    recovered = run_sync(strava_runtime, _request_sync(runner))
    assert recovered.result == "ok"
    assert runner.status()["error"] is None


def test_two_workers_refreshing_one_link_call_strava_once(
    api: TestClient,
    athlete: dict[str, Any],
    enqueued: list[uuid.UUID],
    emulator: EmulatorHandle,
    strava_runtime: StravaRuntime,
) -> None:
    """Two threads, two database sessions, one link row lock: the loser re-reads the winner's
    tokens instead of spending the rotated refresh token (which would kill the link)."""
    from app.strava import tokens

    runner = _link(api, athlete, enqueued)
    version = _expire_soon(runner)
    link_id = _link_row(runner).id
    emulator.admin.clear_requests()
    # Hold the refresh at Strava so that both workers are inside at once.
    emulator.admin.add_fault(TOKEN, "latency", method="POST", latency_ms=500, count=2)
    grants: list[tokens.AccessGrant] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(2)

    def worker() -> None:
        try:
            barrier.wait()
            client = strava_runtime.client_for(lambda _: None)
            grants.append(
                tokens.access_grant(
                    strava_runtime.sessions,
                    link_id,
                    client=client,
                    keyring=strava_runtime.keyring,
                    budget=strava_runtime.budget,
                )
            )
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert not errors
    assert len(emulator.admin.requests(path=TOKEN)) == 1
    assert len(grants) == 2
    assert grants[0].access_token == grants[1].access_token
    assert {grant.token_version for grant in grants} == {version + 1}
    assert run_sync(strava_runtime, enqueued[-1]).result == "ok"  # both proceed; the link works


# --- Strava failures --------------------------------------------------------------------------


def test_malformed_json_fails_the_sync_and_keeps_the_data(
    api: TestClient,
    athlete: dict[str, Any],
    enqueued: list[uuid.UUID],
    emulator: EmulatorHandle,
    strava_runtime: StravaRuntime,
) -> None:
    runner = _first_sync(api, athlete, enqueued, strava_runtime)
    stored = set(_workouts(runner))
    emulator.admin.add_fault(ACTIVITIES, "malformed_json", count=1, query={"page": "1"})

    outcome = run_sync(strava_runtime, _request_sync(runner))

    assert (outcome.result, outcome.error_code) == ("failed", "sync_failed")
    assert set(_workouts(runner)) == stored
    status = runner.status()
    assert status["sync"]["last_result"] == "failed"
    assert status["error"]["code"] == "sync_failed"
    assert run_sync(strava_runtime, _request_sync(runner)).result == "ok"
    assert runner.status()["error"] is None


def test_a_timeout_is_strava_unavailable_with_backoff(
    api: TestClient,
    athlete: dict[str, Any],
    enqueued: list[uuid.UUID],
    emulator: EmulatorHandle,
    strava_runtime: StravaRuntime,
) -> None:
    runner = _link(api, athlete, enqueued)
    emulator.admin.add_fault(ACTIVITIES, "timeout", count=3, query={"page": "1"})

    outcome = run_sync(strava_runtime, enqueued[-1])

    assert (outcome.result, outcome.error_code) == ("failed", "strava_unavailable")
    first = _link_row(runner)
    assert first.sync_failures == 1
    assert first.next_sync_at is not None
    assert first.error_retry_at == first.next_sync_at
    emulator.admin.add_fault(ACTIVITIES, "status", status=503, count=3, query={"page": "1"})
    run_sync(strava_runtime, _request_sync(runner))
    second = _link_row(runner)
    assert second.sync_failures == 2
    assert second.next_sync_at is not None
    assert first.next_sync_at is not None
    # The second wait is longer than the first (exponential backoff).
    first_wait = as_utc(first.next_sync_at) - as_utc(first.last_sync_at or utcnow())
    second_wait = as_utc(second.next_sync_at) - as_utc(second.last_sync_at or utcnow())
    assert second_wait > first_wait


def test_error_since_holds_through_a_second_failed_sync_and_a_success_clears_it(
    api: TestClient,
    athlete: dict[str, Any],
    enqueued: list[uuid.UUID],
    emulator: EmulatorHandle,
    strava_runtime: StravaRuntime,
) -> None:
    # The sync writes the link's status with a Core UPDATE, past the model's listener: the rule
    # (set when an error begins, kept while it holds, cleared with it) must hold all the same.
    runner = _link(api, athlete, enqueued)
    emulator.admin.add_fault(ACTIVITIES, "status", status=503, count=3, query={"page": "1"})
    assert run_sync(strava_runtime, enqueued[-1]).error_code == "strava_unavailable"
    first = _link_row(runner)
    assert first.error_since is not None
    assert first.last_sync_at is not None
    assert as_utc(first.error_since) == as_utc(first.last_sync_at)

    emulator.admin.add_fault(ACTIVITIES, "status", status=503, count=3, query={"page": "1"})
    assert run_sync(strava_runtime, _request_sync(runner)).error_code == "strava_unavailable"
    second = _link_row(runner)
    assert second.sync_failures == 2
    assert second.last_sync_at is not None
    assert as_utc(second.last_sync_at) > as_utc(first.last_sync_at)
    assert second.error_since is not None
    assert as_utc(second.error_since) == as_utc(first.error_since)  # the same error goes on

    assert run_sync(strava_runtime, _request_sync(runner)).result == "ok"
    healed = _link_row(runner)
    assert (healed.error_code, healed.error_since, healed.sync_failures) == (None, None, 0)


def test_missing_scope_is_insufficient_scope(
    api: TestClient,
    athlete: dict[str, Any],
    enqueued: list[uuid.UUID],
    emulator: EmulatorHandle,
    strava_runtime: StravaRuntime,
) -> None:
    from app.security import KeyRing
    from app.strava.credentials import LinkCredentials, seal_link

    runner = _link(api, athlete, enqueued)
    issued = emulator.admin.issue_tokens(athlete["id"], scope="read")
    with session_scope() as session:
        link = service.get_link(session, _rid(runner))
        assert link is not None
        seal_link(
            link,
            KeyRing(api.app.state.settings.encryption_keys()),  # type: ignore[attr-defined]
            LinkCredentials(
                athlete={"id": athlete["id"]},
                access_token=issued["access_token"],
                refresh_token=issued["refresh_token"],
            ),
            access_token_expires_at=datetime.fromtimestamp(issued["expires_at"], UTC),
        )

    outcome = run_sync(strava_runtime, enqueued[-1])

    assert outcome.error_code == "insufficient_scope"
    status = runner.status()
    assert status["status"] == "action_required"
    assert status["error"]["action"] == "reconnect"


# --- rate limits ------------------------------------------------------------------------------


def test_a_429_defers_the_sync_and_stops_every_worker_until_the_window_resets(
    api: TestClient,
    emulator: EmulatorHandle,
    enqueued: list[uuid.UUID],
    strava_runtime: StravaRuntime,
    tight_rate_limits: None,
) -> None:
    first = _link(api, emulator.admin.create_athlete(), enqueued)
    first_run = enqueued[-1]
    second = _link(api, emulator.admin.create_athlete(), enqueued)
    second_run = enqueued[-1]
    emulator.admin.set_rate_limits(read_limit=(100, 1000), read_usage=(100, 500))
    emulator.admin.clear_requests()

    outcome = run_sync(strava_runtime, first_run)
    other = run_sync(strava_runtime, second_run)

    assert (outcome.result, outcome.error_code) == ("deferred", "rate_limited")
    assert (other.result, other.error_code) == ("deferred", "rate_limited")
    assert len(emulator.admin.requests()) == 1  # the 429 itself; the second worker held back
    status = first.status()
    assert status["status"] == "linked"
    assert status["error"]["code"] == "rate_limited"
    assert status["error"]["action"] == "wait"
    retry_at = datetime.fromisoformat(status["error"]["retry_at"])
    assert retry_at.minute % 15 == 0
    assert retry_at.second == 0
    assert timedelta(0) < retry_at - utcnow() <= timedelta(minutes=15)
    assert second.status()["error"]["retry_at"] == status["error"]["retry_at"]
    assert status["sync"]["last_result"] is None  # a 429 is a state, not a failed sync

    # The window resets: the emulator's counters roll over, the budget's block ends.
    emulator.admin.set_rate_limits(read_usage=(0, 500))
    with time_machine.travel(retry_at + timedelta(seconds=1), tick=True):
        assert run_sync(strava_runtime, _request_sync(first)).result == "ok"
    assert first.status()["error"] is None


def test_the_daily_limit_defers_until_midnight_utc(
    api: TestClient,
    athlete: dict[str, Any],
    emulator: EmulatorHandle,
    enqueued: list[uuid.UUID],
    strava_runtime: StravaRuntime,
    tight_rate_limits: None,
) -> None:
    runner = _link(api, athlete, enqueued)
    emulator.admin.set_rate_limits(read_limit=(100, 1000), read_usage=(3, 1000))

    outcome = run_sync(strava_runtime, enqueued[-1])

    assert outcome.error_code == "rate_limited"
    retry_at = datetime.fromisoformat(runner.status()["error"]["retry_at"])
    assert (retry_at.hour, retry_at.minute, retry_at.second) == (0, 0, 0)
    assert retry_at > utcnow()


def test_the_budget_stops_before_the_limit_without_a_429(
    api: TestClient,
    athlete: dict[str, Any],
    emulator: EmulatorHandle,
    enqueued: list[uuid.UUID],
    strava_runtime: StravaRuntime,
    tight_rate_limits: None,
) -> None:
    """Once the headers show the window nearly spent, workers stop asking; Strava never says 429."""
    runner = _link(api, athlete, enqueued)
    emulator.admin.set_rate_limits(read_limit=(100, 1000), read_usage=(94, 500))
    emulator.admin.clear_requests()

    outcome = run_sync(strava_runtime, enqueued[-1])

    statuses = [r["status"] for r in emulator.admin.requests()]
    assert 429 not in statuses
    assert outcome.error_code == "rate_limited"
    assert outcome.result in ("deferred", "partial")
    assert runner.status()["error"]["code"] == "rate_limited"


# --- unlink while syncing ---------------------------------------------------------------------


def test_unlink_during_a_sync_leaves_no_workouts(
    api: TestClient,
    athlete: dict[str, Any],
    enqueued: list[uuid.UUID],
    emulator: EmulatorHandle,
    strava_runtime: StravaRuntime,
) -> None:
    from waiting import wait_until

    runner = _link(api, athlete, enqueued)
    emulator.admin.clear_requests()
    # Page 1 answers at once; page 2 is held while the runner unlinks.
    emulator.admin.add_fault(ACTIVITIES, "latency", latency_ms=1500, query={"page": "2"})
    outcomes: list[Any] = []
    thread = threading.Thread(
        target=lambda: outcomes.append(run_sync(strava_runtime, enqueued[-1]))
    )
    thread.start()
    wait_until(lambda: emulator.admin.requests(path=ACTIVITIES))  # page 1 is in hand

    assert runner.delete("/api/v1/strava/link").status_code == 204
    thread.join()

    assert outcomes[0].error_code == "not_linked"
    assert _workouts(runner) == {}
    assert runner.status()["status"] == "not_linked"


# --- coalescing -------------------------------------------------------------------------------


def test_manual_sync_coalesces_with_a_queued_or_running_one(
    api: TestClient,
    athlete: dict[str, Any],
    enqueued: list[uuid.UUID],
    strava_runtime: StravaRuntime,
) -> None:
    runner = _link(api, athlete, enqueued)
    queued = runner.post("/api/v1/strava/sync", {})
    assert queued.status_code == 202
    assert queued.json() == {"sync_run_id": str(enqueued[-1]), "state": "queued"}
    with session_scope() as session:
        run = session.get(SyncRun, enqueued[-1])
        assert run is not None
        run.state = "running"
        run.started_at = utcnow()
    running = runner.post("/api/v1/strava/sync", {})
    assert running.json() == {"sync_run_id": str(enqueued[-1]), "state": "running"}
    assert len(enqueued) == 1
    with session_scope() as session:
        count = session.scalar(
            select(func.count()).select_from(SyncRun).where(SyncRun.runner_id == _rid(runner))
        )
    assert count == 1


def test_a_duplicate_task_message_does_nothing(
    api: TestClient,
    athlete: dict[str, Any],
    enqueued: list[uuid.UUID],
    strava_runtime: StravaRuntime,
) -> None:
    _link(api, athlete, enqueued)
    assert run_sync(strava_runtime, enqueued[-1]).result == "ok"
    assert run_sync(strava_runtime, enqueued[-1]).result == "skipped"
    assert run_sync(strava_runtime, enqueued[-1], redelivered=True).result == "skipped"


def test_a_run_declared_lost_after_its_last_renewal_is_left_as_the_sweep_wrote_it(
    api: TestClient,
    athlete: dict[str, Any],
    enqueued: list[uuid.UUID],
    strava_runtime: StravaRuntime,
) -> None:
    # The finishing UPDATE only touches the run while this attempt still holds it: a sweep that
    # failed the run during the empty last page (after the lease's last renewal) keeps its word,
    # and nothing of the listing is written.
    runner = _link(api, athlete, enqueued)
    run_id = enqueued[-1]
    seen: list[int | None] = []

    def client_for(hook: Callable[[ResponseInfo], None]) -> StravaClient:
        def noted(info: ResponseInfo) -> None:
            hook(info)
            seen.append(info.status)
            if len(seen) == 2:  # the empty page 2: declared lost by the tick meanwhile
                with session_scope() as session:
                    session.execute(
                        update(SyncRun)
                        .where(SyncRun.id == run_id)
                        .values(state="finished", result="failed", error_code="sync_failed")
                    )

        return strava_runtime.client_for(noted)

    outcome = run_sync(replace(strava_runtime, client_for=client_for), run_id)

    assert outcome.result == "skipped"
    assert len(seen) == 2
    run = _run(run_id)
    assert (run.state, run.result, run.error_code, run.fetched) == (
        "finished",
        "failed",
        "sync_failed",
        0,
    )
    assert not _workouts(runner)
    assert _link_row(runner).last_sync_at is None
