"""Strava's per-application rate limits.

Two windows per limit: 15 minutes aligned to :00/:15/:30/:45 UTC, and the UTC day. Every
request counts, rejected ones included ("requests violating the short term limit will still
count toward the long term limit").
"""

from __future__ import annotations

from dataclasses import dataclass

QUARTER = 900
DAY = 86_400


@dataclass(slots=True)
class Counter:
    limit: tuple[int, int]
    quarter: int = -1
    day: int = -1
    quarter_usage: int = 0
    day_usage: int = 0

    def roll(self, now_ts: float) -> None:
        quarter, day = int(now_ts // QUARTER), int(now_ts // DAY)
        if quarter != self.quarter:
            self.quarter, self.quarter_usage = quarter, 0
        if day != self.day:
            self.day, self.day_usage = day, 0

    def usage(self, now_ts: float) -> tuple[int, int]:
        self.roll(now_ts)
        return self.quarter_usage, self.day_usage

    def set_usage(self, usage: tuple[int, int], now_ts: float) -> None:
        self.roll(now_ts)
        self.quarter_usage, self.day_usage = usage

    def hit(self, now_ts: float) -> bool:
        """Count one request; True while within both windows' limits."""
        self.roll(now_ts)
        self.quarter_usage += 1
        self.day_usage += 1
        return self.quarter_usage <= self.limit[0] and self.day_usage <= self.limit[1]


class RateLimiter:
    def __init__(self, overall_limit: tuple[int, int], read_limit: tuple[int, int]) -> None:
        self.overall = Counter(overall_limit)
        self.read = Counter(read_limit)

    def hit(self, now_ts: float, *, read: bool = True) -> tuple[bool, list[tuple[bytes, bytes]]]:
        """Count a request; returns (allowed, the four X-*RateLimit-* headers)."""
        allowed = self.overall.hit(now_ts)
        if read:
            allowed = self.read.hit(now_ts) and allowed
        return allowed, self.headers(now_ts)

    def headers(self, now_ts: float) -> list[tuple[bytes, bytes]]:
        def pair(values: tuple[int, int]) -> bytes:
            return f"{values[0]},{values[1]}".encode()

        return [
            (b"x-ratelimit-limit", pair(self.overall.limit)),
            (b"x-ratelimit-usage", pair(self.overall.usage(now_ts))),
            (b"x-readratelimit-limit", pair(self.read.limit)),
            (b"x-readratelimit-usage", pair(self.read.usage(now_ts))),
        ]
