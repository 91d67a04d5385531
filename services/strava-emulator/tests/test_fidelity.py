"""Fidelity: responses validate against stravalib's models of Strava's own schema, and
stravalib's real ``Client`` works against the emulator end to end."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx2
import pytest
import requests
import time_machine
from pydantic import BaseModel, ValidationError
from requests.adapters import HTTPAdapter
from strava_emulator.testing import EmulatorHandle, TokenResponse
from stravalib import exc, model, strava_model
from stravalib.client import Client
from stravalib.util.limiter import get_rates_from_response_headers

STRAVA = "https://www.strava.com"


def assert_valid(schema: type[BaseModel], payload: dict[str, Any]) -> None:
    """Validate against the official schema, allowing only the two documented deviations
    where real Strava is looser than its own swagger: ``[]`` for an activity without GPS
    (recorded), and sport types newer than the enum (which come with ``type: Workout``)."""
    try:
        schema.model_validate(payload)
    except ValidationError as error:
        for problem in error.errors():
            field = problem["loc"][0]
            if field in ("start_latlng", "end_latlng") and payload[str(field)] == []:
                continue
            if field == "sport_type" and payload["type"] == "Workout":
                continue
            raise


def every_activity(api: httpx2.Client) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    page = 1
    while batch := api.get("/athlete/activities", params={"page": page, "per_page": 200}).json():
        items.extend(batch)
        page += 1
    return items


def test_activity_lists_validate_as_summary_activities(api: httpx2.Client) -> None:
    activities = every_activity(api)
    assert len(activities) > 40
    for activity in activities:
        assert_valid(strava_model.SummaryActivity, activity)
        model.SummaryActivity.model_validate(activity)  # stravalib's relaxed model: no excuses


def test_every_swagger_summary_field_is_present_with_the_right_type(api: httpx2.Client) -> None:
    # Strava omits the power group (watts, kilojoules) on activities without power.
    power = {"average_watts", "kilojoules", "device_watts", "max_watts", "weighted_average_watts"}
    for activity in every_activity(api):
        expected = set(strava_model.SummaryActivity.model_fields) - power
        assert expected <= set(activity), expected - set(activity)
        assert isinstance(activity["id"], int)
        assert isinstance(activity["distance"], float)
        assert isinstance(activity["moving_time"], int)
        assert isinstance(activity["utc_offset"], float)
        assert activity["resource_state"] == 2
        assert activity["athlete"] == {"id": activity["athlete"]["id"], "resource_state": 1}


def test_activity_details_validate_as_detailed_activities(api: httpx2.Client) -> None:
    for activity in every_activity(api)[:40]:
        detail = api.get(f"/activities/{activity['id']}").json()
        assert_valid(strava_model.DetailedActivity, detail)
        model.DetailedActivity.model_validate(detail)
        for lap in detail["laps"]:
            strava_model.Lap.model_validate(lap)
        for split in detail["splits_metric"]:
            strava_model.Split.model_validate(split)


def test_athletes_validate(emu: EmulatorHandle, athlete: dict[str, Any]) -> None:
    for scope, schema in (
        ("read", strava_model.SummaryAthlete),
        ("read,profile:read_all", strava_model.DetailedAthlete),
    ):
        token = emu.admin.issue_tokens(athlete["id"], scope=scope)
        strava_model.SummaryAthlete.model_validate(token["athlete"])
        body = httpx2.get(
            f"{emu.api_base_url}/athlete",
            headers={"Authorization": f"Bearer {token['access_token']}"},
        ).json()
        schema.model_validate(body)
        assert body["id"] == athlete["id"]


def test_error_bodies_validate_as_faults(emu: EmulatorHandle, api: httpx2.Client) -> None:
    bodies = [
        httpx2.get(f"{emu.api_base_url}/athlete").json(),
        api.get("/activities/1").json(),
        api.get("/athlete/activities", params={"after": 10**13}).json(),
        httpx2.post(f"{emu.oauth_base_url}/token", data={"client_id": "1"}).json(),
    ]
    for body in bodies:
        fault = strava_model.Fault.model_validate(body)
        assert fault.message
        assert fault.errors
        assert set(body) == {"message", "errors"}


# ------------------------------------------------------------------ stravalib's Client


class ToEmulator(HTTPAdapter):
    """Sends stravalib's https://www.strava.com requests to the emulator instead."""

    def __init__(self, base_url: str) -> None:
        super().__init__()
        self.base_url = base_url

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> Any:
        assert request.url is not None
        request.url = request.url.replace(STRAVA, self.base_url, 1)
        return super().send(request, *args, **kwargs)


