"""When a sync happens, all of it (the beat tick runs `tick` every SYNC_TICK_SECONDS, 60 by
default):

* **On request**: `request_sync` queues a run (trigger `manual` from the API, `link` right after
  a link, `schedule` from the tick), or returns the runner's one already queued or running; the
  task message is sent once the run is committed (`_send`), and a manual request with the broker
  down is refused before anything is written (Enqueue.available).
* **Scheduled**: every link has slots spread over the interval by a hash of its id (`slot_offset`,
  `next_slot`), so a tick enqueues only the links whose `next_sync_at` has come, never every
  athlete at once; and no more than the shared rate budget can serve in the current window.
  The interval (`scheduled_interval`) is SYNC_INTERVAL_SECONDS (hourly polling), or, while an
  active push subscription covers the links (subscriptions.push_active), the reconciliation
  interval SYNC_RECONCILE_SECONDS: webhook events bring the news, the 28-day listing only
  catches what events missed. Without a subscription, a tick brings links scheduled at the
  reconciliation pace back to their hourly slot (`return_to_polling`).
* **After a run** (`record_run`; a sync's own write: `run_recorded`): success → the next slot;
  a spent rate limit → just after the window resets; a failure → exponential backoff
  (`retry_delay`); a code that needs the runner to reconnect → never, until they do.
* **Webhook events** (webhook_processing.py): a runner's task is sent when an event is stored;
  the tick re-drives (`redrive_webhooks`) deferred events whose wait is over (a spent budget
  resets), pending ones whose task was lost, and `processing` claims whose lease ran out (the
  worker died mid-batch). It also prunes settled events and sets the inbox gauges.
* **Recovery**: a run still `queued` long after it was enqueued (the broker lost the message, or
  it was never sent) is enqueued again; a `running` run whose lease expired (its worker died and
  nobody renews it: lease.py) is failed and its link scheduled for a retry; a manual request
  fails it too and starts a new run at once.

Beat also runs two tasks of its own (their entries are in worker.py's beat_schedule, next to
the tick's): deferred deauthorizations (unlink could not reach Strava), retried by service.py
every minute; and the retention policy (retention.py, docs/retention.md), every
RETENTION_INTERVAL_SECONDS (an hour by default).
"""

from __future__ import annotations

import hashlib
import math
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any, Protocol, cast, runtime_checkable

import structlog
from celery.exceptions import SoftTimeLimitExceeded
from sqlalchemy import Table, bindparam, exists, func, or_, select, text, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.clock import as_utc, utcnow
from app.codes import (
    ACTIVE_RUN_STATES,
    UNSCHEDULED_CODES,
    RunResult,
    RunState,
    StatusCode,
    Trigger,
)
from app.db import after_commit, session_scope, sqlite_write_lock
from app.errors import NotLinked, ServiceUnavailable, SyncTooSoon
from app.inbox import service as inbox
from app.strava import metrics
from app.strava.lease import expired as lease_expired
from app.strava.lease import expired_before as lease_expired_before
from app.strava.metrics import LINKS_KEY_UNAVAILABLE
from app.strava.models import ACTIVE_RUN_INDEX_WHERE, StravaLink, SyncRun, error_since_after
from app.strava.runtime import StravaRuntime
from app.strava.service import active_sync, get_link
from app.strava.subscriptions import push_active

log = structlog.get_logger(__name__)

# Settled webhook events are kept this long (to look into what happened), then pruned by the tick.
INBOX_RETENTION = timedelta(days=7)
# Requests a scheduled sync usually costs: one page of activities and the empty page after it.
REQUESTS_PER_SYNC = 2
# The links' table, for the Core lock and update of a sync run's write.
_LINKS = cast(Table, StravaLink.__table__)
# The longest wait before a failed sync is tried again (also capped by the sync interval).
MAX_BACKOFF = timedelta(hours=1)


