"""A link whose credentials cannot be decrypted (its key removed from TOKEN_ENCRYPTION_KEYS, a
corrupt row, a ciphertext bound to another row, one shorter than a nonce) is a visible state, not
a lock-out (issue 10 item 5): status and summary answer a status document with
`key_unavailable`, unlink works without the tokens, a reconnect replaces the link, and the beat
stops scheduling it."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
import time_machine
from app.clock import utcnow
from app.db import session_scope
from app.security import KeyRing
from app.strava import scheduling, service
from app.strava.credentials import open_link
from app.strava.models import StravaLink, SyncRun
from app.strava.runtime import StravaRuntime
from app.strava.sync import run_sync
from app.workouts.models import Workout
from factories import RecordingClient, Runner, link, linked_runner, new_runner
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from strava_emulator.testing import EmulatorHandle

DEAUTHORIZE = "/oauth/deauthorize"


def _rid(runner: Runner) -> uuid.UUID:
    return uuid.UUID(runner.runner_id)


def _short_access_token(row: StravaLink) -> None:
    row.access_token_ciphertext = b"\x01\x02\x03"  # shorter than a nonce


def _moved_refresh_token(row: StravaLink) -> None:
    # A valid ciphertext of this very row, but of another column: the associated data differs.
    row.refresh_token_ciphertext = row.access_token_ciphertext


def _corrupt_athlete(row: StravaLink) -> None:
    blob = bytearray(row.athlete_ciphertext)
    blob[-1] ^= 0xFF
    row.athlete_ciphertext = bytes(blob)


def _short_athlete(row: StravaLink) -> None:
    row.athlete_ciphertext = b"\x01" * 7  # below AES-GCM's 8-byte nonce minimum: once a 500


def _unknown_key(row: StravaLink) -> None:
    row.key_id = "0" * 12  # sealed under a key no longer configured


def _spoil(runner: Runner, spoil: Callable[[StravaLink], None]) -> None:
    with session_scope() as session:
        row = service.get_link(session, _rid(runner))
        assert row is not None
        spoil(row)


def _athlete_out(athlete: dict[str, Any]) -> dict[str, Any]:
    return {key: athlete[key] for key in ("id", "firstname", "lastname")}


@pytest.mark.parametrize(
    ("spoil", "athlete_readable"),
    [
        (_short_access_token, True),
        (_moved_refresh_token, True),
        (_corrupt_athlete, False),
        (_short_athlete, False),
        (_unknown_key, False),
    ],
    ids=["short-token", "aad-mismatch", "corrupt-athlete", "short-athlete", "key-removed"],
)
def test_status_and_summary_of_an_unreadable_link_answer_a_key_unavailable_document(
    api: TestClient,
    athlete: dict[str, Any],
    enqueued: list[uuid.UUID],
    strava_runtime: StravaRuntime,
    spoil: Callable[[StravaLink], None],
    athlete_readable: bool,
) -> None:
    runner = linked_runner(api, athlete["id"])
    _spoil(runner, spoil)
    # The link's first sync meets it (the status itself reads the athlete column alone).
    assert run_sync(strava_runtime, enqueued[-1]).error_code == "key_unavailable"

    status = runner.get("/api/v1/strava/status")
    assert status.status_code == 200, status.text
    document = status.json()
    assert document["error"]["code"] == "key_unavailable"
    assert document["error"]["action"] == "none"
    assert document["athlete"] == (_athlete_out(athlete) if athlete_readable else None)
    assert document["status"] == "linked"

    summary = runner.get("/api/v1/profile/summary")
    assert summary.status_code == 200, summary.text
    assert summary.json()["strava"] == document


@pytest.mark.parametrize("spoil", [_short_access_token, _unknown_key], ids=["short", "key-removed"])
def test_unlink_of_an_unreadable_link_deletes_link_and_data_without_calling_strava(
    api: TestClient,
    athlete: dict[str, Any],
    emulator: EmulatorHandle,
    enqueued: list[uuid.UUID],
    strava_runtime: StravaRuntime,
    spoil: Callable[[StravaLink], None],
    capfd: pytest.CaptureFixture[str],
) -> None:
    runner = linked_runner(api, athlete["id"])
    assert run_sync(strava_runtime, enqueued[-1]).result == "ok"
    with session_scope() as session:
        stored = session.scalar(select(func.count()).where(Workout.runner_id == _rid(runner)))
    assert stored
    _spoil(runner, spoil)
    emulator.admin.clear_requests()

    response = runner.delete("/api/v1/strava/link")

    assert response.status_code == 204, response.text
    with session_scope() as session:
        assert service.get_link(session, _rid(runner)) is None
        assert not session.scalar(select(func.count()).where(Workout.runner_id == _rid(runner)))
    assert emulator.admin.requests(path=DEAUTHORIZE) == []  # no token to revoke with
    assert "strava.deauthorize_skipped" in capfd.readouterr().err  # and why, for the operator
    assert runner.status()["status"] == "not_linked"


@pytest.mark.parametrize(
    "spoil", [_short_access_token, _corrupt_athlete, _unknown_key], ids=lambda f: f.__name__
)
def test_a_reconnect_replaces_an_unreadable_link_and_keeps_the_fresh_tokens(
    recording_api: tuple[TestClient, RecordingClient],
    athlete: dict[str, Any],
    settings: Any,
    spoil: Callable[[StravaLink], None],
) -> None:
    api, client = recording_api
    runner = new_runner(api)
    assert link(runner, athlete["id"])[0] == 200
    _spoil(runner, spoil)

    status, body = link(runner, athlete["id"])

    assert status == 200, body
    assert body["error"] is None
    assert body["athlete"] == _athlete_out(athlete)
    fresh = client.received[-1]
    with session_scope() as session:
        row = service.get_link(session, _rid(runner))
        assert row is not None
        stored = open_link(row, KeyRing(settings.encryption_keys()))
    assert stored.access_token == fresh.access_token.get_secret_value()
    assert stored.refresh_token == fresh.refresh_token.get_secret_value()


def test_the_beat_stops_scheduling_an_unreadable_link_and_counts_it(
    api: TestClient,
    athlete: dict[str, Any],
    enqueued: list[uuid.UUID],
    strava_runtime: StravaRuntime,
) -> None:
    from app.metrics import render_metrics

    runner = linked_runner(api, athlete["id"])
    assert run_sync(strava_runtime, enqueued[-1]).result == "ok"
    _spoil(runner, _short_access_token)
    with session_scope() as session:
        row = service.get_link(session, _rid(runner))
        assert row is not None
        row.next_sync_at = utcnow() - timedelta(seconds=1)
    scheduling.tick(
        strava_runtime, enqueue=enqueued.append, stale_queued=timedelta(minutes=10), reserve=0
    )
    assert run_sync(strava_runtime, enqueued[-1]).error_code == "key_unavailable"

    # Hours later, and after any backoff: the link is never due again until it can be read.
    with time_machine.travel(utcnow() + timedelta(hours=6), tick=True):
        scheduling.tick(
            strava_runtime, enqueue=enqueued.append, stale_queued=timedelta(minutes=10), reserve=0
        )
    with session_scope() as session:
        runs = session.scalars(select(SyncRun).where(SyncRun.runner_id == _rid(runner))).all()
    assert [run.trigger for run in runs].count("schedule") == 1
    assert runner.status()["error"]["code"] == "key_unavailable"
    metrics = render_metrics().decode()
    (line,) = [
        line for line in metrics.splitlines() if line.startswith("strava_links_key_unavailable ")
    ]
    assert float(line.split()[1]) >= 1
