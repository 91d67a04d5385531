"""The emulator's own control API under ``/_emulator`` (JSON; no Strava auth, never rate-limited).

Tests use it to set up athletes and activities, move the clock, inject faults and inspect the
requests the service made. Strava-facing routers never include it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from fastapi import APIRouter, HTTPException, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from strava_emulator.clock import isoformat_z
from strava_emulator.data import JSON, Activity, Athlete
from strava_emulator.faults import FaultKind
from strava_emulator.oauth import emulator, issue_token_response, json_response, parse_scopes
from strava_emulator.state import EmulatorState
from strava_emulator.store import UnknownAthlete, dumps
from strava_emulator.webhooks import watched_fields

router = APIRouter(prefix="/_emulator", tags=["emulator admin"])


class NewAthlete(BaseModel):
    model_config = ConfigDict(extra="forbid")

    firstname: str | None = None
    lastname: str | None = None
    history_days: int | None = Field(default=None, ge=0, le=3650)


class ActivityFields(BaseModel):
    """Partial activity: any subset; unset fields keep generated (or default) values."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = None
    sport_type: str | None = None
    type: str | None = None
    distance: float | None = Field(default=None, ge=0)
    moving_time: int | None = Field(default=None, ge=0)
    elapsed_time: int | None = Field(default=None, ge=0)
    total_elevation_gain: float | None = None
    elev_high: float | None = None
    elev_low: float | None = None
    start_date: datetime | None = None
    start_date_local: datetime | None = None
    workout_type: int | None = None
    visibility: Literal["everyone", "followers_only", "only_me"] | None = None
    private: bool | None = None
    trainer: bool | None = None
    manual: bool | None = None
    commute: bool | None = None
    flagged: bool | None = None
    has_heartrate: bool | None = None
    average_heartrate: float | None = None
    max_heartrate: float | None = None
    average_cadence: float | None = None
    average_speed: float | None = None
    max_speed: float | None = None
    average_watts: float | None = None
    kilojoules: float | None = None
    suffer_score: float | None = None
    gear_id: str | None = None
    device_name: str | None = None
    external_id: str | None = None
    kudos_count: int | None = None
    achievement_count: int | None = None
    pr_count: int | None = None
    start_latlng: list[float] | None = None
    end_latlng: list[float] | None = None
    map: dict[str, Any] | None = None
    description: str | None = None
    calories: float | None = None

    def given(self) -> dict[str, Any]:
        return self.model_dump(exclude_unset=True)


class TokenRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    scope: str = "read,activity:read_all"


class ClockChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    advance_seconds: float | None = None
    now: datetime | None = None


class RateLimitChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    overall_limit: tuple[int, int] | None = None
    read_limit: tuple[int, int] | None = None
    overall_usage: tuple[int, int] | None = None
    read_usage: tuple[int, int] | None = None


class SettingsChange(BaseModel):
    """Partial: only the fields given change (``null`` capacity means unlimited)."""

    model_config = ConfigDict(extra="forbid")

    athlete_capacity: int | None = Field(default=None, ge=0)


class NewFault(BaseModel):
    model_config = ConfigDict(extra="forbid")

    method: str = "GET"
    path: str
    kind: FaultKind = "status"
    count: int = Field(default=1, ge=1)
    status: int = Field(default=503, ge=100, le=599)
    latency_ms: int = Field(default=0, ge=0, le=600_000)
    query: dict[str, str] = Field(default_factory=dict)


def _athlete(state: EmulatorState, athlete_id: int) -> Athlete:
    try:
        return state.store.athlete(athlete_id)
    except UnknownAthlete:
        raise HTTPException(404, f"no athlete {athlete_id}") from None


def _activity(state: EmulatorState, activity_id: int) -> Activity:
    act = state.store.find_activity(activity_id)
    if act is None:
        raise HTTPException(404, f"no activity {activity_id}")
    return act


