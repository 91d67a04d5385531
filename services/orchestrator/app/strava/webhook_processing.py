"""Processing a runner's webhook events from the inbox (docs/strava.md §5; issue 11). The task
carries the runner id only; everything else is read from the inbox.

A task (`drain_runner_events`) runs up to DRAIN_PASSES passes of DRAIN_BATCH events, then asks
for another task if events are still due. One pass (`process_runner_events`):

1. **claim** the runner's due events (`processing`, one UPDATE .. RETURNING choosing them with
   SKIP LOCKED: two workers never process the same events), in a transaction of its own;
2. more than WEBHOOK_BURST_THRESHOLD activity reads → **one window listing** (a sync run with
   trigger `webhook`) instead of N reads; the events are settled `coalesced`;
3. activities with a `delete` event → their workouts go, no read, all in one transaction; then
   per activity (several events for one activity cost one read): `create`/`update` →
   `GET /activities/{id}` through the shared rate budget, then the window rules: outside the
   SYNC_WINDOW_DAYS window, or private without `activity:read_all` → not kept (deleted if
   stored); 404 → deleted if stored. Each write and its events' settlement are one transaction
   with the link locked and re-checked (an unlink that committed first wins);
4. a deauthorization (`athlete`, `authorized=false`) is a hint: Strava does not sign events, so it
   is confirmed with the link's own tokens (`GET /athlete`, refreshing if needed). Refused →
   `revoke` (tokens, athlete and Strava workouts deleted; status `revoked`). Accepted → forged:
   nothing deleted, counted and logged;
5. a spent budget or a 429 → this and the remaining events wait `deferred` until the window
   resets; Strava down, or the task's soft time limit → deferred with a backoff. Nothing is
   dropped: the beat tick re-drives due deferred events and claims left behind by a dead worker
   (scheduling.redrive_webhooks): the claim is a lease of SYNC_LEASE_SECONDS, renewed before
   every Strava request.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

import structlog
from celery.exceptions import SoftTimeLimitExceeded
from sqlalchemy import delete
from sqlalchemy.orm import Session

from app.clock import as_utc, utcnow, window_start
from app.codes import RunState, Source, Trigger
from app.db import session_scope
from app.errors import AppError, KeyUnavailable, NotLinked, ReauthRequired
from app.inbox import service as inbox
from app.inbox.models import EventState, InboxEvent
from app.strava import metrics, tokens
from app.strava.budget import BudgetSpent
from app.strava.client import (
    BadResponse,
    InvalidGrant,
    InvalidToken,
    RateLimited,
    StravaAuthError,
    StravaClient,
    StravaError,
)
from app.strava.ingest import upsert_workouts
from app.strava.payloads import SummaryActivity
from app.strava.runtime import RunRecorder, StravaRuntime
from app.strava.scheduling import Enqueue, request_sync
from app.strava.service import get_link, purge_strava_data, record_revocation
from app.strava.webhooks import AspectType, ObjectType, request_processing
from app.workouts.models import Workout

log = structlog.get_logger(__name__)

# Keys of a detailed activity that a listing never has: not kept, so that `raw` stays the
# summary a reconciliation listing would store (and rows stay small).
DETAIL_ONLY_KEYS = frozenset(
    {
        "segment_efforts",
        "splits_metric",
        "splits_standard",
        "laps",
        "best_efforts",
        "photos",
        "similar_activities",
        "highlighted_kudosers",
        "stats_visibility",
        "description",
        "private_note",
        "embed_token",
        "available_zones",
        "gear",
        "device_name",
        "calories",
        "perceived_exertion",
        "prefer_perceived_exertion",
    }
)
# Strava down: wait this long times 2^(attempts - 1), at most MAX_RETRY_DELAY.
RETRY_DELAY = timedelta(seconds=30)
MAX_RETRY_DELAY = timedelta(hours=1)
# After this many failed attempts (Strava down all along), an event is `failed`: the next
# reconciliation listing brings the activity anyway.
MAX_ATTEMPTS = 12
# A task drains at most DRAIN_PASSES claims of DRAIN_BATCH events, then asks for another task.
DRAIN_PASSES = 4
DRAIN_BATCH = 500


class EventOutcome(StrEnum):
    """InboxEvent.outcome after processing (and the `outcome` label of the processed counter)."""

    UPSERTED = "upserted"
    NOT_KEPT = "not_kept"  # outside the window, or private without activity:read_all
    DELETED = "deleted"
    NOT_FOUND = "not_found"
    COALESCED = "coalesced"  # a window listing replaced the reads
    SYNC_RUNNING = "sync_running"  # a burst waits for the listing under way to finish
    REVOKED = "revoked"
    FORGED = "forged_deauthorization"
    NOT_LINKED = "not_linked"
    UNSUPPORTED = "unsupported"
    RATE_LIMITED = "rate_limited"
    STRAVA_UNAVAILABLE = "strava_unavailable"
    REAUTH_REQUIRED = "reauth_required"
    GAVE_UP = "gave_up"  # claimed more than MAX_ATTEMPTS times without being settled


@dataclass(frozen=True)
class ClaimedEvent:
    id: uuid.UUID
    object_type: str
    object_id: int
    aspect_type: str
    updates: dict[str, str]
    event_time: datetime
    attempts: int

    @classmethod
    def of(cls, row: InboxEvent) -> ClaimedEvent:
        return cls(
            row.id,
            row.object_type,
            row.object_id,
            row.aspect_type,
            dict(row.updates or {}),
            as_utc(row.event_time),
            row.attempts,
        )

    @property
    def is_deauthorization(self) -> bool:
        return (
            self.object_type == ObjectType.ATHLETE
            and self.aspect_type == AspectType.UPDATE
            and self.updates.get("authorized") == "false"
        )


@dataclass
class ProcessReport:
    claimed: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)
    strava_requests: int = 0
    # The pass stopped early: what was left waits (a spent budget, a listing under way).
    waited: bool = False
    passes: int = 0

    def count(self, outcome: str, n: int = 1) -> None:
        self.outcomes[outcome] = self.outcomes.get(outcome, 0) + n

    def add(self, other: ProcessReport) -> None:
        self.claimed += other.claimed
        for outcome, n in other.outcomes.items():
            self.count(outcome, n)
        self.strava_requests += other.strava_requests
        self.waited = self.waited or other.waited
        self.passes += 1

    def summary(self) -> dict[str, Any]:
        return {
            "claimed": self.claimed,
            "outcomes": dict(self.outcomes),
            "strava_requests": self.strava_requests,
        }


class _Wait(Exception):
    """Stop the pass: every event not yet settled waits until `until`."""

    def __init__(self, until: datetime, outcome: EventOutcome) -> None:
        self.until = until
        self.outcome = outcome


@dataclass
class _Pass:
    runtime: StravaRuntime
    runner_id: uuid.UUID
    link_id: uuid.UUID
    scopes: frozenset[str]
    client: StravaClient
    recorder: RunRecorder
    report: ProcessReport
    # The events this pass holds, whose claim it renews before every Strava request (a lease).
    held: list[uuid.UUID] = field(default_factory=list)
    grant: tokens.AccessGrant | None = None


def drain_runner_events(
    runtime: StravaRuntime,
    runner_id: uuid.UUID,
    *,
    enqueue_sync: Enqueue | Callable[[uuid.UUID], None],
    burst_threshold: int = 10,
    redelivered: bool = False,
    passes: int = DRAIN_PASSES,
    batch: int = DRAIN_BATCH,
    request_more: Callable[[uuid.UUID], object] | None = None,
) -> ProcessReport:
    """The task's whole body: passes of `process_runner_events` (up to `batch` events each)
    until the runner's due events are done, a pass had to wait, or `passes` ran; events still
    due then are asked for again (`request_more`: another task, not this one growing without
    bound). The caller cleared the runner's request flag first (webhook_requests.py)."""
    total = ProcessReport()
    for index in range(passes):
        report = process_runner_events(
            runtime,
            runner_id,
            enqueue_sync=enqueue_sync,
            burst_threshold=burst_threshold,
            redelivered=redelivered and index == 0,
            limit=batch,
        )
        total.add(report)
        if report.claimed < batch or report.waited:
            return total
    if request_more is not None:
        request_processing(request_more, runner_id)  # never raises: the beat re-drives the rest
    return total


