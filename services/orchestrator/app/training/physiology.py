"""The inputs of the training-load model and the runner's physiology resolved from them.

Provider-agnostic: a `WorkoutSummary` is what any source's activity summary can give, and the
physiology comes from the runner's profile or, where the profile is silent, from the workouts,
each value saying where it came from (docs/training-load.md §2). Nothing here invents a value
without saying so.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from enum import StrEnum

__all__ = [
    "FTP_RANGE",
    "MAX_HR_RANGE",
    "RESTING_HR_RANGE",
    "RIDE_SPORT_TYPES",
    "RUN_SPORT_TYPES",
    "THRESHOLD_HR_RANGE",
    "THRESHOLD_PACE_RANGE",
    "Physiology",
    "ResolvedPhysiology",
    "ResolvedValue",
    "Sex",
    "TrimpConstants",
    "ValueSource",
    "WorkoutSummary",
    "finite_positive",
    "resolve_physiology",
]

RUN_SPORT_TYPES = frozenset({"Run", "TrailRun", "VirtualRun"})
RIDE_SPORT_TYPES = frozenset(
    {"Ride", "VirtualRide", "GravelRide", "MountainBikeRide", "Velomobile", "Handcycle"}
)

# Threshold HR as a share of max HR when only max HR is known (docs/training-load.md §2).
THRESHOLD_HR_SHARE_OF_MAX = 0.89
DEFAULT_RESTING_HR = 60.0
# Runs and rides shorter than this say little about a sustainable (threshold) effort.
SUSTAINED_EFFORT_MIN_S = 20 * 60
# A 20-minute best is above threshold: scale it by 0.95 (Coggan's 20-minute rule), rising
# linearly to 1.0 for efforts of an hour or more.
SHORT_EFFORT_SCALE = 0.95
FULL_EFFORT_S = 60 * 60

# Plausible ranges: a value outside is a typo or a sensor fault, never used.
MAX_HR_RANGE = (100.0, 230.0)
RESTING_HR_RANGE = (25.0, 110.0)
THRESHOLD_HR_RANGE = (80.0, 220.0)
# 1.0 m/s = 16:40 /km; 6.5 m/s = 2:34 /km (faster than any human over 20 minutes).
THRESHOLD_SPEED_RANGE = (1.0, 6.5)
# The same bounds as a pace in s/km (what a runner types): 2:34 to 16:40 /km.
THRESHOLD_PACE_RANGE = (
    float(math.ceil(1000 / THRESHOLD_SPEED_RANGE[1])),
    1000 / THRESHOLD_SPEED_RANGE[0],
)
FTP_RANGE = (50.0, 600.0)


def finite_positive(value: float | None) -> float | None:
    """`value` if it is a finite number above zero, else None (missing, 0, negative, NaN, inf)."""
    if value is None or not math.isfinite(value) or value <= 0:
        return None
    return float(value)


def _in_range(value: float | None, bounds: tuple[float, float]) -> float | None:
    number = finite_positive(value)
    if number is None or not bounds[0] <= number <= bounds[1]:
        return None
    return number


class Sex(StrEnum):
    male = "male"
    female = "female"


class ValueSource(StrEnum):
    profile = "profile"  # the runner said so
    estimated = "estimated"  # derived from the synced workouts
    default = "default"  # a population default, used because nothing better is known
    unknown = "unknown"  # not known and not guessed: the methods needing it are skipped


@dataclass(frozen=True, slots=True)
class WorkoutSummary:
    """One workout as its summary describes it (no streams: see docs/training-load.md §6)."""

    id: str
    local_date: date
    sport_type: str
    moving_time_s: float | None
    distance_m: float | None = None
    average_speed_mps: float | None = None
    average_heartrate: float | None = None
    max_heartrate: float | None = None
    weighted_average_watts: float | None = None
    # False when the watts are the provider's estimate rather than a power meter's.
    device_watts: bool | None = None
    manual: bool = False

    @property
    def is_run(self) -> bool:
        return self.sport_type in RUN_SPORT_TYPES

    @property
    def is_ride(self) -> bool:
        return self.sport_type in RIDE_SPORT_TYPES

    @property
    def speed_mps(self) -> float | None:
        """Average moving speed: the summary's own, else distance over moving time."""
        speed = finite_positive(self.average_speed_mps)
        if speed is not None:
            return speed
        distance = finite_positive(self.distance_m)
        moving = finite_positive(self.moving_time_s)
        if distance is None or moving is None:
            return None
        return finite_positive(distance / moving)

    @property
    def measured_watts(self) -> float | None:
        """Weighted average watts from a power meter (estimated watts do not count)."""
        if self.device_watts is False:
            return None
        return finite_positive(self.weighted_average_watts)


