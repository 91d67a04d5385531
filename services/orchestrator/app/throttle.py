"""Per-client request limits (fixed windows): in Redis when REDIS_URL is set, so that every API
process counts together, in process memory otherwise (the single-process sandbox)."""

from __future__ import annotations

import math
import threading
import time
from typing import TYPE_CHECKING, Protocol

import structlog

if TYPE_CHECKING:
    import redis

    from app.config import Settings

log = structlog.get_logger(__name__)


class Throttle(Protocol):
    def hit(self, key: str) -> int | None:
        """Count one request for `key`: None if allowed, else seconds until the next is."""
        ...


class MemoryThrottle:
    def __init__(self, *, limit: int, window_seconds: int) -> None:
        self.limit = limit
        self.window_seconds = window_seconds
        self._lock = threading.Lock()
        # key → (window start on the monotonic clock, requests counted in it)
        self._windows: dict[str, tuple[float, int]] = {}

    def hit(self, key: str) -> int | None:
        now = time.monotonic()
        with self._lock:
            started, count = self._windows.get(key, (now, 0))
            if now - started >= self.window_seconds:
                started, count = now, 0
            if count >= self.limit:
                return max(1, math.ceil(started + self.window_seconds - now))
            self._windows[key] = (started, count + 1)
            if len(self._windows) > 10_000:  # forget ended windows; bounded memory
                self._windows = {
                    k: v for k, v in self._windows.items() if now - v[0] < self.window_seconds
                }
            return None


# INCR and the window's expiry in one step: a crash between them cannot leave a counter forever.
_HIT = """
local count = redis.call('INCR', KEYS[1])
if count == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return {count, redis.call('PTTL', KEYS[1])}
"""


class RedisThrottle:
    def __init__(
        self, client: redis.Redis[bytes], *, prefix: str, limit: int, window_seconds: int
    ) -> None:
        self._redis = client
        self._prefix = prefix
        self.limit = limit
        self.window_seconds = window_seconds

    def hit(self, key: str) -> int | None:
        import redis

        try:
            count, ttl_ms = self._redis.eval(  # type: ignore[no-untyped-call]
                _HIT, 1, f"{self._prefix}:{key}", self.window_seconds * 1000
            )
        except redis.RedisError as exc:
            # A limiter that is down must not lock everyone out: count nothing, say so.
            log.warning("throttle.unavailable", error=type(exc).__name__)
            return None
        if int(count) <= self.limit:
            return None
        return max(1, math.ceil(int(ttl_ms) / 1000))


def session_creation_throttle(settings: Settings) -> Throttle:
    """The limit on anonymous POST /auth/sessions, per client address."""
    if settings.redis_url:
        import redis

        client = redis.Redis.from_url(
            settings.redis_url, socket_timeout=2.0, socket_connect_timeout=2.0
        )
        return RedisThrottle(
            client,
            prefix=f"{settings.rate_limit_prefix}:sessions",
            limit=settings.session_create_limit,
            window_seconds=settings.session_create_window_seconds,
        )
    return MemoryThrottle(
        limit=settings.session_create_limit, window_seconds=settings.session_create_window_seconds
    )