def process_runner_events(
    runtime: StravaRuntime,
    runner_id: uuid.UUID,
    *,
    enqueue_sync: Enqueue | Callable[[uuid.UUID], None],
    burst_threshold: int = 10,
    redelivered: bool = False,
    limit: int = DRAIN_BATCH,
) -> ProcessReport:
    """One pass over the runner's due inbox events (at most `limit`). A redelivered task (its
    worker died) takes over the events that worker left in `processing`."""
    report = ProcessReport()
    now = utcnow()
    with session_scope(runtime.sessions) as session:
        rows = inbox.claim_due(
            session,
            runner_id,
            now,
            take_over=redelivered,
            stale_before=now - timedelta(seconds=runtime.lease_seconds),
            limit=limit,
        )
        claimed = [ClaimedEvent.of(row) for row in rows]
        link = get_link(session, runner_id)
        link_id = link.id if link is not None else None
        scopes = frozenset((link.scopes or "").split(",")) if link is not None else frozenset()
    report.claimed = len(claimed)
    # An event whose processing crashed (or whose worker died) on every claim is given up:
    # the next reconciliation listing brings its activity anyway.
    poison = [event for event in claimed if event.attempts > MAX_ATTEMPTS]
    _settle(runtime, poison, EventState.FAILED, EventOutcome.GAVE_UP, report)
    claimed = [event for event in claimed if event.attempts <= MAX_ATTEMPTS]
    if not claimed:
        return report
    if link_id is None:
        _settle(runtime, claimed, EventState.IGNORED, EventOutcome.NOT_LINKED, report)
        return report

    recorder = RunRecorder(runtime.budget, purpose=metrics.Purpose.WEBHOOK)
    work = _Pass(
        runtime,
        runner_id,
        link_id,
        scopes,
        runtime.client_for(recorder),
        recorder,
        report,
        held=[event.id for event in claimed],
    )
    remaining = list(claimed)
    try:
        deauthorizations = [event for event in remaining if event.is_deauthorization]
        if deauthorizations:
            # Settled (or deferred) by the confirmation; a spent budget defers them with the rest.
            revoked = _confirm_and_revoke(work, deauthorizations)
            remaining = [event for event in remaining if not event.is_deauthorization]
            if revoked:
                # The link and its data are gone: nothing else of this runner's is processed.
                _settle(runtime, remaining, EventState.IGNORED, EventOutcome.NOT_LINKED, report)
                return report
        activity_events = [e for e in remaining if e.object_type == ObjectType.ACTIVITY]
        others = [e for e in remaining if e.object_type != ObjectType.ACTIVITY]
        _settle(runtime, others, EventState.IGNORED, EventOutcome.UNSUPPORTED, report)
        remaining = activity_events
        reads = {e.object_id for e in activity_events if e.aspect_type != AspectType.DELETE}
        if len(reads) > burst_threshold:
            remaining = _coalesce(work, activity_events, enqueue_sync)
        # Activities deleted at Strava need no read: their workouts go in one transaction.
        deleted = {e.object_id for e in remaining if e.aspect_type == AspectType.DELETE}
        if deleted:
            _write_deleted(work, [e for e in remaining if e.object_id in deleted])
            remaining = [e for e in remaining if e.object_id not in deleted]
        for object_id, events in _by_activity(remaining):
            _process_activity(work, object_id, events)
            remaining = [e for e in remaining if e.object_id != object_id]
    except _Wait as wait:
        report.waited = True
        _defer(runtime, remaining, wait.until, wait.outcome, report)
    except SoftTimeLimitExceeded:
        # Out of time (the task's soft limit, docs/architecture.md): what is not settled waits
        # with a backoff, as when Strava is down, instead of sitting in `processing` until its
        # claim expires; then the task stops.
        log.warning("strava.webhooks_time_limit", runner_id=str(runner_id), events=len(remaining))
        if remaining:
            _retry_or_fail(work, remaining, EventOutcome.STRAVA_UNAVAILABLE)
        raise
    finally:
        try:
            recorder.flush()
        except SoftTimeLimitExceeded:
            raise
        except Exception:  # the budget's store is down: the events' own state matters more
            log.exception("strava.budget_record_failed", runner_id=str(runner_id))
        report.strava_requests = recorder.requests
    log.info("strava.webhooks_processed", runner_id=str(runner_id), **report.summary())
    return report


