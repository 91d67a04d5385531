"""One sync run of one runner's last SYNC_WINDOW_DAYS of activities (docs/contract.md §4): claim,
list, write, classify, report. When a run happens, and what follows it, is scheduling.py's.

A run goes through three short transactions, never holding a lock while Strava is called
(except the token refresh, see tokens.py):

1. **claim**: the run goes queued → running (atomically: a duplicate task message does nothing;
   a redelivered one takes over a run whose worker died);
2. **list**: a live access token, then `GET /athlete/activities?after=…&per_page=200&page=n` until
   an *empty* page (a short page is not the end), deduplicated by id; before every request the
   shared rate budget is asked (budget.py). A 401 gets one token refresh, then `reauth_required`;
3. **write**: with the link row locked and re-checked (unlinked meanwhile → nothing is written),
   upsert by (source, source_id) in bulk, and only after a complete listing delete the window's
   workouts that Strava no longer lists (both in ingest.py); then the run's figures and the
   link's status and next sync (scheduling.record_run).

A listing that failed part-way keeps what it fetched, deletes nothing and moves no cursor
(`partial`). A spent rate budget or a 429 is a state, not a failure: the run is `deferred` and the
link says `rate_limited` until the window resets, when the beat tick syncs it again.
"""

from __future__ import annotations

import math
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from celery.exceptions import SoftTimeLimitExceeded
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from app.clock import utcnow, window_start
from app.codes import RECONNECT_CODES, RunResult, RunState, StatusCode
from app.db import session_scope
from app.errors import AppError, KeyUnavailable, NotLinked, ReauthRequired
from app.strava import metrics, tokens
from app.strava.budget import BudgetSpent
from app.strava.client import (
    InvalidGrant,
    InvalidToken,
    RateLimited,
    ScopeMissing,
    StravaClient,
    StravaError,
    StravaUnreachable,
)
from app.strava.ingest import UpsertResult, delete_vanished, upsert_workouts
from app.strava.lease import LeaseLost
from app.strava.lease import expired as lease_expired
from app.strava.lease import renew as renew_lease
from app.strava.models import StravaLink, SyncRun
from app.strava.payloads import SummaryActivity
from app.strava.ratelimit import RateLimitSnapshot
from app.strava.runtime import RunRecorder, StravaRuntime
from app.strava.scheduling import finish_run, record_run, scheduled_interval
from app.strava.subscriptions import push_active

log = structlog.get_logger(__name__)

PER_PAGE = 200
# 100 pages of 200 is 20,000 activities in the window: a listing that long is a broken server.
MAX_PAGES = 100


class ListingTooLong(Exception):
    """Strava kept returning non-empty pages past MAX_PAGES."""


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


# --- the run ------------------------------------------------------------------------------------


@dataclass
class Listing:
    activities: dict[int, SummaryActivity] = field(default_factory=dict)
    pages: int = 0  # non-empty pages received
    complete: bool = False  # an empty page ended it


@dataclass(frozen=True)
class SyncOutcome:
    sync_run_id: uuid.UUID
    result: RunResult
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


@dataclass(frozen=True)
class Claim:
    run: SyncRun
    # Taken over after every allowed attempt died with its process: fail it, do not run it again.
    exhausted: bool = False


def claim_run(
    session: Session,
    run_id: uuid.UUID,
    now: datetime,
    *,
    redelivered: bool,
    lease: timedelta,
    max_attempts: int = 3,
) -> Claim | None:
    """Move the run to `running` for this task, or None when there is nothing to do.

    Queued: claimed. Running: taken over only when this delivery is a redelivery (the worker that
    had it died) or the run's lease expired (its worker stopped renewing it: lease.py), so a
    duplicate message for a live run does nothing. Finished or gone: nothing. The conditional
    UPDATE makes the claim atomic.

    A running run that already had `max_attempts` attempts is claimed as exhausted, its attempts
    not counted up: each of them died with its process (a poison task), so the caller fails it.
    """
    run = session.get(SyncRun, run_id, populate_existing=True)
    if run is None:
        return None
    if run.state == RunState.RUNNING:
        if not (redelivered or lease_expired(run, now, lease)):
            return None
    elif run.state != RunState.QUEUED:
        return None
    exhausted = run.state == RunState.RUNNING and run.attempts >= max_attempts
    claimed = session.execute(
        update(SyncRun)
        .where(SyncRun.id == run_id, SyncRun.state == run.state, SyncRun.attempts == run.attempts)
        .values(
            state=RunState.RUNNING,
            started_at=run.started_at if exhausted else now,
            heartbeat_at=now,
            attempts=run.attempts if exhausted else run.attempts + 1,
        )
        .execution_options(synchronize_session=False)
    )
    if claimed.rowcount != 1:  # type: ignore[attr-defined]
        return None
    session.refresh(run)
    return Claim(run, exhausted)


