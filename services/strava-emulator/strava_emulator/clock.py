"""The emulator's clock: real UTC time plus an offset that the admin API can move.

It reads ``time.time()`` on every call, so tests may also freeze or shift real time
(time-machine) and the emulator follows.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime


class Clock:
    def __init__(self) -> None:
        self._offset = 0.0

    @property
    def offset_seconds(self) -> float:
        return self._offset

    def now_ts(self) -> float:
        """Current emulator time as epoch seconds."""
        return time.time() + self._offset

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.now_ts(), UTC)

    def advance(self, seconds: float) -> datetime:
        self._offset += seconds
        return self.now()

    def set(self, when: datetime) -> datetime:
        """Jump to ``when`` (naive datetimes are taken as UTC); time keeps flowing from there."""
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        self._offset = when.timestamp() - time.time()
        return self.now()

    def reset(self) -> None:
        self._offset = 0.0


def isoformat_z(when: datetime) -> str:
    """Strava's timestamp style: second precision with a literal ``Z``."""
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