@pytest.fixture
def session(emu: EmulatorHandle) -> Iterator[requests.Session]:
    with requests.Session() as http:
        http.mount(STRAVA, ToEmulator(emu.base_url))
        yield http


def test_stravalib_client_full_flow(emu: EmulatorHandle, session: requests.Session) -> None:
    athlete = emu.admin.create_athlete(history_days=300)  # more than one page of 200
    client = Client(requests_session=session)
    url = client.authorization_url(
        client_id=emu.config.client_id,
        redirect_uri="http://localhost/authorized",
        scope=["read", "activity:read_all"],
        state="from-stravalib",
    )
    assert url.startswith(f"{STRAVA}/oauth/authorize?")
    redirect = session.get(f"{url}&emulator_athlete_id={athlete['id']}", allow_redirects=False)
    callback = parse_qs(urlsplit(redirect.headers["location"]).query)
    assert callback["state"] == ["from-stravalib"]
    assert callback["scope"] == ["read,activity:read_all"]

    exchanged = client.exchange_code_for_token(
        client_id=emu.config.client_id,
        client_secret=emu.config.client_secret,
        code=callback["code"][0],
        return_athlete=True,
    )
    assert isinstance(exchanged, tuple)
    access, returned_athlete = exchanged
    assert returned_athlete is not None
    assert returned_athlete.id == athlete["id"]

    me = client.get_athlete()
    assert me.id == athlete["id"]
    assert me.firstname == athlete["firstname"]

    activities = list(client.get_activities())
    now = emu.admin.clock_now()
    uploaded = [  # read_all: everything uploaded by now
        a["id"]
        for a in emu.admin.list_activities(athlete["id"])
        if datetime.fromisoformat(a["available_at"]) <= now
    ]
    assert [a.id for a in activities] == uploaded
    assert all(a.start_date is not None for a in activities)
    assert len(activities) > 200

    assert activities[0].id is not None
    detail = client.get_activity(activities[0].id)
    assert detail.id == activities[0].id
    assert detail.laps is not None  # only the detailed representation has laps

    refreshed = client.refresh_access_token(
        client_id=emu.config.client_id,
        client_secret=emu.config.client_secret,
        refresh_token=access["refresh_token"],
    )
    assert refreshed["refresh_token"] != access["refresh_token"]
    assert client.get_athlete().id == athlete["id"]

    client.deauthorize()
    with pytest.raises(exc.AccessUnauthorized):
        client.get_athlete()


def test_stravalib_reads_the_rate_limit_headers(
    tokens: TokenResponse, session: requests.Session
) -> None:
    client = Client(access_token=tokens["access_token"], requests_session=session)
    # Frozen mid-quarter so that both calls land in the same 15-minute window.
    with time_machine.travel(datetime(2026, 3, 10, 9, 7, 30, tzinfo=UTC), tick=False):
        client.get_athlete()
        response = session.get(
            f"{STRAVA}/api/v3/athlete",
            headers={"Authorization": f"Bearer {tokens['access_token']}"},
        )
    rates = get_rates_from_response_headers(dict(response.headers), "GET")
    assert rates is not None
    assert (rates.short_limit, rates.long_limit) == (100, 1000)
    assert rates.short_usage == 2


def test_stravalib_raises_its_own_errors(tokens: TokenResponse, session: requests.Session) -> None:
    client = Client(access_token=tokens["access_token"], requests_session=session)
    with pytest.raises(exc.ObjectNotFound):
        client.get_activity(12345)
    with pytest.raises(exc.AccessUnauthorized):
        Client(access_token="0" * 40, requests_session=session).get_athlete()
