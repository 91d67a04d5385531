"""Strava's JSON for a scheduled activity: SummaryActivity and DetailedActivity.

Built from the activity's own seed, so it is the same whenever (and however often) it is built.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Final

from strava_emulator import polyline
from strava_emulator.clock import isoformat_z
from strava_emulator.data import (
    F_MANUAL,
    F_NO_HR,
    JSON,
    RUN_KINDS,
    Activity,
    Athlete,
    Rng,
    mix,
    rng_for,
)
from strava_emulator.reference import ACTIVITY_TYPE_OF, DEVICES, WATOPIA


def _daypart(hour: int) -> str:
    if hour < 5 or hour >= 21:
        return "Night"
    if hour < 11:
        return "Morning"
    if hour < 14:
        return "Lunch"
    if hour < 17:
        return "Afternoon"
    return "Evening"


_SPORT_WORDS: Final = {
    "Run": "Run",
    "TrailRun": "Trail Run",
    "VirtualRun": "Virtual Run",
    "Ride": "Ride",
    "Walk": "Walk",
    "WeightTraining": "Weight Training",
}


def _name(act: Activity, athlete: Athlete, rng: Rng) -> str:
    if act.kind == "virtual":
        return "Zwift - " + rng.choice(("Watopia", "Makuri Islands", "New York"))
    if act.kind == "race":
        km = act.distance / 1000
        label = "Marathon" if km > 40 else "Half Marathon" if km > 20 else f"{round(km)}K"
        return f"{athlete.home.city} {label}"
    if act.kind == "intervals" and rng.random() < 0.6:
        reps = rng.choice(("6x800m", "5x1km", "10x400m", "4x1 mile", "3x2km"))
        return f"Intervals {reps}"
    if act.kind == "long" and rng.random() < 0.3:
        return "Long run"
    word = _SPORT_WORDS.get(act.sport_type, "Activity")
    return f"{_daypart(act.local_ts % 86_400 // 3600)} {word}"


def _route(athlete: Athlete, act: Activity, rng: Rng) -> list[tuple[int, int]]:
    """A plausible wobbly loop whose length is roughly the activity's distance, as
    (lat, lng) in integer 1e-5 degrees: the polyline's own precision, so no float rounding."""
    if act.kind == "virtual":
        lat0, lng0 = WATOPIA
    else:
        lat0 = athlete.home.lat + rng.uniform(-0.02, 0.02)
        lng0 = athlete.home.lng + rng.uniform(-0.02, 0.02)
    radius_m = max(act.distance, 400.0) / (2 * math.pi)
    # Summary polylines are coarse; ~1 point per 400 m keeps the shape and the cost down.
    points = min(48, 10 + int(act.distance / 400))
    lat_k = 1e5 / 111_320 * rng.uniform(0.6, 1.4)  # the factor stretches the loop
    lng_k = 1e5 / (111_320 * max(0.2, math.cos(math.radians(lat0)))) * rng.uniform(0.6, 1.4)
    phase = rng.uniform(0, 2 * math.pi)
    sin0, cos0 = math.sin(phase), math.cos(phase)
    step = 2 * math.pi / points
    lat_e5, lng_e5 = round(lat0 * 1e5), round(lng0 * 1e5)
    out: list[tuple[int, int]] = []
    for index in range(points + 1):
        angle = phase + step * index
        r = radius_m * (0.85 + 0.3 * rng.random()) if index < points else radius_m
        # The loop starts and ends at the start point, which lies on the circle.
        out.append(
            (
                lat_e5 + int(r * (math.sin(angle) - sin0) * lat_k),
                lng_e5 + int(r * (math.cos(angle) - cos0) * lng_k),
            )
        )
    return out


