"""The training-load model against hand-worked values from the formulas' sources
(docs/training-load.md), the edge workouts, and properties over arbitrary input."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator
from datetime import date, timedelta
from typing import Any

import pytest
from app.training.model import (
    Comparison,
    FlagCode,
    LoadMethod,
    TrainingLoadModel,
    ewma,
    training_load_model,
    workout_load,
)
from app.training.physiology import (
    Physiology,
    ResolvedPhysiology,
    Sex,
    WorkoutSummary,
    resolve_physiology,
)
from hypothesis import given, settings
from hypothesis import strategies as st

TODAY = date(2026, 12, 4)
# A man whose heart rates put threshold sits at HRr = (170 - 50) / (200 - 50) = 0.8.
HEART = Physiology(sex=Sex.male, max_hr=200, resting_hr=50, threshold_hr=170)
# 240 s/km -> 1000 / 240 = 4.1667 m/s threshold speed; FTP 250 W.
THRESHOLDS = Physiology(threshold_pace_s_per_km=240, ftp_w=250)


def physiology(profile: Physiology) -> ResolvedPhysiology:
    return resolve_physiology(profile, [])


def summary(
    sport_type: str = "Run",
    *,
    minutes: float | None = 60,
    day: date = TODAY,
    workout_id: str = "w",
    distance_m: float | None = None,
    average_speed_mps: float | None = None,
    average_heartrate: float | None = None,
    max_heartrate: float | None = None,
    weighted_average_watts: float | None = None,
    manual: bool = False,
) -> WorkoutSummary:
    return WorkoutSummary(
        id=workout_id,
        local_date=day,
        sport_type=sport_type,
        moving_time_s=None if minutes is None else minutes * 60,
        distance_m=distance_m,
        average_speed_mps=average_speed_mps,
        average_heartrate=average_heartrate,
        max_heartrate=max_heartrate,
        weighted_average_watts=weighted_average_watts,
        device_watts=None if weighted_average_watts is None else True,
        manual=manual,
    )


def ride_of_load(load: float, day: date) -> WorkoutSummary:
    """A ride at FTP (IF 1.0) lasting load/100 hours: its load is exactly `load`."""
    return summary("Ride", minutes=0.6 * load, day=day, weighted_average_watts=250)


def daily(loads: list[float]) -> list[WorkoutSummary]:
    """One ride per day ending today, with the given loads (0: no workout)."""
    first = TODAY - timedelta(days=len(loads) - 1)
    return [
        ride_of_load(load, first + timedelta(days=index))
        for index, load in enumerate(loads)
        if load > 0
    ]


def model_of(loads: list[float], *, days: int = 28) -> TrainingLoadModel:
    return training_load_model(
        daily(loads),
        THRESHOLDS,
        today=TODAY,
        days=days,
        history_start=TODAY - timedelta(days=len(loads) - 1),
    )


# --- per-workout load: hand-worked ---------------------------------------------------------------


def test_one_hour_at_threshold_heart_rate_is_100() -> None:
    # TRIMP(60 min, HRr 0.8) / TRIMP(60 min, HRr 0.8) x 100 = 100
    load = workout_load(summary(average_heartrate=170), physiology(HEART))

    assert load.method is LoadMethod.heart_rate
    assert load.load == 100.0
    assert load.heart_rate_reserve == 0.8
    assert load.intensity_factor is None


@pytest.mark.parametrize(
    ("sex", "expected"),
    [
        # male: 90 x 0.6 x 0.64 x e^(1.92 x 0.6) = 109.366;
        #       60 x 0.8 x 0.64 x e^(1.92 x 0.8) = 142.724; 100 x 109.366 / 142.724 = 76.6
        (Sex.male, 76.6),
        # female: 90 x 0.6 x 0.821776 x e^(1.67 x 0.6) = 120.868;
        #         60 x 0.8 x 0.821776 x e^(1.67 x 0.8) = 150.042; 100 x 120.868 / 150.042 = 80.6
        (Sex.female, 80.6),
        # unspecified: 90 x 0.6 x 0.725215 x e^(1.795 x 0.6) = 114.973;
        #              60 x 0.8 x 0.725215 x e^(1.795 x 0.8) = 146.337; 100 x ... = 78.6
        (None, 78.6),
    ],
)
def test_banister_trimp_with_runalyze_constants_per_sex(sex: Sex | None, expected: float) -> None:
    # 90 min at 140 bpm: HRr = (140 - 50) / (200 - 50) = 0.6
    profile = dataclasses.replace(HEART, sex=sex)

    load = workout_load(summary(minutes=90, average_heartrate=140), physiology(profile))

    assert load.method is LoadMethod.heart_rate
    assert load.load == expected


def test_pace_load_of_a_run_without_heart_rate() -> None:
    # IF = 4.0 / (1000 / 240) = 0.96; 100 x 0.75 h x 0.96^2 = 69.12
    load = workout_load(summary(minutes=45, average_speed_mps=4.0), physiology(THRESHOLDS))

    assert (load.method, load.load, load.intensity_factor) == (LoadMethod.pace, 69.1, 0.96)


def test_pace_falls_back_to_distance_over_moving_time() -> None:
    # 12 km in 50 min = 4.0 m/s; IF 0.96; 100 x (50/60) h x 0.9216 = 76.8
    run = summary(minutes=50, distance_m=12_000)

    load = workout_load(run, physiology(THRESHOLDS))

    assert (load.method, load.load) == (LoadMethod.pace, 76.8)


def test_power_load_of_a_ride_with_weighted_watts() -> None:
    # IF = 200 / 250 = 0.8; 100 x 2 h x 0.8^2 = 128
    ride = summary("Ride", minutes=120, weighted_average_watts=200)

    load = workout_load(ride, physiology(THRESHOLDS))

    assert (load.method, load.load, load.intensity_factor) == (LoadMethod.power, 128.0, 0.8)


def test_estimated_watts_are_not_power_data() -> None:
    ride = dataclasses.replace(
        summary("Ride", minutes=120, weighted_average_watts=200), device_watts=False
    )

    load = workout_load(ride, physiology(THRESHOLDS))

    # Ride IF 0.65: 100 x 2 h x 0.4225 = 84.5
    assert (load.method, load.load) == (LoadMethod.duration, 84.5)


def test_a_run_with_watts_is_not_counted_by_power() -> None:
    run = summary("Run", minutes=40, weighted_average_watts=300)

    assert workout_load(run, physiology(THRESHOLDS)).method is LoadMethod.duration


def test_heart_rate_comes_before_power_when_both_are_known() -> None:
    profile = dataclasses.replace(HEART, ftp_w=250)
    ride = summary("Ride", average_heartrate=170, weighted_average_watts=200)

    assert workout_load(ride, physiology(profile)).method is LoadMethod.heart_rate


def test_duration_load_uses_the_sports_usual_intensity() -> None:
    # Swim IF 0.70: 100 x 0.5 h x 0.49 = 24.5
    load = workout_load(summary("Swim", minutes=30), physiology(Physiology()))

    assert (load.method, load.load, load.intensity_factor) == (LoadMethod.duration, 24.5, 0.7)


# --- edge workouts -----------------------------------------------------------------------------


def test_heart_rate_zero_falls_to_the_next_method_and_says_why() -> None:
    run = summary(minutes=45, average_speed_mps=4.0, average_heartrate=0)

    load = workout_load(run, physiology(dataclasses.replace(HEART, threshold_pace_s_per_km=240)))

    assert (load.method, load.load) == (LoadMethod.pace, 69.1)
    assert "heart rate 0 or invalid: not used" in load.notes


def test_null_heart_rate_falls_to_the_next_method() -> None:
    run = summary(minutes=45, average_speed_mps=4.0, average_heartrate=None)

    load = workout_load(run, physiology(dataclasses.replace(HEART, threshold_pace_s_per_km=240)))

    assert (load.method, load.load, load.notes) == (LoadMethod.pace, 69.1, ())


def test_average_heart_rate_above_max_is_counted_at_max() -> None:
    # HRr clamped to 1: 60 x 1 x 0.64 x e^1.92 = 261.925; 100 x 261.925 / 142.724 = 183.5
    load = workout_load(summary(average_heartrate=215), physiology(HEART))

    assert (load.method, load.load, load.heart_rate_reserve) == (LoadMethod.heart_rate, 183.5, 1.0)
    assert "average heart rate above max heart rate: counted at max" in load.notes


def test_average_heart_rate_at_or_below_resting_is_not_used() -> None:
    load = workout_load(summary(minutes=40, average_heartrate=45), physiology(HEART))

    # Run IF 0.75: 100 x (40/60) h x 0.5625 = 37.5
    assert (load.method, load.load) == (LoadMethod.duration, 37.5)
    assert "average heart rate at or below resting: not used" in load.notes


def test_heart_rate_without_a_known_max_is_not_used() -> None:
    load = workout_load(summary(minutes=40, average_heartrate=150), physiology(Physiology()))

    assert load.method is LoadMethod.duration
    assert any("heart rate not used" in note for note in load.notes)


def test_moving_time_zero_is_load_zero_by_duration() -> None:
    load = workout_load(summary(minutes=0, average_heartrate=150), physiology(HEART))

    assert (load.method, load.load, load.intensity_factor) == (LoadMethod.duration, 0.0, None)
    assert load.notes == ("no moving time: load 0",)


def test_distance_zero_run_without_heart_rate_is_counted_by_duration() -> None:
    # No speed to compare with threshold: Run IF 0.75, 100 x (40/60) h x 0.5625 = 37.5
    run = summary(minutes=40, distance_m=0, average_speed_mps=0)

    load = workout_load(run, physiology(THRESHOLDS))

    assert (load.method, load.load, load.intensity_factor) == (LoadMethod.duration, 37.5, 0.75)


def test_thirty_hour_activity_is_counted_as_24_hours() -> None:
    # 100 x 24 h x 0.75^2 = 1350
    load = workout_load(summary(minutes=30 * 60), physiology(Physiology()))

    assert (load.method, load.load) == (LoadMethod.duration, 1350.0)
    assert "moving time over 24 h: counted as 24 h" in load.notes


def test_unknown_sport_type_uses_the_default_intensity() -> None:
    # default IF 0.60: 100 x 1 h x 0.36 = 36
    load = workout_load(summary("Quidditch"), physiology(HEART))

    assert (load.method, load.load, load.intensity_factor) == (LoadMethod.duration, 36.0, 0.6)
    assert "unknown sport type: default intensity" in load.notes


def test_manual_entry_is_counted_by_duration_even_with_heart_rate_and_pace() -> None:
    profile = dataclasses.replace(HEART, threshold_pace_s_per_km=240)
    run = summary(minutes=40, average_speed_mps=4.0, average_heartrate=170, manual=True)

    load = workout_load(run, physiology(profile))

    # Run IF 0.75: 100 x (40/60) h x 0.5625 = 37.5
    assert (load.method, load.load) == (LoadMethod.duration, 37.5)
    assert any("manual entry" in note for note in load.notes)


def test_glitched_speed_is_capped_at_intensity_1_5() -> None:
    # 30 m/s over 4.1667: capped at IF 1.5; 100 x 1 h x 2.25 = 225
    load = workout_load(summary(average_speed_mps=30.0), physiology(THRESHOLDS))

    assert (load.method, load.load, load.intensity_factor) == (LoadMethod.pace, 225.0, 1.5)


# --- the daily model: hand-worked --------------------------------------------------------------


def test_ewma_of_a_single_load_from_zero() -> None:
    # ATL: 100 x (1 - e^(-1/7)) = 13.312; CTL: 100 x (1 - e^(-1/42)) = 2.353
    assert ewma([100.0], time_constant_days=7, seed=0.0)[0] == pytest.approx(13.3122, abs=1e-4)
    assert ewma([100.0], time_constant_days=42, seed=0.0)[0] == pytest.approx(2.3528, abs=1e-4)


def test_a_week_of_history_seeded_with_its_mean_daily_load() -> None:
    model = model_of([100, 0, 0, 0, 0, 0, 0])
    # seed = 100 / 7 = 14.2857 (mean daily load of the available history)
    # ATL day 0 = 14.2857 x e^(-1/7) + 100 x (1 - e^(-1/7)) = 12.3840 + 13.3122 = 25.696
    # ATL day 6 = 25.696 x e^(-6/7) = 10.905
    # CTL day 0 = 14.2857 x e^(-1/42) + 100 x (1 - e^(-1/42)) = 13.9496 + 2.3528 = 16.302
    # CTL day 6 = 16.302 x e^(-6/42) = 14.132; form = 14.132 - 10.905 = 3.2
    first, last = model.days[0], model.days[-1]
    assert (first.load, first.atl, first.ctl, first.form) == (100.0, 25.7, 16.3, -9.4)
    assert (last.load, last.atl, last.ctl, last.form) == (0.0, 10.9, 14.1, 3.2)
    current = model.current
    assert (current.atl, current.ctl, current.form) == (10.9, 14.1, 3.2)
    # rolling ACWR over the 7 days available: (100/7) / (100/7) = 1.0
    assert current.acwr_rolling == 1.0
    # EWMA ACWR = ATL / 28-day EWMA; 28-day day 0 = 14.2857 x e^(-1/28) + 100 x (1 - e^(-1/28))
    # = 17.293, day 6 = 17.293 x e^(-6/28) = 13.957; 10.905 / 13.957 = 0.78
    assert current.acwr_ewma == 0.78
    # Foster: mean 14.2857, population SD sqrt((85.714^2 + 6 x 14.2857^2) / 7) = 34.993
    # monotony = 14.2857 / 34.993 = 0.41; strain = 100 x 0.4082 = 40.8
    assert (current.monotony, current.strain, current.weekly_load) == (0.41, 40.8, 100.0)
    # ramp = CTL day 6 - seed = 14.132 - 14.286 = -0.15
    assert current.ramp_rate == pytest.approx(-0.2, abs=0.051)
    assert current.provisional is True
    assert current.history_days == 7
    assert all(day.provisional for day in model.days)


def test_steady_load_stays_at_its_seed_and_form_is_zero() -> None:
    # 28 days of 50: seed 50; x_t = 50 e^(-1/N) + 50 (1 - e^(-1/N)) = 50 every day
    current = model_of([50.0] * 28).current

    assert (current.atl, current.ctl, current.form) == (50.0, 50.0, 0.0)
    assert (current.acwr_rolling, current.acwr_ewma) == (1.0, 1.0)
    # SD 0 with load every day: monotony at its cap 10; strain = 350 x 10
    assert (current.monotony, current.strain) == (10.0, 3500.0)
    assert current.provisional is True


def test_figures_are_final_from_42_days_of_history() -> None:
    model = model_of([50.0] * 42, days=2)
    current = model.current

    # day 41 of history is the 42nd: final; the day before is still provisional
    assert [day.provisional for day in model.days] == [True, False]
    assert current.provisional is False
    assert not any("provisional" in sentence for sentence in current.sentences)


def test_foster_monotony_of_an_alternating_week() -> None:
    # mean 450/7 = 64.286; population SD = 34.993; monotony = 1.837 -> 1.84
    # strain = 450 x 1.8371 = 826.7
    current = model_of([100, 50, 100, 50, 100, 50, 0]).current

    assert (current.monotony, current.strain) == (1.84, 826.7)


def test_acwr_above_15_raises_the_flag_with_its_threshold() -> None:
    # acute mean 100; chronic mean (21 x 50 + 7 x 100) / 28 = 62.5; 100 / 62.5 = 1.6
    current = model_of([50.0] * 21 + [100.0] * 7).current

    assert current.acwr_rolling == 1.6
    flag = next(flag for flag in current.flags if flag.code is FlagCode.acwr_rolling_high)
    assert (flag.value, flag.threshold, flag.comparison, flag.raised) == (
        1.6,
        1.5,
        Comparison.above,
        True,
    )
    assert any("times your usual" in sentence for sentence in current.sentences)


def test_a_steep_build_raises_ramp_form_and_monotony_flags_in_plain_words() -> None:
    current = model_of([20.0] * 35 + [200.0] * 7).current
    raised = {flag.code for flag in current.flags if flag.raised}

    # ramp = CTL(today) - CTL(7 days ago): 7 days of 200 lift CTL by about 25 points
    assert current.ramp_rate is not None
    assert current.ramp_rate > 8
    assert current.form < -30
    assert raised >= {FlagCode.ramp_rate_high, FlagCode.form_low, FlagCode.monotony_high}
    text = " ".join(current.sentences)
    assert "You are ramping up faster than usual" in text
    assert "a lot of fatigue" in text
    assert "very alike" in text


def test_every_flag_states_its_threshold() -> None:
    flags = {flag.code: flag for flag in model_of([50.0] * 42).current.flags}

    assert {code: (flag.threshold, flag.comparison) for code, flag in flags.items()} == {
        FlagCode.acwr_rolling_high: (1.5, Comparison.above),
        FlagCode.acwr_ewma_high: (1.5, Comparison.above),
        FlagCode.monotony_high: (2.0, Comparison.above),
        FlagCode.form_low: (-30.0, Comparison.below),
        FlagCode.ramp_rate_high: (8.0, Comparison.above),
    }


def test_series_holds_every_day_with_its_workouts_and_missing_days_at_zero() -> None:
    workouts = [
        summary("Swim", minutes=30, day=TODAY - timedelta(days=2), workout_id="swim"),
        summary("Quidditch", day=TODAY, workout_id="q"),
        summary(day=TODAY + timedelta(days=1), workout_id="future"),  # after today: ignored
    ]

    model = training_load_model(
        workouts, Physiology(), today=TODAY, days=5, history_start=TODAY - timedelta(days=9)
    )

    assert [day.date for day in model.days] == [TODAY - timedelta(days=n) for n in range(4, -1, -1)]
    assert [day.load for day in model.days] == [0.0, 0.0, 24.5, 0.0, 36.0]
    assert [[w.workout_id for w in day.workouts] for day in model.days] == [
        [],
        [],
        ["swim"],
        [],
        ["q"],
    ]
    assert model.days[2].workouts[0].method is LoadMethod.duration


def test_no_workouts_at_all_gives_zeros_and_says_so() -> None:
    model = training_load_model([], Physiology(), today=TODAY)

    assert len(model.days) == 1
    current = model.current
    assert (current.atl, current.ctl, current.form, current.weekly_load) == (0.0, 0.0, 0.0, 0.0)
    assert current.acwr_rolling is None
    assert current.sentences == (
        "No training load recorded yet: the figures start with your first workout.",
    )


def test_physiology_used_is_returned_with_its_sources() -> None:
    model = training_load_model(
        [summary(max_heartrate=190, average_heartrate=150)], Physiology(sex=Sex.male), today=TODAY
    )

    assert model.physiology.max_hr.value == 190
    assert model.physiology.max_hr.source == "estimated"
    assert model.physiology.resting_hr.source == "default"


# --- properties --------------------------------------------------------------------------------

odd_floats = st.one_of(
    st.none(),
    st.just(0.0),
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(min_value=0, max_value=1e12),
)
sport_types = st.sampled_from(["Run", "TrailRun", "Ride", "VirtualRide", "Swim", "Yoga", "Zorb"])


@st.composite
def any_workout(draw: st.DrawFn) -> WorkoutSummary:
    return WorkoutSummary(
        id=draw(st.text(max_size=4)),
        local_date=TODAY - timedelta(days=draw(st.integers(0, 60))),
        sport_type=draw(sport_types),
        moving_time_s=draw(odd_floats),
        distance_m=draw(odd_floats),
        average_speed_mps=draw(odd_floats),
        average_heartrate=draw(odd_floats),
        max_heartrate=draw(odd_floats),
        weighted_average_watts=draw(odd_floats),
        device_watts=draw(st.one_of(st.none(), st.booleans())),
        manual=draw(st.booleans()),
    )


any_profile = st.builds(
    Physiology,
    sex=st.one_of(st.none(), st.sampled_from(Sex)),
    max_hr=odd_floats,
    resting_hr=odd_floats,
    threshold_hr=odd_floats,
    threshold_pace_s_per_km=odd_floats,
    ftp_w=odd_floats,
)


def floats_in(value: Any) -> Iterator[float]:
    if isinstance(value, float):
        yield value
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        for field in dataclasses.fields(value):
            yield from floats_in(getattr(value, field.name))
    elif isinstance(value, tuple):
        for item in value:
            yield from floats_in(item)


@given(workout=any_workout(), profile=any_profile)
def test_load_is_never_negative_and_always_finite(
    workout: WorkoutSummary, profile: Physiology
) -> None:
    load = workout_load(workout, resolve_physiology(profile, [workout]))

    assert load.load >= 0
    assert all(math.isfinite(value) for value in floats_in(load))


@settings(max_examples=50)
@given(
    workouts=st.lists(any_workout(), max_size=8),
    profile=any_profile,
    days=st.integers(-5, 100),
    history_days=st.one_of(st.none(), st.integers(0, 90)),
)
def test_every_figure_is_finite_for_any_input(
    workouts: list[WorkoutSummary], profile: Physiology, days: int, history_days: int | None
) -> None:
    start = None if history_days is None else TODAY - timedelta(days=history_days)

    model = training_load_model(workouts, profile, today=TODAY, days=days, history_start=start)

    assert model.days
    assert all(math.isfinite(value) for value in floats_in(model))
    assert all(day.load >= 0 and day.atl >= 0 and day.ctl >= 0 for day in model.days)


@given(
    loads=st.lists(st.floats(min_value=0, max_value=5000), max_size=60),
    seed=st.floats(min_value=0, max_value=5000),
    time_constant=st.sampled_from([7, 28, 42]),
)
def test_a_day_without_load_decays_by_exactly_e_to_minus_one_over_n(
    loads: list[float], seed: float, time_constant: int
) -> None:
    values = ewma([*loads, 0.0], time_constant_days=time_constant, seed=seed)
    before = values[-2] if loads else seed

    assert values[-1] == before * math.exp(-1 / time_constant)


@settings(max_examples=25)
@given(loads=st.lists(st.floats(min_value=0, max_value=300), min_size=3, max_size=30))
def test_a_rest_day_in_the_series_decays_atl_and_ctl(loads: list[float]) -> None:
    days = model_of([*loads, 0.0]).days
    before, rest = days[-2], days[-1]

    # Rounded to 0.1 at the edge: allow the two roundings.
    assert rest.atl == pytest.approx(before.atl * math.exp(-1 / 7), abs=0.1)
    assert rest.ctl == pytest.approx(before.ctl * math.exp(-1 / 42), abs=0.1)


@given(
    sport_type=st.sampled_from(["Run", "TrailRun", "Swim", "Walk", "Zorb", "Ride"]),
    minutes=st.floats(min_value=1, max_value=12 * 60),
    speed=st.one_of(st.none(), st.floats(min_value=0.5, max_value=8)),
)
def test_doubling_duration_doubles_pace_and_duration_loads(
    sport_type: str, minutes: float, speed: float | None
) -> None:
    resolved = physiology(THRESHOLDS)
    once = summary(sport_type, minutes=minutes, average_speed_mps=speed)
    twice = summary(sport_type, minutes=2 * minutes, average_speed_mps=speed)

    single, double = workout_load(once, resolved), workout_load(twice, resolved)

    assert single.method in {LoadMethod.pace, LoadMethod.duration}
    assert double.method is single.method
    # Each load is rounded to 0.1: 2 x round(x) and round(2x) differ by at most 0.1.
    assert double.load == pytest.approx(2 * single.load, abs=0.1 + 1e-9)
