"""The training-load model: per-workout load, fatigue (ATL), fitness (CTL), form, ACWR,
monotony, strain, ramp rate, flags and plain-language sentences (docs/training-load.md).

Pure and provider-agnostic: dataclasses in, dataclasses out, standard-library math. Figures are
computed unrounded and rounded only in the returned dataclasses; every returned float is finite.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import date, timedelta
from enum import StrEnum

from app.training.physiology import (
    Physiology,
    ResolvedPhysiology,
    WorkoutSummary,
    finite_positive,
    resolve_physiology,
)

__all__ = [
    "ACWR_CHRONIC_DAYS",
    "ATL_DAYS",
    "CTL_DAYS",
    "Comparison",
    "DayLoad",
    "FlagCode",
    "LoadFigures",
    "LoadFlag",
    "LoadMethod",
    "TrainingLoadModel",
    "WorkoutLoad",
    "ewma",
    "sentences_for",
    "training_load_model",
    "workout_load",
]

ATL_DAYS = 7  # fatigue time constant
CTL_DAYS = 42  # fitness time constant; also the history needed before figures are final
ACWR_ACUTE_DAYS = 7
ACWR_CHRONIC_DAYS = 28
FULL_HISTORY_DAYS = CTL_DAYS

# Guards (docs/training-load.md §1.5).
MAX_COUNTED_MOVING_S = 24 * 3600  # a day holds at most 24 h: beyond is a recording error or
# a multi-day event, counted as 24 h
MAX_INTENSITY_FACTOR = 1.5  # pace and power: above this the speed or watts are a glitch
MONOTONY_CAP = 10.0
# Threshold HR sits at 80-90 % of heart-rate reserve; below half, the profile's heart rates are
# inconsistent and normalising by them would inflate every load.
MIN_THRESHOLD_RESERVE = 0.5

# Per-sport intensity factor for the duration method: load per hour = 100 x IF²
# (docs/training-load.md §1.4). Assumed typical sessions, not measurements.
SPORT_INTENSITY: dict[str, float] = {
    "Run": 0.75,
    "TrailRun": 0.75,
    "VirtualRun": 0.75,
    "Ride": 0.65,
    "GravelRide": 0.65,
    "MountainBikeRide": 0.70,
    "VirtualRide": 0.70,
    "EBikeRide": 0.45,
    "EMountainBikeRide": 0.50,
    "Handcycle": 0.65,
    "Velomobile": 0.65,
    "Walk": 0.45,
    "Hike": 0.55,
    "Snowshoe": 0.60,
    "Swim": 0.70,
    "Rowing": 0.70,
    "VirtualRow": 0.70,
    "NordicSki": 0.70,
    "BackcountrySki": 0.65,
    "RollerSki": 0.70,
    "AlpineSki": 0.45,
    "Elliptical": 0.65,
    "StairStepper": 0.65,
    "WeightTraining": 0.55,
    "Crossfit": 0.70,
    "HighIntensityIntervalTraining": 0.75,
    "Workout": 0.60,
    "Yoga": 0.35,
    "Pilates": 0.40,
}
DEFAULT_INTENSITY = 0.60

ACWR_HIGH = 1.5  # Gabbett 2016: above 1.5 the injury risk climbs steeply
ACWR_ELEVATED = 1.3
ACWR_LOW = 0.8
MONOTONY_HIGH = 2.0  # Foster 1998
FORM_LOW = -30.0  # below: fatigue far above fitness
FORM_HARD = -10.0
FORM_FRESH = 15.0
RAMP_RATE_HIGH = 8.0  # CTL points per week
RAMP_RATE_FALLING = -5.0
EPSILON = 1e-6  # a chronic load below this is "no load": no ratio


class LoadMethod(StrEnum):
    heart_rate = "heart_rate"
    pace = "pace"
    power = "power"
    duration = "duration"


class FlagCode(StrEnum):
    acwr_rolling_high = "acwr_rolling_high"
    acwr_ewma_high = "acwr_ewma_high"
    monotony_high = "monotony_high"
    form_low = "form_low"
    ramp_rate_high = "ramp_rate_high"


class Comparison(StrEnum):
    above = "above"
    below = "below"


@dataclass(frozen=True, slots=True)
class WorkoutLoad:
    workout_id: str
    local_date: date
    sport_type: str
    load: float
    method: LoadMethod
    # IF of the pace, power and duration methods; None for heart rate.
    intensity_factor: float | None
    # Heart-rate reserve of the heart-rate method; None otherwise.
    heart_rate_reserve: float | None
    # Why a method was skipped or a value clamped, in plain words.
    notes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class DayLoad:
    date: date
    load: float
    atl: float
    ctl: float
    form: float  # ctl - atl of the same day
    workouts: tuple[WorkoutLoad, ...]
    # Fewer than 42 days of history up to this day: ATL and CTL still lean on their seed.
    provisional: bool


@dataclass(frozen=True, slots=True)
class LoadFlag:
    code: FlagCode
    value: float | None  # None: not computable yet (too little history or no load)
    threshold: float
    comparison: Comparison
    raised: bool


@dataclass(frozen=True, slots=True)
class LoadFigures:
    date: date
    atl: float
    ctl: float
    form: float
    acwr_rolling: float | None
    acwr_ewma: float | None
    monotony: float | None
    strain: float | None
    weekly_load: float
    ramp_rate: float | None
    history_days: int
    provisional: bool  # fewer than 42 days of history: CTL still leans on its seed
    flags: tuple[LoadFlag, ...]
    sentences: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class TrainingLoadModel:
    days: tuple[DayLoad, ...]
    current: LoadFigures
    physiology: ResolvedPhysiology


# --- per-workout load ----------------------------------------------------------------------------


def workout_load(workout: WorkoutSummary, physiology: ResolvedPhysiology) -> WorkoutLoad:
    """One workout's load, by the most trusted method its summary allows, rounded."""
    return _rounded(_assess(workout, physiology))