@runtime_checkable
class Enqueue(Protocol):
    """Sends a sync run's task; `available()` says whether the queue can be reached now."""

    def __call__(self, sync_run_id: uuid.UUID) -> None: ...

    def available(self) -> bool: ...


@dataclass(frozen=True)
class AlwaysAvailable:
    """An Enqueue from a plain callable (tests, tools) that cannot tell whether its queue is up."""

    send: Callable[[uuid.UUID], None]

    def __call__(self, sync_run_id: uuid.UUID) -> None:
        self.send(sync_run_id)

    def available(self) -> bool:
        return True


def as_enqueue(send: Enqueue | Callable[[uuid.UUID], None]) -> Enqueue:
    return send if isinstance(send, Enqueue) else AlwaysAvailable(send)


# --- on request ---------------------------------------------------------------------------------


def request_sync(
    session: Session,
    runner_id: uuid.UUID,
    trigger: Trigger,
    *,
    enqueue: Enqueue | Callable[[uuid.UUID], None],
    lease: timedelta | None = None,
    cooldown: timedelta = timedelta(0),
) -> SyncRun:
    """Queue a sync of the runner's window, or return the one already queued or running.

    No lock is taken: the run is inserted with ON CONFLICT DO NOTHING on the partial unique
    index of active runs, so simultaneous requests of one runner coalesce on one run without
    queueing behind each other (docs/architecture.md §4).

    With `lease`, a running run whose lease expired (its worker is gone: lease.py) is failed like
    the tick's sweep fails it, and a new run replaces it instead of being returned. A manual
    request with the broker down is refused (ServiceUnavailable: 503 + Retry-After) before
    anything is written, and one within `cooldown` of the runner's previous manual sync gets
    SyncTooSoon (429 + retry_at)."""
    enqueue = as_enqueue(enqueue)
    if get_link(session, runner_id) is None:
        raise NotLinked()
    active = active_sync(session, runner_id)
    now = utcnow()
    lost = (
        active is not None
        and active.state == RunState.RUNNING
        and lease is not None
        and lease_expired(active, now, lease)
    )
    if active is not None and not lost:
        return active
    if trigger == Trigger.MANUAL:
        recent = recent_manual_run(session, runner_id, now, cooldown)
        if recent is not None and recent.state not in ACTIVE_RUN_STATES:
            raise SyncTooSoon(as_utc(recent.created_at) + cooldown, now=now)
        if not enqueue.available():
            raise ServiceUnavailable("Syncing is unavailable right now. Try again in a minute.")
    if active is not None:  # lost: finished first, one active run per runner (a unique index)
        _fail_lost(active, None, now, interval_seconds=None)
        session.flush()
    for _ in range(3):
        run_id = insert_active_run(session, runner_id, trigger, now)
        if run_id is not None:
            break
        # A concurrent request inserted the runner's run first, and committed it (the insert
        # waited for that): answer with it, unless it has already finished.
        active = active_sync(session, runner_id)
        if active is not None:
            return active
    else:
        raise ServiceUnavailable("Syncing is busy right now. Try again in a moment.")
    run = session.get_one(SyncRun, run_id)
    after_commit(session, partial(_send, enqueue, run.id, trigger))
    return run


def insert_active_run(
    session: Session, runner_id: uuid.UUID, trigger: Trigger, now: datetime
) -> uuid.UUID | None:
    """Insert a queued run unless the runner has an active one (uq_sync_runs_active_runner);
    its id, or None when another is active."""
    values = {
        "id": uuid.uuid4(),
        "runner_id": runner_id,
        "trigger": trigger,
        "state": RunState.QUEUED,
        "created_at": now,
    }
    insert = (
        sqlite_insert(SyncRun)
        if session.get_bind().dialect.name == "sqlite"
        else postgresql_insert(SyncRun)
    )
    statement = (
        insert.values(values)
        .on_conflict_do_nothing(
            index_elements=[SyncRun.runner_id], index_where=text(ACTIVE_RUN_INDEX_WHERE)
        )
        .returning(SyncRun.id)
    )
    inserted: uuid.UUID | None = session.scalar(statement)
    return inserted


