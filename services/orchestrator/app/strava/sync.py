"""One sync run of one runner's last SYNC_WINDOW_DAYS of activities (docs/contract.md §4): claim,
list, write, classify, report. When a run happens, and what follows it, is scheduling.py's.

A run goes through three short steps, never holding a lock while Strava is called (except the
token refresh, see tokens.py), in few round trips (issue 13: about ten statements for a
two-page run, counted by tests/strava/test_sync_round_trips.py):

1. **claim**: the run goes queued → running in one `UPDATE .. RETURNING` committed by itself
   (atomically: a duplicate task message does nothing; a redelivered one takes over a run whose
   worker died), then one read brings the link and the push flag;
2. **list**: a live access token, then `GET /athlete/activities?after=…&per_page=200&page=n` until
   an *empty* page (a short page is not the end), deduplicated by id; before every request the
   shared rate budget is asked (budget.py), and before every one but the first the lease is
   renewed (lease.py). A 401 gets one token refresh, then `reauth_required`;
3. **write**: with the link row locked and re-checked (unlinked meanwhile → nothing is written),
   upsert by (source, source_id) in bulk, and only after a complete listing delete the window's
   workouts that Strava no longer lists (both in ingest.py); then the link's status and next sync
   (scheduling.run_recorded) and the run's figures, by an UPDATE that matches only while this
   attempt still holds the run (else LeaseLost, and the whole write is rolled back).

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
from typing import Any, cast

import structlog
from celery.exceptions import SoftTimeLimitExceeded
from sqlalchemy import Integer, Table, Update, and_, bindparam, case, func, or_, select, update
from sqlalchemy.orm import Session
from sqlalchemy.sql.dml import ReturningUpdate

from app.clock import as_utc, utcnow, window_start
from app.codes import RECONNECT_CODES, RunResult, RunState, StatusCode
from app.db import autocommit_session, session_scope
from app.errors import AppError, KeyUnavailable, NotLinked, ReauthRequired
from app.strava import metrics, scheduling, tokens
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
from app.strava.lease import renew as renew_lease
from app.strava.models import StravaLink, SyncRun
from app.strava.payloads import SummaryActivity
from app.strava.ratelimit import RateLimitSnapshot
from app.strava.runtime import RunRecorder, StravaRuntime
from app.strava.subscriptions import push_active_clause

log = structlog.get_logger(__name__)

PER_PAGE = 200
# The runs' table, for the claim's and the finish's Core statements (no ORM object per run).
_RUNS = cast(Table, SyncRun.__table__)
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
    """This worker's attempt at a run, as the claim's UPDATE returned it."""

    run_id: uuid.UUID
    runner_id: uuid.UUID
    trigger: str
    attempts: int
    started_at: datetime
    # Taken over after every allowed attempt died with its process: fail it, do not run it again.
    exhausted: bool = False


class RunAbandoned(Exception):
    """Every allowed attempt at the run died with its process (a poison task): it is failed."""


def _claim_statement(*, redelivered: bool) -> ReturningUpdate[Any]:
    runs = _RUNS.c
    stamp = runs.started_at.type
    now = bindparam("now", type_=stamp)
    running = runs.state == RunState.RUNNING
    takeover = running
    if not redelivered:
        last = func.coalesce(runs.heartbeat_at, runs.started_at)
        takeover = and_(running, or_(last.is_(None), last < bindparam("cutoff", type_=stamp)))
    exhausted = and_(running, runs.attempts >= bindparam("max_attempts", type_=Integer))
    return (
        update(_RUNS)
        .where(runs.id == bindparam("run_id", type_=runs.id.type))
        .where(or_(runs.state == RunState.QUEUED, takeover))
        .values(
            state=RunState.RUNNING,
            started_at=case((exhausted, runs.started_at), else_=now),
            heartbeat_at=now,
            attempts=case((exhausted, runs.attempts), else_=runs.attempts + 1),
            window_start=bindparam("window_start", type_=stamp),
            window_end=bindparam("window_end", type_=stamp),
        )
        .returning(runs.runner_id, runs.trigger, runs.attempts, runs.started_at)
    )


# Built once (bound parameters): every task claims its run, and a statement built per call
# costs its construction and its cache key each time. Keyed by `redelivered`.
_CLAIMS = {flag: _claim_statement(redelivered=flag) for flag in (False, True)}


def claim_run(
    session: Session,
    run_id: uuid.UUID,
    now: datetime,
    *,
    redelivered: bool,
    lease: timedelta,
    max_attempts: int = 3,
    window: tuple[datetime, datetime],
) -> Claim | None:
    """Move the run to `running` for this task, or None when there is nothing to do: one
    conditional `UPDATE .. RETURNING` (atomic; the caller commits it alone, before Strava).

    Queued: claimed. Running: taken over only when this delivery is a redelivery (the worker that
    had it died) or the run's lease expired (its worker stopped renewing it: lease.py), so a
    duplicate message for a live run does nothing. Finished or gone: nothing. Concurrent claims
    queue on the row and each sees the other's attempt (READ COMMITTED re-checks the WHERE), so
    no two workers ever hold the same attempt number.

    A running run that already had `max_attempts` attempts is claimed as exhausted, its attempts
    not counted up and its start kept: each of them died with its process (a poison task), so
    the caller fails it. `window`: the listing's (start, end), recorded on the run.
    """
    parameters = {
        "run_id": run_id,
        "now": now,
        "cutoff": now - lease,
        "max_attempts": max_attempts,
        "window_start": window[0],
        "window_end": window[1],
    }
    # Core on the session's connection, past the ORM's execution layer.
    row = session.connection().execute(_CLAIMS[redelivered], parameters).first()
    if row is None:
        return None
    started_at = as_utc(row.started_at) if row.started_at is not None else now
    # RETURNING gives the new row: only an exhausted claim keeps an earlier start than ours.
    return Claim(
        run_id, row.runner_id, row.trigger, row.attempts, started_at, exhausted=started_at != now
    )


def _purpose(trigger: str, push: bool) -> metrics.Purpose:
    """Why this run reads Strava: a scheduled listing is a reconciliation while a push
    subscription covers the links (scheduling.py), else a poll."""
    purpose = metrics.PURPOSE_OF_TRIGGER.get(trigger, metrics.Purpose.POLL)
    if purpose == metrics.Purpose.POLL and push:
        return metrics.Purpose.RECONCILE
    return purpose


def run_sync(
    runtime: StravaRuntime, run_id: uuid.UUID, *, redelivered: bool = False
) -> SyncOutcome:
    """Execute one sync run end to end (the task's whole body)."""
    started = utcnow()
    clock = time.perf_counter()
    window = window_start(started, runtime.window_days)
    after = math.floor(window.timestamp())
    # The claim commits alone (one statement, no BEGIN/COMMIT), then one read brings the link
    # and the push flag: two round trips before Strava is called.
    with autocommit_session(runtime.sessions) as session:
        claim = claim_run(
            session,
            run_id,
            started,
            redelivered=redelivered,
            lease=timedelta(seconds=runtime.lease_seconds),
            max_attempts=runtime.max_attempts,
            window=(datetime.fromtimestamp(after, UTC), started),
        )
        if claim is None:
            return SyncOutcome(run_id, RunResult.SKIPPED)
        found = session.execute(
            select(StravaLink, push_active_clause().label("push")).where(
                StravaLink.runner_id == claim.runner_id
            )
        ).first()
        link, push = (found[0], bool(found[1])) if found is not None else (None, False)
        if link is None or link.error_code in RECONNECT_CODES:
            # Nothing Strava could answer: not linked, or waiting for the runner to reconnect.
            code = StatusCode.NOT_LINKED if link is None else str(link.error_code)
            try:
                outcome = _finish(
                    session, claim, started, RunResult.FAILED, code, Listing(), UpsertResult(), 0
                )
            except LeaseLost:
                return _lease_lost(claim)
            _report(outcome, claim, time.perf_counter() - clock)
            return outcome
        link_id = link.id
        backfill = link.last_success_at is None
        known_grant = (
            None if claim.exhausted else tokens.fresh_grant(link, runtime.keyring, started)
        )
    interval = scheduling.interval_for(runtime, push=push)
    if claim.exhausted:
        log.error(
            "strava.sync_abandoned",
            sync_run_id=str(run_id),
            runner_id=str(claim.runner_id),
            attempts=claim.attempts,
        )
        try:
            with session_scope(runtime.sessions) as session:
                outcome, _ = _write(
                    session, claim, link_id, Listing(), RunAbandoned(), None, window, interval
                )
        except LeaseLost:
            return _lease_lost(claim)
        _report(outcome, claim, time.perf_counter() - clock)
        return outcome

    recorder = RunRecorder(runtime.budget, purpose=_purpose(claim.trigger, push))
    client = runtime.client_for(recorder)
    listing = Listing()
    error: Exception | None = None
    try:
        # A grant refreshed here called Strava since the claim: the lease is renewed before page 1.
        grant = known_grant or tokens.access_grant(
            runtime.sessions, link_id, client=client, keyring=runtime.keyring, budget=runtime.budget
        )
        _list_window(
            runtime, client, recorder, claim, link_id, grant, after, listing, fresh=known_grant
        )
    except LeaseLost:
        # Declared lost (or taken over) while this worker was slow: the run is someone else's.
        return _lease_lost(claim)
    except (StravaError, AppError, BudgetSpent, ListingTooLong) as exc:
        error = exc
    except SoftTimeLimitExceeded as exc:  # out of time: record the run as failed, then re-raise
        log.exception("strava.sync_time_limit", sync_run_id=str(run_id), attempts=claim.attempts)
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
                session, claim, link_id, listing, error, recorder, window, interval
            )
    except LeaseLost:
        return _lease_lost(claim)
    committed = utcnow()
    if upserted.inserted_ends and not backfill:
        metrics.observe_ingestion_lag(committed, upserted.inserted_ends)
    _report(outcome, claim, time.perf_counter() - clock)
    if error is not None and not isinstance(
        error, (StravaError, AppError, BudgetSpent, ListingTooLong)
    ):
        raise error
    return outcome


