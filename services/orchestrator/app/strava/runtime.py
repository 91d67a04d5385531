"""The one place settings meet collaborators: the runtime of every worker task (sessions, key ring,
rate budget, a pooled Strava client), the Strava client of the API, and the recorder that turns
each Strava response into metrics and rate-budget figures.

Nothing else reads Settings to build a StravaClient or a budget; tests build their runtime here too.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import httpx2
from sqlalchemy.orm import Session, sessionmaker

from app.clock import utcnow
from app.config import Settings
from app.security import KeyRing
from app.strava import metrics
from app.strava.budget import RateBudget
from app.strava.client import ResponseInfo, StravaClient
from app.strava.ratelimit import RateLimitSnapshot


def build_strava_client(
    settings: Settings,
    http: httpx2.Client,
    *,
    on_response: Callable[[ResponseInfo], None] | None = None,
) -> StravaClient:
    """The one place settings meet the client (which itself knows no settings)."""
    return StravaClient(
        http,
        api_base_url=settings.api_base_url,
        oauth_base_url=settings.oauth_base_url,
        client_id=settings.client_id,
        client_secret=settings.client_secret,
        on_response=on_response,
    )


@dataclass
class RunRecorder:
    """A client's `on_response`: counts requests, keeps the last rate-limit snapshot, and feeds
    the metrics and (at `flush`) the shared budget.

    The budget learns Strava's figures at `flush`, or with the sync's next `acquire` (`take`),
    and when the listing ends, never from inside the client: with the embedded budget that is a
    database write, and it must not happen while a refresh holds the link's lock."""

    budget: RateBudget | None
    # Why these requests are made (the `purpose` label of strava_requests_total).
    purpose: str = metrics.Purpose.API
    requests: int = 0
    snapshot: RateLimitSnapshot | None = None
    _unrecorded: RateLimitSnapshot | None = None

    def __call__(self, info: ResponseInfo) -> None:
        self.requests += 1
        metrics.observe_strava_response(info, self.purpose)
        if info.rate_limit is not None:
            self.snapshot = self._unrecorded = info.rate_limit

    def take(self) -> RateLimitSnapshot | None:
        """The figures not yet given to the budget, handed over to the caller (who passes them
        with its next `acquire`: one call to the budget instead of two)."""
        snapshot, self._unrecorded = self._unrecorded, None
        return snapshot

    def flush(self) -> None:
        snapshot = self.take()
        if snapshot is not None and self.budget is not None:
            self.budget.record(snapshot, utcnow())


def api_response_hook(settings: Settings) -> Callable[[ResponseInfo], None]:
    """The API's own Strava calls (code exchange, deauthorize) count in the metrics and, on
    Redis, in the rate budget the workers share.

    The embedded (database) budget is left out here: its write would wait on the request's own
    SQLite write lock. Strava's usage headers are absolute counts, so the next worker response
    brings the budget up to date anyway.
    """
    from app.db import get_sessionmaker
    from app.strava.budget import from_settings

    budget = from_settings(settings, get_sessionmaker()) if settings.redis_url else None
    recorder = RunRecorder(budget)

    def hook(info: ResponseInfo) -> None:
        recorder(info)
        recorder.flush()

    return hook


@dataclass(frozen=True)
class StravaRuntime:
    """What a sync, a tick or a deauthorization needs; built once per worker process (tasks.py),
    or by tests."""

    sessions: sessionmaker[Session]
    keyring: KeyRing
    budget: RateBudget
    # A StravaClient whose responses go to the given hook (cheap: it wraps a shared pool).
    client_for: Callable[[Callable[[ResponseInfo], None]], StravaClient]
    window_days: int = 28
    interval_seconds: int = 3600
    max_attempts: int = 3
    lease_seconds: int = 120
    # Between scheduled syncs of links covered by push (scheduling.scheduled_interval).
    reconcile_seconds: int = 3 * 86400
    close: Callable[[], None] = field(default=lambda: None, repr=False)


def build_runtime(
    settings: Settings,
    *,
    sessions: sessionmaker[Session] | None = None,
    budget: RateBudget | None = None,
    timeout_s: float | None = None,
) -> StravaRuntime:
    """The production collaborators: one pooled HTTP client per process, the shared budget.
    Tests pass their own sessions, budget or a shorter timeout."""
    from app.db import get_sessionmaker
    from app.strava.budget import from_settings
    from app.strava.client import create_http_client

    sessions = sessions or get_sessionmaker()
    http = create_http_client(
        timeout_s=timeout_s if timeout_s is not None else settings.strava_timeout_seconds
    )

    def client_for(hook: Callable[[ResponseInfo], None]) -> StravaClient:
        return build_strava_client(settings, http, on_response=hook)

    return StravaRuntime(
        sessions=sessions,
        keyring=KeyRing(settings.encryption_keys()),
        budget=budget if budget is not None else from_settings(settings, sessions),
        client_for=client_for,
        window_days=settings.sync_window_days,
        interval_seconds=settings.sync_interval_seconds,
        max_attempts=settings.sync_max_attempts,
        lease_seconds=settings.sync_lease_seconds,
        reconcile_seconds=settings.sync_reconcile_seconds,
        close=http.close,
    )


def close_runtime(runtime: StravaRuntime) -> None:
    runtime.close()