def recent_manual_run(
    session: Session, runner_id: uuid.UUID, now: datetime, cooldown: timedelta
) -> SyncRun | None:
    """The runner's last manual run that synced (`ok`, `partial`) or is still in flight, when it
    was created less than `cooldown` ago: while there is one, another manual request is refused
    (SyncTooSoon), so that a runner cannot spend the shared Strava budget by asking again and
    again. Runs that ended `deferred` or `failed` (a lost worker, Strava down) do not count: a
    retry is what the runner needs then, and the runner's share of the budget still bounds it."""
    if cooldown <= timedelta(0):
        return None
    return session.scalar(
        select(SyncRun)
        .where(
            SyncRun.runner_id == runner_id,
            SyncRun.trigger == Trigger.MANUAL,
            SyncRun.created_at > now - cooldown,
            or_(SyncRun.result.is_(None), SyncRun.result.in_((RunResult.OK, RunResult.PARTIAL))),
        )
        .order_by(SyncRun.created_at.desc())
        .limit(1)
    )


def _send(enqueue: Enqueue, run_id: uuid.UUID, trigger: str) -> None:
    """Send the task once the run is committed. Never raises: if the broker went away since, the
    run stays queued and the tick's recovery sends it again."""
    try:
        enqueue(run_id)
    except SoftTimeLimitExceeded:
        raise  # the tick's time limit, not the broker (docs/architecture.md)
    except Exception as exc:
        log.warning(
            "strava.sync_enqueue_failed",
            sync_run_id=str(run_id),
            trigger=trigger,
            error=type(exc).__name__,
            detail=str(exc)[:200],
        )


# --- slots and backoff --------------------------------------------------------------------------


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


def scheduled_interval(session: Session, runtime: StravaRuntime) -> int:
    """Seconds between scheduled syncs of a link: the reconciliation interval while a push
    subscription covers the links, else the hourly poll (docs/architecture.md §4)."""
    return interval_for(runtime, push=push_active(session))


def interval_for(runtime: StravaRuntime, *, push: bool) -> int:
    """`scheduled_interval` from a push flag the caller has already read."""
    return runtime.reconcile_seconds if push else runtime.interval_seconds


def return_to_polling(session: Session, now: datetime, interval_seconds: int) -> int:
    """Links scheduled further ahead than polling would (at the reconciliation pace of a
    subscription that is gone) get their next hourly slot instead; returns how many. Links
    waiting out an error (a daily rate limit, a backoff) keep their retry time."""
    horizon = now + timedelta(seconds=interval_seconds * 3 / 2)
    links = list(
        session.scalars(
            select(StravaLink)
            .where(StravaLink.next_sync_at > horizon, StravaLink.error_code.is_(None))
            .with_for_update()
        )
    )
    for link in links:
        link.next_sync_at = next_slot(link.id, now, interval_seconds)
    return len(links)


def retry_delay(link_id: uuid.UUID, failures: int, interval_seconds: int) -> timedelta:
    """Exponential backoff from one minute, capped at the interval (and an hour), plus a few
    seconds of per-link spread."""
    cap = min(MAX_BACKOFF.total_seconds(), interval_seconds)
    base = min(60.0 * 2 ** max(0, failures - 1), cap)
    return timedelta(seconds=base + slot_offset(link_id, 30))


# --- after a run --------------------------------------------------------------------------------


@dataclass(frozen=True)
class LinkStatus:
    """What recording a run needs of the link row, read under its lock (`lock_link_status`)."""

    id: uuid.UUID
    runner_id: uuid.UUID
    error_code: str | None
    error_since: datetime | None
    sync_failures: int