@dataclass(frozen=True, slots=True)
class Physiology:
    """What the runner told us; every field optional."""

    sex: Sex | None = None
    max_hr: float | None = None
    resting_hr: float | None = None
    threshold_hr: float | None = None
    threshold_pace_s_per_km: float | None = None
    ftp_w: float | None = None


@dataclass(frozen=True, slots=True)
class ResolvedValue:
    value: float | None
    source: ValueSource
    note: str  # how the value was found, in a sentence


@dataclass(frozen=True, slots=True)
class TrimpConstants:
    """Banister's weighting y = a·e^(b·HRr) (Runalyze's constants, docs/training-load.md §1.1)."""

    label: str
    a: float
    b: float

    @classmethod
    def for_sex(cls, sex: Sex | None) -> TrimpConstants:
        if sex is Sex.male:
            return cls("male", 0.64, 1.92)
        if sex is Sex.female:
            return cls("female", 0.821776, 1.67)
        return cls("unspecified", 0.725215, 1.795)


@dataclass(frozen=True, slots=True)
class ResolvedPhysiology:
    sex: Sex | None
    trimp: TrimpConstants
    max_hr: ResolvedValue
    resting_hr: ResolvedValue
    threshold_hr: ResolvedValue
    threshold_speed_mps: ResolvedValue
    ftp_w: ResolvedValue

    @property
    def threshold_pace_s_per_km(self) -> float | None:
        speed = self.threshold_speed_mps.value
        return None if speed is None else round(1000.0 / speed, 1)


def resolve_physiology(
    profile: Physiology, workouts: Iterable[WorkoutSummary]
) -> ResolvedPhysiology:
    """Each value from the profile, else estimated from the workouts, else a stated default or
    unknown. Manual entries are typed, not measured: they never feed an estimate."""
    measured = [workout for workout in workouts if not workout.manual]
    max_hr = _resolve_max_hr(profile, measured)
    return ResolvedPhysiology(
        sex=profile.sex,
        trimp=TrimpConstants.for_sex(profile.sex),
        max_hr=max_hr,
        resting_hr=_resolve_resting_hr(profile),
        threshold_hr=_resolve_threshold_hr(profile, max_hr),
        threshold_speed_mps=_resolve_threshold_speed(profile, measured),
        ftp_w=_resolve_ftp(profile, measured),
    )


def _from_profile(value: float | None, bounds: tuple[float, float], what: str) -> ResolvedValue:
    number = _in_range(value, bounds)
    if number is not None:
        return ResolvedValue(number, ValueSource.profile, f"{what} from your profile")
    return ResolvedValue(None, ValueSource.unknown, "")


def _ignored(value: float | None, bounds: tuple[float, float]) -> str:
    """A sentence when the profile held a value outside the plausible range."""
    if value is None:
        return ""
    return f" (profile value {value:g} ignored: outside {bounds[0]:g}-{bounds[1]:g})"


def _resolve_max_hr(profile: Physiology, measured: list[WorkoutSummary]) -> ResolvedValue:
    resolved = _from_profile(profile.max_hr, MAX_HR_RANGE, "max heart rate")
    if resolved.value is not None:
        return resolved
    seen = [_in_range(workout.max_heartrate, MAX_HR_RANGE) for workout in measured]
    highest = max((value for value in seen if value is not None), default=None)
    suffix = _ignored(profile.max_hr, MAX_HR_RANGE)
    if highest is None:
        return ResolvedValue(
            None, ValueSource.unknown, "max heart rate unknown: no heart-rate data" + suffix
        )
    return ResolvedValue(
        highest,
        ValueSource.estimated,
        "max heart rate estimated as the highest recorded in your workouts" + suffix,
    )