def build_summary(seed: int, athlete: Athlete, act: Activity) -> JSON:
    """SummaryActivity (resource_state 2) with Strava's observed key order and extras."""
    rng = rng_for(seed, act.id, 4)
    start_utc = datetime.fromtimestamp(act.start_ts, UTC)
    manual = bool(act.flags & F_MANUAL)
    indoor = act.kind in ("treadmill", "strength")
    has_gps = not manual and not indoor and act.distance > 0
    has_hr = not manual and not act.flags & F_NO_HR and rng.random() < 0.97
    is_run = act.kind in RUN_KINDS or (manual and act.sport_type == "Run")
    hilly = athlete.home.hilliness * (4.0 if act.kind == "trail" else 1.0)
    gain = 0.0 if not has_gps else round(act.distance / 1000 * hilly * rng.uniform(0.6, 1.4), 1)
    avg_speed = round(act.distance / act.moving_time, 3) if act.moving_time else 0.0
    device_name, external_pattern = DEVICES[athlete.device]
    if act.kind == "virtual":
        device_name, external_pattern = "Zwift", "zwift-activity-{n}.fit"
    upload_id = 10_000_000_000 + act.id % 9_000_000_000 + rng.randrange(0, 1000)

    out: JSON = {
        "resource_state": 2,
        "athlete": {"id": athlete.id, "resource_state": 1},
        "name": _name(act, athlete, rng),
        "distance": act.distance,
        "moving_time": act.moving_time,
        "elapsed_time": act.elapsed_time,
        "total_elevation_gain": gain,
        "type": ACTIVITY_TYPE_OF.get(act.sport_type, "Workout"),
        "sport_type": act.sport_type,
        "workout_type": _workout_type(act, rng),
        "id": act.id,
        "start_date": isoformat_z(start_utc),
        "start_date_local": isoformat_z(datetime.fromtimestamp(act.local_ts, UTC)),
        "timezone": athlete.home.tz_label,
        "utc_offset": float(act.local_ts - act.start_ts),
        "location_city": None,
        "location_state": None,
        "location_country": None,
        "achievement_count": rng.choice((0, 0, 0, 1, 2, 5)) if is_run and has_gps else 0,
        "kudos_count": rng.randrange(0, 25),
        "comment_count": rng.choice((0, 0, 0, 1, 2)),
        "athlete_count": 1 if act.kind != "race" else rng.randrange(50, 5000),
        "photo_count": 0,
        "map": {"id": f"a{act.id}", "summary_polyline": "", "resource_state": 2},
        "trainer": act.kind in ("treadmill", "virtual"),
        "commute": False,
        "manual": manual,
        "private": act.visibility == "only_me",
        "visibility": act.visibility,
        "flagged": False,
        "gear_id": None,
        "start_latlng": [],
        "end_latlng": [],
        "average_speed": avg_speed,
        "max_speed": round(avg_speed * rng.uniform(1.25, 1.6), 3) if not manual else 0.0,
    }
    if has_gps:
        route = _route(athlete, act, rng)
        out["map"]["summary_polyline"] = polyline.encode_e5(route)
        # Strava rounds start/end to 2 decimals in summaries.
        out["start_latlng"] = [round(route[0][0] / 1e5, 2), round(route[0][1] / 1e5, 2)]
        out["end_latlng"] = [round(route[-1][0] / 1e5, 2), round(route[-1][1] / 1e5, 2)]
    if is_run and not manual:
        out["gear_id"] = athlete.shoe_ids[1] if act.kind == "race" else athlete.shoe_ids[0]
        quality = act.kind in ("intervals", "workout", "race")
        # Strava reports running cadence per leg (~80-95 spm), half the watch's figure.
        cadence = rng.uniform(86.0, 92.0) if quality else rng.uniform(80.5, 87.5)
        out["average_cadence"] = round(cadence, 1)
    elif act.sport_type == "Ride":
        out["gear_id"] = athlete.bike_id
        out["average_cadence"] = round(rng.uniform(78.0, 92.0), 1)
    elif act.sport_type == "Walk" and not manual:
        out["average_cadence"] = round(rng.uniform(52.0, 60.0), 1)
    if act.sport_type == "Ride":
        power_meter = athlete.ftp is not None
        watts = round((athlete.ftp or 200) * rng.uniform(0.55, 0.75), 1)
        out["average_watts"] = watts
        out["kilojoules"] = round(watts * act.moving_time / 1000, 1)
        out["device_watts"] = power_meter
        if power_meter:
            out["max_watts"] = round(watts * rng.uniform(2.2, 3.4))
            out["weighted_average_watts"] = round(watts * rng.uniform(1.03, 1.12))
    if device_name.startswith("Garmin") and not manual:
        out["average_temp"] = rng.randrange(4, 27)
    out["has_heartrate"] = has_hr
    if has_hr:
        avg_hr, max_hr = _heart_rate(athlete, act, rng)
        out["average_heartrate"] = avg_hr
        out["max_heartrate"] = max_hr
    out["heartrate_opt_out"] = False
    out["display_hide_heartrate_option"] = has_hr
    if manual:
        out["elev_high"] = None
        out["elev_low"] = None
    else:
        low = athlete.home.elevation + rng.uniform(-5, 15) if has_gps else 0.0
        out["elev_high"] = round(low + gain * rng.uniform(0.2, 0.5), 1) if has_gps else 0.0
        out["elev_low"] = round(low, 1)
    if manual:
        out["upload_id"] = None
        out["upload_id_str"] = None
        out["external_id"] = None
    else:
        out["upload_id"] = upload_id
        out["upload_id_str"] = str(upload_id)
        out["external_id"] = external_pattern.format(n=upload_id * 3 + 17)
    out["from_accepted_tag"] = False
    out["pr_count"] = rng.choice((0, 0, 0, 1, 2)) if is_run and has_gps else 0
    out["total_photo_count"] = 0
    out["has_kudoed"] = False
    out["hide_from_home"] = False
    if has_hr:
        out["suffer_score"] = float(_suffer_score(act, out["average_heartrate"], athlete))
    out["device_name"] = None if manual else device_name
    return out


def _workout_type(act: Activity, rng: Rng) -> int | None:
    if act.sport_type not in ("Run", "TrailRun", "VirtualRun"):
        return None if act.sport_type != "Ride" else 10
    if act.kind == "race":
        return 1
    if act.kind == "long":
        return 2
    if act.kind in ("intervals", "workout"):
        return 3
    # Older and manual runs often come with null rather than 0 ("default").
    return None if act.flags & F_MANUAL or rng.random() < 0.15 else 0