def _purpose(session: Session, trigger: str) -> metrics.Purpose:
    """Why this run reads Strava: a scheduled listing is a reconciliation while a push
    subscription covers the links (scheduling.py), else a poll."""
    purpose = metrics.PURPOSE_OF_TRIGGER.get(trigger, metrics.Purpose.POLL)
    if purpose == metrics.Purpose.POLL and push_active(session):
        return metrics.Purpose.RECONCILE
    return purpose


def run_sync(
    runtime: StravaRuntime, run_id: uuid.UUID, *, redelivered: bool = False
) -> SyncOutcome:
    """Execute one sync run end to end (the task's whole body)."""
    started = utcnow()
    clock = time.perf_counter()
    backfill = False
    known_grant: tokens.AccessGrant | None = None
    with session_scope(runtime.sessions) as session:
        claim = claim_run(
            session,
            run_id,
            started,
            redelivered=redelivered,
            lease=timedelta(seconds=runtime.lease_seconds),
            max_attempts=runtime.max_attempts,
        )
        if claim is None:
            return SyncOutcome(run_id, RunResult.SKIPPED)
        run = claim.run
        trigger = run.trigger
        purpose = _purpose(session, trigger)
        attempts = run.attempts
        runner_id = run.runner_id
        link = session.scalar(select(StravaLink).where(StravaLink.runner_id == runner_id))
        window = window_start(started, runtime.window_days)
        after = math.floor(window.timestamp())
        run.window_start = datetime.fromtimestamp(after, UTC)
        run.window_end = started
        if link is None or link.error_code in RECONNECT_CODES:
            # Nothing Strava could answer: not linked, or waiting for the runner to reconnect.
            code = StatusCode.NOT_LINKED if link is None else str(link.error_code)
            outcome = _close(
                run, started, RunResult.FAILED, code, Listing(), UpsertResult(), 0, None
            )
            link_id = None
        elif claim.exhausted:
            log.error(
                "strava.sync_abandoned",
                sync_run_id=str(run_id),
                runner_id=str(runner_id),
                attempts=attempts,
            )
            code = StatusCode.SYNC_FAILED
            retry_at = record_run(
                link,
                RunResult.FAILED,
                code,
                None,
                started,
                interval_seconds=runtime.interval_seconds,
            )
            outcome = _close(
                run,
                started,
                RunResult.FAILED,
                code,
                Listing(),
                UpsertResult(),
                0,
                None,
                retry_at=retry_at,
            )
            link_id = None
        else:
            link_id = link.id
            backfill = link.last_success_at is None
            known_grant = tokens.fresh_grant(link, runtime.keyring, started)
    if link_id is None:
        _report(outcome, trigger, runner_id, time.perf_counter() - clock, attempts=attempts)
        return outcome

    recorder = RunRecorder(runtime.budget, purpose=purpose)
    client = runtime.client_for(recorder)
    listing = Listing()
    error: Exception | None = None
    try:
        grant = known_grant or tokens.access_grant(
            runtime.sessions, link_id, client=client, keyring=runtime.keyring, budget=runtime.budget
        )
        _list_window(
            runtime, client, recorder, runner_id, link_id, grant, after, listing, (run_id, attempts)
        )
    except LeaseLost:
        # Declared lost (or taken over) while this worker was slow: the run is someone else's.
        log.warning("strava.sync_lease_lost", sync_run_id=str(run_id), attempts=attempts)
        return SyncOutcome(run_id, RunResult.SKIPPED)
    except (StravaError, AppError, BudgetSpent, ListingTooLong) as exc:
        error = exc
    except SoftTimeLimitExceeded as exc:  # out of time: record the run as failed, then re-raise
        log.exception("strava.sync_time_limit", sync_run_id=str(run_id), attempts=attempts)
        error = exc
    except Exception as exc:  # a bug: record the run as failed, then re-raise
        log.exception("strava.sync_crashed", sync_run_id=str(run_id))
        error = exc
    try:
        recorder.flush()
    except SoftTimeLimitExceeded as exc:  # out of time here: record the run, then stop
        error = error or exc
    except Exception:  # the budget's store is down: the run's own outcome matters more
        log.exception("strava.budget_record_failed", sync_run_id=str(run_id))

    try:
        with session_scope(runtime.sessions) as session:
            outcome, upserted = _write(
                session, runtime, run_id, attempts, link_id, listing, error, recorder, window
            )
    except LeaseLost:
        log.warning("strava.sync_lease_lost", sync_run_id=str(run_id), attempts=attempts)
        return SyncOutcome(run_id, RunResult.SKIPPED)
    committed = utcnow()
    if upserted.inserted_ends and not backfill:
        metrics.observe_ingestion_lag(committed, upserted.inserted_ends)
    _report(outcome, trigger, runner_id, time.perf_counter() - clock, attempts=attempts)
    if error is not None and not isinstance(
        error, (StravaError, AppError, BudgetSpent, ListingTooLong)
    ):
        raise error
    return outcome


