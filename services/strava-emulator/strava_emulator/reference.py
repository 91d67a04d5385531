"""Static facts the generator draws on: names, home towns, devices, Strava's type tables."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final
from zoneinfo import ZoneInfo

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