def _resolve_resting_hr(profile: Physiology) -> ResolvedValue:
    resolved = _from_profile(profile.resting_hr, RESTING_HR_RANGE, "resting heart rate")
    if resolved.value is not None:
        return resolved
    return ResolvedValue(
        DEFAULT_RESTING_HR,
        ValueSource.default,
        f"resting heart rate assumed {DEFAULT_RESTING_HR:g} bpm (not in your profile)"
        + _ignored(profile.resting_hr, RESTING_HR_RANGE),
    )


def _resolve_threshold_hr(profile: Physiology, max_hr: ResolvedValue) -> ResolvedValue:
    resolved = _from_profile(profile.threshold_hr, THRESHOLD_HR_RANGE, "threshold heart rate")
    if resolved.value is not None:
        return resolved
    suffix = _ignored(profile.threshold_hr, THRESHOLD_HR_RANGE)
    if max_hr.value is None:
        return ResolvedValue(
            None, ValueSource.unknown, "threshold heart rate unknown: no max heart rate" + suffix
        )
    return ResolvedValue(
        float(round(THRESHOLD_HR_SHARE_OF_MAX * max_hr.value)),
        ValueSource.estimated,
        f"threshold heart rate estimated as {THRESHOLD_HR_SHARE_OF_MAX:.0%} of max heart rate"
        + suffix,
    )


def _sustained_effort_scale(moving_time_s: float) -> float:
    """0.95 for a 20-minute effort rising linearly to 1.0 at an hour and beyond."""
    share = (min(moving_time_s, FULL_EFFORT_S) - SUSTAINED_EFFORT_MIN_S) / (
        FULL_EFFORT_S - SUSTAINED_EFFORT_MIN_S
    )
    return SHORT_EFFORT_SCALE + (1.0 - SHORT_EFFORT_SCALE) * max(0.0, share)


def _best_sustained(
    efforts: Iterable[tuple[float | None, float | None]], bounds: tuple[float, float]
) -> float | None:
    """The best (value x duration scale) over efforts of at least 20 minutes."""
    best: float | None = None
    for value, moving_time_s in efforts:
        moving = finite_positive(moving_time_s)
        number = finite_positive(value)
        if moving is None or number is None or moving < SUSTAINED_EFFORT_MIN_S:
            continue
        estimate = number * _sustained_effort_scale(moving)
        if _in_range(estimate, bounds) is not None and (best is None or estimate > best):
            best = estimate
    return best


def _resolve_threshold_speed(profile: Physiology, measured: list[WorkoutSummary]) -> ResolvedValue:
    pace = finite_positive(profile.threshold_pace_s_per_km)
    speed = None if pace is None else _in_range(1000.0 / pace, THRESHOLD_SPEED_RANGE)
    if speed is not None:
        return ResolvedValue(
            round(speed, 3), ValueSource.profile, "threshold pace from your profile"
        )
    suffix = "" if pace is None else f" (profile pace {pace:g} s/km ignored: implausible)"
    best = _best_sustained(
        ((workout.speed_mps, workout.moving_time_s) for workout in measured if workout.is_run),
        THRESHOLD_SPEED_RANGE,
    )
    if best is None:
        return ResolvedValue(
            None,
            ValueSource.unknown,
            "threshold pace unknown: no run of 20 minutes or more" + suffix,
        )
    return ResolvedValue(
        round(best, 3),
        ValueSource.estimated,
        "threshold pace estimated from your best run of 20 minutes or more" + suffix,
    )


def _resolve_ftp(profile: Physiology, measured: list[WorkoutSummary]) -> ResolvedValue:
    resolved = _from_profile(profile.ftp_w, FTP_RANGE, "FTP")
    if resolved.value is not None:
        return resolved
    suffix = _ignored(profile.ftp_w, FTP_RANGE)
    best = _best_sustained(
        (
            (workout.measured_watts, workout.moving_time_s)
            for workout in measured
            if workout.is_ride
        ),
        FTP_RANGE,
    )
    if best is None:
        return ResolvedValue(
            None, ValueSource.unknown, "FTP unknown: no power-meter ride of 20 minutes" + suffix
        )
    return ResolvedValue(
        round(best, 1),
        ValueSource.estimated,
        "FTP estimated from your best power-meter ride of 20 minutes or more" + suffix,
    )
