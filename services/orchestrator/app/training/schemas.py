"""The training-load documents of the HTTP contract (docs/contract.md §3 TrainingLoad)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel


class WeekLoad(BaseModel):
    week_start: datetime
    runs: int
    distance_m: float
    moving_time_s: int


class TrainingLoad(BaseModel):
    window_days: int
    runs: int
    distance_m: float
    moving_time_s: int
    longest_run_m: float
    weeks: list[WeekLoad]
    acute_chronic_ratio: float | None
