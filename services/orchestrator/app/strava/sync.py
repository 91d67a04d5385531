"""Window ingest: one sync run of one runner's last SYNC_WINDOW_DAYS of activities (design.md §4).

A run goes through three short transactions, never holding a lock while Strava is called
(except the token refresh, see tokens.py):

1. **claim**: the run goes queued → running (atomically: a duplicate task message does nothing;
   a redelivered one takes over a run whose worker died);
2. **list**: a live access token, then `GET /athlete/activities?after=…&per_page=200&page=n` until
   an *empty* page (a short page is not the end), deduplicated by id; before every request the
   shared rate budget is asked (budget.py). A 401 gets one token refresh, then `reauth_required`;
3. **write**: with the link row locked and re-checked (unlinked meanwhile → nothing is written),
   upsert by (source, source_id) in bulk, and only after a complete listing delete the window's
   workouts that Strava no longer lists (both in ingest.py); then the run's telemetry and the
   link's status.

A listing that failed part-way keeps what it fetched, deletes nothing and moves no cursor
(`partial`). A spent rate budget or a 429 is a state, not a failure: the run is `deferred` and the
link says `rate_limited` until the window resets, when the beat tick syncs it again.
"""

from __future__ import annotations

import hashlib
import math
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from app import telemetry
from app.clock import as_utc, utcnow
from app.config import Settings
from app.db import session_scope
from app.errors import AppError, KeyUnavailable, NotLinked, ReauthRequired
from app.security import KeyRing
from app.strava import tokens
from app.strava.budget import BudgetSpent, RateBudget
from app.strava.client import (
    InvalidGrant,
    InvalidToken,
    RateLimited,
    ResponseInfo,
    ScopeMissing,
    StravaClient,
    StravaError,
    StravaUnavailable,
)
from app.strava.ingest import UpsertResult, delete_vanished, upsert_workouts
from app.strava.models import StravaLink, SyncRun
from app.strava.payloads import SummaryActivity
from app.strava.ratelimit import RateLimitSnapshot
from app.strava.service import RECONNECT_CODES, build_strava_client

# delete_vanished and upsert_workouts live in ingest.py; re-exported for tests and bench/.
__all__ = [
    "Listing",
    "ListingTooLong",
    "RunRecorder",
    "SyncDeps",
    "SyncOutcome",
    "build_deps",
    "claim_run",
    "classify",
    "close_deps",
    "delete_vanished",
    "next_slot",
    "rate_limit_document",
    "retry_delay",
    "run_sync",
    "slot_offset",
    "upsert_workouts",
]

log = structlog.get_logger(__name__)

PER_PAGE = 200
# 100 pages of 200 is 20,000 activities in the window: a listing that long is a broken server.
MAX_PAGES = 100
# The longest wait before a failed sync is tried again (also capped by the sync interval).
MAX_BACKOFF = timedelta(hours=1)


class ListingTooLong(Exception):
    """Strava kept returning non-empty pages past MAX_PAGES."""


# --- collaborators ------------------------------------------------------------------------------


@dataclass(frozen=True)
class SyncDeps:
    """What a sync needs; built once per worker process (tasks.py), or by tests."""

    sessions: sessionmaker[Session]
    keyring: KeyRing
    budget: RateBudget
    # A StravaClient whose responses go to the given hook (cheap: it wraps a shared pool).
    client_for: Callable[[Callable[[ResponseInfo], None]], StravaClient]
    window_days: int = 28
    interval_seconds: int = 3600
    task_time_limit_seconds: int = 600
    close: Callable[[], None] = field(default=lambda: None, repr=False)


def build_deps(settings: Settings) -> SyncDeps:
    """The production collaborators: one pooled HTTP client per process, the shared budget."""
    from app.db import get_sessionmaker
    from app.strava.budget import from_settings
    from app.strava.client import create_http_client

    sessions = get_sessionmaker()
    http = create_http_client(timeout_s=settings.strava_timeout_seconds)

    def client_for(hook: Callable[[ResponseInfo], None]) -> StravaClient:
        return build_strava_client(settings, http, on_response=hook)

    return SyncDeps(
        sessions=sessions,
        keyring=KeyRing(settings.encryption_keys()),
        budget=from_settings(settings, sessions),
        client_for=client_for,
        window_days=settings.sync_window_days,
        interval_seconds=settings.sync_interval_seconds,
        task_time_limit_seconds=settings.task_time_limit_seconds,
        close=http.close,
    )


def close_deps(deps: SyncDeps) -> None:
    deps.close()