def _by_activity(events: list[ClaimedEvent]) -> list[tuple[int, list[ClaimedEvent]]]:
    """Events grouped per activity, in order of each activity's first event."""
    groups: dict[int, list[ClaimedEvent]] = {}
    for event in events:
        groups.setdefault(event.object_id, []).append(event)
    return list(groups.items())


def _coalesce(
    work: _Pass, events: list[ClaimedEvent], enqueue_sync: Enqueue | Callable[[uuid.UUID], None]
) -> list[ClaimedEvent]:
    """A burst: one listing of the window (a sync run) replaces the reads; deletes stay local."""
    blocked_until = work.runtime.budget.view(utcnow()).blocked_until
    if blocked_until is not None:
        # The listing could not run either: the events wait, visibly, for the window's reset.
        raise _Wait(blocked_until, EventOutcome.RATE_LIMITED)
    reads = [e for e in events if e.aspect_type != AspectType.DELETE]
    deleted = {e.object_id for e in events if e.aspect_type == AspectType.DELETE}
    with session_scope(work.runtime.sessions) as session:
        run = None
        with contextlib.suppress(NotLinked):  # unlinked meanwhile: nothing to list
            run = request_sync(session, work.runner_id, Trigger.WEBHOOK, enqueue=enqueue_sync)
        if run is not None and run.state == RunState.RUNNING:
            # A listing already under way may have passed these activities: wait for a new one.
            raise _Wait(utcnow() + RETRY_DELAY, EventOutcome.SYNC_RUNNING)
        settled = [e for e in reads if e.object_id not in deleted]
        inbox.settle_many(
            session, [e.id for e in settled], EventState.DONE, EventOutcome.COALESCED, utcnow()
        )
    _observe(settled, EventOutcome.COALESCED, work.report)
    return [e for e in events if e.object_id in deleted]