def _assess(workout: WorkoutSummary, physiology: ResolvedPhysiology) -> WorkoutLoad:
    notes: list[str] = []
    moving = finite_positive(workout.moving_time_s)
    if moving is None:
        return _load(workout, 0.0, LoadMethod.duration, None, None, ["no moving time: load 0"])
    if moving > MAX_COUNTED_MOVING_S:
        moving = MAX_COUNTED_MOVING_S
        notes.append("moving time over 24 h: counted as 24 h")
    hours = moving / 3600
    if workout.manual:
        notes.append("manual entry: counted by duration at the sport's usual intensity")
        return _by_duration(workout, hours, notes)

    heart_rate = _by_heart_rate(workout, physiology, hours, notes)
    if heart_rate is not None:
        return heart_rate
    speed = workout.speed_mps
    threshold_speed = physiology.threshold_speed_mps.value
    if workout.is_run and speed is not None and threshold_speed is not None:
        return _by_intensity(workout, LoadMethod.pace, hours, speed / threshold_speed, notes)
    watts = workout.measured_watts
    ftp = physiology.ftp_w.value
    if workout.is_ride and watts is not None and ftp is not None:
        return _by_intensity(workout, LoadMethod.power, hours, watts / ftp, notes)
    return _by_duration(workout, hours, notes)


def _trimp_per_minute(heart_rate_reserve: float, physiology: ResolvedPhysiology) -> float:
    constants = physiology.trimp
    return heart_rate_reserve * constants.a * math.exp(constants.b * heart_rate_reserve)