def _status_after_run(
    link_id: uuid.UUID,
    failures: int,
    result: RunResult,
    code: str | None,
    retry_at: datetime | None,
    now: datetime,
    interval_seconds: int,
) -> tuple[dict[str, Any], datetime | None]:
    """The link's status columns after a run (error_since aside: the caller's), and when it
    retries by itself (None: at its next slot, or never)."""
    values: dict[str, Any] = {}
    if result != RunResult.DEFERRED:
        values.update(last_sync_at=now, last_result=result)
    if code is None:
        values.update(
            last_success_at=now,
            error_code=None,
            error_message=None,
            error_retry_at=None,
            sync_failures=0,
            next_sync_at=next_slot(link_id, now, interval_seconds),
        )
        return values, None
    values.update(error_code=code, error_message=None)
    if code in UNSCHEDULED_CODES:
        # Nothing works until the runner reconnects (or the key is back).
        values.update(error_retry_at=None, next_sync_at=None)
        return values, None
    if code == StatusCode.RATE_LIMITED:
        assert retry_at is not None
        # Spread the deferred links over the first minute of the new window.
        values.update(
            error_retry_at=retry_at,
            next_sync_at=retry_at + timedelta(seconds=slot_offset(link_id, 60)),
        )
        return values, retry_at
    failures += 1
    retry = now + retry_delay(link_id, failures, interval_seconds)
    values.update(sync_failures=failures, error_retry_at=retry, next_sync_at=retry)
    return values, retry


def record_run(
    link: StravaLink,
    result: RunResult,
    code: str | None,
    retry_at: datetime | None,
    now: datetime,
    *,
    interval_seconds: int,
) -> datetime | None:
    """Set the link's status columns (rendered by service.get_status) and its next sync after a
    run; returns when the link retries by itself (None: at its next slot, or never). The ORM
    path (error_since follows error_code through the model's listener); a sync run's own write
    uses `run_recorded`."""
    values, retry = _status_after_run(
        link.id, link.sync_failures or 0, result, code, retry_at, now, interval_seconds
    )
    for name, value in values.items():
        setattr(link, name, value)
    return retry


# Built once (bound parameters): every sync run's write locks its link with it.
_LOCK_LINK_STATUS = (
    select(_LINKS.c.runner_id, _LINKS.c.error_code, _LINKS.c.error_since, _LINKS.c.sync_failures)
    .where(_LINKS.c.id == bindparam("link_id", type_=_LINKS.c.id.type))
    .with_for_update()
)


def lock_link_status(session: Session, link_id: uuid.UUID) -> LinkStatus | None:
    """The link's status columns, its row locked until the transaction ends (a Core read: no
    ORM object to build, and only what `run_recorded` needs). None when the link is gone.
    SQLite has no row locks: its write lock is taken instead (db.sqlite_write_lock)."""
    links = _LINKS.c
    connection = session.connection()  # Core statements, past the ORM's execution layer
    sqlite_write_lock(connection, _LINKS, links.id == link_id, links.token_version)
    row = connection.execute(_LOCK_LINK_STATUS, {"link_id": link_id}).first()
    if row is None:
        return None
    return LinkStatus(
        link_id, row.runner_id, row.error_code, row.error_since, row.sync_failures or 0
    )


def run_recorded(
    session: Session,
    link: LinkStatus,
    result: RunResult,
    code: str | None,
    retry_at: datetime | None,
    now: datetime,
    *,
    interval_seconds: int,
) -> datetime | None:
    """`record_run` as one Core UPDATE of a link locked by `lock_link_status`; returns when the
    link retries by itself. The model's listener does not see Core statements: error_since is
    set here by the same rule (models.error_since_after)."""
    values, retry = _status_after_run(
        link.id, link.sync_failures, result, code, retry_at, now, interval_seconds
    )
    values["error_since"] = error_since_after(code, link.error_code, link.error_since, now)
    links = _LINKS.c
    session.connection().execute(update(_LINKS).where(links.id == link.id).values(values))
    return retry


