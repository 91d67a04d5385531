"""Asking for a runner's webhook processing: one task per runner per burst, not one per event
(docs/strava.md §5).

An event is stored (committed) first; then `request(runner_id)` sets a per-runner flag in Redis
(`SET key NX EX`) and only the request that set it publishes `strava.process_webhooks`: the
events of a burst that arrive while that task waits in the queue are drained by it. The task
clears the flag (`clear`) BEFORE it claims the runner's events, so an event stored after its
claim sets the flag again and publishes another task.

Nothing here can lose an acknowledged event: the event is durable before the request, and the
beat re-drives pending events older than WEBHOOK_STALE_PENDING_SECONDS and due deferred ones
(scheduling.redrive_webhooks) whatever became of the flag or of the task. A publish that fails
clears the flag, so the runner's next event tries again; a flag whose task was lost expires
after FLAG_TTL. Without Redis (the embedded mode) every stored event publishes, as the
embedded broker's duplicates cost nothing worth a second mechanism.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING

import structlog

if TYPE_CHECKING:
    import redis

    from app.config import Settings

log = structlog.get_logger(__name__)

# A flag outlives a task that waits in the queue this long at most; after it, another event of
# the runner publishes again (a second task finds little or nothing to do: harmless).
FLAG_TTL_SECONDS = 300
KEY_PREFIX = "strava:webhooks-requested"


class WebhookRequests:
    """`request` after an event is stored; `clear` when the task starts (before its claim)."""

    def __init__(
        self,
        publish: Callable[[uuid.UUID], None],
        client: redis.Redis[bytes] | None = None,
        *,
        prefix: str = KEY_PREFIX,
        ttl_seconds: int = FLAG_TTL_SECONDS,
    ) -> None:
        self._publish = publish
        self._redis = client
        self._prefix = prefix
        self._ttl = ttl_seconds

    def _key(self, runner_id: uuid.UUID) -> str:
        return f"{self._prefix}:{runner_id}"

    def request(self, runner_id: uuid.UUID) -> bool:
        """Publish the runner's task unless one is already asked for; True when published.
        Raises what publishing raises (the caller logs it: the beat re-drives the event)."""
        if self._redis is not None:
            import redis

            try:
                first = self._redis.set(self._key(runner_id), b"1", nx=True, ex=self._ttl)
            except redis.RedisError as exc:
                # Cannot tell whether a task is asked for: ask again (a duplicate is harmless).
                log.warning("strava.webhook_flag_unavailable", error=type(exc).__name__)
                first = True
            if not first:
                return False
        try:
            self._publish(runner_id)
        except BaseException:
            self.clear(runner_id)  # the next event of the runner tries again
            raise
        return True

    def clear(self, runner_id: uuid.UUID) -> None:
        """The task has started: events stored from now on ask for another one."""
        if self._redis is None:
            return
        import redis

        try:
            self._redis.delete(self._key(runner_id))
        except redis.RedisError as exc:  # the flag expires by itself
            log.warning("strava.webhook_flag_unavailable", error=type(exc).__name__)


def from_settings(settings: Settings, publish: Callable[[uuid.UUID], None]) -> WebhookRequests:
    """Flags in Redis when REDIS_URL is set; none (every event publishes) in the embedded mode."""
    if not settings.redis_url:
        return WebhookRequests(publish)
    import redis

    client = redis.Redis.from_url(
        settings.redis_url, socket_timeout=2.0, socket_connect_timeout=2.0
    )
    return WebhookRequests(publish, client)
