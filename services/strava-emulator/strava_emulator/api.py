"""The Strava API v3 endpoints the service uses: the athlete, their activities, one activity."""

from __future__ import annotations

from typing import Final

from fastapi import APIRouter, Request, Response

from strava_emulator import errors
from strava_emulator.oauth import bearer_token, emulator, json_response
from strava_emulator.state import EmulatorState
from strava_emulator.store import dumps
from strava_emulator.tokens import AccessToken

router = APIRouter(prefix="/api/v3")

DEFAULT_PER_PAGE: Final = 30
MAX_PER_PAGE: Final = 200
"""Larger ``per_page`` values are clamped to 200 rather than refused."""
FUTURE_MARGIN_SECONDS: Final = 5 * 365 * 86_400
"""``before``/``after`` beyond now + 5 years is taken for milliseconds: 400 ``future``."""

READ_SCOPES: Final = frozenset({"activity:read", "activity:read_all"})


def authenticate(request: Request, state: EmulatorState) -> AccessToken:
    # The query parameter is the legacy way; Strava still reads it (for now).
    token = bearer_token(request) or request.query_params.get("access_token")
    found = state.tokens.authenticate(token, state.clock.now_ts()) if token else None
    if found is None:
        raise errors.invalid_access_token()
    request.state.athlete_id = found.athlete_id
    return found


def _int_param(request: Request, name: str) -> int | None:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return None
    try:
        return int(raw)
    except ValueError:
        try:
            return int(float(raw))
        except ValueError:
            raise errors.bad_request("Application", name) from None


@router.get("/athlete", response_model=None)
async def get_athlete(request: Request) -> Response:
    """Detailed representation for profile:read_all tokens, summary otherwise."""
    state = emulator(request)
    token = authenticate(request, state)
    athlete = state.store.athlete(token.athlete_id)
    body = athlete.detailed() if "profile:read_all" in token.scopes else athlete.summary()
    return json_response(dumps(body))


@router.get("/athlete/activities", response_model=None)
async def list_activities(request: Request) -> Response:
    state = emulator(request)
    token = authenticate(request, state)
    if not token.scopes & READ_SCOPES:
        raise errors.missing_activity_read()
    before = _int_param(request, "before")
    after = _int_param(request, "after")
    horizon = state.clock.now_ts() + FUTURE_MARGIN_SECONDS
    for name, value in (("after", after), ("before", before)):
        if value is not None and value > horizon:
            raise errors.future_timestamp(name)
    page = _int_param(request, "page") or 1
    per_page = _int_param(request, "per_page") or DEFAULT_PER_PAGE
    page = max(page, 1)
    per_page = min(max(per_page, 1), MAX_PER_PAGE)

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
    body = b"[" + b",".join(store.summary_json(act) for act in chosen) + b"]"
    return json_response(body)


@router.get("/activities/{activity_id}", response_model=None)
async def get_activity(activity_id: str, request: Request) -> Response:
    state = emulator(request)
    token = authenticate(request, state)
    if not token.scopes & READ_SCOPES:
        raise errors.missing_activity_read()
    try:
        act = state.store.find_activity(int(activity_id))
    except ValueError:
        act = None
    if (
        act is None
        or act.athlete_id != token.athlete_id
        or act.available_at > state.clock.now_ts()
        or (act.visibility == "only_me" and "activity:read_all" not in token.scopes)
    ):
        raise errors.activity_not_found()
    return json_response(state.store.detail_json(act))


@router.api_route(
    "/{path:path}",
    methods=["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"],
    response_model=None,
    include_in_schema=False,
)
async def unknown_path(path: str) -> Response:
    """Strava answers unknown routes with a Fault, not an HTML 404."""
    raise errors.path_not_found()
