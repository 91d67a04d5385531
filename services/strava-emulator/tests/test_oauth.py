"""OAuth: authorize validation and auto-approve, code exchange, refresh rules, deauthorize."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx2
import pytest
from fastapi.testclient import TestClient
from strava_emulator.app import create_app
from strava_emulator.config import EmulatorConfig
from strava_emulator.testing import EmulatorHandle

INVALID_CLIENT = (
    b'{"message":"Bad Request","errors":[{"resource":"Application","field":"client_id",'
    b'"code":"invalid"}]}'
)
INVALID_REDIRECT = (
    b'{"message":"Bad Request","errors":[{"resource":"Application","field":"redirect_uri",'
    b'"code":"invalid"}]}'
)
APPLICATION_INVALID = (
    b'{"message":"Authorization Error","errors":[{"resource":"Application","field":"",'
    b'"code":"invalid"}]}'
)
INVALID_CODE = (
    b'{"message":"Bad Request","errors":[{"resource":"RequestToken","field":"code",'
    b'"code":"invalid"}]}'
)
INVALID_REFRESH = (
    b'{"message":"Bad Request","errors":[{"resource":"RefreshToken","field":"refresh_token",'
    b'"code":"invalid"}]}'
)
INVALID_TOKEN = (
    b'{"message":"Authorization Error","errors":[{"resource":"Athlete","field":"access_token",'
    b'"code":"invalid"}]}'
)


def authorize_params(emu: EmulatorHandle, **extra: Any) -> dict[str, Any]:
    return {
        "client_id": emu.config.client_id,
        "redirect_uri": "http://localhost/exchange_token",
        "response_type": "code",
        "scope": "read,activity:read_all",
        "state": "st4te",
        **extra,
    }


def callback(response: httpx2.Response) -> dict[str, str]:
    assert response.status_code == 302, response.text
    query = urlsplit(response.headers["location"]).query
    return {k: v[0] for k, v in parse_qs(query, keep_blank_values=True).items()}


def get_code(emu: EmulatorHandle, athlete_id: int, scope: str = "read,activity:read_all") -> str:
    response = httpx2.get(
        f"{emu.oauth_base_url}/authorize",
        params=authorize_params(emu, scope=scope, emulator_athlete_id=athlete_id),
    )
    return callback(response)["code"]


def exchange(emu: EmulatorHandle, code: str, **overrides: Any) -> httpx2.Response:
    data = {
        "client_id": emu.config.client_id,
        "client_secret": emu.config.client_secret,
        "code": code,
        "grant_type": "authorization_code",
        **overrides,
    }
    return httpx2.post(f"{emu.oauth_base_url}/token", data=data)


def refresh(emu: EmulatorHandle, refresh_token: str) -> httpx2.Response:
    data = {
        "client_id": emu.config.client_id,
        "client_secret": emu.config.client_secret,
        "refresh_token": refresh_token,
        "grant_type": "refresh_token",
    }
    return httpx2.post(f"{emu.oauth_base_url}/token", data=data)


def athlete_status(emu: EmulatorHandle, access_token: str) -> int:
    response = httpx2.get(
        f"{emu.api_base_url}/athlete", headers={"Authorization": f"Bearer {access_token}"}
    )
    return response.status_code


# ------------------------------------------------------------------ authorize


def test_authorize_rejects_an_unknown_client(emu: EmulatorHandle) -> None:
    response = httpx2.get(
        f"{emu.oauth_base_url}/authorize", params=authorize_params(emu, client_id=7)
    )
    assert response.status_code == 400
    assert response.content == INVALID_CLIENT


@pytest.mark.parametrize(
    "redirect_uri",
    [
        "https://evil.example.com/cb",
        "http://notlocalhost/cb",
        "no-scheme-at-all",
        "coachai://oauth/x",
    ],
)
def test_authorize_rejects_redirects_outside_the_callback_domain(
    emu: EmulatorHandle, redirect_uri: str
) -> None:
    response = httpx2.get(
        f"{emu.oauth_base_url}/authorize", params=authorize_params(emu, redirect_uri=redirect_uri)
    )
    assert response.status_code == 400
    assert response.content == INVALID_REDIRECT


@pytest.mark.parametrize(
    "redirect_uri",
    [
        "http://localhost/exchange_token",
        "http://127.0.0.1:8000/cb",
        "coachai://localhost/oauth/strava",
        "https://coach.example.org/strava/callback",
        "https://api.coach.example.org/strava/callback",
    ],
)
def test_redirects_within_the_callback_domain_or_localhost_are_accepted(redirect_uri: str) -> None:
    config = EmulatorConfig(athletes=1, callback_domain="coach.example.org")
    with TestClient(create_app(config), follow_redirects=False) as client:
        athlete_id = client.get("/_emulator/athletes").json()["items"][0]["id"]
        response = client.get(
            "/oauth/authorize",
            params={
                "client_id": 1000,
                "redirect_uri": redirect_uri,
                "response_type": "code",
                "scope": "read",
                "emulator_athlete_id": athlete_id,
            },
        )
    assert response.status_code == 302
    assert response.headers["location"].startswith(redirect_uri + "?state=&code=")


def test_the_mobile_and_api_aliases_share_the_handler(
    emu: EmulatorHandle, athlete: dict[str, Any]
) -> None:
    for path in ("/oauth/mobile/authorize", "/api/v3/oauth/authorize"):
        response = httpx2.get(
            emu.base_url + path, params=authorize_params(emu, emulator_athlete_id=athlete["id"])
        )
        assert callback(response)["scope"] == "read,activity:read_all"


def test_authorize_requires_response_type_code(emu: EmulatorHandle) -> None:
    response = httpx2.get(
        f"{emu.oauth_base_url}/authorize", params=authorize_params(emu, response_type="token")
    )
    assert response.status_code == 400


def test_space_delimited_scopes_are_rejected(emu: EmulatorHandle) -> None:
    response = httpx2.get(
        f"{emu.oauth_base_url}/authorize",
        params=authorize_params(emu, scope="read activity:read_all"),
    )
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "scope"


def test_auto_approve_echoes_state_and_grants_in_canonical_order(
    emu: EmulatorHandle, athlete: dict[str, Any]
) -> None:
    response = httpx2.get(
        f"{emu.oauth_base_url}/authorize",
        params=authorize_params(
            emu,
            scope="profile:read_all,activity:read_all,read,activity:write",
            emulator_athlete_id=athlete["id"],
        ),
    )
    params = callback(response)
    assert params["state"] == "st4te"
    assert params["scope"] == "read,activity:write,activity:read_all,profile:read_all"
    assert len(params["code"]) == 40
    assert urlsplit(response.headers["location"]).query.startswith("state=st4te&code=")


def test_auto_approve_with_a_narrower_scope_and_without_state(
    emu: EmulatorHandle, athlete: dict[str, Any]
) -> None:
    params = authorize_params(emu, emulator_athlete_id=athlete["id"], emulator_scope="read")
    del params["state"]
    response = httpx2.get(f"{emu.oauth_base_url}/authorize", params=params)
    assert callback(response) == {"state": "", "code": callback(response)["code"], "scope": "read"}
    assert "state=&code=" in response.headers["location"]


def test_auto_cancel_redirects_with_access_denied(emu: EmulatorHandle) -> None:
    response = httpx2.get(
        f"{emu.oauth_base_url}/authorize", params=authorize_params(emu, emulator_decision="cancel")
    )
    assert callback(response) == {"state": "st4te", "error": "access_denied"}


def test_redirect_keeps_the_callbacks_own_query(
    emu: EmulatorHandle, athlete: dict[str, Any]
) -> None:
    response = httpx2.get(
        f"{emu.oauth_base_url}/authorize",
        params=authorize_params(
            emu, redirect_uri="http://localhost/cb?flow=ios", emulator_athlete_id=athlete["id"]
        ),
    )
    assert response.headers["location"].startswith("http://localhost/cb?flow=ios&state=st4te&code=")


# ------------------------------------------------------------------ token exchange


def test_code_exchange_matches_the_recorded_shape(
    emu: EmulatorHandle, athlete: dict[str, Any]
) -> None:
    response = exchange(emu, get_code(emu, athlete["id"]))
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json; charset=utf-8"
    body = response.json()
    assert list(body) == [
        "token_type",
        "expires_at",
        "expires_in",
        "refresh_token",
        "access_token",
        "athlete",
    ]
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 21600
    now = emu.admin.clock_now().timestamp()
    assert abs(body["expires_at"] - (now + 21600)) < 60
    assert all(
        len(body[k]) == 40 and int(body[k], 16) >= 0 for k in ("access_token", "refresh_token")
    )
    assert list(body["athlete"]) == [
        "id",
        "username",
        "resource_state",
        "firstname",
        "lastname",
        "city",
        "state",
        "country",
        "sex",
        "premium",
        "summit",
        "created_at",
        "updated_at",
        "badge_type_id",
        "profile_medium",
        "profile",
        "friend",
        "follower",
    ]
    assert body["athlete"]["resource_state"] == 2


def test_a_code_is_single_use(emu: EmulatorHandle, athlete: dict[str, Any]) -> None:
    code = get_code(emu, athlete["id"])
    assert exchange(emu, code).status_code == 200
    again = exchange(emu, code)
    assert again.status_code == 400
    assert again.content == INVALID_CODE


def test_a_code_expires(emu: EmulatorHandle, athlete: dict[str, Any]) -> None:
    code = get_code(emu, athlete["id"])
    emu.admin.advance_clock(emu.config.code_ttl_seconds + 1)
    response = exchange(emu, code)
    assert response.status_code == 400
    assert response.content == INVALID_CODE


def test_an_unknown_code_is_invalid(emu: EmulatorHandle) -> None:
    assert exchange(emu, "0" * 40).content == INVALID_CODE


def test_wrong_secret_is_an_application_authorization_error(
    emu: EmulatorHandle, athlete: dict[str, Any]
) -> None:
    code = get_code(emu, athlete["id"])
    response = exchange(emu, code, client_secret="nope")
    assert response.status_code == 401
    assert response.content == APPLICATION_INVALID
    assert exchange(emu, code).status_code == 200  # the failed call did not burn the code


def test_unknown_client_on_token_is_a_bad_request(
    emu: EmulatorHandle, athlete: dict[str, Any]
) -> None:
    response = exchange(emu, get_code(emu, athlete["id"]), client_id="999")
    assert response.status_code == 400
    assert response.content == INVALID_CLIENT


def test_token_accepts_query_parameters_and_the_api_alias(
    emu: EmulatorHandle, athlete: dict[str, Any]
) -> None:
    params: dict[str, str | int] = {
        "client_id": emu.config.client_id,
        "client_secret": emu.config.client_secret,
        "code": get_code(emu, athlete["id"]),
        "grant_type": "authorization_code",
    }
    response = httpx2.post(f"{emu.api_base_url}/oauth/token", params=params)
    assert response.status_code == 200
    logged = emu.admin.requests(path="/api/v3/oauth/token")[-1]
    assert "client_secret" not in logged["query"]
    assert "code" not in logged["query"]
    assert logged["query"] == {
        "client_id": str(emu.config.client_id),
        "grant_type": "authorization_code",
    }


# ------------------------------------------------------------------ refresh


def test_refresh_reuses_a_token_with_more_than_an_hour_left_and_rotates_the_refresh_token(
    emu: EmulatorHandle, athlete: dict[str, Any]
) -> None:
    first = exchange(emu, get_code(emu, athlete["id"])).json()
    response = refresh(emu, first["refresh_token"])
    assert response.status_code == 200
    body = response.json()
    assert list(body) == ["token_type", "access_token", "expires_at", "expires_in", "refresh_token"]
    assert body["access_token"] == first["access_token"]
    assert body["expires_at"] == first["expires_at"]
    assert body["refresh_token"] != first["refresh_token"]
    old = refresh(emu, first["refresh_token"])
    assert old.status_code == 400
    assert old.content == INVALID_REFRESH


def test_refresh_mints_a_new_token_within_the_last_hour_and_the_old_one_lives_on(
    emu: EmulatorHandle, athlete: dict[str, Any]
) -> None:
    first = exchange(emu, get_code(emu, athlete["id"])).json()
    emu.admin.advance_clock(21600 - 3600)  # exactly one hour left: "one hour or less"
    body = refresh(emu, first["refresh_token"]).json()
    assert body["access_token"] != first["access_token"]
    assert body["expires_in"] == 21600
    assert athlete_status(emu, first["access_token"]) == 200
    assert athlete_status(emu, body["access_token"]) == 200
    emu.admin.advance_clock(3600)
    assert athlete_status(emu, first["access_token"]) == 401
    assert athlete_status(emu, body["access_token"]) == 200


def test_the_latest_refresh_token_keeps_working(
    emu: EmulatorHandle, athlete: dict[str, Any]
) -> None:
    current = exchange(emu, get_code(emu, athlete["id"])).json()["refresh_token"]
    for _ in range(3):
        emu.admin.advance_clock(6 * 3600)
        response = refresh(emu, current)
        assert response.status_code == 200
        current = response.json()["refresh_token"]
        assert athlete_status(emu, response.json()["access_token"]) == 200


# ------------------------------------------------------------------ deauthorize and revoke


@pytest.mark.parametrize("how", ["header", "form"])
def test_deauthorize_kills_every_token_of_the_athlete(
    emu: EmulatorHandle, athlete: dict[str, Any], how: str
) -> None:
    one = emu.admin.issue_tokens(athlete["id"])
    two = exchange(emu, get_code(emu, athlete["id"])).json()
    token = one["access_token"]
    if how == "header":
        response = httpx2.post(
            f"{emu.oauth_base_url}/deauthorize", headers={"Authorization": f"Bearer {token}"}
        )
    else:
        response = httpx2.post(f"{emu.oauth_base_url}/deauthorize", data={"access_token": token})
    assert response.status_code == 200
    assert response.content == b'{"access_token":"' + token.encode() + b'"}'
    assert response.headers["x-readratelimit-usage"]
    for access in (one["access_token"], two["access_token"]):
        denied = httpx2.get(
            f"{emu.api_base_url}/athlete", headers={"Authorization": f"Bearer {access}"}
        )
        assert denied.status_code == 401
        assert denied.content == INVALID_TOKEN
    assert refresh(emu, two["refresh_token"]).content == INVALID_REFRESH
    again = httpx2.post(f"{emu.oauth_base_url}/deauthorize", data={"access_token": token})
    assert again.status_code == 401


def test_admin_revoke_is_like_the_athlete_removing_the_app(
    emu: EmulatorHandle, athlete: dict[str, Any]
) -> None:
    tokens = emu.admin.issue_tokens(athlete["id"])
    other = emu.admin.create_athlete()
    other_tokens = emu.admin.issue_tokens(other["id"])
    emu.admin.revoke(athlete["id"])
    assert athlete_status(emu, tokens["access_token"]) == 401
    assert refresh(emu, tokens["refresh_token"]).status_code == 400
    assert athlete_status(emu, other_tokens["access_token"]) == 200


# ------------------------------------------------------------------ athlete capacity

ATHLETE_CAPACITY_EXCEEDED = (
    b'{"message":"Limit of connected athletes exceeded","errors":[{"resource":"Application",'
    b'"field":"athletes","code":"limit exceeded"}]}'
)


def test_capacity_refuses_a_new_athlete_and_lets_connected_ones_reconnect(
    emu: EmulatorHandle, athlete: dict[str, Any]
) -> None:
    assert emu.admin.get_settings()["athlete_capacity"] is None  # unlimited by default
    connected = exchange(emu, get_code(emu, athlete["id"])).json()
    settings = emu.admin.set_athlete_capacity(emu.admin.get_settings()["connected_athletes"])
    assert settings["athlete_capacity"] == settings["connected_athletes"]

    newcomer = emu.admin.create_athlete()
    refused = exchange(emu, code := get_code(emu, newcomer["id"]))
    assert refused.status_code == 403
    assert refused.content == ATHLETE_CAPACITY_EXCEEDED
    assert exchange(emu, code).status_code == 400  # the code was spent all the same
    # An athlete already connected may reconnect; deauthorizing frees a place for the newcomer.
    assert exchange(emu, get_code(emu, athlete["id"])).status_code == 200
    httpx2.post(
        f"{emu.oauth_base_url}/deauthorize", data={"access_token": connected["access_token"]}
    )
    assert exchange(emu, get_code(emu, newcomer["id"])).status_code == 200


def test_reset_restores_the_configured_capacity(emu: EmulatorHandle) -> None:
    emu.admin.set_athlete_capacity(0)
    emu.admin.reset()
    assert emu.admin.get_settings() == {"athlete_capacity": None, "connected_athletes": 0}
