"""What a sync reports: the sync-runs endpoint (docs/contract.md §3), the structured log event
and the Prometheus metrics, across processes too."""

from __future__ import annotations

import subprocess
import sys
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import structlog
from app.clock import utcnow
from app.codes import Trigger
from app.db import session_scope
from app.strava import scheduling, service
from app.strava.runtime import StravaRuntime
from app.strava.sync import run_sync
from factories import Runner, linked_runner, synced_runner
from fastapi.testclient import TestClient
from strava_emulator.testing import EmulatorHandle

SYNC_RUN_FIELDS = {
    "id",
    "trigger",
    "state",
    "started_at",
    "finished_at",
    "duration_ms",
    "window_start",
    "window_end",
    "strava_requests",
    "fetched",
    "inserted",
    "updated",
    "deleted",
    "result",
    "error_code",
    "rate_limit",
}


def _manual(runner: Runner, deps: StravaRuntime) -> None:
    ids: list[uuid.UUID] = []
    with session_scope() as session:
        scheduling.request_sync(
            session, uuid.UUID(runner.runner_id), Trigger.MANUAL, enqueue=ids.append
        )
    assert run_sync(deps, ids[0]).result == "ok"


def test_sync_runs_endpoint_lists_the_telemetry_most_recent_first(
    api: TestClient,
    athlete: dict[str, Any],
    enqueued: list[uuid.UUID],
    strava_runtime: StravaRuntime,
) -> None:
    runner = synced_runner(api, athlete, enqueued, strava_runtime)
    _manual(runner, strava_runtime)

    items = runner.get("/api/v1/strava/sync-runs").json()["items"]

    assert [item["trigger"] for item in items] == ["manual", "link"]
    latest = items[0]
    assert set(latest) >= SYNC_RUN_FIELDS
    assert latest["state"] == "finished"
    assert latest["result"] == "ok"
    assert latest["strava_requests"] == 2
    assert latest["fetched"] == items[1]["inserted"]
    assert latest["duration_ms"] >= 0
    assert set(latest["rate_limit"]) == {
        "overall_usage",
        "overall_limit",
        "read_usage",
        "read_limit",
    }
    assert all(len(pair) == 2 for pair in latest["rate_limit"].values())
    assert len(runner.get("/api/v1/strava/sync-runs", params={"limit": 1}).json()["items"]) == 1


def test_the_sync_log_event_carries_counts_and_no_activity_content(
    api: TestClient,
    athlete: dict[str, Any],
    emulator: EmulatorHandle,
    enqueued: list[uuid.UUID],
    strava_runtime: StravaRuntime,
) -> None:
    runner = linked_runner(api, athlete["id"])
    with structlog.testing.capture_logs() as logs:
        run_sync(strava_runtime, enqueued[-1])
    (event,) = [entry for entry in logs if entry["event"] == "strava.sync_finished"]
    assert event["result"] == "ok"
    assert event["inserted"] > 0
    assert {"duration_ms", "strava_requests", "fetched", "sync_run_id", "trigger"} <= set(event)
    served = emulator.admin.list_activities(athlete["id"])
    text = repr(logs)
    for act in served:
        assert act["name"] not in text
        polyline = (act.get("map") or {}).get("summary_polyline")
        if polyline:
            assert polyline not in text
    assert "heartrate" not in text
    assert runner.runner_id in text  # the run is traceable to its runner


def test_metrics_show_sync_duration_requests_rate_limits_refreshes_and_lag(
    api: TestClient,
    athlete: dict[str, Any],
    emulator: EmulatorHandle,
    enqueued: list[uuid.UUID],
    strava_runtime: StravaRuntime,
) -> None:
    runner = synced_runner(api, athlete, enqueued, strava_runtime)
    emulator.admin.create_activity(
        athlete["id"], sport_type="Run", start_date=utcnow() - timedelta(minutes=45)
    )
    with session_scope() as session:  # also make the next sync refresh its token
        link = service.get_link(session, uuid.UUID(runner.runner_id))
        assert link is not None
        link.access_token_expires_at = utcnow() + timedelta(minutes=1)
    _manual(runner, strava_runtime)

    text = api.get("/metrics").text

    assert 'strava_sync_duration_seconds_count{result="ok",trigger="manual"}' in text
    assert (
        'strava_requests_total{endpoint="GET /athlete/activities",purpose="manual",status="200"}'
        in text
    )
    assert (
        'strava_requests_total{endpoint="POST /oauth/token",purpose="manual",status="200"}' in text
    )
    assert 'strava_rate_limit_usage{limit="read",window="short"}' in text
    assert 'strava_rate_limit_limit{limit="overall",window="daily"}' in text
    assert 'strava_token_refreshes_total{outcome="ok"}' in text
    assert "strava_ingestion_lag_seconds_count" in text
    lag_count = next(
        float(line.split()[-1])
        for line in text.splitlines()
        if line.startswith("strava_ingestion_lag_seconds_count")
    )
    assert lag_count >= 1


def test_metrics_of_worker_processes_show_on_the_api(tmp_path: Path) -> None:
    """prometheus_client multiprocess mode: a 'worker' process records, an 'API' process (with
    the same PROMETHEUS_MULTIPROC_DIR) renders it."""
    env_dir = tmp_path / "metrics"
    env_dir.mkdir()
    worker = (
        "from app.strava import metrics\n"
        "metrics.observe_sync('schedule', 'ok', None, 1.5, inserted=3, updated=0, deleted=1)\n"
    )
    api = "from app.metrics import render_metrics\nprint(render_metrics().decode())\n"
    env = {"PROMETHEUS_MULTIPROC_DIR": str(env_dir), "PATH": "/usr/bin:/bin"}
    subprocess.run([sys.executable, "-c", worker], env=env, check=True)
    shown = subprocess.run(
        [sys.executable, "-c", api], env=env, check=True, capture_output=True, text=True
    ).stdout
    assert 'strava_sync_duration_seconds_count{result="ok",trigger="schedule"} 1.0' in shown
    assert 'strava_sync_activities_total{change="inserted"} 3.0' in shown