def _by_heart_rate(
    workout: WorkoutSummary, physiology: ResolvedPhysiology, hours: float, notes: list[str]
) -> WorkoutLoad | None:
    average = finite_positive(workout.average_heartrate)
    if average is None:
        if workout.average_heartrate is not None:
            notes.append("heart rate 0 or invalid: not used")
        return None
    rest = physiology.resting_hr.value
    peak = physiology.max_hr.value
    threshold = physiology.threshold_hr.value
    if (
        rest is None
        or peak is None
        or threshold is None
        or not rest < threshold < peak
        or (threshold - rest) / (peak - rest) < MIN_THRESHOLD_RESERVE
    ):
        notes.append("heart rate not used: max, threshold and resting heart rate do not fit")
        return None
    if average <= rest:
        notes.append("average heart rate at or below resting: not used")
        return None
    reserve = (average - rest) / (peak - rest)
    if reserve > 1.0:
        reserve = 1.0
        notes.append("average heart rate above max heart rate: counted at max")
    # Normalised so that 60 minutes at threshold heart rate = 100 (docs/training-load.md §1.1).
    at_threshold = 60 * _trimp_per_minute((threshold - rest) / (peak - rest), physiology)
    load = 100 * hours * 60 * _trimp_per_minute(reserve, physiology) / at_threshold
    return _load(workout, load, LoadMethod.heart_rate, None, reserve, notes)


def _by_intensity(
    workout: WorkoutSummary,
    method: LoadMethod,
    hours: float,
    intensity_factor: float,
    notes: list[str],
) -> WorkoutLoad:
    if not intensity_factor <= MAX_INTENSITY_FACTOR:
        intensity_factor = MAX_INTENSITY_FACTOR
        notes.append(f"intensity above {MAX_INTENSITY_FACTOR:g} times threshold: counted at that")
    load = 100 * hours * intensity_factor**2
    return _load(workout, load, method, intensity_factor, None, notes)


def _by_duration(workout: WorkoutSummary, hours: float, notes: list[str]) -> WorkoutLoad:
    intensity_factor = SPORT_INTENSITY.get(workout.sport_type)
    if intensity_factor is None:
        intensity_factor = DEFAULT_INTENSITY
        notes.append("unknown sport type: default intensity")
    load = 100 * hours * intensity_factor**2
    return _load(workout, load, LoadMethod.duration, intensity_factor, None, notes)


def _load(
    workout: WorkoutSummary,
    load: float,
    method: LoadMethod,
    intensity_factor: float | None,
    heart_rate_reserve: float | None,
    notes: list[str],
) -> WorkoutLoad:
    return WorkoutLoad(
        workout_id=workout.id,
        local_date=workout.local_date,
        sport_type=workout.sport_type,
        load=load,
        method=method,
        intensity_factor=intensity_factor,
        heart_rate_reserve=heart_rate_reserve,
        notes=tuple(notes),
    )


def _rounded(assessed: WorkoutLoad) -> WorkoutLoad:
    return replace(
        assessed,
        load=_round(assessed.load, 1),
        intensity_factor=_round_optional(assessed.intensity_factor, 2),
        heart_rate_reserve=_round_optional(assessed.heart_rate_reserve, 2),
    )


def _round(value: float, digits: int) -> float:
    # The inputs are guarded so this never happens; the API must still never see NaN or inf.
    if not math.isfinite(value):
        return 0.0
    return round(value, digits) + 0.0  # + 0.0 turns -0.0 into 0.0


def _round_optional(value: float | None, digits: int) -> float | None:
    return None if value is None else _round(value, digits)


# --- the daily model -----------------------------------------------------------------------------


def ewma(loads: Sequence[float], *, time_constant_days: int, seed: float) -> list[float]:
    """Golden Cheetah's exponentially weighted average, one value per day, unrounded:
    x_t = x_{t-1}·e^(-1/N) + load_t·(1 - e^(-1/N)), with x_{-1} = seed."""
    decay = math.exp(-1 / time_constant_days)
    values: list[float] = []
    previous = seed
    for load in loads:
        previous = previous * decay + load * (1 - decay)
        values.append(previous)
    return values


