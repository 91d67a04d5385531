"""The training-load documents of the HTTP contract (docs/contract.md §3.4 TrainingLoad,
TrainingLoadModel, LoadFigures). The model's documents are built from its dataclasses
(`from_attributes`, docs/training-load.md): the names are the model's own."""

from __future__ import annotations

import datetime as dt
import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from app.training.model import Comparison, FlagCode, LoadMethod
from app.training.physiology import Sex, ValueSource


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


class _FromModel(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class WorkoutLoadOut(_FromModel):
    workout_id: uuid.UUID
    sport_type: str
    load: float = Field(description="Load points: one hour at threshold is 100.")
    method: LoadMethod = Field(description="What produced the load, most trusted first.")
    intensity_factor: float | None = Field(
        description="Pace, power and duration methods: the intensity relative to threshold."
    )
    heart_rate_reserve: float | None = Field(
        description="Heart-rate method: (average - resting) / (max - resting)."
    )
    notes: list[str] = Field(description="Why a method was skipped or a value clamped.")


class DayLoadOut(_FromModel):
    date: dt.date = Field(description="The runner's local date.")
    load: float = Field(description="The day's load points; 0 on a day without workouts.")
    atl: float = Field(description="Fatigue: 7-day exponentially weighted load.")
    ctl: float = Field(description="Fitness: 42-day exponentially weighted load.")
    form: float = Field(description="Fitness minus fatigue of the same day.")
    provisional: bool = Field(description="Fewer than 42 days of history up to this day.")
    workouts: list[WorkoutLoadOut]


class LoadFlagOut(_FromModel):
    code: FlagCode
    value: float | None = Field(description="null: not computable yet.")
    threshold: float
    comparison: Comparison = Field(description="The flag is raised when value is this side.")
    raised: bool


class LoadFiguresOut(_FromModel):
    """The figures as of today; `sentences` say them in plain words."""

    date: dt.date
    atl: float
    ctl: float
    form: float
    acwr_rolling: float | None = Field(description="Mean load of 7 days over that of 28 days.")
    acwr_ewma: float | None = Field(description="ATL over the 28-day EWMA.")
    monotony: float | None = Field(description="Foster: 7-day mean over SD, capped at 10.")
    strain: float | None = Field(description="Weekly load x monotony.")
    weekly_load: float
    ramp_rate: float | None = Field(description="CTL change over the last 7 days.")
    history_days: int = Field(description="Days of history the figures rest on.")
    provisional: bool = Field(description="Fewer than 42 days of history: CTL leans on its seed.")
    flags: list[LoadFlagOut]
    sentences: list[str]


class ResolvedValueOut(_FromModel):
    value: float | None
    source: ValueSource
    note: str


class TrimpConstantsOut(_FromModel):
    label: str
    a: float
    b: float


class PhysiologyOut(_FromModel):
    """The physiology the loads used, each value with where it came from."""

    sex: Sex | None
    trimp: TrimpConstantsOut
    max_hr: ResolvedValueOut
    resting_hr: ResolvedValueOut
    threshold_hr: ResolvedValueOut
    threshold_speed_mps: ResolvedValueOut
    threshold_pace_s_per_km: float | None
    ftp_w: ResolvedValueOut


class TrainingLoadModelOut(BaseModel):
    """GET /api/v1/training/load: the daily series, today's figures and the physiology used."""

    window_days: int = Field(
        description="The days asked for; the series starts no earlier than the history."
    )
    history_start: dt.date = Field(
        description="The first day of complete history; earlier days are unknown, not rest."
    )
    days: list[DayLoadOut] = Field(description="Oldest first, ending today.")
    current: LoadFiguresOut
    physiology: PhysiologyOut
