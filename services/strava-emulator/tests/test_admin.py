"""The /_emulator admin API and the typed client over it; the console command."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx2
import pytest
from strava_emulator.testing import EmulatorHandle


def test_athletes_list_create_and_page(emu: EmulatorHandle) -> None:
    seeded = emu.admin.list_athletes()
    assert len(seeded) == emu.config.athletes
    created = emu.admin.create_athlete(firstname="Ada", lastname="Runner", history_days=3)
    assert (created["firstname"], created["lastname"]) == ("Ada", "Runner")
    assert created["history_days"] == 3
    assert created["id"] not in {a["id"] for a in seeded}
    assert emu.admin.list_athletes(offset=len(seeded), limit=10) == [created]
    short = emu.admin.list_activities(created["id"])
    assert 0 < len(short) <= 12  # three days, plus the guaranteed odd cases


def test_fresh_athletes_do_not_share_state(emu: EmulatorHandle) -> None:
    one, two = emu.admin.create_athlete(), emu.admin.create_athlete()
    assert one["id"] != two["id"]
    ids_one = {a["id"] for a in emu.admin.list_activities(one["id"])}
    ids_two = {a["id"] for a in emu.admin.list_activities(two["id"])}
    assert ids_one
    assert not ids_one & ids_two


def test_created_activity_defaults_are_a_complete_summary(
    emu: EmulatorHandle, athlete: dict[str, Any]
) -> None:
    created = emu.admin.create_activity(athlete["id"])
    assert created["sport_type"] == "Run"
    assert created["athlete"]["id"] == athlete["id"]
    assert created["resource_state"] == 2
    assert created["available_at"] <= emu.admin.clock_now().strftime("%Y-%m-%dT%H:%M:%SZ")
    manual = emu.admin.create_activity(athlete["id"], manual=True, has_heartrate=False)
    assert manual["map"]["summary_polyline"] == ""
    assert manual["start_latlng"] == []
    assert "average_heartrate" not in manual
    unknown = emu.admin.create_activity(athlete["id"], sport_type="Hyrox")
    assert unknown["type"] == "Workout"


def test_start_date_local_follows_the_athletes_timezone(
    emu: EmulatorHandle, athlete: dict[str, Any]
) -> None:
    start = datetime(2026, 1, 15, 7, 0, tzinfo=UTC)
    created = emu.admin.create_activity(athlete["id"], start_date=start)
    local = datetime.fromisoformat(created["start_date_local"].replace("Z", "+00:00"))
    assert (local - start).total_seconds() == created["utc_offset"]


def test_admin_errors(emu: EmulatorHandle) -> None:
    with pytest.raises(httpx2.HTTPStatusError) as missing:
        emu.admin.create_activity(1, name="nobody's")
    assert missing.value.response.status_code == 404
    with pytest.raises(httpx2.HTTPStatusError) as invalid:
        emu.admin.create_activity(emu.admin.list_athletes()[0]["id"], distnace=5.0)
    assert invalid.value.response.status_code == 422
    with pytest.raises(httpx2.HTTPStatusError):
        emu.admin.update_activity(42, name="x")


def test_clock_moves_and_jumps(emu: EmulatorHandle) -> None:
    before = emu.admin.clock_now()
    moved = emu.admin.advance_clock(3600)
    assert timedelta(seconds=3590) <= moved - before <= timedelta(seconds=3700)
    target = datetime(2030, 5, 1, 12, 0, tzinfo=UTC)
    jumped = emu.admin.set_clock(target)
    assert target <= jumped < target + timedelta(seconds=60)
    with pytest.raises(httpx2.HTTPStatusError):
        httpx2.post(f"{emu.base_url}/_emulator/clock", json={}).raise_for_status()


def test_reset_restores_the_seeded_state(emu: EmulatorHandle) -> None:
    seeded = emu.admin.list_athletes()
    first = seeded[0]["id"]
    original = [a["id"] for a in emu.admin.list_activities(first)]
    emu.admin.create_athlete()
    emu.admin.delete_activity(original[0])
    emu.admin.advance_clock(86400 * 3)
    emu.admin.add_fault("/api/v3/athlete")
    emu.admin.set_rate_limits(read_usage=(50, 50))
    emu.admin.reset()
    assert emu.admin.list_athletes() == seeded
    assert [a["id"] for a in emu.admin.list_activities(first)] == original
    assert abs((emu.admin.clock_now() - datetime.now(UTC)).total_seconds()) < 60
    assert emu.admin.get_rate_limits()["read_usage"] == [0, 0]
    assert httpx2.get(f"{emu.base_url}/_emulator/faults").json() == {"items": []}


def test_admin_is_not_under_the_strava_paths(emu: EmulatorHandle) -> None:
    assert emu.admin.healthz()
    response = httpx2.get(f"{emu.base_url}/api/v3/_emulator/healthz")
    assert response.status_code in (401, 404)
    assert "x-ratelimit-usage" not in httpx2.get(f"{emu.base_url}/_emulator/healthz").headers


def test_console_command_serves() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    command = [
        sys.executable,
        "-m",
        "strava_emulator.cli",
        "serve",
        "--port",
        str(port),
        "--athletes",
        "2",
        "--seed",
        "9",
        "--callback-domain",
        "oauth",
    ]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:  # readiness poll
            assert process.poll() is None, process.stderr.read() if process.stderr else ""
            try:
                if httpx2.get(f"{base}/_emulator/healthz", timeout=1).status_code == 200:
                    break
            except httpx2.TransportError:
                assert time.monotonic() < deadline
                time.sleep(0.05)
        athletes = httpx2.get(f"{base}/_emulator/athletes").json()["items"]
        assert len(athletes) == 2
        redirect = httpx2.get(
            f"{base}/oauth/authorize",
            params={
                "client_id": 1000,
                "redirect_uri": "coachai://oauth/cb",
                "response_type": "code",
                "emulator_athlete_id": athletes[0]["id"],
            },
        )
        assert redirect.status_code == 302
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_a_request_that_began_before_the_log_was_cleared_is_not_logged_after_it() -> None:
    # Requests are logged when they end: one held by a latency fault past a clear (its client
    # killed long before) would otherwise show up in the next test's fresh log.
    from strava_emulator.requestlog import RequestLog

    log = RequestLog()
    began = log.generation
    log.clear()
    log.record(
        method="GET", path="/x", query={}, status=499, athlete_id=None, at="", generation=began
    )
    log.record(method="GET", path="/y", query={}, status=200, athlete_id=None, at="")
    assert [entry["path"] for entry in log.find()] == ["/y"]
