"""Deterministic generator of sandbox athletes and their activity history.

Everything is a pure function of the seed and stable keys (athlete sequence number, local
calendar day, activity id), never of generation order. That makes history lazy (an athlete's
activities are only scheduled when first asked for), cheap for 10,000 athletes, and identical
across runs with the same seed. Two levels keep it fast:

* :func:`schedule_day` decides only what the store needs to filter and page (id, start,
  duration, visibility): tens of microseconds per activity;
* :mod:`strava_emulator.representation` fills in the full Strava representation (heart
  rate, cadence, polyline, ...) from the activity's own seed when it is first served.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, Final, TypeVar

from strava_emulator.clock import isoformat_z
from strava_emulator.reference import (
    DEVICES,
    FIRST_NAMES_F,
    FIRST_NAMES_M,
    HOMES,
    LAST_NAMES,
    UNKNOWN_SPORT_TYPES,
    Home,
    zone,
)

JSON = dict[str, Any]
T = TypeVar("T")

EPOCH_DATE: Final = date(1970, 1, 1)
MAX_ATHLETE_SEQ: Final = 99_999
"""Generated activity ids embed the athlete's sequence number in 5 decimal digits."""
ADMIN_ACTIVITY_ID_BASE: Final = 90_000_000_000
"""Activities created through the admin API are numbered from here (above generated ids)."""


def mix(*parts: int) -> int:
    """Stable 64-bit hash of integers (splitmix64); Python's ``hash`` is not stable for str."""
    x = 0x9E3779B97F4A7C15
    for part in parts:
        x = (x ^ (part & 0xFFFFFFFFFFFFFFFF)) * 0xBF58476D1CE4E5B9 & 0xFFFFFFFFFFFFFFFF
        x = (x ^ (x >> 27)) * 0x94D049BB133111EB & 0xFFFFFFFFFFFFFFFF
        x ^= x >> 31
    return x


_MASK64: Final = 0xFFFFFFFFFFFFFFFF


class Rng:
    """A tiny 64-bit LCG (top 53 bits used). ``random.Random`` costs ~6 µs just to seed, and
    the generator seeds one per day and per activity; statistical quality hardly matters."""

    __slots__ = ("_state",)

    def __init__(self, seed: int) -> None:
        self._state = seed & _MASK64

    def random(self) -> float:
        self._state = (self._state * 6364136223846793005 + 1442695040888963407) & _MASK64
        return (self._state >> 11) * (1.0 / 9007199254740992.0)

    def uniform(self, low: float, high: float) -> float:
        return low + (high - low) * self.random()

    def randrange(self, low: int, high: int) -> int:
        return low + int(self.random() * (high - low))

    def choice(self, options: Sequence[T]) -> T:
        return options[int(self.random() * len(options))]

    def shuffle(self, items: list[T]) -> None:
        for index in range(len(items) - 1, 0, -1):
            other = int(self.random() * (index + 1))
            items[index], items[other] = items[other], items[index]


def rng_for(*parts: int) -> Rng:
    return Rng(mix(*parts))


# --------------------------------------------------------------------------- athletes


