"""What the beat tick does (tasks.py runs it every SYNC_TICK_SECONDS, 60 by default).

* **Due links**: every link has slots spread over the interval by a hash of its id
  (sync.next_slot), so a tick enqueues only the links whose `next_sync_at` has come, never every
  athlete at once; and no more than the shared rate budget can serve in the current window.
* **Recovery**: a run still `queued` long after it was enqueued (the broker lost the message, or
  it was never sent) is enqueued again; a run `running` for longer than the task time limit
  (its worker died and the broker will not redeliver it, as with the embedded broker) is failed
  and its link scheduled for a retry.
* **Deferred deauthorizations** (service.unlink could not reach Strava): retried with backoff
  until Strava answers 200 or 401.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial

import structlog
from sqlalchemy import exists, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.clock import as_utc, utcnow
from app.db import after_commit, session_scope
from app.errors import AppError, KeyUnavailable, NotLinked
from app.strava import service
from app.strava.budget import BudgetSpent
from app.strava.client import InvalidClient, RateLimited, StravaAuthError, StravaError
from app.strava.credentials import open_pending_deauthorization, seal_pending_deauthorization
from app.strava.models import PendingDeauthorization, StravaLink, SyncRun
from app.strava.sync import RunRecorder, SyncDeps, retry_delay
from app.strava.tokens import REFRESH_MARGIN
from app.telemetry import DEAUTHORIZATIONS

log = structlog.get_logger(__name__)

# Requests a scheduled sync usually costs: one page of activities and the empty page after it.
REQUESTS_PER_SYNC = 2
# Grace after the task time limit before a `running` run is declared lost.
LOST_RUN_GRACE = timedelta(seconds=60)
MAX_DEAUTHORIZE_BACKOFF = timedelta(hours=6)


@dataclass(frozen=True)
class TickReport:
    scheduled: int = 0
    requeued: int = 0
    lost: int = 0
    budget_blocked_until: datetime | None = None

    def summary(self) -> dict[str, object]:
        return {
            "scheduled": self.scheduled,
            "requeued": self.requeued,
            "lost": self.lost,
            "budget_blocked_until": (
                self.budget_blocked_until.isoformat() if self.budget_blocked_until else None
            ),
        }


def _safe_enqueue(enqueue: service.Enqueue, run_id: uuid.UUID) -> None:
    try:
        enqueue(run_id)
    except Exception as exc:  # the broker is down: the next tick's recovery sends it again
        log.warning("strava.enqueue_failed", sync_run_id=str(run_id), error=type(exc).__name__)


def recover_stale_runs(
    session: Session,
    *,
    now: datetime,
    enqueue: service.Enqueue,
    stale_queued: timedelta,
    time_limit: timedelta,
    interval_seconds: int,
    limit: int = 500,
) -> tuple[int, int]:
    """Re-enqueue forgotten queued runs and fail lost running ones; returns (requeued, lost)."""
    queued_cutoff = now - stale_queued
    stale = list(
        session.scalars(
            select(SyncRun)
            .where(
                SyncRun.state == "queued",
                func.coalesce(SyncRun.enqueued_at, SyncRun.created_at) < queued_cutoff,
            )
            .order_by(SyncRun.created_at)
            .limit(limit)
        )
    )
    for run in stale:
        run.enqueued_at = now
        after_commit(session, partial(_safe_enqueue, enqueue, run.id))
    lost = list(
        session.scalars(
            select(SyncRun)
            .where(
                SyncRun.state == "running", SyncRun.started_at < now - time_limit - LOST_RUN_GRACE
            )
            .limit(limit)
        )
    )
    for run in lost:
        started = as_utc(run.started_at) if run.started_at is not None else now
        run.state = "finished"
        run.finished_at = now
        run.duration_ms = int((now - started).total_seconds() * 1000)
        run.result = "failed"
        run.error_code = "sync_failed"
        link = service.get_link(session, run.runner_id, for_update=True)
        if link is not None:
            link.last_sync_at = now
            link.last_result = "failed"
            link.sync_failures = (link.sync_failures or 0) + 1
            retry = now + retry_delay(link.id, link.sync_failures, interval_seconds)
            link.error_code = "sync_failed"
            link.error_message = None
            link.error_retry_at = retry
            link.next_sync_at = retry
        log.warning("strava.sync_lost", sync_run_id=str(run.id), runner_id=str(run.runner_id))
    return len(stale), len(lost)


def due_runner_ids(session: Session, now: datetime, limit: int) -> list[uuid.UUID]:
    """Links whose next sync is due (or never set), that can sync and have none in flight."""
    active = exists().where(
        SyncRun.runner_id == StravaLink.runner_id, SyncRun.state.in_(service.ACTIVE_SYNC_STATES)
    )
    return list(
        session.scalars(
            select(StravaLink.runner_id)
            .where(
                or_(StravaLink.next_sync_at.is_(None), StravaLink.next_sync_at <= now),
                or_(
                    StravaLink.error_code.is_(None),
                    StravaLink.error_code.not_in(service.RECONNECT_CODES),
                ),
                ~active,
            )
            .order_by(StravaLink.next_sync_at.asc().nulls_first())
            .limit(limit)
        )
    )


def tick(
    deps: SyncDeps,
    *,
    enqueue: service.Enqueue,
    stale_queued: timedelta,
    reserve: float,
    batch_size: int = 500,
) -> TickReport:
    now = utcnow()
    with session_scope(deps.sessions) as session:
        requeued, lost = recover_stale_runs(
            session,
            now=now,
            enqueue=enqueue,
            stale_queued=stale_queued,
            time_limit=timedelta(seconds=deps.task_time_limit_seconds),
            interval_seconds=deps.interval_seconds,
        )
    view = deps.budget.view(now)
    if view.blocked_until is not None:
        # Nothing may reach Strava before the window resets: the links stay due until then.
        return TickReport(0, requeued, lost, view.blocked_until)
    limit = batch_size
    remaining = view.remaining_short(reserve)
    if remaining is not None:
        limit = min(limit, remaining // REQUESTS_PER_SYNC)
    with deps.sessions() as session:
        due = due_runner_ids(session, now, limit) if limit > 0 else []
    scheduled = 0
    for runner_id in due:
        # One transaction per runner: a manual request racing us only costs that runner.
        try:
            with session_scope(deps.sessions) as session:
                service.request_sync(session, runner_id, "schedule", enqueue=enqueue)
            scheduled += 1
        except (IntegrityError, NotLinked):
            continue
    if scheduled or requeued or lost:
        log.info("strava.tick", scheduled=scheduled, requeued=requeued, lost=lost)
    return TickReport(scheduled, requeued, lost)


def deauthorize_pending(deps: SyncDeps, *, batch_size: int = 50) -> int:
    """Retry deferred deauthorizations that are due; returns how many are settled."""
    now = utcnow()
    settled = 0
    recorder = RunRecorder(deps.budget)
    client = deps.client_for(recorder)
    with session_scope(deps.sessions) as session:
        due = list(
            session.scalars(
                select(PendingDeauthorization)
                .where(PendingDeauthorization.next_attempt_at <= now)
                .order_by(PendingDeauthorization.next_attempt_at)
                .limit(batch_size)
                .with_for_update(skip_locked=True)
            )
        )
        for pending in due:
            try:
                tokens = open_pending_deauthorization(pending, deps.keyring)
                access_token = tokens.access_token
                expires_at = pending.access_token_expires_at
                if tokens.refresh_token is not None and (
                    expires_at is None or as_utc(expires_at) <= now + REFRESH_MARGIN
                ):
                    # Hours may have passed: revoke with a live token, and keep the rotated
                    # pair in case Strava fails again (the old refresh token is dead now).
                    recorder.flush()
                    deps.budget.acquire(utcnow())
                    fresh = client.refresh(tokens.refresh_token)
                    access_token = fresh.access_token.get_secret_value()
                    seal_pending_deauthorization(
                        pending,
                        deps.keyring,
                        access_token,
                        refresh_token=fresh.refresh_token.get_secret_value(),
                        access_token_expires_at=fresh.expires_at,
                    )
                recorder.flush()
                deps.budget.acquire(utcnow())
                client.deauthorize(access_token)
            except (BudgetSpent, RateLimited) as exc:
                # Everyone waits for the window; so do the remaining rows.
                for waiting in due[due.index(pending) :]:
                    waiting.next_attempt_at = max(as_utc(waiting.next_attempt_at), exc.retry_at)
                break
            except (InvalidClient, KeyUnavailable):
                _retry_later(pending, now)
            except StravaAuthError:
                # 401: Strava no longer honours the token, so there is nothing left to revoke.
                session.delete(pending)
                settled += 1
            except (StravaError, AppError):
                _retry_later(pending, now)
            else:
                session.delete(pending)
                settled += 1
    recorder.flush()
    if settled:
        DEAUTHORIZATIONS.labels("done").inc(settled)
    return settled


def _retry_later(pending: PendingDeauthorization, now: datetime) -> None:
    pending.attempts += 1
    delay = min(timedelta(minutes=2**pending.attempts), MAX_DEAUTHORIZE_BACKOFF)
    pending.next_attempt_at = now + delay
    DEAUTHORIZATIONS.labels("retry").inc()
    log.info("strava.deauthorize_retry", attempts=pending.attempts)
