"""Strava link attempts, links (credentials encrypted), sync runs, the shared rate budget and the
application's push subscription."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Uuid,
    event,
    func,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from app.clock import utcnow
from app.db import Base, JSONType


class LinkAttempt(Base):
    """One run of the OAuth dance: the `state` (hashed), the PKCE challenge, single use."""

    __tablename__ = "strava_link_attempts"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    runner_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("runners.id", ondelete="CASCADE"), index=True
    )
    state_hash: Mapped[str] = mapped_column(String(64), unique=True)
    code_challenge: Mapped[str] = mapped_column(String(43))
    redirect_uri: Mapped[str] = mapped_column(String(2048))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Why the attempt did not end in a link (an error code), for the status document.
    failure_code: Mapped[str | None] = mapped_column(String(40))


class StravaLink(Base):
    """A runner's Strava connection. The athlete and the tokens are encrypted (AES-GCM).

    `athlete_index` is a keyed hash of the athlete id (see KeyRing.blind_indexes) so that
    "is this athlete linked to someone else?" is answerable without the id in clear.
    """

    __tablename__ = "strava_links"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    runner_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("runners.id", ondelete="CASCADE"), unique=True
    )
    athlete_index: Mapped[str] = mapped_column(String(64), unique=True)
    key_id: Mapped[str] = mapped_column(String(16))
    athlete_ciphertext: Mapped[bytes] = mapped_column(LargeBinary)
    access_token_ciphertext: Mapped[bytes] = mapped_column(LargeBinary)
    refresh_token_ciphertext: Mapped[bytes] = mapped_column(LargeBinary)
    access_token_expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # Bumped on every token change: a worker that refreshed with an older pair knows it lost a race.
    token_version: Mapped[int] = mapped_column(Integer, default=1)
    scopes: Mapped[str] = mapped_column(String(200))
    linked_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    # The actionable state the app shows (docs/contract.md §3 StravaStatus.error).
    error_code: Mapped[str | None] = mapped_column(String(40))
    error_message: Mapped[str | None] = mapped_column(String(300))
    error_retry_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Since when `error_code` holds (kept by the listener below): retention purges a dead grant
    # after a grace period counted from here.
    error_since: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    last_sync_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_success_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_result: Mapped[str | None] = mapped_column(String(10))
    # When the beat tick enqueues the next sync (spread per link; see scheduling.next_slot).
    next_sync_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), index=True)
    # Failed syncs in a row (Strava down, bad answers): the retry backoff grows with it.
    sync_failures: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


def error_since_after(
    code: str | None, previous_code: object, previous_since: datetime | None, now: datetime
) -> datetime | None:
    """`error_since` once `error_code` becomes `code`: set when the link enters an error or
    changes error, kept while the same error holds, cleared with it."""
    if code is None:
        return None
    if code != previous_code or previous_since is None:
        return now
    return previous_since


@event.listens_for(StravaLink.error_code, "set", active_history=True)
def _error_since(target: StravaLink, value: str | None, old: object, _: object) -> None:
    """Every ORM writer of `error_code` keeps `error_since` right without knowing about it (a
    Core UPDATE applies `error_since_after` itself: scheduling.run_recorded)."""
    since = error_since_after(value, old, target.error_since, utcnow())
    if since != target.error_since:
        target.error_since = since


class PendingDeauthorization(Base):
    """Tokens of an unlinked athlete whose deauthorization at Strava has yet to succeed."""

    __tablename__ = "strava_pending_deauthorizations"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    key_id: Mapped[str] = mapped_column(String(16))
    access_token_ciphertext: Mapped[bytes] = mapped_column(LargeBinary)
    # With the refresh token a retry hours later can still get a live access token to revoke.
    refresh_token_ciphertext: Mapped[bytes | None] = mapped_column(LargeBinary)
    access_token_expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


# The active-run index's predicate. INSERT .. ON CONFLICT repeats it as this literal text: sent
# as bound parameters, PostgreSQL cannot match a prepared (generic) plan to the partial index.
ACTIVE_RUN_INDEX_WHERE = "state IN ('queued', 'running')"


class SyncRun(Base):
    """One sync of one runner's window: the row of its figures (docs/contract.md §3 SyncRun)."""

    __tablename__ = "sync_runs"
    __table_args__ = (
        Index("ix_sync_runs_runner_id_created_at", "runner_id", "created_at"),
        # One queued or running sync per runner, guaranteed by the database itself.
        Index(
            "uq_sync_runs_active_runner",
            "runner_id",
            unique=True,
            postgresql_where=text(ACTIVE_RUN_INDEX_WHERE),
            sqlite_where=text(ACTIVE_RUN_INDEX_WHERE),
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    runner_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("runners.id", ondelete="CASCADE"))
    trigger: Mapped[str] = mapped_column(String(10))
    state: Mapped[str] = mapped_column(String(10))  # queued | running | finished
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # When the task message was last sent again by the beat tick's recovery (None: never).
    enqueued_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Renewed by the worker before every Strava request of a running sync: a run whose heartbeat
    # is older than SYNC_LEASE_SECONDS has lost its worker (the lease, app/strava/lease.py).
    heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    duration_ms: Mapped[int | None] = mapped_column(Integer)
    window_start: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    window_end: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    strava_requests: Mapped[int] = mapped_column(Integer, default=0)
    fetched: Mapped[int] = mapped_column(Integer, default=0)
    inserted: Mapped[int] = mapped_column(Integer, default=0)
    updated: Mapped[int] = mapped_column(Integer, default=0)
    deleted: Mapped[int] = mapped_column(Integer, default=0)
    result: Mapped[str | None] = mapped_column(String(10))  # ok | partial | failed | deferred
    error_code: Mapped[str | None] = mapped_column(String(40))
    rate_limit: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    # Deliveries of the task that worked on this run (> 1 after a worker died mid-sync).
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class RateBudgetState(Base):
    """The shared Strava rate budget when there is no Redis (one row, id 1; see budget.py).

    Counters are per window (15-minute and daily): requests reserved by our workers, raised to
    the usage Strava reports in its headers. `blocked_until` stops every worker after a 429.
    """

    __tablename__ = "strava_rate_budget"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    short_window: Mapped[int] = mapped_column(BigInteger, default=0)
    daily_window: Mapped[int] = mapped_column(BigInteger, default=0)
    short_overall: Mapped[int] = mapped_column(Integer, default=0)
    short_read: Mapped[int] = mapped_column(Integer, default=0)
    daily_overall: Mapped[int] = mapped_column(Integer, default=0)
    daily_read: Mapped[int] = mapped_column(Integer, default=0)
    overall_limit_short: Mapped[int | None] = mapped_column(Integer)
    overall_limit_daily: Mapped[int | None] = mapped_column(Integer)
    read_limit_short: Mapped[int | None] = mapped_column(Integer)
    read_limit_daily: Mapped[int | None] = mapped_column(Integer)
    blocked_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    blocked_window: Mapped[str | None] = mapped_column(String(10))


class RunnerRateBudget(Base):
    """One runner's requests in the current 15-minute window, for the embedded budget's
    per-runner share (RATE_BUDGET_RUNNER_SHARE; see budget.py). Counted under the lock of the
    `strava_rate_budget` row."""

    __tablename__ = "strava_rate_budget_runners"

    runner_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("runners.id", ondelete="CASCADE"), primary_key=True
    )
    short_window: Mapped[int] = mapped_column(BigInteger, default=0)
    requests: Mapped[int] = mapped_column(Integer, default=0)


class StravaRevocation(Base):
    """A runner whose athlete revoked our access at Strava (confirmed): the link, its tokens and
    the Strava workouts are gone, and this row is what lets the status say `revoked` (action
    `reconnect`) instead of a plain `not_linked`. Removed when the runner links again."""

    __tablename__ = "strava_revocations"

    runner_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("runners.id", ondelete="CASCADE"), primary_key=True
    )
    revoked_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class PushSubscriptionRecord(Base):
    """The application's push subscription at Strava (at most one: Strava allows one per
    application, docs/strava.md §5). While it exists, links are covered by push and scheduling
    only reconciles them (app/strava/scheduling.py)."""

    __tablename__ = "strava_push_subscriptions"

    # Strava's subscription id.
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    callback_url: Mapped[str] = mapped_column(String(255))
    # Strava's created_at; recorded_at is when we stored it.
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    recorded_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