def finish_run(run: SyncRun, now: datetime, result: RunResult, code: str | None) -> None:
    """Close a run: finished, with its result, error code and duration."""
    started = as_utc(run.started_at) if run.started_at is not None else now
    run.state = RunState.FINISHED
    run.finished_at = now
    run.duration_ms = max(0, int((now - started).total_seconds() * 1000))
    run.result = result
    run.error_code = code


# --- the beat tick ------------------------------------------------------------------------------


@dataclass(frozen=True)
class TickReport:
    scheduled: int = 0
    requeued: int = 0
    lost: int = 0
    budget_blocked_until: datetime | None = None
    webhook_runners: int = 0

    def summary(self) -> dict[str, object]:
        return {
            "scheduled": self.scheduled,
            "requeued": self.requeued,
            "lost": self.lost,
            "webhook_runners": self.webhook_runners,
            "budget_blocked_until": (
                self.budget_blocked_until.isoformat() if self.budget_blocked_until else None
            ),
        }


def recover_stale_runs(
    session: Session,
    *,
    now: datetime,
    enqueue: Enqueue,
    stale_queued: timedelta,
    lease: timedelta,
    interval_seconds: int,
    limit: int = 500,
) -> tuple[int, int]:
    """Re-enqueue forgotten queued runs and fail running ones whose lease expired (their worker
    is gone: lease.py); returns (requeued, lost)."""
    queued_cutoff = now - stale_queued
    stale = list(
        session.scalars(
            select(SyncRun)
            .where(
                SyncRun.state == RunState.QUEUED,
                func.coalesce(SyncRun.enqueued_at, SyncRun.created_at) < queued_cutoff,
            )
            .order_by(SyncRun.created_at)
            .limit(limit)
        )
    )
    for run in stale:
        run.enqueued_at = now
        after_commit(session, partial(_send, enqueue, run.id, run.trigger))
    lost = list(
        session.scalars(
            select(SyncRun)
            .where(SyncRun.state == RunState.RUNNING, lease_expired_before(now - lease))
            .limit(limit)
        )
    )
    failed = 0
    for run in lost:
        # The link first, then its run (the lock order of request_sync and the sync's write).
        link = get_link(session, run.runner_id, for_update=True)
        session.refresh(run, with_for_update=True)
        if run.state != RunState.RUNNING or not lease_expired(run, now, lease):
            continue  # its worker renewed the lease, or a manual sync replaced it, meanwhile
        _fail_lost(run, link, now, interval_seconds=interval_seconds)
        failed += 1
    return len(stale), failed


def _fail_lost(
    run: SyncRun, link: StravaLink | None, now: datetime, *, interval_seconds: int | None
) -> None:
    """Finish a running run whose worker is gone as failed; with `interval_seconds` its link
    backs off too (the tick), without it a new run follows at once (a manual request)."""
    finish_run(run, now, RunResult.FAILED, StatusCode.SYNC_FAILED)
    if link is not None and interval_seconds is not None:
        record_run(
            link,
            RunResult.FAILED,
            StatusCode.SYNC_FAILED,
            None,
            now,
            interval_seconds=interval_seconds,
        )
    log.warning("strava.sync_lost", sync_run_id=str(run.id), runner_id=str(run.runner_id))


def redrive_webhooks(
    runtime: StravaRuntime,
    *,
    now: datetime,
    enqueue_webhooks: Callable[[uuid.UUID], None],
    stale_pending: timedelta,
) -> int:
    """Send the processing task again for runners whose inbox events are due and not being
    processed; returns how many runners. Also prunes settled events older than INBOX_RETENTION
    and refreshes the inbox gauges (one aggregate)."""
    with session_scope(runtime.sessions) as session:
        owners = inbox.owners_to_redrive(
            session,
            now,
            pending_after=stale_pending,
            stuck_after=timedelta(seconds=runtime.lease_seconds),
        )
        for runner_id in owners:
            after_commit(session, partial(_send_webhooks, enqueue_webhooks, runner_id))
        inbox.prune_settled(session, now - INBOX_RETENTION)
        depth = inbox.depth(session)
    metrics.observe_inbox_depth(depth.open_events, depth.oldest_age_seconds(now))
    return len(owners)