@dataclass
class RunRecorder:
    """The client's `on_response` for one run: counts requests, keeps the last rate-limit
    snapshot, and feeds the metrics and (at `flush`) the shared budget.

    The budget learns Strava's figures at `flush`, which the sync calls before its next request
    and when the listing ends, never from inside the client: with the embedded budget that is a
    database write, and it must not happen while a refresh holds the link's lock."""

    budget: RateBudget
    requests: int = 0
    snapshot: RateLimitSnapshot | None = None
    _unrecorded: RateLimitSnapshot | None = None

    def __call__(self, info: ResponseInfo) -> None:
        self.requests += 1
        telemetry.observe_strava_response(info)
        if info.rate_limit is not None:
            self.snapshot = self._unrecorded = info.rate_limit

    def flush(self) -> None:
        if self._unrecorded is not None:
            snapshot, self._unrecorded = self._unrecorded, None
            self.budget.record(snapshot, utcnow())


def rate_limit_document(snapshot: RateLimitSnapshot | None) -> dict[str, list[int]] | None:
    """SyncRun.rate_limit: the last usage/limit pairs seen, (15-minute, daily) each."""
    if snapshot is None:
        return None
    return {
        "overall_usage": list(snapshot.overall_usage),
        "overall_limit": list(snapshot.overall_limit),
        "read_usage": list(snapshot.read_usage),
        "read_limit": list(snapshot.read_limit),
    }


# --- scheduling arithmetic ----------------------------------------------------------------------


def slot_offset(link_id: uuid.UUID, interval_seconds: int) -> int:
    """Where in every interval this link's scheduled syncs fall: a stable hash of its id, so that
    thousands of links spread evenly instead of hitting Strava in one burst."""
    digest = hashlib.sha256(link_id.bytes).digest()
    return int.from_bytes(digest[:8], "big") % interval_seconds


def next_slot(link_id: uuid.UUID, now: datetime, interval_seconds: int) -> datetime:
    """The link's first slot at least half an interval from now (so 0.5 to 1.5 intervals)."""
    offset = slot_offset(link_id, interval_seconds)
    earliest = now.timestamp() + interval_seconds / 2
    k = math.ceil((earliest - offset) / interval_seconds)
    return datetime.fromtimestamp(k * interval_seconds + offset, UTC)


def retry_delay(link_id: uuid.UUID, failures: int, interval_seconds: int) -> timedelta:
    """Exponential backoff from one minute, capped at the interval (and an hour), plus a few
    seconds of per-link spread."""
    cap = min(MAX_BACKOFF.total_seconds(), interval_seconds)
    base = min(60.0 * 2 ** max(0, failures - 1), cap)
    return timedelta(seconds=base + slot_offset(link_id, 30))


# --- the run ------------------------------------------------------------------------------------


@dataclass
class Listing:
    activities: dict[int, SummaryActivity] = field(default_factory=dict)
    pages: int = 0  # non-empty pages received
    complete: bool = False  # an empty page ended it


@dataclass(frozen=True)
class SyncOutcome:
    sync_run_id: uuid.UUID
    result: str  # ok | partial | failed | deferred | skipped
    error_code: str | None = None
    fetched: int = 0
    inserted: int = 0
    updated: int = 0
    deleted: int = 0
    strava_requests: int = 0
    retry_at: datetime | None = None

    def summary(self) -> dict[str, Any]:
        return {
            "sync_run_id": str(self.sync_run_id),
            "result": self.result,
            "error_code": self.error_code,
            "fetched": self.fetched,
            "inserted": self.inserted,
            "updated": self.updated,
            "deleted": self.deleted,
            "strava_requests": self.strava_requests,
        }


def claim_run(
    session: Session, run_id: uuid.UUID, now: datetime, *, redelivered: bool, stale_after: timedelta
) -> SyncRun | None:
    """Move the run to `running` for this task, or None when there is nothing to do.

    Queued: claimed. Running: taken over only when this delivery is a redelivery (the worker that
    had it died) or it has run longer than any task may, so a duplicate message for a live run
    does nothing. Finished or gone: nothing. The conditional UPDATE makes the claim atomic.
    """
    run = session.get(SyncRun, run_id, populate_existing=True)
    if run is None:
        return None
    if run.state == "running":
        started = as_utc(run.started_at) if run.started_at is not None else None
        if not (redelivered or started is None or started < now - stale_after):
            return None
    elif run.state != "queued":
        return None
    claimed = session.execute(
        update(SyncRun)
        .where(SyncRun.id == run_id, SyncRun.state == run.state, SyncRun.attempts == run.attempts)
        .values(state="running", started_at=now, attempts=run.attempts + 1)
        .execution_options(synchronize_session=False)
    )
    if claimed.rowcount != 1:  # type: ignore[attr-defined]
        return None
    session.refresh(run)
    return run