def _heart_rate(athlete: Athlete, act: Activity, rng: Rng) -> tuple[float, float]:
    intensity = {
        "easy": 0.74,
        "treadmill": 0.75,
        "virtual": 0.78,
        "trail": 0.78,
        "long": 0.77,
        "intervals": 0.84,
        "workout": 0.86,
        "race": 0.91,
        "ride": 0.70,
        "walk": 0.55,
        "strength": 0.6,
        "unknown": 0.68,
    }.get(act.kind, 0.72)
    avg = athlete.max_hr * intensity * rng.uniform(0.97, 1.03)
    peak = min(athlete.max_hr, avg * rng.uniform(1.06, 1.14))
    # Strava reports average with one decimal and max as a whole number rendered as float.
    return round(avg, 1), float(round(peak))


def _suffer_score(act: Activity, avg_hr: float, athlete: Athlete) -> int:
    load = act.moving_time / 60 * max(0.0, avg_hr / athlete.max_hr - 0.5) * 2.2
    return max(1, round(load))


def build_detail(seed: int, athlete: Athlete, act: Activity, summary: JSON) -> JSON:
    """DetailedActivity (resource_state 3): the summary plus description, splits, laps."""
    rng = rng_for(seed, act.id, 5)
    out = dict(summary)
    out["resource_state"] = 3
    out["map"] = {
        "id": summary["map"]["id"],
        "polyline": summary["map"]["summary_polyline"],
        "summary_polyline": summary["map"]["summary_polyline"],
        "resource_state": 3,
    }
    out["description"] = rng.choice(
        (None, None, "Felt good.", "Legs heavy today.", "With the club 🏃")
    )
    out["calories"] = round(act.moving_time / 60 * rng.uniform(9.0, 13.0), 1)
    out["photos"] = {"primary": None, "count": 0}
    out["segment_efforts"] = []
    out["best_efforts"] = []
    out["available_zones"] = []
    out["embed_token"] = f"{mix(seed, act.id, 6):016x}{mix(seed, act.id, 7):016x}"[:40]
    out["gear"] = None
    gear_id = summary.get("gear_id")
    if gear_id:
        out["gear"] = {
            "id": gear_id,
            "primary": gear_id == athlete.shoe_ids[0],
            "name": "Race shoes"
            if gear_id == athlete.shoe_ids[1]
            else "Daily trainers"
            if gear_id.startswith("g")
            else "Road bike",
            "nickname": None,
            "resource_state": 2,
            "retired": False,
            "distance": 612_300.0,
            "converted_distance": 612.3,
        }
    distance = float(summary.get("distance") or 0.0)
    moving = int(summary.get("moving_time") or 0)
    is_run = summary.get("type") == "Run"
    splits: list[JSON] = []
    if is_run and distance >= 1000 and moving and not summary.get("manual"):
        full, rest = divmod(distance, 1000.0)
        count = int(full) + (1 if rest >= 50 else 0)
        per_m = moving / distance
        for index in range(count):
            length = 1000.0 if index < full else round(rest, 1)
            secs = round(length * per_m * rng.uniform(0.96, 1.04))
            split: JSON = {
                "distance": length,
                "elapsed_time": secs + rng.choice((0, 0, 3, 12)),
                "elevation_difference": round(rng.uniform(-6, 6), 1),
                "moving_time": secs,
                "split": index + 1,
                "average_speed": round(length / secs, 2) if secs else 0.0,
                "average_grade_adjusted_speed": round(length / secs * rng.uniform(0.99, 1.02), 2)
                if secs
                else 0.0,
                "pace_zone": 2,
            }
            if summary.get("has_heartrate"):
                split["average_heartrate"] = round(
                    float(summary["average_heartrate"]) * rng.uniform(0.96, 1.04), 1
                )
            splits.append(split)
    out["splits_metric"] = splits
    out["laps"] = (
        []
        if summary.get("manual")
        else [
            {
                "id": act.id * 10 + 1,
                "resource_state": 2,
                "name": "Lap 1",
                "activity": {"id": act.id, "resource_state": 1},
                "athlete": {"id": athlete.id, "resource_state": 1},
                "elapsed_time": summary["elapsed_time"],
                "moving_time": moving,
                "start_date": summary["start_date"],
                "start_date_local": summary["start_date_local"],
                "distance": distance,
                "average_speed": summary["average_speed"],
                "max_speed": summary["max_speed"],
                "lap_index": 1,
                "split": 1,
                "start_index": 0,
                "end_index": max(0, moving - 1),
                "total_elevation_gain": summary["total_elevation_gain"],
                "pace_zone": 2,
            }
        ]
    )
    out["stats_visibility"] = [
        {"type": "heart_rate", "visibility": "everyone"},
        {"type": "pace", "visibility": "everyone"},
    ]
    if act.detail_extra:
        out.update(act.detail_extra)
    return out