def _process_activity(work: _Pass, object_id: int, events: list[ClaimedEvent]) -> None:
    if any(event.aspect_type == AspectType.DELETE for event in events):
        _write(work, events, object_id, None, EventOutcome.DELETED)
        return
    try:
        body = _read_activity(work, object_id)
    except BadResponse as exc:
        if exc.status != 404:
            _retry_or_fail(work, events, EventOutcome.STRAVA_UNAVAILABLE)
            return
        # Deleted at Strava before we read it, or not visible to us: not kept.
        _write(work, events, object_id, None, EventOutcome.NOT_FOUND)
        return
    except (ReauthRequired, InvalidGrant, InvalidToken, StravaAuthError):
        _settle(work.runtime, events, EventState.FAILED, EventOutcome.REAUTH_REQUIRED, work.report)
        return
    except (StravaError, KeyUnavailable):
        _retry_or_fail(work, events, EventOutcome.STRAVA_UNAVAILABLE)
        return
    except NotLinked:
        _settle(work.runtime, events, EventState.IGNORED, EventOutcome.NOT_LINKED, work.report)
        return
    activity = SummaryActivity.model_validate(
        {key: value for key, value in body.items() if key not in DETAIL_ONLY_KEYS}
    )
    if _keep(work, activity):
        _write(work, events, object_id, activity, EventOutcome.UPSERTED)
    else:
        _write(work, events, object_id, None, EventOutcome.NOT_KEPT)


def _keep(work: _Pass, activity: SummaryActivity) -> bool:
    """The window rules of the listing (docs/contract.md §4), for one activity."""
    if activity.start_date is None:
        return False
    if as_utc(activity.start_date) <= window_start(utcnow(), work.runtime.window_days):
        return False
    private = activity.private is True or activity.visibility == "only_me"
    return not (private and "activity:read_all" not in work.scopes)