def run_sync(deps: SyncDeps, run_id: uuid.UUID, *, redelivered: bool = False) -> SyncOutcome:
    """Execute one sync run end to end (the task's whole body)."""
    started = utcnow()
    clock = time.perf_counter()
    backfill = False
    with session_scope(deps.sessions) as session:
        run = claim_run(
            session,
            run_id,
            started,
            redelivered=redelivered,
            stale_after=timedelta(seconds=deps.task_time_limit_seconds),
        )
        if run is None:
            return SyncOutcome(run_id, "skipped")
        trigger = run.trigger
        runner_id = run.runner_id
        link = session.scalar(select(StravaLink).where(StravaLink.runner_id == runner_id))
        window_start = started - timedelta(days=deps.window_days)
        after = math.floor(window_start.timestamp())
        run.window_start = datetime.fromtimestamp(after, UTC)
        run.window_end = started
        if link is None or link.error_code in RECONNECT_CODES:
            # Nothing Strava could answer: not linked, or waiting for the runner to reconnect.
            code = "not_linked" if link is None else str(link.error_code)
            outcome = _finish_run(run, started, "failed", code, Listing(), UpsertResult(), 0, None)
            link_id = None
        else:
            link_id = link.id
            backfill = link.last_success_at is None
    if link_id is None:
        _report(outcome, trigger, runner_id, time.perf_counter() - clock, attempts=1)
        return outcome

    recorder = RunRecorder(deps.budget)
    client = deps.client_for(recorder)
    listing = Listing()
    error: Exception | None = None
    try:
        grant = tokens.access_grant(
            deps.sessions, link_id, client=client, keyring=deps.keyring, budget=deps.budget
        )
        _list_window(deps, client, recorder, link_id, grant, after, listing)
    except (StravaError, AppError, BudgetSpent, ListingTooLong) as exc:
        error = exc
    except Exception as exc:  # a bug or a time limit: record the run as failed, then re-raise
        log.exception("strava.sync_crashed", sync_run_id=str(run_id))
        error = exc
    try:
        recorder.flush()
    except Exception:  # the budget's store is down: the run's own outcome matters more
        log.exception("strava.budget_record_failed", sync_run_id=str(run_id))

    with session_scope(deps.sessions) as session:
        outcome, upserted, attempts = _write(
            session, deps, run_id, link_id, listing, error, recorder, started, window_start
        )
    committed = utcnow()
    if upserted.inserted_ends and not backfill:
        telemetry.observe_ingestion_lag(committed, upserted.inserted_ends)
    _report(outcome, trigger, runner_id, time.perf_counter() - clock, attempts=attempts)
    if error is not None and not isinstance(
        error, (StravaError, AppError, BudgetSpent, ListingTooLong)
    ):
        raise error
    return outcome


def _list_window(
    deps: SyncDeps,
    client: StravaClient,
    recorder: RunRecorder,
    link_id: uuid.UUID,
    grant: tokens.AccessGrant,
    after: int,
    listing: Listing,
) -> None:
    page = 1
    refreshed = False
    while True:
        if page > MAX_PAGES:
            raise ListingTooLong(f"more than {MAX_PAGES} pages")
        recorder.flush()
        deps.budget.acquire(utcnow())
        try:
            result = client.list_activities(
                grant.access_token, after=after, page=page, per_page=PER_PAGE
            )
        except InvalidToken as exc:
            # Expired early or revoked: one refresh (unless another worker already did), then
            # the same page again; a second refusal means the runner must reconnect.
            if refreshed:
                raise ReauthRequired() from exc
            refreshed = True
            recorder.flush()
            grant = tokens.access_grant(
                deps.sessions,
                link_id,
                client=client,
                keyring=deps.keyring,
                budget=deps.budget,
                stale_version=grant.token_version,
            )
            continue
        except RateLimited as exc:
            deps.budget.block(exc.retry_at, exc.window)
            raise
        if not result.activities:
            listing.complete = True
            return
        listing.pages += 1
        for activity in result.activities:
            listing.activities[activity.id] = activity
        page += 1


def classify(error: BaseException) -> tuple[str, datetime | None]:
    """The status error code of a failed sync, and when the limit resets for rate limits."""
    if isinstance(error, (BudgetSpent, RateLimited)):
        return "rate_limited", error.retry_at
    if isinstance(error, ScopeMissing):
        return "insufficient_scope", None
    if isinstance(error, (ReauthRequired, InvalidGrant, InvalidToken)):
        return "reauth_required", None
    if isinstance(error, NotLinked):
        return "not_linked", None
    if isinstance(error, KeyUnavailable):
        return "key_unavailable", None
    if isinstance(error, StravaUnavailable):
        return "strava_unavailable", None
    return "sync_failed", None


