"""Hostile input is a clear 422/400 with a stable code, never a 500 or stored as something else
(issue 10 items 8, 16 and 18)."""

from __future__ import annotations

from typing import Any

import pytest
from factories import Runner, new_runner
from fastapi.testclient import TestClient

PROFILE = "/api/v1/profile"


@pytest.fixture
def runner(api: TestClient) -> Runner:
    return new_runner(api, name="Jane Doe")


def _stored_profile(runner: Runner) -> dict[str, Any]:
    response = runner.get(f"{PROFILE}/summary")
    assert response.status_code == 200, response.text
    profile: dict[str, Any] = response.json()["profile"]
    return profile


def _assert_refused(response: Any, field: str) -> None:
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["error"] == "invalid_request"
    assert [field] in [problem["loc"][-1:] for problem in body["detail"]["problems"]]


@pytest.mark.parametrize(
    "name",
    [
        "evil\u202egnp.exe",  # right-to-left override
        "\u202aJane",  # left-to-right embedding
        "Jane\u2067",  # right-to-left isolate
        "Jane\u0085Doe",  # C1 next line
        "Jane\u009bDoe",  # C1 control sequence introducer
        "Jane\x1b[31mDoe",  # ANSI escape (C0)
        "Jane\x7f",  # DEL
        "\u200b\u200b\u200b",  # zero-width spaces only
        " \u200d\ufeff\u2060 ",  # zero-width joiner, BOM, word joiner
        "\u3164",  # Hangul filler: a blank that is not whitespace
        "\u00a0\u2003",  # no-break and em spaces
    ],
)
def test_display_name_refuses_bidi_overrides_controls_and_blank_names(
    runner: Runner, name: str
) -> None:
    _assert_refused(runner.put(PROFILE, {"display_name": name}), "display_name")
    assert _stored_profile(runner)["display_name"] == "Jane Doe"  # nothing was overwritten


@pytest.mark.parametrize("name", ["Zoë", "محمد", "李小龍", "Anne-Marie O'Neil", "e\u0301mile"])
def test_display_name_keeps_real_names_of_every_script(runner: Runner, name: str) -> None:
    response = runner.put(PROFILE, {"display_name": f"  {name} "})
    assert response.status_code == 200, response.text
    assert response.json()["display_name"] == name


@pytest.mark.parametrize(
    "zone", ["Europe/Ber\x00lin", "Mars/Olympus", "../../etc/passwd", "+01:00"]
)
def test_timezone_must_be_an_iana_zone_name(runner: Runner, zone: str) -> None:
    _assert_refused(runner.put(PROFILE, {"display_name": "Jane", "timezone": zone}), "timezone")
    assert _stored_profile(runner)["timezone"] is None


def test_an_iana_timezone_is_stored(runner: Runner) -> None:
    response = runner.put(PROFILE, {"display_name": "Jane", "timezone": "America/Sao_Paulo"})
    assert response.status_code == 200, response.text
    assert _stored_profile(runner)["timezone"] == "America/Sao_Paulo"


@pytest.mark.parametrize("goal", [False, True, "12", "12.5"])
def test_weekly_goal_takes_numbers_only(runner: Runner, goal: Any) -> None:
    stored = runner.put(PROFILE, {"display_name": "Jane", "weekly_distance_goal_km": 30})
    assert stored.status_code == 200
    response = runner.put(PROFILE, {"display_name": "Jane", "weekly_distance_goal_km": goal})
    _assert_refused(response, "weekly_distance_goal_km")
    assert _stored_profile(runner)["weekly_distance_goal_km"] == 30.0


def test_control_characters_in_a_path_reach_the_access_log_escaped(
    api: TestClient, capfd: pytest.CaptureFixture[str]
) -> None:
    capfd.readouterr()
    response = api.get("/api/v1/%1b%5b2J%1b%5b31mowned%1b%5b0m%07%e2%80%ae")
    assert response.status_code == 404
    captured = capfd.readouterr()
    logs = captured.out + captured.err
    (line,) = [line for line in logs.splitlines() if "http.request" in line]
    assert "\x1b" not in logs
    assert "\u202e" not in logs
    assert "\\x1b[2J\\x1b[31mowned\\x1b[0m\\x07\\u202e" in line