def _lease_lost(claim: Claim) -> SyncOutcome:
    log.warning("strava.sync_lease_lost", sync_run_id=str(claim.run_id), attempts=claim.attempts)
    return SyncOutcome(claim.run_id, RunResult.SKIPPED)


def _list_window(
    runtime: StravaRuntime,
    client: StravaClient,
    recorder: RunRecorder,
    claim: Claim,
    link_id: uuid.UUID,
    grant: tokens.AccessGrant,
    after: int,
    listing: Listing,
    *,
    fresh: tokens.AccessGrant | None,
) -> None:
    page = 1
    refreshed = False
    # The lease is renewed before every request but the first when nothing reached Strava
    # since the claim set the heartbeat (`fresh`: the claim's own read served the token).
    renew = fresh is None
    while True:
        if page > MAX_PAGES:
            raise ListingTooLong(f"more than {MAX_PAGES} pages")
        if renew:
            renew_lease(runtime.sessions, claim.run_id, claim.attempts, utcnow())
        renew = True
        # The previous response's figures and this request's count: one call to the budget.
        runtime.budget.acquire(utcnow(), claim.runner_id, seen=recorder.take())
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
    claim: Claim,
    link_id: uuid.UUID,
    listing: Listing,
    error: Exception | None,
    recorder: RunRecorder | None,
    window: datetime,
    interval_seconds: int,
) -> tuple[SyncOutcome, UpsertResult]:
    # Re-check the link under lock: an unlink that committed first leaves nothing to write to,
    # and one that comes later waits for this transaction and then deletes what it wrote. The
    # link is locked before its run, as everywhere (request_sync, the tick's sweep): the run's
    # row is locked last, by the conditional UPDATE that finishes it, and if the run was
    # declared lost or taken over meanwhile that UPDATE finds nothing: LeaseLost rolls all of
    # this back.
    link = scheduling.lock_link_status(session, link_id)
    now = utcnow()
    code: str | None
    code, retry_at = classify(error) if error is not None else (None, None)
    upserted = UpsertResult()
    deleted = 0
    result: RunResult
    if link is None or link.runner_id != claim.runner_id:
        result, code = RunResult.FAILED, StatusCode.NOT_LINKED
    else:
        if listing.activities:
            upserted = upsert_workouts(session, claim.runner_id, listing.activities.values(), now)
        if listing.complete and error is None:
            deleted = delete_vanished(session, claim.runner_id, set(listing.activities), window)
            result = RunResult.OK
        elif code == StatusCode.RATE_LIMITED and listing.pages == 0:
            result = RunResult.DEFERRED
        elif listing.pages > 0:
            result = RunResult.PARTIAL
        else:
            result = RunResult.FAILED
        retry_at = scheduling.run_recorded(
            session, link, result, code, retry_at, now, interval_seconds=interval_seconds
        )
    outcome = _finish(
        session, claim, now, result, code, listing, upserted, deleted, recorder, retry_at=retry_at
    )
    return outcome, upserted


