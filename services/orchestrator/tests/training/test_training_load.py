"""The 28-day training load of the profile summary (docs/contract.md §3 TrainingLoad)."""

from __future__ import annotations

import uuid
from datetime import timedelta

from app.clock import utcnow
from app.strava.runtime import StravaRuntime
from factories import synced_runner
from fastapi.testclient import TestClient
from strava_emulator.testing import EmulatorHandle


def test_training_load_summarises_the_synced_runs(
    api: TestClient,
    emulator: EmulatorHandle,
    enqueued: list[uuid.UUID],
    strava_runtime: StravaRuntime,
) -> None:
    athlete = emulator.admin.create_athlete(history_days=0)
    now = utcnow()
    for days_ago, distance, sport in [
        (1, 10_000.0, "Run"),
        (3, 5_000.0, "TrailRun"),
        (9, 21_100.0, "Run"),
        (16, 8_000.0, "VirtualRun"),
        (2, 40_000.0, "Ride"),  # not a run
        (40, 30_000.0, "Run"),  # outside the 28 days
    ]:
        emulator.admin.create_activity(
            athlete["id"],
            sport_type=sport,
            distance=distance,
            moving_time=int(distance / 3),
            start_date=now - timedelta(days=days_ago),
        )
    runner = synced_runner(api, athlete, enqueued, strava_runtime)

    training = runner.get("/api/v1/profile/summary").json()["training"]

    assert training["window_days"] == 28
    assert training["runs"] == 4
    assert training["distance_m"] == 44_100.0
    assert training["longest_run_m"] == 21_100.0
    assert len(training["weeks"]) == 4
    assert [week["runs"] for week in training["weeks"]] == [0, 1, 1, 2]
    assert training["weeks"][-1]["distance_m"] == 15_000.0
    assert training["acute_chronic_ratio"] == round(15_000.0 / (44_100.0 / 4), 2)
