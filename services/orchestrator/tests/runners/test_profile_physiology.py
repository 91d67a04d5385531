"""The runner's physiology in the profile (issue 12): optional, validated, kept when left out."""

from __future__ import annotations

from typing import Any

import pytest
from factories import new_runner
from fastapi.testclient import TestClient

PHYSIOLOGY = {
    "sex": "female",
    "max_hr": 188,
    "resting_hr": 48,
    "threshold_hr": 170,
    "threshold_pace_s_per_km": 245.5,
    "ftp_w": 230,
}


def _put(runner: Any, **fields: Any) -> Any:
    return runner.put("/api/v1/profile", {"display_name": "Jane", **fields})


def test_physiology_is_stored_and_returned(api: TestClient) -> None:
    runner = new_runner(api)
    response = _put(runner, **PHYSIOLOGY)
    assert response.status_code == 200, response.text
    assert {key: response.json()[key] for key in PHYSIOLOGY} == PHYSIOLOGY
    summary = runner.get("/api/v1/profile/summary").json()
    assert {key: summary["profile"][key] for key in PHYSIOLOGY} == PHYSIOLOGY


def test_a_profile_without_physiology_reads_null(api: TestClient) -> None:
    profile = new_runner(api).get("/api/v1/profile/summary").json()["profile"]
    assert {key: profile[key] for key in PHYSIOLOGY} == dict.fromkeys(PHYSIOLOGY)


def test_leaving_physiology_out_keeps_it_and_null_clears_it(api: TestClient) -> None:
    """An older client (the web profile page) PUTs name, time zone and goal only."""
    runner = new_runner(api)
    assert _put(runner, **PHYSIOLOGY).status_code == 200
    kept = _put(runner, weekly_distance_goal_km=40).json()
    assert {key: kept[key] for key in PHYSIOLOGY} == PHYSIOLOGY
    assert kept["weekly_distance_goal_km"] == 40

    cleared = _put(runner, max_hr=None, sex=None).json()
    assert cleared["max_hr"] is None
    assert cleared["sex"] is None
    assert cleared["resting_hr"] == 48


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("max_hr", 99),  # below 100 bpm
        ("max_hr", 231),
        ("max_hr", "190"),  # strict: no strings
        ("max_hr", 190.5),  # whole beats
        ("max_hr", True),
        ("resting_hr", 24),
        ("resting_hr", 111),
        ("threshold_hr", 79),
        ("threshold_hr", 221),
        ("threshold_pace_s_per_km", 153),  # faster than 2:34 /km
        ("threshold_pace_s_per_km", 1001),  # slower than 16:40 /km
        ("threshold_pace_s_per_km", "4:00"),
        ("ftp_w", 49),
        ("ftp_w", 601),
        ("sex", "other"),
        ("sex", 1),
    ],
)
def test_implausible_or_mistyped_physiology_is_a_clear_422(
    api: TestClient, field: str, value: Any
) -> None:
    runner = new_runner(api)
    assert _put(runner, **PHYSIOLOGY).status_code == 200
    response = _put(runner, **{field: value})
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["error"] == "invalid_request"
    assert [problem["loc"] for problem in body["detail"]["problems"]] == [["body", field]]
    # Nothing stored is lost.
    stored = runner.get("/api/v1/profile/summary").json()["profile"]
    assert {key: stored[key] for key in PHYSIOLOGY} == PHYSIOLOGY


def test_heart_rates_must_rise_from_resting_to_threshold_to_max(api: TestClient) -> None:
    runner = new_runner(api)
    assert _put(runner, **PHYSIOLOGY).status_code == 200
    # Each value is plausible alone; with the stored max of 188 the threshold is not.
    response = _put(runner, threshold_hr=190)
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["error"] == "invalid_request"
    assert body["detail"]["problems"] == [
        {"loc": ["body", "max_hr"], "msg": "max_hr must be above threshold_hr (190)"}
    ]
    response = _put(runner, resting_hr=100, threshold_hr=None)
    assert response.status_code == 200, response.text
    response = _put(runner, resting_hr=105, max_hr=104)
    assert response.status_code == 422
    stored = runner.get("/api/v1/profile/summary").json()["profile"]
    assert (stored["resting_hr"], stored["threshold_hr"], stored["max_hr"]) == (100, None, 188)