@dataclass(slots=True)
class Athlete:
    seq: int
    id: int
    firstname: str
    lastname: str
    username: str
    sex: str
    home: Home
    created_at: datetime
    updated_at: datetime
    weight: float
    ftp: int | None
    premium: bool
    easy_pace: float
    """Seconds per km on an easy run; all other paces derive from it."""
    max_hr: int
    template: int
    device: int
    trail_lover: bool
    history_days: int
    shoe_ids: tuple[str, str]
    bike_id: str | None
    unknown_sport: str

    def summary(self) -> JSON:
        """SummaryAthlete (resource_state 2), the key set recorded in the token exchange."""
        photo = self.seq % 4 != 0
        base = f"https://dgalywyr863hv.cloudfront.net/pictures/athletes/{self.id}/{self.seq + 7}"
        return {
            "id": self.id,
            "username": self.username,
            "resource_state": 2,
            "firstname": self.firstname,
            "lastname": self.lastname,
            "city": self.home.city,
            "state": self.home.state,
            "country": self.home.country,
            "sex": self.sex,
            "premium": self.premium,
            "summit": self.premium,
            "created_at": isoformat_z(self.created_at),
            "updated_at": isoformat_z(self.updated_at),
            "badge_type_id": 1 if self.premium else 0,
            # Strava's placeholders for athletes without a photo are these relative paths.
            "profile_medium": f"{base}/medium.jpg" if photo else "avatar/athlete/medium.png",
            "profile": f"{base}/large.jpg" if photo else "avatar/athlete/large.png",
            "friend": None,
            "follower": None,
        }

    def detailed(self) -> JSON:
        """DetailedAthlete (resource_state 3), returned to tokens with profile:read_all."""
        out = self.summary()
        out["resource_state"] = 3
        out.update(
            {
                "bio": None,
                "weight": self.weight,
                "blocked": False,
                "can_follow": True,
                "follower_count": 3 + self.seq % 97,
                "friend_count": 5 + self.seq % 89,
                "mutual_friend_count": 0,
                "athlete_type": 1,
                "date_preference": "%m/%d/%Y",
                "measurement_preference": (
                    "feet" if self.home.country == "United States" else "meters"
                ),
                "clubs": [],
                "postable_clubs_count": 0,
                "ftp": self.ftp,
                "bikes": (
                    [_gear(self.bike_id, "Road bike", True, 3_120_400.0)] if self.bike_id else []
                ),
                "shoes": [
                    _gear(self.shoe_ids[0], "Daily trainers", True, 612_300.0),
                    _gear(self.shoe_ids[1], "Race shoes", False, 98_700.0),
                ],
                "is_winback_via_upload": False,
                "is_winback_via_view": False,
            }
        )
        return out


def _gear(gear_id: str, name: str, primary: bool, distance: float) -> JSON:
    return {
        "id": gear_id,
        "primary": primary,
        "name": name,
        "nickname": name,
        "resource_state": 2,
        "retired": False,
        "distance": distance,
        "converted_distance": round(distance / 1000, 1),
    }


def athlete_id_for(seed: int, seq: int) -> int:
    """Realistic-looking, unique ids: strictly increasing with ``seq``."""
    return 3_000_000 + seq * 1_733 + mix(seed, seq, 1) % 1_700


def make_athlete(
    seed: int,
    seq: int,
    *,
    history_days: int,
    now: datetime,
    firstname: str | None = None,
    lastname: str | None = None,
) -> Athlete:
    if not 0 <= seq <= MAX_ATHLETE_SEQ:
        raise ValueError(f"athlete sequence number {seq} out of range")
    rng = rng_for(seed, seq, 2)
    sex = rng.choice(("M", "F"))
    first = firstname or rng.choice(FIRST_NAMES_M if sex == "M" else FIRST_NAMES_F)
    last = lastname or rng.choice(LAST_NAMES)
    athlete_id = athlete_id_for(seed, seq)
    joined = rng.randrange(0, 10 * 365 * 86400)
    created = datetime(2014, 1, 1, tzinfo=UTC) + timedelta(seconds=joined)
    slug = "".join(ch for ch in (first + last).lower() if ch.isascii() and ch.isalnum())
    return Athlete(
        seq=seq,
        id=athlete_id,
        firstname=first,
        lastname=last,
        username=f"{slug}{athlete_id % 1000}",
        sex=sex,
        home=rng.choice(HOMES),
        created_at=created,
        # Day granularity so two emulators started moments apart agree byte for byte.
        updated_at=now.replace(hour=0, minute=0, second=0, microsecond=0)
        - timedelta(days=rng.randrange(1, 30)),
        weight=round(rng.uniform(52, 82) if sex == "F" else rng.uniform(60, 92), 1),
        ftp=rng.choice((None, rng.randrange(180, 320))),
        premium=rng.random() < 0.6,
        easy_pace=rng.uniform(300, 385),
        max_hr=rng.randrange(178, 199),
        template=rng.randrange(0, len(WEEK_TEMPLATES)),
        device=rng.randrange(0, len(DEVICES)),
        trail_lover=rng.random() < 0.4,
        history_days=history_days,
        shoe_ids=(
            f"g{rng.randrange(10_000_000, 29_999_999)}",
            f"g{rng.randrange(10_000_000, 29_999_999)}",
        ),
        bike_id=f"b{rng.randrange(1_000_000, 16_999_999)}" if rng.random() < 0.7 else None,
        unknown_sport=rng.choice(UNKNOWN_SPORT_TYPES),
    )