def _before_request(work: _Pass) -> None:
    """Renew the claim (a lease: a live worker's events are never taken over) and count the
    request in the shared budget; a spent budget makes the pass wait."""
    with session_scope(work.runtime.sessions) as session:
        inbox.renew_claims(session, work.held, utcnow())
    work.recorder.flush()
    try:
        # A read for this runner: it counts toward the runner's share of the window too.
        work.runtime.budget.acquire(utcnow(), work.runner_id)
    except BudgetSpent as exc:
        raise _Wait(exc.retry_at, EventOutcome.RATE_LIMITED) from exc


def _access_grant(work: _Pass, stale_version: int | None = None) -> tokens.AccessGrant:
    work.recorder.flush()
    try:
        return tokens.access_grant(
            work.runtime.sessions,
            work.link_id,
            client=work.client,
            keyring=work.runtime.keyring,
            budget=work.runtime.budget,
            stale_version=stale_version,
        )
    except (BudgetSpent, RateLimited) as exc:
        raise _Wait(exc.retry_at, EventOutcome.RATE_LIMITED) from exc


def _with_token(work: _Pass, call: Callable[[str], Any]) -> Any:
    """`call(access_token)` through the budget; a refused token is refreshed once."""
    if work.grant is None:
        work.grant = _access_grant(work)
    refreshed = False
    while True:
        _before_request(work)
        try:
            return call(work.grant.access_token)
        except InvalidToken as exc:
            if refreshed:
                raise ReauthRequired() from exc
            refreshed = True
            work.grant = _access_grant(work, stale_version=work.grant.token_version)
        except RateLimited as exc:
            work.runtime.budget.block(exc.retry_at, exc.window)
            raise _Wait(exc.retry_at, EventOutcome.RATE_LIMITED) from exc


def _read_activity(work: _Pass, object_id: int) -> dict[str, Any]:
    body: dict[str, Any] = _with_token(
        work, lambda token: work.client.get_activity(token, object_id)
    )
    return body


def _write(
    work: _Pass,
    events: list[ClaimedEvent],
    object_id: int,
    activity: SummaryActivity | None,
    outcome: EventOutcome,
) -> None:
    """Upsert (activity) or delete (None) the workout and settle its events, in one transaction
    with the link locked and re-checked."""
    inserted = False
    with session_scope(work.runtime.sessions) as session:
        link = tokens.lock_link(session, work.link_id)
        now = utcnow()
        ids = [event.id for event in events]
        if link is None or link.runner_id != work.runner_id:
            inbox.settle_many(session, ids, EventState.IGNORED, EventOutcome.NOT_LINKED, now)
            outcome = EventOutcome.NOT_LINKED
        else:
            if activity is not None:
                upserted = upsert_workouts(session, work.runner_id, [activity], now)
                inserted = bool(upserted.inserted or upserted.updated)
            else:
                _delete_workouts(session, work.runner_id, [object_id])
            inbox.settle_many(session, ids, EventState.DONE, outcome, now)
    committed = utcnow()
    for event in events:
        freshness = (committed - event.event_time).total_seconds() if inserted else None
        metrics.observe_webhook_processed(event.object_type, event.aspect_type, outcome, freshness)
    work.report.count(outcome, len(events))


def _write_deleted(work: _Pass, events: list[ClaimedEvent]) -> None:
    """Activities deleted at Strava (every event given is of one): their workouts deleted and
    their events settled `deleted`, in one transaction with the link locked and re-checked."""
    with session_scope(work.runtime.sessions) as session:
        link = tokens.lock_link(session, work.link_id)
        ids = [event.id for event in events]
        now = utcnow()
        if link is None or link.runner_id != work.runner_id:
            inbox.settle_many(session, ids, EventState.IGNORED, EventOutcome.NOT_LINKED, now)
            outcome = EventOutcome.NOT_LINKED
        else:
            _delete_workouts(session, work.runner_id, sorted({e.object_id for e in events}))
            inbox.settle_many(session, ids, EventState.DONE, EventOutcome.DELETED, now)
            outcome = EventOutcome.DELETED
    _observe(events, outcome, work.report)


