"""GET /api/v1/workouts after a sync (docs/contract.md §3 Workout): paging, filters, and
one runner's workouts and runs only."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

import pytest
from app.clock import utcnow
from app.strava.runtime import StravaRuntime
from factories import Runner, new_runner, synced_runner
from fastapi.testclient import TestClient
from strava_emulator.testing import EmulatorHandle

WORKOUT_FIELDS = {
    "id",
    "source",
    "source_id",
    "name",
    "sport_type",
    "is_run",
    "start_date",
    "start_date_local",
    "timezone",
    "distance_m",
    "moving_time_s",
    "elapsed_time_s",
    "elevation_gain_m",
    "average_speed_mps",
    "max_speed_mps",
    "average_heartrate",
    "max_heartrate",
    "average_cadence",
    "workout_type",
    "manual",
    "trainer",
    "visibility",
    "summary_polyline",
    "updated_at",
}


def _all_pages(runner: Runner, **params: Any) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor = None
    while True:
        query = {**params, **({"cursor": cursor} if cursor else {})}
        page = runner.get("/api/v1/workouts", params=query)
        assert page.status_code == 200, page.text
        body = page.json()
        items.extend(body["items"])
        cursor = body["next_cursor"]
        if cursor is None:
            return items


def test_workouts_endpoint_pages_newest_first_with_the_contract_fields(
    api: TestClient,
    athlete: dict[str, Any],
    enqueued: list[uuid.UUID],
    strava_runtime: StravaRuntime,
) -> None:
    runner = synced_runner(api, athlete, enqueued, strava_runtime)
    everything = _all_pages(runner, limit=200)
    paged = _all_pages(runner, limit=3)

    assert everything
    assert [item["id"] for item in paged] == [item["id"] for item in everything]
    starts = [datetime.fromisoformat(item["start_date"]) for item in everything]
    assert starts == sorted(starts, reverse=True)
    for item in everything:
        assert set(item) >= WORKOUT_FIELDS
        assert item["source"] == "strava"
        assert isinstance(item["source_id"], int)


def test_workouts_filter_by_sport_type_and_time(
    api: TestClient,
    athlete: dict[str, Any],
    enqueued: list[uuid.UUID],
    strava_runtime: StravaRuntime,
) -> None:
    runner = synced_runner(api, athlete, enqueued, strava_runtime)
    everything = _all_pages(runner, limit=200)
    runs = _all_pages(runner, sport_type="Run", limit=200)
    assert runs
    assert {item["sport_type"] for item in runs} == {"Run"}
    assert len(runs) == sum(1 for item in everything if item["sport_type"] == "Run")
    since = utcnow() - timedelta(days=7)
    recent = _all_pages(runner, since=since.isoformat(), limit=200)
    assert all(datetime.fromisoformat(item["start_date"]) >= since for item in recent)
    assert len(recent) == sum(
        1 for item in everything if datetime.fromisoformat(item["start_date"]) >= since
    )


def test_a_runner_sees_only_their_own_workouts_and_runs(
    api: TestClient,
    athlete: dict[str, Any],
    emulator: EmulatorHandle,
    enqueued: list[uuid.UUID],
    strava_runtime: StravaRuntime,
) -> None:
    mine = synced_runner(api, athlete, enqueued, strava_runtime)
    theirs = synced_runner(api, emulator.admin.create_athlete(), enqueued, strava_runtime)
    my_ids = {item["id"] for item in _all_pages(mine, limit=200)}
    their_ids = {item["id"] for item in _all_pages(theirs, limit=200)}
    assert my_ids
    assert their_ids
    assert not my_ids & their_ids
    my_runs = {item["id"] for item in mine.get("/api/v1/strava/sync-runs").json()["items"]}
    their_runs = {item["id"] for item in theirs.get("/api/v1/strava/sync-runs").json()["items"]}
    assert not my_runs & their_runs


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"sport_type": "\x00"}, "sport_type is not valid."),
        ({"since": "0001-01-01T00:00:00+05:00"}, "since is out of range."),
        ({"until": "9999-12-31T23:00:00-05:00"}, "until is out of range."),
    ],
)
def test_workouts_filters_postgres_cannot_hold_are_a_400(
    api: TestClient, params: dict[str, str], message: str
) -> None:
    response = new_runner(api).get("/api/v1/workouts", params=params)

    assert response.status_code == 400, response.text
    assert response.json() == {"error": "invalid_request", "message": message}
