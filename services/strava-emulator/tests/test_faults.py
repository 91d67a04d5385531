"""Fault injection: each kind, count and query matching, and OAuth endpoints too."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx2
import pytest
from strava_emulator.testing import EmulatorHandle, TokenResponse

ACTIVITIES = "/api/v3/athlete/activities"


def test_status_5xx_is_a_cloudfront_html_page_once(emu: EmulatorHandle, api: httpx2.Client) -> None:
    fault_id = emu.admin.add_fault("/api/v3/athlete", status=503)
    assert fault_id
    failed = api.get("/athlete")
    assert failed.status_code == 503
    assert failed.headers["content-type"].startswith("text/html")
    assert b"CloudFront" in failed.content or b"cloudfront" in failed.content
    assert api.get("/athlete").status_code == 200
    assert [r["status"] for r in emu.admin.requests(path="/api/v3/athlete")] == [503, 200]


@pytest.mark.parametrize(
    ("status", "message"), [(429, "Rate Limit Exceeded"), (400, "Bad Request")]
)
def test_status_4xx_is_a_json_fault(
    emu: EmulatorHandle, api: httpx2.Client, status: int, message: str
) -> None:
    emu.admin.add_fault("/api/v3/athlete", status=status)
    response = api.get("/athlete")
    assert response.status_code == status
    assert response.json()["message"] == message
    assert response.headers["x-ratelimit-usage"]


def test_count_applies_to_that_many_calls(emu: EmulatorHandle, api: httpx2.Client) -> None:
    emu.admin.add_fault("/api/v3/athlete", status=502, count=2)
    assert [api.get("/athlete").status_code for _ in range(3)] == [502, 502, 200]


def test_query_subset_matching(emu: EmulatorHandle, api: httpx2.Client) -> None:
    emu.admin.add_fault(ACTIVITIES, status=500, query={"page": "2"})
    assert api.get("/athlete/activities", params={"page": 1}).status_code == 200
    assert api.get("/athlete/activities", params={"page": 2, "per_page": 5}).status_code == 500
    assert api.get("/athlete/activities", params={"page": 2}).status_code == 200


def test_path_patterns_and_method_matching(emu: EmulatorHandle, api: httpx2.Client) -> None:
    emu.admin.add_fault("/api/v3/activities/*", status=503, method="POST")
    assert api.get("/activities/1").status_code == 404  # GET does not match
    emu.admin.clear_faults()
    emu.admin.add_fault("/api/v3/activities/*", status=503)
    assert api.get("/activities/1").status_code == 503


def test_latency_then_a_normal_answer(emu: EmulatorHandle, api: httpx2.Client) -> None:
    emu.admin.add_fault("/api/v3/athlete", "latency", latency_ms=20)
    response = api.get("/athlete")
    assert response.status_code == 200
    assert response.json()["id"]


def test_timeout_holds_the_request_without_blocking_others(
    emu: EmulatorHandle, tokens: TokenResponse
) -> None:
    # The query makes the fault hit only the request meant to hang, whichever arrives first.
    emu.admin.add_fault("/api/v3/athlete", "timeout", query={"hang": "1"})
    headers = {"Authorization": f"Bearer {tokens['access_token']}"}
    with ThreadPoolExecutor(max_workers=1) as pool:
        held = pool.submit(
            httpx2.get,
            f"{emu.api_base_url}/athlete",
            params={"hang": "1"},
            headers=headers,
            # Only the read times out: a slow connect on a busy machine must not pass for it.
            timeout=httpx2.Timeout(30.0, read=1.0),
        )
        # While one request is held, the server keeps answering.
        other = httpx2.get(f"{emu.api_base_url}/athlete", headers=headers, timeout=30)
        assert other.status_code == 200
        with pytest.raises(httpx2.ReadTimeout):
            held.result()


def test_malformed_json(emu: EmulatorHandle, api: httpx2.Client) -> None:
    emu.admin.add_fault(ACTIVITIES, "malformed_json")
    response = api.get("/athlete/activities")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    with pytest.raises(json.JSONDecodeError):
        json.loads(response.content)


def test_non_json(emu: EmulatorHandle, api: httpx2.Client) -> None:
    emu.admin.add_fault(ACTIVITIES, "non_json")
    response = api.get("/athlete/activities")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    with pytest.raises(json.JSONDecodeError):
        json.loads(response.content)


def test_short_page_returns_fewer_items_but_later_pages_still_have_data(
    emu: EmulatorHandle, api: httpx2.Client
) -> None:
    emu.admin.add_fault(ACTIVITIES, "short_page", query={"page": "1"})
    first = api.get("/athlete/activities", params={"page": 1, "per_page": 10}).json()
    second = api.get("/athlete/activities", params={"page": 2, "per_page": 10}).json()
    full_first = api.get("/athlete/activities", params={"page": 1, "per_page": 10}).json()
    assert len(first) == 5
    assert first == full_first[:5]
    assert len(second) == 10


@pytest.mark.parametrize(
    "fault",
    [
        {"kind": "status", "status": 503},
        {"kind": "status", "status": 401},
        {"kind": "malformed_json"},
        {"kind": "non_json"},
    ],
)
def test_faults_apply_to_the_token_endpoint(
    emu: EmulatorHandle, athlete: dict[str, Any], fault: dict[str, Any]
) -> None:
    emu.admin.add_fault("/oauth/token", method="POST", **fault)
    tokens = emu.admin.issue_tokens(athlete["id"])
    data = {
        "client_id": emu.config.client_id,
        "client_secret": emu.config.client_secret,
        "refresh_token": tokens["refresh_token"],
        "grant_type": "refresh_token",
    }
    response = httpx2.post(f"{emu.oauth_base_url}/token", data=data)
    if fault["kind"] == "status":
        assert response.status_code == fault["status"]
    else:
        assert response.status_code == 200
        with pytest.raises(json.JSONDecodeError):
            json.loads(response.content)


def test_faults_apply_to_deauthorize(emu: EmulatorHandle, tokens: TokenResponse) -> None:
    emu.admin.add_fault("/oauth/deauthorize", method="POST", status=503, count=1)
    url = f"{emu.oauth_base_url}/deauthorize"
    data = {"access_token": tokens["access_token"]}
    assert httpx2.post(url, data=data).status_code == 503
    assert httpx2.post(url, data=data).status_code == 200


def test_clear_faults(emu: EmulatorHandle, api: httpx2.Client) -> None:
    emu.admin.add_fault("/api/v3/athlete", status=500, count=5)
    emu.admin.clear_faults()
    assert api.get("/athlete").status_code == 200


def test_request_log_filters_and_clears(emu: EmulatorHandle, api: httpx2.Client) -> None:
    api.get("/athlete")
    api.get("/athlete/activities", params={"per_page": 3})
    logged = emu.admin.requests(path=ACTIVITIES, method="GET")
    assert len(logged) == 1
    entry = logged[0]
    assert entry["query"] == {"per_page": "3"}
    assert entry["status"] == 200
    assert entry["athlete_id"] is not None
    assert entry["at"].endswith("Z")
    emu.admin.clear_requests()
    assert emu.admin.requests() == []