# --------------------------------------------------------------------------- schedule

# Weekly plans (Monday first). Kinds: easy, long, intervals, workout, ride, strength.
WEEK_TEMPLATES: Final[tuple[tuple[tuple[str, ...], ...], ...]] = (
    ((), ("intervals",), ("easy",), ("easy",), ("workout",), ("easy",), ("long",)),
    (("strength",), ("easy",), ("intervals",), ("easy",), (), ("ride",), ("long",)),
    ((), ("workout",), ("easy", "strength"), ("easy",), (), ("long",), ("ride",)),
    (("easy",), ("intervals",), ("easy",), ("strength",), ("easy",), (), ("long",)),
)

# Bits for the per-athlete special activities that every history contains at least once.
F_MANUAL: Final = 1
F_ONLY_ME: Final = 2
F_FOLLOWERS: Final = 4
F_NO_HR: Final = 8
F_HIDDEN_START: Final = 16
F_UNKNOWN_SPORT: Final = 32
F_TREADMILL: Final = 64
_SPECIALS: Final = (
    F_UNKNOWN_SPORT,
    F_MANUAL,
    F_ONLY_ME,
    F_FOLLOWERS,
    F_NO_HR,
    F_HIDDEN_START,
    F_TREADMILL,
)

VISIBILITIES: Final = ("everyone", "followers_only", "only_me")


@dataclass(slots=True)
class Activity:
    """One activity: the fields the store filters on, plus lazily built representations."""

    id: int
    athlete_id: int
    start_ts: int
    """UTC epoch seconds of ``start_date`` (the obscured one for hidden start times)."""
    available_at: float
    """Emulator time from which the activity is visible (the upload after it ends)."""
    visibility: str
    kind: str
    sport_type: str
    distance: float
    moving_time: int
    elapsed_time: int
    local_ts: int
    """Local wall-clock start as if it were UTC epoch seconds: Strava's ``start_date_local``."""
    flags: int = 0
    summary_dict: JSON | None = None
    """Only for activities edited or created through the admin API."""
    detail_extra: JSON | None = None
    """Detail-only fields set through the admin API (e.g. ``description``)."""
    summary_json: bytes | None = None
    detail_json: bytes | None = None

    def invalidate(self) -> None:
        self.summary_json = None
        self.detail_json = None


def activity_id_for(epoch_day: int, athlete_seq: int, slot: int) -> int:
    """64-bit ids that grow with time like Strava's (~2.06e10 in 2026), unique per slot."""
    return (epoch_day * 100_000 + athlete_seq) * 10 + slot


def specials_for(seed: int, athlete: Athlete, anchor_day: int) -> dict[int, int]:
    """Days (epoch-day numbers) in the initial window that carry a guaranteed special."""
    days = athlete.history_days
    if days < 2:
        return {}
    rng = rng_for(seed, athlete.seq, 3)
    candidates = list(range(anchor_day - days + 1, anchor_day))
    rng.shuffle(candidates)
    out: dict[int, int] = {}
    for index, flag in enumerate(_SPECIALS):
        day = candidates[index % len(candidates)]
        out[day] = out.get(day, 0) | flag
    return out


RUN_KINDS: Final = frozenset(
    {"easy", "long", "intervals", "workout", "race", "trail", "treadmill", "virtual"}
)


