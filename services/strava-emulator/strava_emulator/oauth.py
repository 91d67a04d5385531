"""Strava's OAuth endpoints: authorize (consent page or test auto-approve), token, deauthorize."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Final
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse

from strava_emulator import errors
from strava_emulator.consent import render_consent_page
from strava_emulator.data import Athlete
from strava_emulator.reference import SCOPE_ORDER
from strava_emulator.state import EmulatorState
from strava_emulator.store import UnknownAthlete, dumps
from strava_emulator.tokens import AccessToken, canonical_scopes

router = APIRouter()

CONSENT_ATHLETE_CAP: Final = 1000
"""The consent page lists at most this many athletes (the first and the newest half each)."""


def emulator(request: Request) -> EmulatorState:
    state: EmulatorState = request.app.state.emulator
    return state


def json_response(body: bytes, status: int = 200) -> Response:
    return Response(content=body, status_code=status, media_type=errors.JSON_CONTENT_TYPE)


async def read_params(request: Request) -> list[tuple[str, str]]:
    """Query parameters plus form (or JSON) body fields: Strava reads either."""
    params = list(request.query_params.multi_items())
    body = await request.body()
    if not body:
        return params
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("application/json"):
        try:
            decoded = json.loads(body)
        except ValueError:
            raise errors.bad_request("Application", "body") from None
        if isinstance(decoded, dict):
            params.extend((str(k), str(v)) for k, v in decoded.items() if v is not None)
    else:
        params.extend(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
    return params


def _check_client(state: EmulatorState, client_id: str | None) -> int:
    try:
        value = int(client_id or "")
    except ValueError:
        raise errors.invalid_client_id() from None
    if value != state.config.client_id:
        raise errors.invalid_client_id()
    return value


def redirect_allowed(redirect_uri: str, callback_domain: str) -> bool:
    """Strava: "within the callback domain"; localhost and 127.0.0.1 are white-listed.

    Custom schemes (``coachai://localhost/cb``) are matched by their host too. Subdomains count
    as within the domain (Strava's rule there is undocumented)."""
    try:
        parts = urlsplit(redirect_uri)
        host = (parts.hostname or "").lower()
    except ValueError:
        return False
    if not parts.scheme or not host:
        return False
    if host in ("localhost", "127.0.0.1"):
        return True
    domain = callback_domain.lower().strip(".")
    return host == domain or host.endswith("." + domain)


def parse_scopes(raw: str | None) -> list[str]:
    """Comma-delimited, in Strava's canonical order; unknown names (e.g. a space-delimited
    list) are a 400, as on Strava. No scope at all means ``read``."""
    names = {part.strip() for part in (raw or "").split(",") if part.strip()}
    if not names:
        return ["read"]
    if not names <= set(SCOPE_ORDER):
        raise errors.bad_request("Authorize", "scope")
    return [scope for scope in SCOPE_ORDER if scope in names]


def callback_url(redirect_uri: str, params: list[tuple[str, str]]) -> str:
    parts = urlsplit(redirect_uri)
    extra = urlencode(params, safe=",:")
    query = f"{parts.query}&{extra}" if parts.query else extra
    return urlunsplit(parts._replace(query=query))


def _approve(
    state: EmulatorState,
    redirect_uri: str,
    state_param: str,
    athlete_id: int,
    scopes: Sequence[str],
) -> RedirectResponse:
    code = state.tokens.issue_code(athlete_id, frozenset(scopes), state.clock.now_ts())
    url = callback_url(
        redirect_uri,
        [("state", state_param), ("code", code), ("scope", canonical_scopes(set(scopes)))],
    )
    return RedirectResponse(url, status_code=302)


def _deny(redirect_uri: str, state_param: str) -> RedirectResponse:
    url = callback_url(redirect_uri, [("state", state_param), ("error", "access_denied")])
    return RedirectResponse(url, status_code=302)


def _consent_athletes(state: EmulatorState) -> list[Athlete]:
    total = len(state.store.by_seq)
    if total <= CONSENT_ATHLETE_CAP:
        return state.store.list_athletes(0, total)
    half = CONSENT_ATHLETE_CAP // 2
    return state.store.list_athletes(0, half) + state.store.list_athletes(total - half, half)


@router.get("/oauth/authorize", response_model=None)
@router.get("/oauth/mobile/authorize", response_model=None)
@router.get("/api/v3/oauth/authorize", response_model=None)
async def authorize(request: Request) -> Response:
    """Validate like Strava, then show the consent page, or with ``emulator_athlete_id`` /
    ``emulator_decision=cancel`` answer the callback redirect at once (for tests)."""
    state = emulator(request)
    query = request.query_params
    client_id = _check_client(state, query.get("client_id"))
    redirect_uri = query.get("redirect_uri", "")
    if not redirect_allowed(redirect_uri, state.config.callback_domain):
        raise errors.invalid_redirect_uri()
    if query.get("response_type") != "code":
        raise errors.bad_request("Application", "response_type")
    requested = parse_scopes(query.get("scope"))
    state_param = query.get("state", "")

    if query.get("emulator_decision") == "cancel":
        return _deny(redirect_uri, state_param)
    if "emulator_athlete_id" in query:
        athlete = _athlete_param(state, query.get("emulator_athlete_id"), "emulator_athlete_id")
        request.state.athlete_id = athlete.id
        granted = parse_scopes(query["emulator_scope"]) if "emulator_scope" in query else requested
        return _approve(state, redirect_uri, state_param, athlete.id, granted)

    page = render_consent_page(
        client_id=client_id,
        redirect_uri=redirect_uri,
        state=state_param,
        requested_scopes=requested,
        athletes=_consent_athletes(state),
        callback_host=urlsplit(redirect_uri).hostname or "",
    )
    return HTMLResponse(page)


def _athlete_param(state: EmulatorState, raw: str | None, field: str) -> Athlete:
    try:
        return state.store.athlete(int(raw or ""))
    except (ValueError, UnknownAthlete):
        raise errors.bad_request("Athlete", field) from None


@router.post("/oauth/authorize/decision", response_model=None)
async def decision(request: Request) -> Response:
    """The consent form's target. Re-validates the hidden fields: they come from the browser."""
    state = emulator(request)
    form = await read_params(request)
    fields = dict(form)
    _check_client(state, fields.get("client_id"))
    redirect_uri = fields.get("redirect_uri", "")
    if not redirect_allowed(redirect_uri, state.config.callback_domain):
        raise errors.invalid_redirect_uri()
    state_param = fields.get("state", "")
    if fields.get("decision") != "authorize":
        return _deny(redirect_uri, state_param)
    athlete = _athlete_param(state, fields.get("athlete_id"), "athlete_id")
    request.state.athlete_id = athlete.id
    requested = set(parse_scopes(fields.get("requested_scope")))
    ticked = {value for name, value in form if name == "scope"}
    # Exactly the ticked scopes, and only ones the app asked for.
    granted: list[str] = [s for s in SCOPE_ORDER if s in ticked and s in requested]
    return _approve(state, redirect_uri, state_param, athlete.id, granted)


def _token_body(
    token: AccessToken, refresh_token: str, now: float, athlete: Athlete | None
) -> bytes:
    if athlete is not None:
        return dumps(
            {
                "token_type": "Bearer",
                "expires_at": token.expires_at,
                "expires_in": token.expires_at - int(now),
                "refresh_token": refresh_token,
                "access_token": token.token,
                "athlete": athlete.summary(),
            }
        )
    return dumps(
        {
            "token_type": "Bearer",
            "access_token": token.token,
            "expires_at": token.expires_at,
            "expires_in": token.expires_at - int(now),
            "refresh_token": refresh_token,
        }
    )


def issue_token_response(state: EmulatorState, athlete: Athlete, scopes: Sequence[str]) -> bytes:
    """A fresh grant's token response (code exchange shape); also used by the admin API."""
    now = state.clock.now_ts()
    token = state.tokens.grant(athlete.id, frozenset(scopes), now)
    return _token_body(token, token.grant.refresh_token, now, athlete)


@router.post("/oauth/token", response_model=None)
@router.post("/api/v3/oauth/token", response_model=None)
async def token(request: Request) -> Response:
    state = emulator(request)
    params = dict(await read_params(request))
    _check_client(state, params.get("client_id"))
    if params.get("client_secret") != state.config.client_secret:
        raise errors.application_invalid()
    now = state.clock.now_ts()
    # Old clients omit grant_type on the code exchange; Strava still accepts that.
    grant_type = params.get("grant_type") or ("authorization_code" if "code" in params else "")
    if grant_type == "authorization_code":
        code = state.tokens.redeem_code(params.get("code", ""), now)
        if code is None:
            raise errors.invalid_code()
        athlete = state.store.athlete(code.athlete_id)
        request.state.athlete_id = athlete.id
        _check_capacity(state, athlete.id)
        return json_response(issue_token_response(state, athlete, sorted(code.scopes)))
    if grant_type == "refresh_token":
        refreshed = state.tokens.refresh_grant(params.get("refresh_token", ""), now)
        if refreshed is None:
            raise errors.invalid_refresh_token()
        grant, access = refreshed
        request.state.athlete_id = grant.athlete_id
        return json_response(_token_body(access, grant.refresh_token, now, None))
    raise errors.bad_request("Application", "grant_type")


def _check_capacity(state: EmulatorState, athlete_id: int) -> None:
    """A new athlete past the app's capacity is refused; one already connected may reconnect."""
    capacity = state.athlete_capacity
    if capacity is None or state.tokens.is_connected(athlete_id):
        return
    if state.tokens.connected_athletes() >= capacity:
        raise errors.athlete_capacity_exceeded()


@router.post("/oauth/deauthorize", response_model=None)
@router.post("/api/v3/oauth/deauthorize", response_model=None)
async def deauthorize(request: Request) -> Response:
    state = emulator(request)
    params = dict(await read_params(request))
    token = params.get("access_token") or bearer_token(request) or ""
    found = state.tokens.authenticate(token, state.clock.now_ts())
    if found is None:
        raise errors.invalid_access_token()
    request.state.athlete_id = found.athlete_id
    state.webhooks.athlete_deauthorizing(found.athlete_id)
    state.tokens.revoke_athlete(found.athlete_id)
    return json_response(dumps({"access_token": token}))


def bearer_token(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return None