def _write(
    session: Session,
    deps: SyncDeps,
    run_id: uuid.UUID,
    link_id: uuid.UUID,
    listing: Listing,
    error: Exception | None,
    recorder: RunRecorder,
    started: datetime,
    window_start: datetime,
) -> tuple[SyncOutcome, UpsertResult, int]:
    run = session.get(SyncRun, run_id, populate_existing=True)
    assert run is not None
    # Re-check the link under lock: an unlink that committed first leaves nothing to write to,
    # and one that comes later waits for this transaction and then deletes what it wrote.
    link = tokens.lock_link(session, link_id)
    now = utcnow()
    code, retry_at = classify(error) if error is not None else (None, None)
    upserted = UpsertResult()
    deleted = 0
    if link is None or link.runner_id != run.runner_id:
        result, code = "failed", "not_linked"
    else:
        if listing.activities:
            upserted = upsert_workouts(session, run.runner_id, listing.activities.values(), now)
        if listing.complete and error is None:
            deleted = delete_vanished(session, run.runner_id, set(listing.activities), window_start)
            result = "ok"
        elif code == "rate_limited" and listing.pages == 0:
            result = "deferred"
        elif listing.pages > 0:
            result = "partial"
        else:
            result = "failed"
        retry_at = _update_link(link, deps, result, code, retry_at, now)
    outcome = _finish_run(
        run, now, result, code, listing, upserted, deleted, recorder, retry_at=retry_at
    )
    return outcome, upserted, run.attempts


def _update_link(
    link: StravaLink,
    deps: SyncDeps,
    result: str,
    code: str | None,
    retry_at: datetime | None,
    now: datetime,
) -> datetime | None:
    """Set the status columns service.get_status renders; returns when the link retries."""
    if result != "deferred":
        link.last_sync_at = now
        link.last_result = result
    if code is None:
        link.last_success_at = now
        link.error_code = link.error_message = link.error_retry_at = None
        link.sync_failures = 0
        link.next_sync_at = next_slot(link.id, now, deps.interval_seconds)
        return None
    link.error_code = code
    link.error_message = None
    if code in RECONNECT_CODES:
        link.error_retry_at = None
        link.next_sync_at = None  # nothing works until the runner reconnects
        return None
    if code == "rate_limited":
        assert retry_at is not None
        link.error_retry_at = retry_at
        # Spread the deferred links over the first minute of the new window.
        link.next_sync_at = retry_at + timedelta(seconds=slot_offset(link.id, 60))
        return retry_at
    link.sync_failures = (link.sync_failures or 0) + 1
    retry = now + retry_delay(link.id, link.sync_failures, deps.interval_seconds)
    link.error_retry_at = retry
    link.next_sync_at = retry
    return retry


def _finish_run(
    run: SyncRun,
    now: datetime,
    result: str,
    code: str | None,
    listing: Listing,
    upserted: UpsertResult,
    deleted: int,
    recorder: RunRecorder | None,
    *,
    retry_at: datetime | None = None,
) -> SyncOutcome:
    started = as_utc(run.started_at) if run.started_at is not None else now
    run.state = "finished"
    run.finished_at = now
    run.duration_ms = max(0, int((now - started).total_seconds() * 1000))
    run.result = result
    run.error_code = code
    run.fetched = len(listing.activities)
    run.inserted = upserted.inserted
    run.updated = upserted.updated
    run.deleted = deleted
    if recorder is not None:
        run.strava_requests = recorder.requests
        run.rate_limit = rate_limit_document(recorder.snapshot)
    return SyncOutcome(
        sync_run_id=run.id,
        result=result,
        error_code=code,
        fetched=run.fetched,
        inserted=run.inserted,
        updated=run.updated,
        deleted=run.deleted,
        strava_requests=run.strava_requests or 0,
        retry_at=retry_at,
    )


def _report(
    outcome: SyncOutcome, trigger: str, runner_id: uuid.UUID, seconds: float, *, attempts: int
) -> None:
    """The structured log event and metrics of a finished run: counts only, no activity content."""
    telemetry.observe_sync(
        trigger,
        outcome.result,
        outcome.error_code,
        seconds,
        inserted=outcome.inserted,
        updated=outcome.updated,
        deleted=outcome.deleted,
    )
    log.info(
        "strava.sync_finished",
        sync_run_id=str(outcome.sync_run_id),
        runner_id=str(runner_id),
        trigger=trigger,
        result=outcome.result,
        error_code=outcome.error_code,
        duration_ms=round(seconds * 1000),
        strava_requests=outcome.strava_requests,
        fetched=outcome.fetched,
        inserted=outcome.inserted,
        updated=outcome.updated,
        deleted=outcome.deleted,
        attempts=attempts,
        retry_at=outcome.retry_at.isoformat() if outcome.retry_at else None,
    )