def schedule_day(seed: int, athlete: Athlete, epoch_day: int, special: int = 0) -> list[Activity]:
    """The activities of one local calendar day of ``athlete`` (``epoch_day`` days since 1970)."""
    rng = rng_for(seed, athlete.seq, epoch_day)
    weekday = (epoch_day + 3) % 7  # 1970-01-01 was a Thursday
    kinds = list(WEEK_TEMPLATES[athlete.template][weekday])
    if kinds and rng.random() < 0.12:
        kinds = []  # life happens: a skipped session
    kinds = [_vary(kind, rng, athlete, weekday) for kind in kinds]
    if rng.random() < 0.07:
        kinds.append("walk")
    if special:
        kinds = _with_specials(kinds, special)
    if not kinds:
        return []
    run_flags = special & ~(F_MANUAL | F_UNKNOWN_SPORT | F_TREADMILL)
    day_ts = epoch_day * 86_400
    # One UTC offset per day; activities start after 05:00, past any DST switch.
    offset_s = _noon_offset(athlete.home.tz_name, epoch_day)

    out: list[Activity] = []
    not_before = day_ts
    first_run = True
    for slot, kind in enumerate(kinds[:10]):
        flags = 0
        if first_run and kind in RUN_KINDS:
            flags = run_flags
            first_run = False
        if kind == "manual":
            flags |= F_MANUAL
        act = _schedule_one(athlete, epoch_day, slot, kind, flags, rng, not_before, offset_s)
        not_before = act.local_ts + act.elapsed_time + 1800
        out.append(act)
    return out


def _with_specials(kinds: list[str], special: int) -> list[str]:
    kinds = list(kinds)
    if special & ~(F_MANUAL | F_UNKNOWN_SPORT) and not any(k in RUN_KINDS for k in kinds):
        kinds.insert(0, "easy")
    if special & F_TREADMILL:
        kinds = ["treadmill" if kind == "easy" else kind for kind in kinds]
        if "treadmill" not in kinds:
            kinds.insert(0, "treadmill")
    if special & F_UNKNOWN_SPORT:
        kinds.append("unknown")
    if special & F_MANUAL:
        kinds.append("manual")
    return kinds


def _vary(kind: str, rng: Rng, athlete: Athlete, weekday: int) -> str:
    roll = rng.random()
    if kind == "easy":
        if roll < 0.08:
            return "treadmill"
        if roll < 0.12:
            return "virtual"
        if athlete.trail_lover and roll < 0.25:
            return "trail"
    if kind == "long" and weekday >= 5 and roll < 0.05:
        return "race"
    if kind == "long" and athlete.trail_lover and roll < 0.2:
        return "trail"
    return kind


@dataclass(frozen=True, slots=True)
class _Kind:
    sport: str
    distance: tuple[float, float]
    pace: tuple[float, float]
    """Pace as a multiple of the athlete's easy pace; (0, 0) means a fixed speed range."""
    speed: tuple[float, float] = (0.0, 0.0)
    """m/s, for non-runs."""
    pauses: bool = True
    long_session: bool = False


_KINDS: Final = {
    "easy": _Kind("Run", (6_000, 12_000), (0.97, 1.08)),
    "treadmill": _Kind("Run", (5_000, 10_000), (0.92, 1.02), pauses=False),
    "virtual": _Kind("VirtualRun", (5_000, 10_000), (0.9, 1.0), pauses=False),
    "trail": _Kind("TrailRun", (8_000, 22_000), (1.05, 1.15), long_session=True),
    "long": _Kind("Run", (16_000, 32_000), (1.0, 1.06), long_session=True),
    "intervals": _Kind("Run", (8_000, 13_000), (0.86, 0.92)),
    "workout": _Kind("Run", (9_000, 15_000), (0.84, 0.9)),
    "race": _Kind("Run", (5_000, 42_195), (0.76, 0.88), long_session=True),
    "ride": _Kind("Ride", (25_000, 85_000), (0, 0), speed=(6.5, 8.6)),
    "walk": _Kind("Walk", (2_500, 7_000), (0, 0), speed=(1.25, 1.5)),
    "strength": _Kind("WeightTraining", (0, 0), (0, 0), pauses=False),
    "unknown": _Kind("", (4_000, 12_000), (0, 0), speed=(1.3, 2.6)),
    "manual": _Kind("Run", (5_000, 10_000), (1.02, 1.02), pauses=False),
}
_START_WINDOWS: Final = (
    (6 * 3600, 8 * 3600 + 1800),
    (12 * 3600, 13 * 3600),
    (17 * 3600 + 1800, 19 * 3600 + 2880),
)
"""Local start-time windows (seconds after midnight): morning, lunch, evening."""
_RACE_DISTANCES: Final = ((5_000.0, 0.76), (10_000.0, 0.79), (21_097.5, 0.83), (42_195.0, 0.88))


