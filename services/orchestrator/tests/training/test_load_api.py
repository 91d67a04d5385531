"""GET /api/v1/training/load and the summary's `load` (issue 12): the model over stored workouts,
read on every request (so any change to the workouts shows at once), against hand-worked values.
"""

from __future__ import annotations

import json
import math
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
import time_machine
from app.clock import utcnow
from app.config import Settings
from app.db import session_scope
from app.strava.runtime import StravaRuntime
from app.strava.sync import run_sync
from app.training.service import runner_zone
from app.workouts.models import Workout
from factories import Runner, add_workout, linked_runner, new_runner
from fastapi.testclient import TestClient
from sqlalchemy import Engine, delete, event, func, select
from strava_emulator.testing import EmulatorHandle

NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
TODAY = NOW.date()
# The 28-day sync window starts 2026-11-06 12:00; its first whole day is the 7th.
WINDOW_FIRST_DAY = date(2026, 11, 7)
# Heart rates putting threshold at HRr (170 - 50) / (200 - 50) = 0.8 (docs/training-load.md §1.1).
PROFILE = {
    "display_name": "Jane",
    "timezone": "UTC",
    "sex": "male",
    "max_hr": 200,
    "resting_hr": 50,
    "threshold_hr": 170,
    "ftp_w": 250,
}


@pytest.fixture
def frozen() -> Iterator[None]:
    with time_machine.travel(NOW, tick=False):
        yield