def training_load_model(
    workouts: Sequence[WorkoutSummary],
    profile: Physiology,
    *,
    today: date,
    days: int = 28,
    history_start: date | None = None,
) -> TrainingLoadModel:
    """The model as of `today` (the runner's local date).

    `workouts` is all the history the caller holds; `history_start` is the first day from which
    it is complete (the sync window's start; default: the earliest workout). Days before it are
    unknown, not zero: the averages are seeded instead (docs/training-load.md §3). The series
    holds the last `days` days of history.
    """
    known = [workout for workout in workouts if workout.local_date <= today]
    physiology = resolve_physiology(profile, known)
    first = history_start or min((workout.local_date for workout in known), default=today)
    first = min(first, today)
    history_days = (today - first).days + 1

    by_day: list[list[WorkoutLoad]] = [[] for _ in range(history_days)]
    for workout in known:
        if workout.local_date >= first:
            by_day[(workout.local_date - first).days].append(_assess(workout, physiology))
    daily = [sum(assessed.load for assessed in day) for day in by_day]

    seed_window = daily[:FULL_HISTORY_DAYS]
    seed = sum(seed_window) / len(seed_window)
    atl = ewma(daily, time_constant_days=ATL_DAYS, seed=seed)
    ctl = ewma(daily, time_constant_days=CTL_DAYS, seed=seed)
    chronic_ewma = ewma(daily, time_constant_days=ACWR_CHRONIC_DAYS, seed=seed)

    shown = range(max(0, history_days - max(1, days)), history_days)
    series = tuple(
        DayLoad(
            date=first + timedelta(days=index),
            load=_round(daily[index], 1),
            atl=_round(atl[index], 1),
            ctl=_round(ctl[index], 1),
            form=_round(ctl[index] - atl[index], 1),
            workouts=tuple(_rounded(assessed) for assessed in by_day[index]),
            provisional=index + 1 < FULL_HISTORY_DAYS,
        )
        for index in shown
    )
    current = _current_figures(
        today, daily, atl=atl, ctl=[seed, *ctl], chronic_ewma=chronic_ewma[-1]
    )
    return TrainingLoadModel(days=series, current=current, physiology=physiology)


def _ratio(numerator: float, denominator: float) -> float | None:
    if denominator < EPSILON:
        return None
    return numerator / denominator


def _monotony(week: Sequence[float]) -> float:
    """Foster: mean / population SD of the week's daily loads, capped at 10. A week without load
    has monotony 0; equal non-zero loads every day (SD 0) hit the cap."""
    mean = sum(week) / len(week)
    if mean < EPSILON:
        return 0.0
    deviation = math.sqrt(sum((load - mean) ** 2 for load in week) / len(week))
    if mean >= MONOTONY_CAP * deviation:
        return MONOTONY_CAP
    return mean / deviation


def _current_figures(
    today: date,
    daily: list[float],
    *,
    atl: list[float],
    ctl: list[float],  # ctl[0] is the seed: the day before history starts
    chronic_ewma: float,
) -> LoadFigures:
    history_days = len(daily)
    week = daily[-ACWR_ACUTE_DAYS:]
    weekly_load = sum(week)
    acwr_rolling = acwr_ewma = monotony = strain = ramp_rate = None
    if history_days >= ACWR_ACUTE_DAYS:
        chronic = daily[-ACWR_CHRONIC_DAYS:]
        acwr_rolling = _ratio(weekly_load / ACWR_ACUTE_DAYS, sum(chronic) / len(chronic))
        acwr_ewma = _ratio(atl[-1], chronic_ewma)
        monotony = _monotony(week)
        strain = weekly_load * monotony
        ramp_rate = ctl[-1] - ctl[-1 - ACWR_ACUTE_DAYS]
    atl_now, ctl_now = _round(atl[-1], 1), _round(ctl[-1], 1)
    form = _round(ctl[-1] - atl[-1], 1)
    acwr_rolling = _round_optional(acwr_rolling, 2)
    acwr_ewma = _round_optional(acwr_ewma, 2)
    monotony = _round_optional(monotony, 2)
    strain = _round_optional(strain, 1)
    ramp_rate = _round_optional(ramp_rate, 1)
    provisional = history_days < FULL_HISTORY_DAYS
    flags = (
        _flag(FlagCode.acwr_rolling_high, acwr_rolling, ACWR_HIGH, Comparison.above),
        _flag(FlagCode.acwr_ewma_high, acwr_ewma, ACWR_HIGH, Comparison.above),
        _flag(FlagCode.monotony_high, monotony, MONOTONY_HIGH, Comparison.above),
        _flag(FlagCode.form_low, form, FORM_LOW, Comparison.below),
        _flag(FlagCode.ramp_rate_high, ramp_rate, RAMP_RATE_HIGH, Comparison.above),
    )
    figures = LoadFigures(
        date=today,
        atl=atl_now,
        ctl=ctl_now,
        form=form,
        acwr_rolling=acwr_rolling,
        acwr_ewma=acwr_ewma,
        monotony=monotony,
        strain=strain,
        weekly_load=_round(weekly_load, 1),
        ramp_rate=ramp_rate,
        history_days=history_days,
        provisional=provisional,
        flags=flags,
        sentences=(),
    )
    return replace(figures, sentences=sentences_for(figures, any_load=any(daily)))


