"""The Strava API v3 endpoints the service uses: the athlete, their activities, one activity.

These are the hot paths (sync jobs page through them all day), so they are plain functions
dispatched straight from the ASGI gateway rather than FastAPI routes: that is several times
cheaper per request. OAuth and the admin API stay on FastAPI.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Final

from strava_emulator import errors
from strava_emulator.state import EmulatorState
from strava_emulator.store import dumps
from strava_emulator.tokens import AccessToken

PREFIX: Final = "/api/v3"
PUSH_PREFIX: Final = "/api/v3/push_subscriptions"
DEFAULT_PER_PAGE: Final = 30
MAX_PER_PAGE: Final = 200
"""Larger ``per_page`` values are clamped to 200 rather than refused."""
FUTURE_MARGIN_SECONDS: Final = 5 * 365 * 86_400
"""``before``/``after`` beyond now + 5 years is taken for milliseconds: 400 ``future``."""

READ_SCOPES: Final = frozenset({"activity:read", "activity:read_all"})
_ACTIVITY_PATH: Final = re.compile(r"/api/v3/activities/([^/]+)/?")


def handles(path: str) -> bool:
    """Paths answered here: all of /api/v3 except the OAuth aliases and push subscriptions
    (FastAPI serves those)."""
    return path.startswith(PREFIX) and not path.startswith(("/api/v3/oauth/", PUSH_PREFIX))


@dataclass(slots=True)
class ApiRequest:
    method: str
    path: str
    query: dict[str, str]
    authorization: str | None
    athlete_id: int | None = field(default=None)
    """Set once the token is known, for the request log."""


def respond(state: EmulatorState, request: ApiRequest) -> tuple[int, bytes]:
    """Status and JSON body for one API request; errors become Strava's Fault bodies."""
    try:
        return 200, _route(state, request)
    except errors.StravaError as error:
        return error.status, error.body


def _route(state: EmulatorState, request: ApiRequest) -> bytes:
    path = request.path.rstrip("/") or "/"
    if request.method in ("GET", "HEAD"):
        if path == "/api/v3/athlete":
            return get_athlete(state, request)
        if path == "/api/v3/athlete/activities":
            return list_activities(state, request)
        match = _ACTIVITY_PATH.fullmatch(request.path)
        if match:
            return get_activity(state, request, match.group(1))
    # Strava answers unknown routes (and unsupported methods) with a Fault, not HTML.
    raise errors.path_not_found()


def authenticate(state: EmulatorState, request: ApiRequest) -> AccessToken:
    token: str | None = None
    if request.authorization:
        scheme, _, value = request.authorization.partition(" ")
        if scheme.lower() == "bearer":
            token = value.strip()
    # The query parameter is the legacy way; Strava still reads it (for now).
    token = token or request.query.get("access_token")
    found = state.tokens.authenticate(token, state.clock.now_ts()) if token else None
    if found is None:
        raise errors.invalid_access_token()
    request.athlete_id = found.athlete_id
    return found


def _int_param(request: ApiRequest, name: str) -> int | None:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return None
    try:
        return int(raw)
    except ValueError:
        try:
            return int(float(raw))
        except ValueError:
            raise errors.bad_request("Application", name) from None


def get_athlete(state: EmulatorState, request: ApiRequest) -> bytes:
    """Detailed representation for profile:read_all tokens, summary otherwise."""
    token = authenticate(state, request)
    athlete = state.store.athlete(token.athlete_id)
    return dumps(athlete.detailed() if "profile:read_all" in token.scopes else athlete.summary())


def list_activities(state: EmulatorState, request: ApiRequest) -> bytes:
    token = authenticate(state, request)
    if not token.scopes & READ_SCOPES:
        raise errors.missing_activity_read()
    before = _int_param(request, "before")
    after = _int_param(request, "after")
    horizon = state.clock.now_ts() + FUTURE_MARGIN_SECONDS
    for name, value in (("after", after), ("before", before)):
        if value is not None and value > horizon:
            raise errors.future_timestamp(name)
    page = _int_param(request, "page") or 1
    page = page if page >= 1 else 1
    per_page = _int_param(request, "per_page") or DEFAULT_PER_PAGE
    per_page = min(per_page if per_page >= 1 else DEFAULT_PER_PAGE, MAX_PER_PAGE)

    store = state.store
    athlete = store.athlete(token.athlete_id)
    acts = store.visible_activities(athlete, read_all="activity:read_all" in token.scopes)
    # Bounds are taken as inclusive (Strava does not say): clients must dedupe by id anyway.
    if after is not None:
        acts = [act for act in acts if act.start_ts >= after]
    if before is not None:
        acts = [act for act in acts if act.start_ts <= before]
    if after is None or before is not None:
        acts.reverse()  # newest first, except for an `after`-only query (recorded behaviour)
    start = (page - 1) * per_page
    chosen = acts[start : start + per_page]
    return b"[" + b",".join(store.summary_json(act) for act in chosen) + b"]"


def get_activity(state: EmulatorState, request: ApiRequest, raw_id: str) -> bytes:
    token = authenticate(state, request)
    if not token.scopes & READ_SCOPES:
        raise errors.missing_activity_read()
    act = state.store.find_activity(int(raw_id)) if raw_id.isdigit() else None
    if (
        act is None
        or act.athlete_id != token.athlete_id
        or act.available_at > state.clock.now_ts()
        or (act.visibility == "only_me" and "activity:read_all" not in token.scopes)
    ):
        raise errors.activity_not_found()
    return state.store.detail_json(act)
