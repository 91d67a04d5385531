"""The workout documents of the HTTP contract (docs/contract.md §3 Workout)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict


class WorkoutOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    source: Literal["strava"]
    source_id: int
    name: str | None
    sport_type: str
    is_run: bool
    start_date: datetime
    start_date_local: datetime | None
    timezone: str | None
    distance_m: float | None
    moving_time_s: int | None
    elapsed_time_s: int | None
    elevation_gain_m: float | None
    average_speed_mps: float | None
    max_speed_mps: float | None
    average_heartrate: float | None
    max_heartrate: float | None
    average_cadence: float | None
    workout_type: int | None
    manual: bool
    trainer: bool
    visibility: str | None
    summary_polyline: str | None
    updated_at: datetime


class WorkoutPage(BaseModel):
    items: list[WorkoutOut]
    next_cursor: str | None
