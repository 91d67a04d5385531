"""The runner's physiology: from the profile, else estimated from workouts, each value with its
source (docs/training-load.md §2)."""

from __future__ import annotations

from datetime import date

import pytest
from app.training.physiology import (
    Physiology,
    Sex,
    TrimpConstants,
    ValueSource,
    WorkoutSummary,
    resolve_physiology,
)

DAY = date(2026, 11, 2)


def workout(
    sport_type: str = "Run",
    *,
    moving_time_s: float | None = 3600,
    average_speed_mps: float | None = None,
    max_heartrate: float | None = None,
    weighted_average_watts: float | None = None,
    device_watts: bool | None = None,
    manual: bool = False,
) -> WorkoutSummary:
    return WorkoutSummary(
        id="w",
        local_date=DAY,
        sport_type=sport_type,
        moving_time_s=moving_time_s,
        average_speed_mps=average_speed_mps,
        max_heartrate=max_heartrate,
        weighted_average_watts=weighted_average_watts,
        device_watts=device_watts,
        manual=manual,
    )


def test_profile_values_are_used_and_say_so() -> None:
    profile = Physiology(
        sex=Sex.female,
        max_hr=192,
        resting_hr=48,
        threshold_hr=176,
        threshold_pace_s_per_km=250,
        ftp_w=230,
    )

    resolved = resolve_physiology(profile, [workout(max_heartrate=201)])

    assert resolved.sex is Sex.female
    assert resolved.trimp == TrimpConstants("female", 0.821776, 1.67)
    assert (resolved.max_hr.value, resolved.max_hr.source) == (192, ValueSource.profile)
    assert (resolved.resting_hr.value, resolved.resting_hr.source) == (48, ValueSource.profile)
    assert (resolved.threshold_hr.value, resolved.threshold_hr.source) == (176, ValueSource.profile)
    # 250 s/km: 1000 m / 250 s = 4.0 m/s
    assert resolved.threshold_speed_mps.value == pytest.approx(4.0)
    assert resolved.threshold_speed_mps.source is ValueSource.profile
    assert resolved.threshold_pace_s_per_km == 250.0
    assert (resolved.ftp_w.value, resolved.ftp_w.source) == (230, ValueSource.profile)


def test_max_hr_is_the_highest_recorded_and_threshold_is_089_of_it() -> None:
    workouts = [
        workout(max_heartrate=181),
        workout(max_heartrate=187),
        workout(max_heartrate=199, manual=True),  # typed, not measured: ignored
        workout(max_heartrate=251),  # a strap artefact outside 100-230: ignored
    ]

    resolved = resolve_physiology(Physiology(), workouts)

    assert (resolved.max_hr.value, resolved.max_hr.source) == (187, ValueSource.estimated)
    # 0.89 x 187 = 166.43 -> 166 bpm
    assert resolved.threshold_hr.value == 166
    assert resolved.threshold_hr.source is ValueSource.estimated
    assert "estimated" in resolved.threshold_hr.note


def test_resting_hr_defaults_to_60_and_says_it_is_a_default() -> None:
    resolved = resolve_physiology(Physiology(), [])

    assert resolved.resting_hr.value == 60
    assert resolved.resting_hr.source is ValueSource.default
    assert "assumed" in resolved.resting_hr.note


def test_nothing_known_stays_unknown_rather_than_invented() -> None:
    resolved = resolve_physiology(Physiology(), [workout(moving_time_s=600)])

    assert resolved.sex is None
    assert resolved.trimp == TrimpConstants("unspecified", 0.725215, 1.795)
    for value in (resolved.max_hr, resolved.threshold_hr, resolved.threshold_speed_mps):
        assert value.value is None
        assert value.source is ValueSource.unknown
        assert value.note
    assert resolved.ftp_w.source is ValueSource.unknown
    assert resolved.threshold_pace_s_per_km is None


def test_threshold_pace_is_estimated_from_the_best_run_of_20_minutes_or_more() -> None:
    workouts = [
        # 25 min: scale = 0.95 + 0.05 x (25 - 20) / 40 = 0.95625; 4.0 x 0.95625 = 3.825 m/s
        workout(moving_time_s=25 * 60, average_speed_mps=4.0),
        # 70 min: scale 1.0; 3.7 m/s
        workout(moving_time_s=70 * 60, average_speed_mps=3.7),
        workout(moving_time_s=15 * 60, average_speed_mps=5.0),  # too short
        workout(moving_time_s=60 * 60, average_speed_mps=6.0, manual=True),  # typed
        workout("Ride", moving_time_s=60 * 60, average_speed_mps=9.0),  # not a run
    ]

    resolved = resolve_physiology(Physiology(), workouts)

    assert resolved.threshold_speed_mps.value == pytest.approx(3.825)
    assert resolved.threshold_speed_mps.source is ValueSource.estimated
    # 1000 / 3.825 = 261.4 s/km
    assert resolved.threshold_pace_s_per_km == 261.4


def test_ftp_is_estimated_from_power_meter_rides_only() -> None:
    workouts = [
        # 20 min at 300 W weighted: scale 0.95 -> 285 W (Coggan's 20-minute rule)
        workout("Ride", moving_time_s=20 * 60, weighted_average_watts=300, device_watts=True),
        # estimated watts (no power meter): never used
        workout("Ride", moving_time_s=90 * 60, weighted_average_watts=400, device_watts=False),
    ]

    resolved = resolve_physiology(Physiology(), workouts)

    assert resolved.ftp_w.value == pytest.approx(285.0)
    assert resolved.ftp_w.source is ValueSource.estimated


def test_implausible_profile_values_are_ignored_and_the_note_says_so() -> None:
    profile = Physiology(max_hr=400, resting_hr=0, threshold_pace_s_per_km=30)

    resolved = resolve_physiology(profile, [workout(max_heartrate=190)])

    assert (resolved.max_hr.value, resolved.max_hr.source) == (190, ValueSource.estimated)
    assert "ignored" in resolved.max_hr.note
    assert resolved.resting_hr.source is ValueSource.default
    # 30 s/km is 33 m/s: not a human running pace
    assert resolved.threshold_speed_mps.source is ValueSource.unknown
    assert "ignored" in resolved.threshold_speed_mps.note