def _flag(
    code: FlagCode, value: float | None, threshold: float, comparison: Comparison
) -> LoadFlag:
    if value is None:
        raised = False
    elif comparison is Comparison.above:
        raised = value > threshold
    else:
        raised = value < threshold
    return LoadFlag(code, value, threshold, comparison, raised)


# --- plain language ------------------------------------------------------------------------------


def sentences_for(figures: LoadFigures, *, any_load: bool = True) -> tuple[str, ...]:
    """Short sentences a runner understands, derived from the rounded figures alone."""
    if not any_load:
        return ("No training load recorded yet: the figures start with your first workout.",)
    raised = {flag.code for flag in figures.flags if flag.raised}
    said: list[str] = []
    if figures.provisional:
        said.append(
            f"These figures are provisional: they rest on {figures.history_days} days of "
            f"history, and fitness needs {FULL_HISTORY_DAYS} days to settle."
        )
    ramp = figures.ramp_rate
    if FlagCode.ramp_rate_high in raised:
        said.append(
            f"You are ramping up faster than usual: fitness rose {ramp:g} points in 7 days "
            f"(more than {RAMP_RATE_HIGH:g} is a steep climb)."
        )
    elif ramp is not None and ramp <= RAMP_RATE_FALLING:
        said.append("Your fitness has been easing off this week.")
    acwr = figures.acwr_rolling if figures.acwr_rolling is not None else figures.acwr_ewma
    if raised & {FlagCode.acwr_rolling_high, FlagCode.acwr_ewma_high}:
        shown = max(value for value in (figures.acwr_rolling, figures.acwr_ewma) if value)
        said.append(
            f"This week's load is {shown:g} times your usual: a jump this big raises the risk "
            "of injury, so hold it steady for a few days."
        )
    elif acwr is not None and acwr > ACWR_ELEVATED:
        said.append("This week is a bit heavier than your recent weeks: keep the increase gradual.")
    elif acwr is not None and acwr < ACWR_LOW:
        said.append(
            "This week is lighter than your recent weeks: good for recovery, "
            "but fitness fades if it lasts."
        )
    elif acwr is not None:
        said.append("This week's load is in line with your recent weeks.")
    if FlagCode.monotony_high in raised:
        said.append(
            "Your days have been very alike in load: mixing hard days with easy or rest days "
            "lowers the strain."
        )
    if FlagCode.form_low in raised:
        said.append("You are carrying a lot of fatigue: plan easy days before any hard session.")
    elif figures.form < FORM_HARD:
        said.append("You are training hard: fatigue is above fitness, as in a building phase.")
    elif figures.form > FORM_FRESH:
        said.append("You are fresh: good for a race, though a long rest costs fitness.")
    else:
        said.append("Fatigue and fitness are in balance.")
    return tuple(said)