def _finish_statement(*, with_requests: bool) -> Update:
    runs = _RUNS.c
    columns = ["finished_at", "duration_ms", "result", "error_code"]
    columns += ["fetched", "inserted", "updated", "deleted"]
    if with_requests:
        columns += ["strava_requests", "rate_limit"]
    return (
        update(_RUNS)
        .where(
            runs.id == bindparam("run_id", type_=runs.id.type),
            runs.state == RunState.RUNNING,
            runs.attempts == bindparam("attempt", type_=Integer),
        )
        .values(
            {"state": RunState.FINISHED}
            | {name: bindparam(name, type_=runs[name].type) for name in columns}
        )
    )


# Built once, keyed by whether the run made Strava requests (figures to record).
_FINISHES = {flag: _finish_statement(with_requests=flag) for flag in (False, True)}


def _finish(
    session: Session,
    claim: Claim,
    now: datetime,
    result: RunResult,
    code: str | None,
    listing: Listing,
    upserted: UpsertResult,
    deleted: int,
    recorder: RunRecorder | None = None,
    *,
    retry_at: datetime | None = None,
) -> SyncOutcome:
    """Close the run with its figures: one UPDATE, only while this attempt still holds it
    (running, our attempt number); LeaseLost when it does not, and nothing is overwritten."""
    parameters: dict[str, Any] = {
        "run_id": claim.run_id,
        "attempt": claim.attempts,
        "finished_at": now,
        "duration_ms": max(0, int((now - claim.started_at).total_seconds() * 1000)),
        "result": result,
        "error_code": code,
        "fetched": len(listing.activities),
        "inserted": upserted.inserted,
        "updated": upserted.updated,
        "deleted": deleted,
    }
    if recorder is not None:
        parameters["strava_requests"] = recorder.requests
        parameters["rate_limit"] = rate_limit_document(recorder.snapshot)
    finished = session.connection().execute(_FINISHES[recorder is not None], parameters)
    if finished.rowcount != 1:
        raise LeaseLost(str(claim.run_id))  # declared lost, or taken over, meanwhile
    return SyncOutcome(
        sync_run_id=claim.run_id,
        result=result,
        error_code=code,
        fetched=parameters["fetched"],
        inserted=upserted.inserted,
        updated=upserted.updated,
        deleted=deleted,
        strava_requests=recorder.requests if recorder is not None else 0,
        retry_at=retry_at,
    )


def _report(outcome: SyncOutcome, claim: Claim, seconds: float) -> None:
    """The structured log event and metrics of a finished run: counts only, no activity content."""
    metrics.observe_sync(
        claim.trigger,
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
        runner_id=str(claim.runner_id),
        trigger=claim.trigger,
        result=outcome.result,
        error_code=outcome.error_code,
        duration_ms=round(seconds * 1000),
        strava_requests=outcome.strava_requests,
        fetched=outcome.fetched,
        inserted=outcome.inserted,
        updated=outcome.updated,
        deleted=outcome.deleted,
        attempts=claim.attempts,
        retry_at=outcome.retry_at.isoformat() if outcome.retry_at else None,
    )