def athlete_view(athlete: Athlete) -> JSON:
    return {**athlete.summary(), "history_days": athlete.history_days}


def activity_view(state: EmulatorState, act: Activity) -> JSON:
    """The summary representation plus admin-only bookkeeping."""
    return {
        **state.store.summary(act),
        "available_at": isoformat_z(datetime.fromtimestamp(act.available_at, UTC)),
    }


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/athletes")
async def list_athletes(
    request: Request,
    offset: int = Query(0, ge=0),
    limit: int = Query(100, ge=1, le=100_000),
) -> Response:
    state = emulator(request)
    items = [athlete_view(a) for a in state.store.list_athletes(offset, limit)]
    return json_response(dumps({"items": items, "total": len(state.store.athletes)}))


@router.post("/athletes", status_code=201)
async def create_athlete(request: Request, body: NewAthlete | None = None) -> Response:
    state = emulator(request)
    spec = body or NewAthlete()
    athlete = state.store.create_athlete(spec.firstname, spec.lastname, spec.history_days)
    return json_response(dumps(athlete_view(athlete)), 201)


@router.get("/athletes/{athlete_id}")
async def get_athlete(request: Request, athlete_id: int) -> Response:
    state = emulator(request)
    return json_response(dumps(athlete_view(_athlete(state, athlete_id))))


@router.get("/athletes/{athlete_id}/activities")
async def list_athlete_activities(request: Request, athlete_id: int) -> Response:
    """Every activity, whatever its visibility or upload time; newest first."""
    state = emulator(request)
    athlete = _athlete(state, athlete_id)
    acts = reversed(state.store.history(athlete).ordered)
    return json_response(dumps({"items": [activity_view(state, act) for act in acts]}))


@router.post("/athletes/{athlete_id}/activities", status_code=201)
async def create_activity(request: Request, athlete_id: int, body: ActivityFields) -> Response:
    state = emulator(request)
    act = state.store.create_activity(_athlete(state, athlete_id), body.given())
    state.webhooks.activity_created(act)
    return json_response(dumps(activity_view(state, act)), 201)


@router.get("/activities/{activity_id}")
async def get_activity(request: Request, activity_id: int) -> Response:
    state = emulator(request)
    return json_response(state.store.detail_json(_activity(state, activity_id)))


@router.patch("/activities/{activity_id}")
async def update_activity(request: Request, activity_id: int, body: ActivityFields) -> Response:
    state = emulator(request)
    act = _activity(state, activity_id)
    before = watched_fields(state, act)
    state.store.update_activity(act, body.given())
    state.webhooks.activity_updated(act, before)
    return json_response(dumps(activity_view(state, act)))


@router.delete("/activities/{activity_id}", status_code=204)
async def delete_activity(request: Request, activity_id: int) -> Response:
    state = emulator(request)
    act = _activity(state, activity_id)
    state.store.delete_activity(act)
    state.webhooks.activity_deleted(act)
    return Response(status_code=204)


@router.post("/athletes/{athlete_id}/revoke", status_code=204)
async def revoke(request: Request, athlete_id: int) -> Response:
    """As if the athlete removed the app in their Strava settings."""
    state = emulator(request)
    athlete = _athlete(state, athlete_id)
    state.webhooks.athlete_deauthorizing(athlete.id)
    state.tokens.revoke_athlete(athlete.id)
    return Response(status_code=204)


@router.post("/athletes/{athlete_id}/tokens", status_code=201)
async def issue_tokens(
    request: Request, athlete_id: int, body: TokenRequest | None = None
) -> Response:
    """A token pair without the consent page, shaped like the code exchange's response."""
    state = emulator(request)
    athlete = _athlete(state, athlete_id)
    scopes = parse_scopes((body or TokenRequest()).scope)
    return json_response(issue_token_response(state, athlete, scopes), 201)


def _clock_view(state: EmulatorState) -> dict[str, Any]:
    return {"now": isoformat_z(state.clock.now()), "offset_seconds": state.clock.offset_seconds}