def _schedule_one(
    athlete: Athlete,
    epoch_day: int,
    slot: int,
    kind: str,
    flags: int,
    rng: Rng,
    not_before: int,
    offset_s: int,
) -> Activity:
    spec = _KINDS[kind]
    if kind == "race":
        distance, factor = rng.choice(_RACE_DISTANCES)
        distance *= rng.uniform(1.0, 1.015)  # GPS rarely measures the exact course
        speed = 1000 / max(210.0, athlete.easy_pace * factor)
    elif kind == "manual":
        distance = float(rng.choice((5_000, 6_000, 8_000, 10_000)))
        speed = 1000 / (athlete.easy_pace * 1.02)
    elif spec.pace[0]:
        distance = rng.uniform(*spec.distance)
        # Clamp inside the 3:30-7:00 min/km band that real runners' averages fall in.
        speed = 1000 / min(415.0, max(215.0, athlete.easy_pace * rng.uniform(*spec.pace)))
    else:
        distance = rng.uniform(*spec.distance)
        speed = rng.uniform(*spec.speed)
    moving = round(distance / speed) if distance else rng.randrange(30, 65) * 60
    elapsed = moving + (rng.randrange(0, 240) if spec.pauses else 0)
    if kind == "race":
        elapsed += rng.randrange(60, 900)

    day_ts = epoch_day * 86_400
    if spec.long_session:
        seconds = rng.randrange(7 * 3600, 9 * 3600 + 1800)
    else:
        low, high = rng.choice(_START_WINDOWS)
        seconds = rng.randrange(low, high)
    local_ts = max(day_ts + seconds, not_before)
    start_ts = local_ts - offset_s
    if flags & F_HIDDEN_START:
        local_ts = day_ts + 1
        start_ts = day_ts + 1 - _offset_at(athlete, day_ts + 1)

    if flags & F_ONLY_ME:
        visibility = "only_me"
    elif flags & F_FOLLOWERS:
        visibility = "followers_only"
    else:
        roll = rng.random()
        visibility = "only_me" if roll < 0.05 else "followers_only" if roll < 0.12 else "everyone"
    if flags & F_HIDDEN_START:
        # The obscured start says nothing about when it was really uploaded.
        available_at = float(start_ts + 86_399)
    elif kind == "manual":
        available_at = float(start_ts + elapsed + rng.randrange(600, 7200))
    else:
        available_at = float(start_ts + elapsed + rng.randrange(30, 300))
    return Activity(
        id=activity_id_for(epoch_day, athlete.seq, slot),
        athlete_id=athlete.id,
        start_ts=start_ts,
        available_at=available_at,
        visibility=visibility,
        kind=kind,
        sport_type=spec.sport or athlete.unknown_sport,
        distance=round(distance, 1),
        moving_time=moving,
        elapsed_time=elapsed,
        local_ts=local_ts,
        flags=flags,
    )


@functools.lru_cache(maxsize=65_536)
def _noon_offset(tz_name: str, epoch_day: int) -> int:
    """UTC offset (s) at local noon; shared by every athlete in the zone (hence cached)."""
    noon = datetime.fromtimestamp(epoch_day * 86_400 + 43_200, UTC).replace(tzinfo=None)
    offset = zone(tz_name).utcoffset(noon)
    return int(offset.total_seconds()) if offset is not None else 0


def _offset_at(athlete: Athlete, local_ts: int) -> int:
    """UTC offset (s) in force at a local wall-clock time given as seconds since 1970."""
    local = datetime.fromtimestamp(local_ts, UTC).replace(tzinfo=zone(athlete.home.tz_name))
    offset = local.utcoffset()
    return int(offset.total_seconds()) if offset is not None else 0


def local_epoch_day(athlete: Athlete, ts: float) -> int:
    local = datetime.fromtimestamp(ts, zone(athlete.home.tz_name))
    return (local.date() - EPOCH_DATE).days
