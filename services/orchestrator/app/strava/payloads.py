"""Strava's JSON payloads as pydantic models: what StravaClient returns (docs/strava.md §1, §3).

Validation only, no I/O. The client maps a ValidationError here to BadResponse.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from app.strava.ratelimit import RateLimitSnapshot

__all__ = [
    "ActivityPage",
    "MetaAthlete",
    "PolylineMap",
    "PushSubscription",
    "SummaryActivity",
    "SummaryAthlete",
    "TokenResponse",
]


class SummaryAthlete(BaseModel):
    """The athlete in a token exchange and from GET /athlete (summary or detailed; extras kept)."""

    model_config = ConfigDict(extra="allow")

    id: int
    resource_state: int | None = None
    username: str | None = None
    firstname: str | None = None
    lastname: str | None = None
    city: str | None = None
    state: str | None = None
    country: str | None = None
    sex: str | None = None
    premium: bool | None = None
    summit: bool | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    badge_type_id: int | None = None
    profile_medium: str | None = None
    profile: str | None = None
    measurement_preference: str | None = None


class TokenResponse(BaseModel):
    """/oauth/token's answer. Tokens are `SecretStr`; unknown fields are dropped, not kept, so
    that no future secret-bearing field can reach a repr."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    token_type: str
    access_token: SecretStr
    refresh_token: SecretStr
    expires_at: datetime
    expires_in: int | None = None
    athlete: SummaryAthlete | None = None  # only on the code exchange, never on refresh

    @field_validator("access_token", "refresh_token")
    @classmethod
    def _not_empty(cls, value: SecretStr) -> SecretStr:
        if not value.get_secret_value():
            raise ValueError("empty token")
        return value

    @field_validator("expires_at", mode="before")
    @classmethod
    def _from_epoch_seconds(cls, value: Any) -> datetime:
        # Strava sends epoch seconds. Converting here avoids pydantic's guess that large numbers
        # are milliseconds, and refuses ISO strings or booleans the API never sends.
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError("expires_at must be an integer epoch in seconds")
        return datetime.fromtimestamp(value, UTC)


class PolylineMap(BaseModel):
    model_config = ConfigDict(extra="allow")

    id: str | None = None
    summary_polyline: str | None = None  # null for manual and indoor activities
    polyline: str | None = None  # detailed representation only


class MetaAthlete(BaseModel):
    model_config = ConfigDict(extra="allow")

    id: int


class SummaryActivity(BaseModel):
    """One activity of GET /athlete/activities (docs/strava.md §3.2). Everything but `id` may be
    missing or null. `raw` is the exact JSON object, for storage.

    `start_date` is UTC (aware). `start_date_local` is the local wall-clock time, returned naive:
    Strava writes it with a misleading ``Z``. Since 2024-07 a hidden start time reads midnight + 1 s
    in both. `sport_type` is a plain string: Strava adds sport types, and unknown ones must pass.
    """

    model_config = ConfigDict(extra="allow")

    id: int
    raw: dict[str, Any] = Field(default_factory=dict, repr=False, exclude=True)

    resource_state: int | None = None
    external_id: str | None = None
    upload_id: int | None = None
    athlete: MetaAthlete | None = None
    name: str | None = None
    sport_type: str | None = None
    type: str | None = None  # deprecated by Strava in favour of sport_type
    start_date: datetime | None = None
    start_date_local: datetime | None = None
    timezone: str | None = None
    utc_offset: float | None = None
    distance: float | None = None
    moving_time: int | None = None
    elapsed_time: int | None = None
    total_elevation_gain: float | None = None
    elev_high: float | None = None
    elev_low: float | None = None
    average_speed: float | None = None
    max_speed: float | None = None
    has_heartrate: bool | None = None
    average_heartrate: float | None = None
    max_heartrate: float | None = None
    average_cadence: float | None = None
    average_watts: float | None = None
    weighted_average_watts: float | None = None
    device_watts: bool | None = None  # false: Strava's estimate, not a power meter
    kilojoules: float | None = None
    workout_type: int | None = None
    manual: bool | None = None
    trainer: bool | None = None
    commute: bool | None = None
    private: bool | None = None
    flagged: bool | None = None
    visibility: str | None = None
    gear_id: str | None = None
    device_name: str | None = None
    start_latlng: list[float] | None = None  # [] when there is no GPS
    end_latlng: list[float] | None = None
    map: PolylineMap | None = None

    @model_validator(mode="before")
    @classmethod
    def _keep_raw(cls, data: Any) -> Any:
        if isinstance(data, dict):
            return {**data, "raw": dict(data)}
        return data

    @field_validator("start_date")
    @classmethod
    def _aware_utc(cls, value: datetime | None) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)

    @field_validator("start_date_local")
    @classmethod
    def _wall_clock(cls, value: datetime | None) -> datetime | None:
        return None if value is None else value.replace(tzinfo=None)


@dataclass(frozen=True)
class ActivityPage:
    """One page of GET /athlete/activities. An empty page is the only reliable end of the list."""

    activities: list[SummaryActivity]
    rate_limit: RateLimitSnapshot | None


class PushSubscription(BaseModel):
    """A push subscription, as the create (201) and the list answer it (docs/strava.md §5)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    id: int
    callback_url: str
    created_at: datetime
    updated_at: datetime | None = None
    application_id: int | None = None
    resource_state: int | None = None