def load(runner: Runner, days: int | str = 28) -> dict[str, Any]:
    response = runner.get("/api/v1/training/load", params={"days": days})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def by_date(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {day["date"]: day for day in document["days"]}


def athlete_with_loads(api: TestClient) -> Runner:
    runner = new_runner(api)
    assert runner.put("/api/v1/profile", PROFILE).status_code == 200
    # 90 min at 140 bpm: HRr 0.6. TRIMP = 90 x 0.6 x 0.64 x e^(1.92 x 0.6) = 109.37; an hour at
    # threshold = 60 x 0.8 x 0.64 x e^(1.92 x 0.8) = 142.72; load = 100 x 109.37 / 142.72 = 76.6.
    add_workout(
        runner.runner_id,
        date(2026, 12, 2),
        moving_time_s=5400,
        distance_m=15000.0,
        average_heartrate=140.0,
        max_heartrate=175.0,
    )
    # 2 h at 200 W from a power meter, FTP 250: IF 0.8, load = 100 x 2 x 0.8² = 128.
    add_workout(
        runner.runner_id,
        date(2026, 12, 3),
        sport_type="Ride",
        is_run=False,
        moving_time_s=7200,
        distance_m=60000.0,
        weighted_average_watts=200.0,
        device_watts=True,
    )
    # A manual 30-minute run: duration at the run's IF 0.75, load = 100 x 0.5 x 0.75² = 28.125,
    # whatever heart rate was typed.
    add_workout(
        runner.runner_id,
        date(2026, 12, 3),
        moving_time_s=1800,
        distance_m=5000.0,
        average_heartrate=150.0,
        manual=True,
    )
    return runner


def test_the_series_has_each_day_its_workouts_loads_and_methods(
    api: TestClient, frozen: None
) -> None:
    document = load(athlete_with_loads(api))

    assert document["window_days"] == 28
    assert document["history_start"] == WINDOW_FIRST_DAY.isoformat()
    days = document["days"]
    assert [day["date"] for day in days] == [
        (WINDOW_FIRST_DAY + timedelta(days=index)).isoformat() for index in range(28)
    ]
    assert days[-1]["date"] == TODAY.isoformat()
    daily = by_date(document)
    run = daily["2026-12-02"]
    assert run["load"] == 76.6
    [workout] = run["workouts"]
    assert (workout["method"], workout["load"], workout["heart_rate_reserve"]) == (
        "heart_rate",
        76.6,
        0.6,
    )
    two = daily["2026-12-03"]
    assert two["load"] == 156.1  # 128 + 28.125
    methods = {(w["method"], w["load"], w["intensity_factor"]) for w in two["workouts"]}
    assert methods == {("power", 128.0, 0.8), ("duration", 28.1, 0.75)}
    manual = next(w for w in two["workouts"] if w["method"] == "duration")
    assert any("manual entry" in note for note in manual["notes"])
    rest = {"2026-12-02", "2026-12-03"}
    assert {day["load"] for date_, day in daily.items() if date_ not in rest} == {0.0}

    # ATL and CTL start from the mean daily load of the history (28 days here) and follow
    # x_t = x_{t-1} e^(-1/N) + load_t (1 - e^(-1/N)); index 25 is Dec 2, 27 today (rest).
    loads = [0.0] * 28
    loads[25] = (
        100
        * 1.5
        * 60
        * 0.6
        * 0.64
        * math.exp(1.92 * 0.6)
        / (60 * 0.8 * 0.64 * math.exp(1.92 * 0.8))
    )
    loads[26] = 128.0 + 28.125
    seed = sum(loads) / 28
    atl = ctl = seed
    for day_load in loads:
        atl = atl * math.exp(-1 / 7) + day_load * (1 - math.exp(-1 / 7))
        ctl = ctl * math.exp(-1 / 42) + day_load * (1 - math.exp(-1 / 42))
    current = document["current"]
    assert (current["atl"], current["ctl"]) == (round(atl, 1), round(ctl, 1))
    assert current["form"] == round(ctl - atl, 1)
    assert (days[-1]["atl"], days[-1]["ctl"]) == (current["atl"], current["ctl"])
    assert current["weekly_load"] == round(loads[25] + loads[26], 1)
    assert current["history_days"] == 28
    assert current["provisional"] is True
    assert all(day["provisional"] for day in days)
    assert any("provisional" in sentence for sentence in current["sentences"])

    physiology = document["physiology"]
    assert physiology["trimp"] == {"label": "male", "a": 0.64, "b": 1.92}
    assert physiology["max_hr"]["value"] == 200
    assert physiology["max_hr"]["source"] == "profile"
    assert physiology["ftp_w"]["source"] == "profile"
    # No threshold pace in the profile: estimated from the 90-minute run (15 km / 5400 s).
    assert physiology["threshold_speed_mps"] == {
        "value": 2.778,
        "source": "estimated",
        "note": "threshold pace estimated from your best run of 20 minutes or more",
    }
    assert physiology["threshold_pace_s_per_km"] == 360.0


def test_the_summary_carries_todays_figures_and_flags_with_thresholds(
    api: TestClient, frozen: None
) -> None:
    runner = athlete_with_loads(api)
    summary = runner.get("/api/v1/profile/summary").json()
    assert summary["load"] == load(runner)["current"]
    assert summary["training"]["runs"] == 2  # the old fields stay
    flags = {flag["code"]: flag for flag in summary["load"]["flags"]}
    assert {code: (flag["threshold"], flag["comparison"]) for code, flag in flags.items()} == {
        "acwr_rolling_high": (1.5, "above"),
        "acwr_ewma_high": (1.5, "above"),
        "monotony_high": (2.0, "above"),
        "form_low": (-30.0, "below"),
        "ramp_rate_high": (8.0, "above"),
    }
    # All the load in the last 7 days: 7-day mean / 28-day mean = (232.7 / 7) / (232.7 / 28) = 4.
    assert flags["acwr_rolling_high"]["value"] == 4.0
    assert flags["acwr_rolling_high"]["raised"] is True
    assert any("times your usual" in sentence for sentence in summary["load"]["sentences"])


def test_workouts_stored_before_the_window_extend_the_history(
    api: TestClient, frozen: None
) -> None:
    runner = athlete_with_loads(api)
    older = date(2026, 10, 1)
    add_workout(runner.runner_id, older, moving_time_s=3600)  # Run, no heart rate or pace: 56.25
    document = load(runner)
    assert document["history_start"] == older.isoformat()
    history_days = (TODAY - older).days + 1
    assert document["current"]["history_days"] == history_days == 65
    assert document["current"]["provisional"] is False
    assert len(document["days"]) == 28  # the series is what was asked for
    # A day is final from the 42nd day of history on: Oct 1 + 41 days = Nov 11.
    final = [day["date"] for day in document["days"] if not day["provisional"]]
    assert final[0] == "2026-11-11"
    assert len(final) == 24
    # The current figures do not depend on the length of the series asked for.
    week = load(runner, days=7)
    assert len(week["days"]) == 7
    assert week["current"] == document["current"]
    year = load(runner, days=365)
    assert year["days"][0]["date"] == older.isoformat()
    assert year["days"][0]["load"] == 56.2  # round(56.25, 1): banker's rounding of 56.25
    assert year["days"][0]["provisional"] is True
    assert year["current"] == document["current"]


def test_a_runner_without_workouts_gets_zeros_and_a_plain_sentence(
    api: TestClient, frozen: None
) -> None:
    runner = new_runner(api)
    document = load(runner)
    assert len(document["days"]) == 28
    assert {day["load"] for day in document["days"]} == {0.0}
    current = document["current"]
    assert (current["atl"], current["ctl"], current["form"]) == (0.0, 0.0, 0.0)
    assert current["acwr_rolling"] is None
    assert current["sentences"] == [
        "No training load recorded yet: the figures start with your first workout."
    ]
    assert document["physiology"]["max_hr"]["source"] == "unknown"
    assert document["physiology"]["resting_hr"] == {
        "value": 60.0,
        "source": "default",
        "note": "resting heart rate assumed 60 bpm (not in your profile)",
    }


def test_local_dates_follow_the_runners_time_zone(api: TestClient, frozen: None) -> None:
    """Without the workout's own wall clock, its day is the runner's local day: 23:30 UTC on the
    2nd is the 3rd in Auckland (UTC+13 in December), and today there is already the 5th."""
    runner = new_runner(api)
    body = {"display_name": "Kiri", "timezone": "Pacific/Auckland"}
    assert runner.put("/api/v1/profile", body).is_success
    add_workout(
        runner.runner_id,
        date(2026, 12, 2),
        start_date=datetime(2026, 12, 2, 23, 30, tzinfo=UTC),
        start_date_local=None,
        moving_time_s=3600,
    )
    daily = by_date(load(runner))
    assert max(daily) == "2026-12-05"
    assert daily["2026-12-03"]["load"] == 56.2
    assert daily["2026-12-02"]["load"] == 0.0


@pytest.mark.parametrize("days", ["6", "366", "0", "-1", "many", "28.5"])
def test_days_out_of_range_or_not_a_number_is_a_clear_422(api: TestClient, days: str) -> None:
    runner = new_runner(api)
    response = runner.get("/api/v1/training/load", params={"days": days})
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["error"] == "invalid_request"
    assert [problem["loc"] for problem in body["detail"]["problems"]] == [["query", "days"]]


def test_training_load_needs_a_runner(api: TestClient) -> None:
    response = api.get("/api/v1/training/load")
    assert response.status_code == 401
    assert response.json()["error"] == "unauthenticated"


def test_every_change_to_the_workouts_shows_at_once(
    api: TestClient,
    emulator: EmulatorHandle,
    athlete: dict[str, Any],
    enqueued: list[uuid.UUID],
    strava_runtime: StravaRuntime,
) -> None:
    """Synced from the emulator over HTTP, one workout deleted, then the link removed."""
    runner = linked_runner(api, athlete["id"])
    assert load(runner)["current"]["weekly_load"] == 0.0  # nothing synced yet
    assert run_sync(strava_runtime, enqueued[-1]).result == "ok"

    document = load(runner)
    listed = [workout for day in document["days"] for workout in day["workouts"]]
    # The summary counts the window's workouts from its one query, as the status does by its own.
    in_window = runner.status()["sync"]["workouts_in_window"]
    assert in_window > 0
    summary = runner.get("/api/v1/profile/summary").json()
    assert summary["strava"]["sync"]["workouts_in_window"] == in_window
    runner_id = uuid.UUID(runner.runner_id)
    with session_scope() as session:
        start = datetime.fromisoformat(document["days"][0]["date"])
        end = datetime.fromisoformat(document["days"][-1]["date"]) + timedelta(days=1)
        stored = session.scalar(
            select(func.count())
            .select_from(Workout)
            .where(
                Workout.runner_id == runner_id,
                Workout.start_date_local >= start,
                Workout.start_date_local < end,
            )
        )
    assert listed, "the generated athlete trains in the last 28 days"
    assert len(listed) == stored
    assert {workout["method"] for workout in listed} <= {
        "heart_rate",
        "pace",
        "power",
        "duration",
    }
    assert all(workout["load"] >= 0 for workout in listed)
    total = sum(day["load"] for day in document["days"])
    assert total > 0

    gone = max(listed, key=lambda workout: workout["load"])
    with session_scope() as session:
        session.execute(delete(Workout).where(Workout.id == uuid.UUID(gone["workout_id"])))
    after = load(runner)
    ids = {workout["workout_id"] for day in after["days"] for workout in day["workouts"]}
    assert gone["workout_id"] not in ids
    assert sum(day["load"] for day in after["days"]) < total

    assert runner.delete("/api/v1/strava/link").status_code == 204
    unlinked = load(runner)
    assert {day["load"] for day in unlinked["days"]} == {0.0}
    summary = runner.get("/api/v1/profile/summary").json()
    assert summary["load"] == unlinked["current"]
    assert summary["load"]["weekly_load"] == 0.0


def test_odd_workouts_give_defined_loads_and_strict_json(api: TestClient, frozen: None) -> None:
    """The issue's edge cases stored as a sync could store them: each gets a defined load and a
    method, and the document is strict JSON (no NaN or Infinity) with every load finite."""
    runner = new_runner(api)
    assert runner.put("/api/v1/profile", PROFILE).status_code == 200
    day = date(2026, 12, 1)
    odd: dict[str, dict[str, Any]] = {
        "heart rate 0": {"moving_time_s": 3600, "average_heartrate": 0.0},
        "heart rate null": {"moving_time_s": 3600, "average_heartrate": None},
        "heart rate above max": {"moving_time_s": 3600, "average_heartrate": 250.0},
        "moving time 0": {"moving_time_s": 0, "distance_m": 5000.0},
        "moving time negative": {"moving_time_s": -60},
        "moving time null": {"moving_time_s": None},
        "distance 0": {"moving_time_s": 1800, "distance_m": 0.0, "average_speed_mps": 0.0},
        "30 hours": {"moving_time_s": 30 * 3600, "distance_m": 160_000.0},
        "unknown sport": {"sport_type": "Kitesurf", "is_run": False, "moving_time_s": 3600},
        "manual": {"manual": True, "moving_time_s": 3600, "distance_m": 42_000.0},
        "watts without a power meter": {
            "sport_type": "Ride",
            "is_run": False,
            "moving_time_s": 3600,
            "weighted_average_watts": 900.0,
            "device_watts": False,
        },
    }
    ids = {
        add_workout(runner.runner_id, day, name=name, **fields): name
        for name, fields in odd.items()
    }

    response = runner.get("/api/v1/training/load")
    assert response.status_code == 200, response.text

    def refuse(constant: str) -> None:
        raise AssertionError(f"{constant} in the JSON")

    document = json.loads(response.text, parse_constant=refuse)
    loads = {
        ids[uuid.UUID(workout["workout_id"])]: workout
        for workout in by_date(document)[day.isoformat()]["workouts"]
    }
    assert set(loads) == set(odd)
    assert all(math.isfinite(w["load"]) and w["load"] >= 0 for w in loads.values())
    assert loads["heart rate above max"]["method"] == "heart_rate"
    assert loads["heart rate above max"]["heart_rate_reserve"] == 1.0
    assert loads["heart rate 0"]["method"] != "heart_rate"
    for name in ("moving time 0", "moving time negative", "moving time null"):
        assert (loads[name]["method"], loads[name]["load"]) == ("duration", 0.0), name
    # 30 hours counted as 24 (a day holds 24 h): the pace method, capped.
    assert any("24 h" in note for note in loads["30 hours"]["notes"])
    assert loads["unknown sport"]["intensity_factor"] == 0.6
    assert loads["manual"]["method"] == "duration"
    assert loads["watts without a power meter"]["method"] == "duration"


def test_a_stored_time_zone_no_zoneinfo_knows_reads_as_utc() -> None:
    """Profiles stored before time zones were checked may hold any string: UTC, never a 500."""
    assert runner_zone("Mars/Base") is UTC
    assert runner_zone("../../etc/passwd") is UTC
    assert runner_zone(None) is UTC
    assert str(runner_zone("Europe/Berlin")) == "Europe/Berlin"


def test_the_summary_reads_the_workouts_once_without_their_json(
    api: TestClient, settings: Settings, athlete: dict[str, Any]
) -> None:
    """Cheap to read: one query of the workouts' columns serves the summary's `training`,
    `load` and the linked status's window count; the raw JSON is never read."""
    runner = linked_runner(api, athlete["id"])
    yesterday = utcnow().date() - timedelta(days=1)
    add_workout(runner.runner_id, yesterday, moving_time_s=3600, distance_m=10_000.0)
    add_workout(runner.runner_id, yesterday, sport_type="Swim", is_run=False, moving_time_s=1800)
    statements: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        statements.append(statement)

    # Every engine: the summary reads on the API's async engine (app.db.make_read_engine).
    event.listen(Engine, "before_cursor_execute", record)
    try:
        response = runner.get("/api/v1/profile/summary")
    finally:
        event.remove(Engine, "before_cursor_execute", record)
    assert response.status_code == 200, response.text
    on_workouts = [statement for statement in statements if "FROM workouts" in statement]
    assert len(on_workouts) == 1, on_workouts
    assert "workouts.raw" not in on_workouts[0]
    summary = response.json()
    assert summary["strava"]["sync"]["workouts_in_window"] == 2
    assert (
        summary["strava"]["sync"]["workouts_in_window"]
        == runner.status()["sync"]["workouts_in_window"]
    )
    assert summary["training"]["runs"] == 1
    assert summary["load"]["weekly_load"] > 0


def test_the_summary_carries_the_workouts_exactly_as_their_query_reads_them(
    api: TestClient, settings: Settings, frozen: None
) -> None:
    """On PostgreSQL the summary's one statement carries the workouts as JSON
    (training.history_json): awkward floats, whole-number floats, microseconds, a missing local
    time and a power meter's flag give the figures the workouts' own query gives."""
    from app.runners.service import get_profile
    from app.training.service import summary as training_summary

    runner = new_runner(api)
    assert runner.put("/api/v1/profile", {**PROFILE, "timezone": "America/Denver"}).status_code
    add_workout(
        runner.runner_id,
        date(2026, 12, 1),
        moving_time_s=3601,
        distance_m=0.1 + 10_000.2,  # 10000.300000000001: no short decimal reads back the same
        average_speed_mps=2.9999999999999996,
        average_heartrate=151.0,
        max_heartrate=183.33333333333334,
        start_date=datetime(2026, 12, 1, 6, 59, 59, 999_999, tzinfo=UTC),
        start_date_local=None,  # its day from the profile's zone: still Nov 30 in Denver
    )
    add_workout(
        runner.runner_id,
        date(2026, 12, 3),
        sport_type="Ride",
        is_run=False,
        moving_time_s=5400,
        distance_m=40_000.0,
        weighted_average_watts=212.7,
        device_watts=True,
    )
    add_workout(runner.runner_id, date(2026, 11, 2), moving_time_s=1800, distance_m=5e-324)

    summary = runner.get("/api/v1/profile/summary").json()

    with session_scope() as session:
        runner_id = uuid.UUID(runner.runner_id)
        expected = training_summary(
            session,
            runner_id,
            get_profile(session, runner_id),
            window_days=settings.sync_window_days,
            now=NOW,
        )
    assert summary["training"] == expected.distance.model_dump(mode="json")
    assert summary["load"] == expected.load.model_dump(mode="json")
    assert summary["load"] == load(runner)["current"]
    assert expected.distance.runs == 1
    assert expected.workouts_in_window == 2
