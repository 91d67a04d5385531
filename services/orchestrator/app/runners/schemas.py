from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator


class SessionCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SessionOut(BaseModel):
    runner_id: uuid.UUID
    access_token: str
    token_type: Literal["bearer"] = "bearer"
    # After this the token is refused (401): start a new session.
    expires_at: datetime


class ProfileIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    display_name: str = Field(min_length=1, max_length=80)
    timezone: str | None = Field(default=None, max_length=64)
    weekly_distance_goal_km: float | None = Field(default=None, ge=0, le=1000)

    @field_validator("display_name")
    @classmethod
    def _strip(cls, value: str) -> str:
        value = value.strip()
        if not value:
            raise ValueError("display_name must not be blank")
        if any(ord(char) < 32 for char in value):
            raise ValueError("display_name must not contain control characters")
        return value


class ProfileOut(BaseModel):
    runner_id: uuid.UUID
    display_name: str
    timezone: str | None
    weekly_distance_goal_km: float | None
    updated_at: datetime
