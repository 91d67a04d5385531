"""/api/v3: authentication, scopes, pagination, ordering, filters and Fault bodies."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx2
import pytest
from fastapi.testclient import TestClient
from strava_emulator.app import create_app
from strava_emulator.config import EmulatorConfig
from strava_emulator.testing import EmulatorHandle, TokenResponse

MISSING_READ = (
    b'{"message":"Authorization Error","errors":[{"resource":"AccessToken",'
    b'"field":"activity:read_permission","code":"missing"}]}'
)
INVALID_TOKEN = (
    b'{"message":"Authorization Error","errors":[{"resource":"Athlete","field":"access_token",'
    b'"code":"invalid"}]}'
)
NOT_FOUND = (
    b'{"message":"Record Not Found","errors":[{"resource":"Activity","field":"id",'
    b'"code":"invalid"}]}'
)


def client_for(emu: EmulatorHandle, athlete_id: int, scope: str) -> httpx2.Client:
    token = emu.admin.issue_tokens(athlete_id, scope=scope)["access_token"]
    return httpx2.Client(
        base_url=emu.api_base_url, headers={"Authorization": f"Bearer {token}"}, timeout=10
    )


def all_pages(api: httpx2.Client, per_page: int = 50, **params: Any) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    page = 1
    while True:
        response = api.get(
            "/athlete/activities", params={**params, "page": page, "per_page": per_page}
        )
        assert response.status_code == 200, response.text
        items = response.json()
        if not items:
            return out
        out.extend(items)
        page += 1


def ts(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


# ------------------------------------------------------------------ authentication


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer " + "f" * 40}, {"Authorization": "Basic abc"}],
)
def test_missing_or_bad_tokens_get_the_recorded_401(
    emu: EmulatorHandle, headers: dict[str, str]
) -> None:
    for path in ("/athlete", "/athlete/activities", "/activities/1"):
        response = httpx2.get(emu.api_base_url + path, headers=headers)
        assert response.status_code == 401
        assert response.content == INVALID_TOKEN
        assert response.headers["content-type"] == "application/json; charset=utf-8"


def test_expired_tokens_are_invalid(emu: EmulatorHandle, api: httpx2.Client) -> None:
    assert api.get("/athlete").status_code == 200
    emu.admin.advance_clock(21600)
    response = api.get("/athlete")
    assert response.status_code == 401
    assert response.content == INVALID_TOKEN


def test_the_legacy_access_token_query_parameter_still_works(
    emu: EmulatorHandle, tokens: TokenResponse
) -> None:
    response = httpx2.get(
        f"{emu.api_base_url}/athlete", params={"access_token": tokens["access_token"]}
    )
    assert response.status_code == 200


# ------------------------------------------------------------------ athlete


def test_athlete_is_summary_without_profile_read_all(
    emu: EmulatorHandle, athlete: dict[str, Any]
) -> None:
    with client_for(emu, athlete["id"], "read") as api:
        body = api.get("/athlete").json()
    assert body["resource_state"] == 2
    assert "follower_count" not in body
    with client_for(emu, athlete["id"], "read,profile:read_all") as api:
        detailed = api.get("/athlete").json()
    assert detailed["resource_state"] == 3
    assert {"follower_count", "friend_count", "measurement_preference", "shoes", "clubs"} <= set(
        detailed
    )


# ------------------------------------------------------------------ scopes


def test_read_only_token_cannot_list_activities(
    emu: EmulatorHandle, athlete: dict[str, Any]
) -> None:
    with client_for(emu, athlete["id"], "read,profile:read_all") as api:
        listing = api.get("/athlete/activities")
        one = api.get(f"/activities/{emu.admin.list_activities(athlete['id'])[0]['id']}")
    assert listing.status_code == 401
    assert listing.content == MISSING_READ
    assert one.status_code == 401
    assert one.content == MISSING_READ


def test_activity_read_hides_only_me_activities(
    emu: EmulatorHandle, athlete: dict[str, Any]
) -> None:
    with client_for(emu, athlete["id"], "activity:read") as api:
        public = all_pages(api)
        private = [a for a in emu.admin.list_activities(athlete["id"]) if a["private"]]
        assert private, "every generated history has an only_me activity"
        assert api.get(f"/activities/{private[0]['id']}").content == NOT_FOUND
    with client_for(emu, athlete["id"], "activity:read_all") as api:
        everything = all_pages(api)
        assert api.get(f"/activities/{private[0]['id']}").status_code == 200
    assert all(a["visibility"] != "only_me" for a in public)
    assert {a["id"] for a in everything} - {a["id"] for a in public} == {
        a["id"] for a in everything if a["visibility"] == "only_me"
    }
    assert any(a["visibility"] == "followers_only" for a in public)


# ------------------------------------------------------------------ pagination and ordering


def test_default_and_maximum_page_sizes(api: httpx2.Client) -> None:
    assert len(api.get("/athlete/activities").json()) == 30
    assert len(api.get("/athlete/activities", params={"per_page": 500}).json()) == len(
        api.get("/athlete/activities", params={"per_page": 200}).json()
    )


def test_default_order_is_newest_first_and_past_the_end_is_empty(api: httpx2.Client) -> None:
    items = all_pages(api, per_page=7)
    starts = [ts(a["start_date"]) for a in items]
    assert starts == sorted(starts, reverse=True)
    assert api.get("/athlete/activities", params={"page": 999}).json() == []


def test_after_only_is_oldest_first(emu: EmulatorHandle, api: httpx2.Client) -> None:
    after = int((emu.admin.clock_now() - timedelta(days=28)).timestamp())
    items = all_pages(api, per_page=5, after=after)
    starts = [ts(a["start_date"]) for a in items]
    assert starts == sorted(starts)
    assert starts[0] >= after
    assert len(items) >= 15


def test_before_and_after_together_are_newest_first(
    emu: EmulatorHandle, api: httpx2.Client
) -> None:
    now = emu.admin.clock_now()
    after = int((now - timedelta(days=40)).timestamp())
    before = int((now - timedelta(days=10)).timestamp())
    items = all_pages(api, per_page=10, after=after, before=before)
    starts = [ts(a["start_date"]) for a in items]
    assert starts == sorted(starts, reverse=True)
    assert all(after <= s <= before for s in starts)
    only_before = all_pages(api, before=before)
    assert all(ts(a["start_date"]) <= before for a in only_before)


@pytest.mark.parametrize("field", ["after", "before"])
def test_millisecond_timestamps_are_a_future_bad_request(
    emu: EmulatorHandle, api: httpx2.Client, field: str
) -> None:
    millis = int(emu.admin.clock_now().timestamp() * 1000)
    response = api.get("/athlete/activities", params={field: millis})
    assert response.status_code == 400
    assert response.content == (
        b'{"message":"Bad Request","errors":[{"resource":"Application","field":"'
        + field.encode()
        + b'","code":"future"}]}'
    )


def test_new_activities_appear_as_the_clock_moves_on(
    emu: EmulatorHandle, athlete: dict[str, Any], api: httpx2.Client
) -> None:
    before = {a["id"] for a in all_pages(api)}
    emu.admin.advance_clock(7 * 86400)
    with client_for(emu, athlete["id"], "activity:read_all") as later:  # the old token expired
        after = {a["id"] for a in all_pages(later)}
    assert before < after
    assert len(after - before) >= 3


# ------------------------------------------------------------------ single activity and paths


def test_activity_detail_is_resource_state_3(
    emu: EmulatorHandle, tokens: TokenResponse, api: httpx2.Client
) -> None:
    summary = api.get("/athlete/activities", params={"per_page": 1}).json()[0]
    detail = api.get(f"/activities/{summary['id']}").json()
    assert detail["resource_state"] == 3
    assert detail["id"] == summary["id"]
    assert {"description", "calories", "laps", "splits_metric", "photos"} <= set(detail)
    assert detail["map"]["summary_polyline"] == summary["map"]["summary_polyline"]


def test_someone_elses_or_an_unknown_activity_is_not_found(
    emu: EmulatorHandle, api: httpx2.Client
) -> None:
    stranger = emu.admin.create_athlete()
    theirs = emu.admin.list_activities(stranger["id"])[0]["id"]
    for path in (f"/activities/{theirs}", "/activities/123", "/activities/abc"):
        response = api.get(path)
        assert response.status_code == 404
        assert response.content == NOT_FOUND


def test_unknown_api_paths_are_fault_shaped(api: httpx2.Client) -> None:
    for method, path in (("GET", "/segments/starred/nope"), ("POST", "/athlete")):
        response = api.request(method, path)
        assert response.status_code == 404
        assert response.json()["message"] == "Record Not Found"
        assert response.headers["x-ratelimit-usage"]


def test_admin_edits_show_up_in_the_api(
    emu: EmulatorHandle, athlete: dict[str, Any], api: httpx2.Client
) -> None:
    start = emu.admin.clock_now() - timedelta(hours=2)
    created = emu.admin.create_activity(
        athlete["id"],
        name="Parkrun",
        sport_type="Run",
        distance=5000.0,
        moving_time=1200,
        start_date=start,
        workout_type=1,
    )
    assert created["id"] > 2**32
    assert created["start_date"] == start.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert created["average_speed"] == pytest.approx(5000 / 1200, abs=0.001)
    newest = api.get("/athlete/activities", params={"per_page": 5}).json()
    assert created["id"] in [a["id"] for a in newest]
    updated = emu.admin.update_activity(created["id"], name="Parkrun PB", visibility="only_me")
    assert updated["private"] is True
    detail = api.get(f"/activities/{created['id']}").json()
    assert detail["name"] == "Parkrun PB"
    emu.admin.delete_activity(created["id"])
    assert api.get(f"/activities/{created['id']}").status_code == 404
    with pytest.raises(httpx2.HTTPStatusError):
        emu.admin.delete_activity(created["id"])


def test_same_seed_same_data_other_seed_other_data() -> None:
    def snapshot(seed: int) -> tuple[bytes, bytes]:
        config = EmulatorConfig(seed=seed, athletes=2, history_days=30)
        with TestClient(create_app(config)) as client:
            athlete_id = client.get("/_emulator/athletes").json()["items"][1]["id"]
            token = client.post(f"/_emulator/athletes/{athlete_id}/tokens").json()
            headers = {"Authorization": f"Bearer {token['access_token']}"}
            listing = client.get("/api/v3/athlete/activities?per_page=200", headers=headers)
            athlete = client.get("/api/v3/athlete", headers=headers)
            return listing.content, athlete.content

    assert snapshot(7) == snapshot(7)
    assert snapshot(7) != snapshot(8)
