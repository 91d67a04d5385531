"""Deterministic generator of sandbox athletes and their activity history.

Everything is a pure function of the seed and stable keys (athlete sequence number, local
calendar day, activity id), never of generation order. That makes history lazy (an athlete's
activities are only scheduled when first asked for), cheap for 10,000 athletes, and identical
across runs with the same seed. Two levels keep it fast:

* :func:`schedule_day` decides only what the store needs to filter and page (id, start,
  duration, visibility): tens of microseconds per activity;
* :func:`build_summary` / :func:`build_detail` fill in the full Strava representation (heart
  rate, cadence, polyline, ...) from the activity's own seed when it is first served.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, Final, TypeVar
from zoneinfo import ZoneInfo

from strava_emulator import polyline
from strava_emulator.clock import isoformat_z

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


# --------------------------------------------------------------------------- reference data

FIRST_NAMES_F: Final = (
    "Emma",
    "Léa",
    "Sofia",
    "Hannah",
    "Mia",
    "Chloé",
    "Aiko",
    "Grace",
    "Isabel",
    "Nora",
    "Amina",
    "Julia",
    "Sarah",
    "Lucía",
    "Freya",
)
FIRST_NAMES_M: Final = (
    "George",
    "Lucas",
    "Noah",
    "Hugo",
    "Mateo",
    "Liam",
    "Kenji",
    "Ethan",
    "Tomás",
    "Felix",
    "David",
    "Arthur",
    "Kofi",
    "Jonas",
    "Samuel",
)
LAST_NAMES: Final = (
    "Martin",
    "Bernard",
    "Dubois",
    "Smith",
    "Johnson",
    "Müller",
    "Schmidt",
    "García",
    "Rossi",
    "Kipchoge",
    "Tanaka",
    "Nielsen",
    "O'Brien",
    "Novak",
    "Silva",
    "Kowalski",
    "Jansen",
    "Moreau",
    "Lambert",
    "Chen",
)


@dataclass(frozen=True, slots=True)
class Home:
    city: str
    state: str
    country: str
    lat: float
    lng: float
    tz_name: str
    tz_label: str
    """Strava's timezone string carries the zone's standard offset, whatever the season."""
    elevation: float
    hilliness: float
    """Typical climbing, metres per km."""


HOMES: Final = (
    Home(
        "Paris",
        "Île-de-France",
        "France",
        48.8566,
        2.3522,
        "Europe/Paris",
        "(GMT+01:00) Europe/Paris",
        35.0,
        6.0,
    ),
    Home(
        "Lyon",
        "Auvergne-Rhône-Alpes",
        "France",
        45.7640,
        4.8357,
        "Europe/Paris",
        "(GMT+01:00) Europe/Paris",
        170.0,
        12.0,
    ),
    Home(
        "Berlin",
        "Berlin",
        "Germany",
        52.5200,
        13.4050,
        "Europe/Berlin",
        "(GMT+01:00) Europe/Berlin",
        34.0,
        4.0,
    ),
    Home(
        "London",
        "England",
        "United Kingdom",
        51.5072,
        -0.1276,
        "Europe/London",
        "(GMT+00:00) Europe/London",
        11.0,
        5.0,
    ),
    Home(
        "Barcelona",
        "Catalunya",
        "Spain",
        41.3874,
        2.1686,
        "Europe/Madrid",
        "(GMT+01:00) Europe/Madrid",
        12.0,
        9.0,
    ),
    Home(
        "Amsterdam",
        "Noord-Holland",
        "Netherlands",
        52.3676,
        4.9041,
        "Europe/Amsterdam",
        "(GMT+01:00) Europe/Amsterdam",
        0.0,
        2.0,
    ),
    Home(
        "New York",
        "NY",
        "United States",
        40.7812,
        -73.9665,
        "America/New_York",
        "(GMT-05:00) America/New_York",
        30.0,
        8.0,
    ),
    Home(
        "Boulder",
        "CO",
        "United States",
        40.0150,
        -105.2705,
        "America/Denver",
        "(GMT-07:00) America/Denver",
        1655.0,
        18.0,
    ),
    Home(
        "San Francisco",
        "CA",
        "United States",
        37.7694,
        -122.4862,
        "America/Los_Angeles",
        "(GMT-08:00) America/Los_Angeles",
        20.0,
        15.0,
    ),
    Home(
        "Sydney",
        "NSW",
        "Australia",
        -33.8688,
        151.2093,
        "Australia/Sydney",
        "(GMT+10:00) Australia/Sydney",
        25.0,
        10.0,
    ),
    Home(
        "Tokyo",
        "Tokyo",
        "Japan",
        35.6764,
        139.6500,
        "Asia/Tokyo",
        "(GMT+09:00) Asia/Tokyo",
        40.0,
        5.0,
    ),
    Home(
        "Nairobi",
        "Nairobi County",
        "Kenya",
        -1.2921,
        36.8219,
        "Africa/Nairobi",
        "(GMT+03:00) Africa/Nairobi",
        1795.0,
        14.0,
    ),
)

_ZONES: dict[str, ZoneInfo] = {}


def zone(name: str) -> ZoneInfo:
    found = _ZONES.get(name)
    if found is None:
        found = _ZONES[name] = ZoneInfo(name)
    return found


DEVICES: Final = (
    ("Garmin Forerunner 265", "garmin_ping_{n}"),
    ("Garmin Forerunner 965", "garmin_ping_{n}"),
    ("Garmin fēnix 7", "garmin_ping_{n}"),
    ("COROS PACE 3", "{n}.fit"),
    ("Apple Watch Series 9", "{n}-activity.fit"),
    ("Polar Vantage V3", "{n}.tcx"),
)

# sport_type -> deprecated `type`; unknown future sport types map to "Workout" (see §3.4).
ACTIVITY_TYPE_OF: Final = {
    "Run": "Run",
    "TrailRun": "Run",
    "VirtualRun": "VirtualRun",
    "Ride": "Ride",
    "VirtualRide": "VirtualRide",
    "MountainBikeRide": "Ride",
    "GravelRide": "Ride",
    "Walk": "Walk",
    "Hike": "Hike",
    "WeightTraining": "WeightTraining",
    "Swim": "Swim",
    "Yoga": "Yoga",
    "Workout": "Workout",
    "Elliptical": "Elliptical",
    "Rowing": "Rowing",
}
UNKNOWN_SPORT_TYPES: Final = ("TrailHike", "Hyrox", "DeepWaterRun")
"""Sport types newer than every published enum: clients must store them, not reject them."""

# Watopia, Zwift's island: where virtual runs draw their map.
WATOPIA: Final = (-11.6400, 166.9500)

# Strava's canonical order for the granted `scope` parameter on the callback.
SCOPE_ORDER: Final = (
    "read",
    "activity:write",
    "activity:read",
    "activity:read_all",
    "profile:write",
    "profile:read_all",
    "read_all",
)


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


_RUN_KINDS: Final = frozenset(
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
        if first_run and kind in _RUN_KINDS:
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
    if special & ~(F_MANUAL | F_UNKNOWN_SPORT) and not any(k in _RUN_KINDS for k in kinds):
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


# --------------------------------------------------------------------------- representations


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
    is_run = act.kind in _RUN_KINDS or (manual and act.sport_type == "Run")
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
