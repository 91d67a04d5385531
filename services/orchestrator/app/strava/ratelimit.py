"""Strava's rate-limit headers and window arithmetic (docs/strava.md §2). Pure: no I/O, no clock.

Strava counts requests per application in two windows at once: 15 minutes, reset at :00, :15,
:30 and :45, and a day, reset at midnight UTC. Every response says where we stand in four headers,
each "<15-minute>,<daily>": ``X-RateLimit-Limit``/``-Usage`` (all requests) and
``X-ReadRateLimit-Limit``/``-Usage`` (the "non-upload" requests, i.e. everything we do).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from celery.exceptions import SoftTimeLimitExceeded

Window = Literal["short", "daily"]

SHORT_WINDOW = timedelta(minutes=15)

_LIMIT = "x-ratelimit-limit"
_USAGE = "x-ratelimit-usage"
_READ_LIMIT = "x-readratelimit-limit"
_READ_USAGE = "x-readratelimit-usage"

# ASCII digits only (int() would also take "1_0" or Arabic-Indic digits), and few enough of them
# that a hostile header cannot make int() slow or raise.
_PAIR = re.compile(r"\s*([0-9]{1,15})\s*,\s*([0-9]{1,15})\s*", re.ASCII)


@dataclass(frozen=True)
class RateLimitSnapshot:
    """Limits and usage as of one response; each pair is (15-minute window, daily window)."""

    overall_limit: tuple[int, int]
    overall_usage: tuple[int, int]
    read_limit: tuple[int, int]
    read_usage: tuple[int, int]

    def exhausted_window(self) -> Window | None:
        """The window that is spent, if any. The daily one wins: it outlasts any 15-minute one."""
        pairs = ((self.overall_usage, self.overall_limit), (self.read_usage, self.read_limit))
        if any(usage[1] >= limit[1] for usage, limit in pairs):
            return "daily"
        if any(usage[0] >= limit[0] for usage, limit in pairs):
            return "short"
        return None

    def retry_at(self, now: datetime) -> datetime:
        """When a request refused with 429 is worth trying again.

        Without a spent daily window this is the next 15-minute boundary, also when the headers
        show no spent window at all: Strava said 429, so the short window is the optimistic bet.
        """
        if self.exhausted_window() == "daily":
            return next_daily_window_start(now)
        return next_short_window_start(now)


def parse_headers(headers: Mapping[str, str]) -> RateLimitSnapshot | None:
    """The snapshot in a response's headers; None when any of the four is missing or malformed.

    Header names are matched case-insensitively (Strava sends ``X-Ratelimit-Usage``). Never raises:
    a garbled header must not cost us the response it came with.
    """
    try:
        by_name = {str(name).lower(): value for name, value in headers.items()}
        overall_limit = _parse_pair(by_name.get(_LIMIT))
        overall_usage = _parse_pair(by_name.get(_USAGE))
        read_limit = _parse_pair(by_name.get(_READ_LIMIT))
        read_usage = _parse_pair(by_name.get(_READ_USAGE))
    except SoftTimeLimitExceeded:
        raise  # not a malformed header: the worker's time limit (docs/architecture.md)
    except Exception:
        return None  # a Mapping that misbehaves is just another malformed header set
    if overall_limit is None or overall_usage is None or read_limit is None or read_usage is None:
        return None
    if 0 in overall_limit or 0 in read_limit:
        return None  # a zero limit is not a limit Strava would set; treat it as garbage
    return RateLimitSnapshot(
        overall_limit=overall_limit,
        overall_usage=overall_usage,
        read_limit=read_limit,
        read_usage=read_usage,
    )


def next_short_window_start(now: datetime) -> datetime:
    """The first :00/:15/:30/:45 boundary strictly after `now`, in UTC."""
    now = _utc(now)
    start = now.replace(minute=now.minute - now.minute % 15, second=0, microsecond=0)
    return start + SHORT_WINDOW


def next_daily_window_start(now: datetime) -> datetime:
    """The first midnight UTC strictly after `now`."""
    now = _utc(now)
    return now.replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1)


def _parse_pair(value: object) -> tuple[int, int] | None:
    if not isinstance(value, str):
        return None
    match = _PAIR.fullmatch(value)
    if match is None:
        return None
    return int(match[1]), int(match[2])


def _utc(now: datetime) -> datetime:
    # Strava's windows are defined in UTC; a naive time could be anyone's wall clock.
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("`now` must be timezone-aware")
    return now.astimezone(UTC)
