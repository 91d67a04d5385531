from __future__ import annotations

import uuid
import zoneinfo
from datetime import datetime
from functools import lru_cache
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from app.text import PLAIN_TEXT_PATTERN, has_forbidden_chars, is_invisible
from app.training.physiology import (
    FTP_RANGE,
    MAX_HR_RANGE,
    RESTING_HR_RANGE,
    THRESHOLD_HR_RANGE,
    THRESHOLD_PACE_RANGE,
    Sex,
)


class SessionCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SessionOut(BaseModel):
    runner_id: uuid.UUID
    access_token: str
    token_type: Literal["bearer"] = "bearer"
    # After this the token is refused (401): start a new session.
    expires_at: datetime


# The runner's physiology (docs/training-load.md §2): optional, in the model's plausible ranges,
# strict numbers (no strings, no booleans). Heart rates and FTP are whole numbers.
PHYSIOLOGY_FIELDS = (
    "sex",
    "max_hr",
    "resting_hr",
    "threshold_hr",
    "threshold_pace_s_per_km",
    "ftp_w",
)


def _whole(bounds: tuple[float, float], description: str) -> Any:
    return Field(
        default=None, strict=True, ge=int(bounds[0]), le=int(bounds[1]), description=description
    )


class ProfileIn(BaseModel):
    """PUT /api/v1/profile. The physiology fields are optional: a field left out keeps its stored
    value (older clients do not know them and must not erase them), `null` clears it."""

    model_config = ConfigDict(extra="forbid")

    display_name: str = Field(
        min_length=1,
        max_length=80,
        pattern=PLAIN_TEXT_PATTERN,
        description="Shown to the runner. No control or bidi-override characters, and not "
        "only whitespace or zero-width characters (422 otherwise).",
    )
    timezone: str | None = Field(
        default=None,
        max_length=64,
        description="An IANA time zone name, e.g. Europe/Berlin (422 otherwise).",
        examples=["Europe/Berlin"],
    )
    # Strict: `false` or "12" is refused, not stored as 0.0 or 12.0.
    weekly_distance_goal_km: float | None = Field(default=None, ge=0, le=1000, strict=True)
    sex: Sex | None = Field(
        default=None, description="For the heart-rate load's constants; null: not given."
    )
    max_hr: int | None = _whole(MAX_HR_RANGE, "Maximum heart rate, bpm.")
    resting_hr: int | None = _whole(RESTING_HR_RANGE, "Resting heart rate, bpm.")
    threshold_hr: int | None = _whole(THRESHOLD_HR_RANGE, "Lactate-threshold heart rate, bpm.")
    threshold_pace_s_per_km: float | None = Field(
        default=None,
        strict=True,
        ge=THRESHOLD_PACE_RANGE[0],
        le=THRESHOLD_PACE_RANGE[1],
        description="Threshold pace in seconds per km (e.g. 240 for 4:00 /km).",
    )
    ftp_w: int | None = _whole(FTP_RANGE, "Functional threshold power, watts.")

    @field_validator("display_name", mode="before")
    @classmethod
    def _plain_text(cls, value: object) -> object:
        if not isinstance(value, str):
            return value  # the type check reports it
        if has_forbidden_chars(value):
            raise ValueError("display_name must not contain control or bidi-override characters")
        value = value.strip()
        if is_invisible(value):
            raise ValueError("display_name must contain visible characters")
        return value

    @field_validator("timezone")
    @classmethod
    def _iana_zone(cls, value: str | None) -> str | None:
        if value is not None and value not in _time_zones():
            raise ValueError("timezone must be an IANA time zone name, e.g. Europe/Berlin")
        return value


@lru_cache(maxsize=1)
def _time_zones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


class ProfileOut(BaseModel):
    runner_id: uuid.UUID
    display_name: str
    timezone: str | None
    weekly_distance_goal_km: float | None
    updated_at: datetime
    sex: Sex | None = None
    max_hr: int | None = None
    resting_hr: int | None = None
    threshold_hr: int | None = None
    threshold_pace_s_per_km: float | None = None
    ftp_w: int | None = None
