"""The profile summary's memo of today's figures (app.training.service._FiguresMemo, issue 13):
reused while their inputs are exactly the same, and never stale after a write that changes the
answer: a sync, a webhook's ingest, an unlink, a profile edit, a retention purge, the next day,
an erasure. Each summary is compared with GET /training/load's `current`, which is computed
afresh on every request and never memoised."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
import time_machine
from app.clock import utcnow
from app.config import Settings
from app.db import get_sessionmaker
from app.strava.retention import RetentionPolicy, apply_retention
from app.strava.runtime import StravaRuntime
from app.strava.sync import run_sync
from app.strava.webhook_processing import process_runner_events
from app.training import service as training
from app.training.model import training_load_model
from factories import Runner, add_workout, linked_runner, new_runner, stored_event
from fastapi.testclient import TestClient
from strava_emulator.testing import EmulatorHandle

NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
PROFILE = {
    "display_name": "Jane",
    "timezone": "UTC",
    "max_hr": 200,
    "resting_hr": 50,
    "threshold_hr": 170,
}


@pytest.fixture
def model_runs(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """One entry per run of the model by app.training.service (the summary's and /load's)."""
    runs: list[int] = []
    real = training_load_model

    def counted(*args: Any, **kwargs: Any) -> Any:
        runs.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(training, "training_load_model", counted)
    return runs


@pytest.fixture
def frozen() -> Iterator[None]:
    with time_machine.travel(NOW, tick=False):
        yield


def summary_load(runner: Runner) -> dict[str, Any]:
    """The summary's figures, checked against the figures computed afresh."""
    response = runner.get("/api/v1/profile/summary")
    assert response.status_code == 200, response.text
    figures: dict[str, Any] = response.json()["load"]
    fresh = runner.get("/api/v1/training/load", params={"days": 7})
    assert fresh.status_code == 200, fresh.text
    assert figures == fresh.json()["current"]
    return figures


def test_the_same_inputs_compute_todays_figures_once(
    api: TestClient, model_runs: list[int], frozen: None
) -> None:
    runner = new_runner(api)
    assert runner.put("/api/v1/profile", PROFILE).status_code == 200
    add_workout(runner.runner_id, date(2026, 12, 2), moving_time_s=3600, average_heartrate=150.0)

    first = runner.get("/api/v1/profile/summary").json()
    second = runner.get("/api/v1/profile/summary").json()

    assert model_runs == [1]
    assert second == first
    assert first["load"]["weekly_load"] > 0


def test_a_profile_edit_a_new_workout_and_the_next_day_are_never_stale(
    api: TestClient, model_runs: list[int], frozen: None
) -> None:
    runner = new_runner(api)
    assert runner.put("/api/v1/profile", PROFILE).status_code == 200
    add_workout(runner.runner_id, date(2026, 12, 2), moving_time_s=3600, average_heartrate=150.0)
    before = summary_load(runner)

    assert runner.put("/api/v1/profile", {**PROFILE, "threshold_hr": 160}).status_code == 200
    edited = summary_load(runner)
    assert edited["weekly_load"] != before["weekly_load"]

    add_workout(runner.runner_id, date(2026, 12, 3), moving_time_s=1800, average_heartrate=140.0)
    added = summary_load(runner)
    assert added["weekly_load"] > edited["weekly_load"]

    with time_machine.travel(NOW + timedelta(days=1), tick=False):
        tomorrow = summary_load(runner)
    assert tomorrow["date"] == "2026-12-05"
    assert tomorrow["atl"] < added["atl"]  # a day of rest


def test_a_sync_a_webhook_an_unlink_and_an_erasure_are_never_stale(
    api: TestClient,
    emulator: EmulatorHandle,
    athlete: dict[str, Any],
    enqueued: list[uuid.UUID],
    strava_runtime: StravaRuntime,
) -> None:
    runner = linked_runner(api, athlete["id"])
    runner_id = uuid.UUID(runner.runner_id)
    nothing = summary_load(runner)  # remembered: no workouts yet
    assert nothing["weekly_load"] == 0.0

    assert run_sync(strava_runtime, enqueued[-1]).result == "ok"
    synced = summary_load(runner)
    assert synced["ctl"] > 0

    # A webhook's ingest: a run uploaded now, pushed, fetched and stored by the inbox's pass.
    activity = emulator.admin.create_activity(
        athlete["id"], sport_type="Run", start_date=utcnow() - timedelta(hours=2)
    )
    stored_event(runner_id, int(activity["id"]))
    report = process_runner_events(strava_runtime, runner_id, enqueue_sync=enqueued.append)
    assert report.outcomes == {"upserted": 1}
    pushed = summary_load(runner)
    assert pushed["atl"] > synced["atl"]

    assert runner.delete("/api/v1/strava/link").status_code == 204
    unlinked = summary_load(runner)
    assert unlinked["weekly_load"] == 0.0

    assert runner.delete("/api/v1/profile").status_code == 204
    assert runner.get("/api/v1/profile/summary").status_code == 401


def test_a_retention_purge_is_never_stale(
    api: TestClient, settings: Settings, model_runs: list[int]
) -> None:
    policy = RetentionPolicy.from_settings(settings)
    runner = new_runner(api)
    assert runner.put("/api/v1/profile", PROFILE).status_code == 200
    # Out of the sync window and its grace, but within the model's history: it feeds fitness.
    old = (utcnow() - timedelta(days=policy.window_days + policy.workout_grace_days + 3)).date()
    add_workout(runner.runner_id, old, moving_time_s=7200, average_heartrate=160.0)
    add_workout(runner.runner_id, utcnow().date() - timedelta(days=1), moving_time_s=1800)
    before = summary_load(runner)

    report = apply_retention(get_sessionmaker(), policy, batch_size=3)

    assert report.workouts_out_of_window >= 1
    after = summary_load(runner)
    assert after["ctl"] < before["ctl"]