def _list_window(
    runtime: StravaRuntime,
    client: StravaClient,
    recorder: RunRecorder,
    runner_id: uuid.UUID,
    link_id: uuid.UUID,
    grant: tokens.AccessGrant,
    after: int,
    listing: Listing,
    attempt: tuple[uuid.UUID, int],
) -> None:
    page = 1
    refreshed = False
    while True:
        if page > MAX_PAGES:
            raise ListingTooLong(f"more than {MAX_PAGES} pages")
        renew_lease(runtime.sessions, *attempt, utcnow())
        recorder.flush()
        runtime.budget.acquire(utcnow(), runner_id)  # counts toward the runner's share too
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
                runtime.sessions,
                link_id,
                client=client,
                keyring=runtime.keyring,
                budget=runtime.budget,
                stale_version=grant.token_version,
            )
            continue
        except RateLimited as exc:
            runtime.budget.block(exc.retry_at, exc.window)
            raise
        if not result.activities:
            listing.complete = True
            return
        listing.pages += 1
        for activity in result.activities:
            listing.activities[activity.id] = activity
        page += 1


def classify(error: BaseException) -> tuple[StatusCode, datetime | None]:
    """The status error code of a failed sync, and when the limit resets for rate limits."""
    if isinstance(error, (BudgetSpent, RateLimited)):
        return StatusCode.RATE_LIMITED, error.retry_at
    if isinstance(error, ScopeMissing):
        return StatusCode.INSUFFICIENT_SCOPE, None
    if isinstance(error, (ReauthRequired, InvalidGrant, InvalidToken)):
        return StatusCode.REAUTH_REQUIRED, None
    if isinstance(error, NotLinked):
        return StatusCode.NOT_LINKED, None
    if isinstance(error, KeyUnavailable):
        return StatusCode.KEY_UNAVAILABLE, None
    if isinstance(error, StravaUnreachable):
        return StatusCode.STRAVA_UNAVAILABLE, None
    return StatusCode.SYNC_FAILED, None


def _write(
    session: Session,
    runtime: StravaRuntime,
    run_id: uuid.UUID,
    attempts: int,
    link_id: uuid.UUID,
    listing: Listing,
    error: Exception | None,
    recorder: RunRecorder,
    window: datetime,
) -> tuple[SyncOutcome, UpsertResult]:
    # Re-check the link under lock: an unlink that committed first leaves nothing to write to,
    # and one that comes later waits for this transaction and then deletes what it wrote. The
    # link is locked before its run, as everywhere (request_sync, the tick's sweep).
    link = tokens.lock_link(session, link_id)
    run = session.get(SyncRun, run_id, populate_existing=True, with_for_update=True)
    assert run is not None
    if run.state != RunState.RUNNING or run.attempts != attempts:
        raise LeaseLost(str(run_id))  # declared lost, or taken over, while the listing ran
    now = utcnow()
    code: str | None
    code, retry_at = classify(error) if error is not None else (None, None)
    upserted = UpsertResult()
    deleted = 0
    result: RunResult
    if link is None or link.runner_id != run.runner_id:
        result, code = RunResult.FAILED, StatusCode.NOT_LINKED
    else:
        if listing.activities:
            upserted = upsert_workouts(session, run.runner_id, listing.activities.values(), now)
        if listing.complete and error is None:
            deleted = delete_vanished(session, run.runner_id, set(listing.activities), window)
            result = RunResult.OK
        elif code == StatusCode.RATE_LIMITED and listing.pages == 0:
            result = RunResult.DEFERRED
        elif listing.pages > 0:
            result = RunResult.PARTIAL
        else:
            result = RunResult.FAILED
        retry_at = record_run(
            link,
            result,
            code,
            retry_at,
            now,
            interval_seconds=scheduled_interval(session, runtime),
        )
    outcome = _close(
        run, now, result, code, listing, upserted, deleted, recorder, retry_at=retry_at
    )
    return outcome, upserted


def _close(
    run: SyncRun,
    now: datetime,
    result: RunResult,
    code: str | None,
    listing: Listing,
    upserted: UpsertResult,
    deleted: int,
    recorder: RunRecorder | None,
    *,
    retry_at: datetime | None = None,
) -> SyncOutcome:
    finish_run(run, now, result, code)
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
    metrics.observe_sync(
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
