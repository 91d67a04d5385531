"""The one source of "now" (tests move it with time-machine)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta


def utcnow() -> datetime:
    return datetime.now(UTC)


def local_naive_now() -> datetime:
    """Naive local time, for third-party tables that store it (kombu's embedded broker)."""
    return datetime.now()


def as_utc(value: datetime) -> datetime:
    """SQLite hands back naive datetimes; every stored datetime is UTC."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def window_start(now: datetime, window_days: int) -> datetime:
    """Where the window of the last `window_days` (SYNC_WINDOW_DAYS) ending `now` starts: the one
    definition the status count, the training load and the sync's listing and deletions share."""
    return now - timedelta(days=window_days)