@router.get("/clock")
async def get_clock(request: Request) -> dict[str, Any]:
    return _clock_view(emulator(request))


@router.post("/clock")
async def set_clock(request: Request, body: ClockChange) -> dict[str, Any]:
    state = emulator(request)
    if (body.now is None) == (body.advance_seconds is None):
        raise HTTPException(422, "give exactly one of 'now' and 'advance_seconds'")
    if body.now is not None:
        state.clock.set(body.now)
    elif body.advance_seconds is not None:
        state.clock.advance(body.advance_seconds)
    state.webhooks.scan()  # activities the new time has "uploaded" get their create events
    return _clock_view(state)


def _limits_view(state: EmulatorState) -> dict[str, Any]:
    now = state.clock.now_ts()
    limiter = state.limiter
    return {
        "overall_limit": list(limiter.overall.limit),
        "read_limit": list(limiter.read.limit),
        "overall_usage": list(limiter.overall.usage(now)),
        "read_usage": list(limiter.read.usage(now)),
    }


@router.get("/rate-limits")
async def get_rate_limits(request: Request) -> dict[str, Any]:
    return _limits_view(emulator(request))


@router.put("/rate-limits")
async def put_rate_limits(request: Request, body: RateLimitChange) -> dict[str, Any]:
    state = emulator(request)
    now = state.clock.now_ts()
    limiter = state.limiter
    if body.overall_limit is not None:
        limiter.overall.limit = body.overall_limit
    if body.read_limit is not None:
        limiter.read.limit = body.read_limit
    if body.overall_usage is not None:
        limiter.overall.set_usage(body.overall_usage, now)
    if body.read_usage is not None:
        limiter.read.set_usage(body.read_usage, now)
    return _limits_view(state)


def _settings_view(state: EmulatorState) -> dict[str, Any]:
    return {
        "athlete_capacity": state.athlete_capacity,
        "connected_athletes": state.tokens.connected_athletes(),
    }


@router.get("/settings")
async def get_settings(request: Request) -> dict[str, Any]:
    """The application's settings at Strava (its athlete capacity) and what counts against them."""
    return _settings_view(emulator(request))


@router.put("/settings")
async def put_settings(request: Request, body: SettingsChange) -> dict[str, Any]:
    state = emulator(request)
    if "athlete_capacity" in body.model_fields_set:
        state.athlete_capacity = body.athlete_capacity
    return _settings_view(state)


@router.get("/faults")
async def list_faults(request: Request) -> dict[str, Any]:
    rules = emulator(request).faults.rules
    return {
        "items": [
            {
                "id": r.id,
                "method": r.method,
                "path": r.path,
                "kind": r.kind,
                "remaining": r.remaining,
                "status": r.status,
                "latency_ms": r.latency_ms,
                "query": r.query,
            }
            for r in rules
        ]
    }


@router.post("/faults", status_code=201)
async def add_fault(request: Request, body: NewFault) -> dict[str, str]:
    rule = emulator(request).faults.add(
        method=body.method,
        path=body.path,
        kind=body.kind,
        count=body.count,
        status=body.status,
        latency_ms=body.latency_ms,
        query=body.query,
    )
    return {"id": rule.id}


@router.delete("/faults", status_code=204)
async def clear_faults(request: Request) -> Response:
    emulator(request).faults.clear()
    return Response(status_code=204)


@router.get("/requests")
async def list_requests(
    request: Request, path: str | None = None, method: str | None = None
) -> dict[str, Any]:
    return {"items": emulator(request).requests.find(path, method)}


@router.delete("/requests", status_code=204)
async def clear_requests(request: Request) -> Response:
    emulator(request).requests.clear()
    return Response(status_code=204)


@router.post("/reset", status_code=204)
async def reset(request: Request) -> Response:
    emulator(request).reset()
    return Response(status_code=204)