def _delete_workouts(session: Session, runner_id: uuid.UUID, object_ids: list[int]) -> None:
    session.execute(
        delete(Workout).where(
            Workout.runner_id == runner_id,
            Workout.source == Source.STRAVA,
            Workout.source_id.in_(object_ids),
        )
    )


def _retry_or_fail(work: _Pass, events: list[ClaimedEvent], outcome: EventOutcome) -> None:
    attempts = max(event.attempts for event in events)
    if attempts >= MAX_ATTEMPTS:
        _settle(work.runtime, events, EventState.FAILED, outcome, work.report)
        return
    delay = min(RETRY_DELAY * 2 ** max(0, attempts - 1), MAX_RETRY_DELAY)
    _defer(work.runtime, events, utcnow() + delay, outcome, work.report)


# --- deauthorization -----------------------------------------------------------------------------


def _confirm_and_revoke(work: _Pass, events: list[ClaimedEvent]) -> bool:
    """True when Strava confirmed the revocation (and the runner's Strava data is gone)."""
    try:
        _with_token(work, work.client.get_athlete)
    except (ReauthRequired, InvalidGrant, InvalidToken, StravaAuthError):
        revoke(work.runtime, work.runner_id, work.link_id, keep_events={e.id for e in events})
        _settle(work.runtime, events, EventState.DONE, EventOutcome.REVOKED, work.report)
        return True
    except NotLinked:
        _settle(work.runtime, events, EventState.IGNORED, EventOutcome.NOT_LINKED, work.report)
        return True
    except (StravaError, KeyUnavailable, AppError):
        _retry_or_fail(work, events, EventOutcome.STRAVA_UNAVAILABLE)
        return False
    # Strava still honours the link's token: the event was not Strava's. Nothing is deleted.
    log.warning("strava.webhook_forged_deauthorization", runner_id=str(work.runner_id))
    _settle(work.runtime, events, EventState.DONE, EventOutcome.FORGED, work.report)
    return False


def revoke(
    runtime: StravaRuntime,
    runner_id: uuid.UUID,
    link_id: uuid.UUID,
    *,
    keep_events: set[uuid.UUID] | None = None,
) -> None:
    """A confirmed revocation: the link (tokens, athlete), the Strava workouts and the runner's
    other inbox events are deleted (`keep_events`: the revocation's own, settled by the caller),
    and a revocation row lets the status say `revoked` (service.get_status)."""
    with session_scope(runtime.sessions) as session:
        link = tokens.lock_link(session, link_id)
        if link is None or link.runner_id != runner_id:
            return
        deleted = purge_strava_data(session, runner_id)
        inbox.delete_for_runner(session, runner_id, keep=keep_events or set())
        record_revocation(session, runner_id, utcnow())
    log.info("strava.revoked", runner_id=str(runner_id), workouts_deleted=deleted)


# --- settling ------------------------------------------------------------------------------------


def _settle(
    runtime: StravaRuntime,
    events: list[ClaimedEvent],
    state: EventState,
    outcome: EventOutcome,
    report: ProcessReport,
) -> None:
    if not events:
        return
    with session_scope(runtime.sessions) as session:
        inbox.settle_many(session, [event.id for event in events], state, outcome, utcnow())
    _observe(events, outcome, report)


def _defer(
    runtime: StravaRuntime,
    events: list[ClaimedEvent],
    until: datetime,
    outcome: EventOutcome,
    report: ProcessReport,
) -> None:
    if not events:
        return
    with session_scope(runtime.sessions) as session:
        inbox.defer(session, [event.id for event in events], until, outcome)
    _observe(events, outcome, report)
    log.info("strava.webhooks_deferred", events=len(events), until=until.isoformat())


def _observe(events: list[ClaimedEvent], outcome: EventOutcome, report: ProcessReport) -> None:
    for event in events:
        metrics.observe_webhook_processed(event.object_type, event.aspect_type, outcome)
    report.count(outcome, len(events))
