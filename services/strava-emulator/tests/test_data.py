"""The generator: deterministic, lazy, and realistic where the service cares."""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import time_machine
from hypothesis import given
from hypothesis import strategies as st
from strava_emulator import polyline
from strava_emulator.clock import Clock
from strava_emulator.config import EmulatorConfig
from strava_emulator.data import Athlete
from strava_emulator.store import Store

NOW = datetime(2026, 6, 15, 18, 30, tzinfo=UTC)


@pytest.fixture(scope="module")
def store() -> Iterator[Store]:
    # Frozen for the whole module: history is extended lazily whenever time moves on.
    with time_machine.travel(NOW, tick=False):
        built = Store(EmulatorConfig(athletes=12, history_days=120), Clock())
        built.materialize_all()
        yield built


def summaries(store: Store, athlete: Athlete) -> list[dict[str, Any]]:
    """What has been uploaded by now (today's later sessions are already scheduled)."""
    now = store.clock.now_ts()
    return [store.summary(a) for a in store.history(athlete).ordered if a.available_at <= now]


@given(st.lists(st.tuples(st.floats(-89.9, 89.9), st.floats(-179.9, 179.9)), max_size=30))
def test_polyline_round_trips(points: list[tuple[float, float]]) -> None:
    decoded = polyline.decode(polyline.encode(points))
    assert len(decoded) == len(points)
    for (lat, lng), (dlat, dlng) in zip(points, decoded, strict=True):
        assert abs(lat - dlat) <= 0.5e-5 + 1e-9
        assert abs(lng - dlng) <= 0.5e-5 + 1e-9


def test_polyline_matches_googles_reference_example() -> None:
    points = [(38.5, -120.2), (40.7, -120.95), (43.252, -126.453)]
    assert polyline.encode(points) == "_p~iF~ps|U_ulLnnqC_mqNvxq`@"


def test_athletes_are_created_eagerly_but_history_lazily() -> None:
    lazy = Store(EmulatorConfig(athletes=10_000, history_days=28), Clock())
    assert len(lazy.athletes) == 10_000
    assert lazy.histories == {}
    some = next(iter(lazy.athletes.values()))
    assert lazy.history(some).ordered
    assert list(lazy.histories) == [some.id]


def test_same_seed_same_everything_and_ids_are_stable() -> None:
    def dump(seed: int) -> str:
        with time_machine.travel(NOW, tick=False):
            built = Store(EmulatorConfig(seed=seed, athletes=3, history_days=30), Clock())
            return json.dumps([[a.summary(), summaries(built, a)] for a in built.athletes.values()])

    assert dump(1) == dump(1)
    assert dump(1) != dump(2)


def test_about_five_to_seven_activities_a_week_mostly_runs(store: Store) -> None:
    for athlete in store.athletes.values():
        acts = summaries(store, athlete)
        per_week = len(acts) / (120 / 7)
        assert 4.5 <= per_week <= 8.0, (athlete.id, per_week)
        types = Counter(a["type"] for a in acts)
        assert types["Run"] > len(acts) / 2


def test_every_history_has_the_awkward_cases(store: Store) -> None:
    for athlete in store.athletes.values():
        acts = summaries(store, athlete)
        assert any(a["manual"] for a in acts)
        assert any(a["visibility"] == "only_me" and a["private"] for a in acts)
        assert any(a["visibility"] == "followers_only" and not a["private"] for a in acts)
        assert any(not a["has_heartrate"] for a in acts)
        assert any(a["trainer"] and a["type"] == "Run" for a in acts)
        assert any(a["start_date_local"].endswith("T00:00:01Z") for a in acts)
        unknown = [a for a in acts if a["type"] == "Workout"]
        assert unknown
        assert all(a["sport_type"] not in ("Workout", "Run") for a in unknown)


def test_ids_are_64_bit_unique_and_grow_with_time(store: Store) -> None:
    all_ids = [a.id for h in store.histories.values() for a in h.ordered]
    assert len(all_ids) == len(set(all_ids))
    assert min(all_ids) > 2**32
    for history in store.histories.values():
        days = [a.id // 1_000_000 for a in history.ordered]
        assert days == sorted(days)


def test_runs_have_plausible_paces_cadence_and_heart_rate(store: Store) -> None:
    for athlete in store.athletes.values():
        for act in summaries(store, athlete):
            if act["sport_type"] not in ("Run", "TrailRun", "VirtualRun") or act["manual"]:
                continue
            pace_min_per_km = act["moving_time"] / act["distance"] * 1000 / 60
            assert 3.5 <= pace_min_per_km <= 7.0, act
            assert 80 <= act["average_cadence"] <= 95
            if act["has_heartrate"]:
                assert 100 < act["average_heartrate"] <= act["max_heartrate"] <= 200
            assert act["workout_type"] in (None, 0, 1, 2, 3)


def test_workout_types_cover_races_long_runs_and_workouts(store: Store) -> None:
    counts = Counter(
        act["workout_type"]
        for athlete in store.athletes.values()
        for act in summaries(store, athlete)
        if act["type"] == "Run"
    )
    assert all(counts[workout_type] for workout_type in (None, 0, 1, 2, 3)), counts


def test_times_offsets_and_timezones_agree(store: Store) -> None:
    for athlete in store.athletes.values():
        zone = ZoneInfo(athlete.home.tz_name)
        for act in summaries(store, athlete):
            start = datetime.fromisoformat(act["start_date"].replace("Z", "+00:00"))
            local = datetime.fromisoformat(act["start_date_local"].replace("Z", "+00:00"))
            assert (local - start).total_seconds() == act["utc_offset"]
            assert start.astimezone(zone).utcoffset() == timedelta(seconds=act["utc_offset"])
            assert act["timezone"].endswith(athlete.home.tz_name)
            assert act["timezone"].startswith("(GMT")
            assert start <= NOW


def test_maps_follow_the_recorded_conventions(store: Store) -> None:
    for athlete in store.athletes.values():
        for act in summaries(store, athlete):
            assert act["map"]["id"] == f"a{act['id']}"
            assert act["map"]["resource_state"] == 2
            if (act["trainer"] and act["sport_type"] != "VirtualRun") or act["manual"]:
                assert act["map"]["summary_polyline"] == ""
                assert act["start_latlng"] == []
            elif act["distance"] > 0 and act["sport_type"] != "VirtualRun":
                points = polyline.decode(act["map"]["summary_polyline"])
                assert len(points) > 10
                lat, lng = points[0]
                assert math.dist((lat, lng), (athlete.home.lat, athlete.home.lng)) < 0.5
                assert act["start_latlng"] == [round(lat, 2), round(lng, 2)]


def test_no_heart_rate_means_no_heart_rate_keys(store: Store) -> None:
    for athlete in store.athletes.values():
        for act in summaries(store, athlete):
            if not act["has_heartrate"]:
                assert "average_heartrate" not in act
                assert "max_heartrate" not in act
                assert "suffer_score" not in act


def test_history_extends_when_time_moves_on() -> None:
    with time_machine.travel(NOW, tick=False) as clock:
        built = Store(EmulatorConfig(athletes=1, history_days=14), Clock())
        athlete = next(iter(built.athletes.values()))
        first = {a.id for a in built.history(athlete).ordered}
        clock.shift(timedelta(days=10))
        later = {a.id for a in built.history(athlete).ordered}
    assert first < later