def _send_webhooks(enqueue: Callable[[uuid.UUID], None], runner_id: uuid.UUID) -> None:
    try:
        enqueue(runner_id)
    except Exception as exc:  # the broker is down: the next tick tries again
        log.warning(
            "strava.webhook_enqueue_failed", runner_id=str(runner_id), error=type(exc).__name__
        )


def due_runner_ids(session: Session, now: datetime, limit: int) -> list[uuid.UUID]:
    """Links whose next sync is due (or never set), that can sync and have none in flight."""
    active = exists().where(
        SyncRun.runner_id == StravaLink.runner_id, SyncRun.state.in_(ACTIVE_RUN_STATES)
    )
    return list(
        session.scalars(
            select(StravaLink.runner_id)
            .where(
                or_(StravaLink.next_sync_at.is_(None), StravaLink.next_sync_at <= now),
                or_(
                    StravaLink.error_code.is_(None),
                    StravaLink.error_code.not_in(UNSCHEDULED_CODES),
                ),
                ~active,
            )
            .order_by(StravaLink.next_sync_at.asc().nulls_first())
            .limit(limit)
        )
    )


def tick(
    runtime: StravaRuntime,
    *,
    enqueue: Enqueue | Callable[[uuid.UUID], None],
    stale_queued: timedelta,
    reserve: float,
    batch_size: int = 500,
    enqueue_webhooks: Callable[[uuid.UUID], None] | None = None,
    webhook_stale_pending: timedelta = timedelta(minutes=2),
) -> TickReport:
    enqueue = as_enqueue(enqueue)
    now = utcnow()
    with session_scope(runtime.sessions) as session:
        requeued, lost = recover_stale_runs(
            session,
            now=now,
            enqueue=enqueue,
            stale_queued=stale_queued,
            lease=timedelta(seconds=runtime.lease_seconds),
            interval_seconds=runtime.interval_seconds,
        )
        LINKS_KEY_UNAVAILABLE.set(
            session.scalar(
                select(func.count()).where(StravaLink.error_code == StatusCode.KEY_UNAVAILABLE)
            )
            or 0
        )
        if not push_active(session):
            return_to_polling(session, now, runtime.interval_seconds)
    webhook_runners = 0
    if enqueue_webhooks is not None:
        # Deferred events wait in the inbox (next_attempt_at = the window's reset), so re-driving
        # them needs no budget check here: the processing asks the budget itself.
        webhook_runners = redrive_webhooks(
            runtime, now=now, enqueue_webhooks=enqueue_webhooks, stale_pending=webhook_stale_pending
        )
    view = runtime.budget.view(now)
    if view.blocked_until is not None:
        # Nothing may reach Strava before the window resets: the links stay due until then.
        return TickReport(0, requeued, lost, view.blocked_until, webhook_runners)
    limit = batch_size
    remaining = view.remaining_short(reserve)
    if remaining is not None:
        limit = min(limit, remaining // REQUESTS_PER_SYNC)
    with runtime.sessions() as session:
        due = due_runner_ids(session, now, limit) if limit > 0 else []
    scheduled = 0
    for runner_id in due:
        # One transaction per runner: a manual request racing us only costs that runner.
        try:
            with session_scope(runtime.sessions) as session:
                request_sync(session, runner_id, Trigger.SCHEDULE, enqueue=enqueue)
            scheduled += 1
        except (IntegrityError, NotLinked):
            continue
    if scheduled or requeued or lost or webhook_runners:
        log.info(
            "strava.tick",
            scheduled=scheduled,
            requeued=requeued,
            lost=lost,
            webhook_runners=webhook_runners,
        )
    return TickReport(scheduled, requeued, lost, webhook_runners=webhook_runners)
