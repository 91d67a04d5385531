"""GET /workouts with hostile filters (issue 10 item 8): the attack's exact values, control
characters and cursors that decode to nonsense are a 400 `invalid_request`, never a 500; what the
schema declares is what the service accepts (item 18)."""

from __future__ import annotations

import base64
import re
from typing import Any

import pytest
from factories import Runner, new_runner
from fastapi.testclient import TestClient

WORKOUTS = "/api/v1/workouts"
WORKOUT_ID = "0b6f4d3e-9a1c-4f57-8e2b-5d8c7a6f1e20"


@pytest.fixture
def runner(api: TestClient) -> Runner:
    return new_runner(api)


def _cursor(raw: str) -> str:
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _assert_invalid(response: Any) -> None:
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "invalid_request"


@pytest.mark.parametrize(
    "query",
    [
        {"since": "0001-01-01T00:00:00+14:00"},  # before year 1 once in UTC
        {"until": "9999-12-31T23:59:59-14:00"},  # after year 9999 once in UTC
        {"sport_type": "Run\x00"},
        {"sport_type": "Run\x1b[2J"},
        {"sport_type": "Run\u202e"},
        {"sport_type": "Run\u0085"},
    ],
)
def test_filters_out_of_range_or_with_control_characters_are_400(
    runner: Runner, query: dict[str, str]
) -> None:
    _assert_invalid(runner.get(WORKOUTS, params=query))


@pytest.mark.parametrize(
    "raw",
    [
        f"0001-01-01T00:00:00+14:00|{WORKOUT_ID}",
        f"9999-12-31T23:59:59-14:00|{WORKOUT_ID}",
        f"2026-01-01T00:00:00+00:00|{WORKOUT_ID}|extra",
        "2026-01-01T00:00:00+00:00|not-a-uuid",
    ],
)
def test_a_cursor_that_decodes_to_nonsense_is_400(runner: Runner, raw: str) -> None:
    _assert_invalid(runner.get(WORKOUTS, params={"cursor": _cursor(raw)}))


def test_extreme_but_representable_filters_still_work(runner: Runner) -> None:
    response = runner.get(
        WORKOUTS,
        params={
            "since": "0001-01-01T00:00:00+00:00",
            "until": "9999-12-31T23:59:59+00:00",
            "sport_type": "TrailRun",
        },
    )
    assert response.status_code == 200, response.text
    assert response.json() == {"items": [], "next_cursor": None}


def test_the_schema_declares_the_filters_the_service_accepts(api: TestClient) -> None:
    parameters = {
        parameter["name"]: parameter["schema"]
        for parameter in api.get("/openapi.json").json()["paths"][WORKOUTS]["get"]["parameters"]
    }
    # The patterns sit beside `anyOf` (string or null): JSON Schema applies them to strings only.
    sport_type = parameters["sport_type"]
    assert not re.fullmatch(sport_type["pattern"], "Run\u202e")
    assert re.fullmatch(sport_type["pattern"], "TrailRun")
    cursor = parameters["cursor"]
    assert cursor["anyOf"][0]["maxLength"] == 200
    assert re.fullmatch(cursor["pattern"], _cursor(f"2026-01-01T00:00:00+00:00|{WORKOUT_ID}"))
