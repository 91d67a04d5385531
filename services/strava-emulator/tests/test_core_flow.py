"""The path every other engineer depends on: tokens, the athlete, paging activities."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx2
from strava_emulator.testing import EmulatorHandle, TokenResponse


def _callback_params(response: httpx2.Response) -> dict[str, str]:
    assert response.status_code == 302
    return {k: v[0] for k, v in parse_qs(urlsplit(response.headers["location"]).query).items()}


def test_auto_approve_then_code_exchange(emu: EmulatorHandle, athlete: dict[str, Any]) -> None:
    authorize = httpx2.get(
        f"{emu.oauth_base_url}/authorize",
        params={
            "client_id": emu.config.client_id,
            "redirect_uri": "http://localhost:8000/strava/callback",
            "response_type": "code",
            "scope": "activity:read_all,read",
            "state": "s-123",
            "emulator_athlete_id": athlete["id"],
        },
    )
    params = _callback_params(authorize)
    assert authorize.headers["location"].startswith("http://localhost:8000/strava/callback?")
    assert params["state"] == "s-123"
    assert params["scope"] == "read,activity:read_all"
    exchange = httpx2.post(
        f"{emu.oauth_base_url}/token",
        data={
            "client_id": str(emu.config.client_id),
            "client_secret": emu.config.client_secret,
            "code": params["code"],
            "grant_type": "authorization_code",
        },
    )
    assert exchange.status_code == 200
    body = exchange.json()
    assert list(body) == [
        "token_type",
        "expires_at",
        "expires_in",
        "refresh_token",
        "access_token",
        "athlete",
    ]
    assert body["athlete"]["id"] == athlete["id"]
    assert body["expires_in"] == 21600
    assert len(body["access_token"]) == 40


def test_athlete_and_paging(emu: EmulatorHandle, tokens: TokenResponse, api: httpx2.Client) -> None:
    me = api.get("/athlete")
    assert me.status_code == 200
    assert me.json()["id"] == tokens["athlete"]["id"]
    seen: list[int] = []
    page = 1
    while True:
        response = api.get("/athlete/activities", params={"page": page, "per_page": 17})
        assert response.status_code == 200
        items = response.json()
        if not items:
            break
        seen.extend(item["id"] for item in items)
        page += 1
    admin_view = emu.admin.list_activities(tokens["athlete"]["id"])
    assert len(seen) == len(set(seen)) > 30
    assert set(seen) <= {a["id"] for a in admin_view}
