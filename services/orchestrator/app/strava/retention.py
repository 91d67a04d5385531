"""The retention policy (docs/retention.md §2): what we stop keeping, and when.

* **Workouts out of the window.** A Strava workout that started before the sync window (plus a
  grace of `RETENTION_WORKOUT_GRACE_DAYS`) is deleted: no sync lists it again, so a deletion or a
  privacy change at Strava would never reach it; we cannot keep it accurate.
* **Dead grants.** A link in `reauth_required` or `revoked` for `RETENTION_DEAD_LINK_DAYS` loses
  its tokens, its athlete and its Strava workouts (service.purge_strava_data). Strava's API
  Agreement asks for deletion on revocation (docs/strava.md §6). The grant is dead at Strava, so
  there is nothing to deauthorize; the runner sees `not_linked` with error `revoked` (action
  `reconnect`) until they connect again.
* **Pending deauthorizations** still unconfirmed after `RETENTION_PENDING_DEAUTHORIZATION_DAYS`
  are dropped, counted and logged: their encrypted tokens must not live forever either.
* **History.** Finished sync runs and link attempts older than `RETENTION_HISTORY_DAYS` are
  deleted; queued and running runs are never touched.

Each kind is deleted in batches, each batch its own short transaction, so a large backlog never
holds locks for long and a crash loses nothing but the batch in hand (the next run continues).
The beat runs it every `RETENTION_INTERVAL_SECONDS` (scheduling.py lists when everything runs).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, fields
from datetime import datetime, timedelta

import structlog
from sqlalchemy import Select, delete, select
from sqlalchemy.orm import InstrumentedAttribute, Session, sessionmaker

from app.clock import utcnow, window_start
from app.codes import ACTIVE_RUN_STATES, Source, StatusCode
from app.config import Settings
from app.db import session_scope
from app.strava import service
from app.strava.metrics import DEAUTHORIZATIONS, RETENTION_DELETED
from app.strava.models import LinkAttempt, PendingDeauthorization, StravaLink, SyncRun
from app.workouts.models import Workout

log = structlog.get_logger(__name__)

BATCH_SIZE = 1000
# Codes that mean Strava no longer honours the grant (insufficient_scope does: it is kept).
DEAD_GRANT_CODES = (StatusCode.REAUTH_REQUIRED, StatusCode.REVOKED)


@dataclass(frozen=True)
class RetentionPolicy:
    window_days: int
    workout_grace_days: int
    dead_link_days: int
    pending_deauthorization_days: int
    history_days: int

    @classmethod
    def from_settings(cls, settings: Settings) -> RetentionPolicy:
        return cls(
            window_days=settings.sync_window_days,
            workout_grace_days=settings.retention_workout_grace_days,
            dead_link_days=settings.retention_dead_link_days,
            pending_deauthorization_days=settings.retention_pending_deauthorization_days,
            history_days=settings.retention_history_days,
        )


@dataclass(frozen=True)
class RetentionReport:
    workouts_out_of_window: int = 0
    dead_links: int = 0
    dead_link_workouts: int = 0
    pending_deauthorizations_dropped: int = 0
    sync_runs: int = 0
    link_attempts: int = 0

    def summary(self) -> dict[str, int]:
        return {field.name: getattr(self, field.name) for field in fields(self)}

    @property
    def total(self) -> int:
        return sum(self.summary().values())


def apply_retention(
    sessions: sessionmaker[Session], policy: RetentionPolicy, *, batch_size: int = BATCH_SIZE
) -> RetentionReport:
    """Apply every rule once; returns what was deleted."""
    now = utcnow()
    workout_cutoff = window_start(now, policy.window_days + policy.workout_grace_days)
    history_cutoff = now - timedelta(days=policy.history_days)
    dead_links, dead_link_workouts = _purge_dead_links(
        sessions, now - timedelta(days=policy.dead_link_days), batch_size
    )
    dropped = _delete_in_batches(
        sessions,
        select(PendingDeauthorization.id).where(
            PendingDeauthorization.created_at
            < now - timedelta(days=policy.pending_deauthorization_days)
        ),
        PendingDeauthorization.id,
        batch_size,
    )
    report = RetentionReport(
        workouts_out_of_window=_delete_in_batches(
            sessions,
            select(Workout.id).where(
                Workout.source == Source.STRAVA, Workout.start_date < workout_cutoff
            ),
            Workout.id,
            batch_size,
        ),
        dead_links=dead_links,
        dead_link_workouts=dead_link_workouts,
        pending_deauthorizations_dropped=dropped,
        sync_runs=_delete_in_batches(
            sessions,
            select(SyncRun.id).where(
                SyncRun.state.not_in(ACTIVE_RUN_STATES),
                SyncRun.created_at < history_cutoff,
            ),
            SyncRun.id,
            batch_size,
        ),
        link_attempts=_delete_in_batches(
            sessions,
            select(LinkAttempt.id).where(LinkAttempt.created_at < history_cutoff),
            LinkAttempt.id,
            batch_size,
        ),
    )
    if dropped:
        # Strava may still hold these grants: an operator should know they were given up on.
        log.warning("strava.pending_deauthorizations_dropped", count=dropped)
        DEAUTHORIZATIONS.labels("expired").inc(dropped)
    for kind, count in report.summary().items():
        if count:
            RETENTION_DELETED.labels(kind).inc(count)
    if report.total:
        log.info("retention.applied", **report.summary())
    return report


def _delete_in_batches(
    sessions: sessionmaker[Session],
    ids: Select[uuid.UUID],
    id_column: InstrumentedAttribute[uuid.UUID],
    batch_size: int,
) -> int:
    deleted = 0
    while True:
        with session_scope(sessions) as session:
            batch = list(session.scalars(ids.limit(batch_size)))
            if batch:
                session.execute(
                    delete(id_column.class_)
                    .where(id_column.in_(batch))
                    .execution_options(synchronize_session=False)
                )
        deleted += len(batch)
        if len(batch) < batch_size:
            return deleted


def _purge_dead_links(
    sessions: sessionmaker[Session], dead_before: datetime, batch_size: int
) -> tuple[int, int]:
    """Purge links whose grant has been dead since before `dead_before`; returns (links,
    workouts). Each link is locked and checked again: a reconnect in between keeps it."""
    links = workouts = 0
    while True:
        with session_scope(sessions) as session:
            batch = list(
                session.scalars(
                    select(StravaLink)
                    .where(
                        StravaLink.error_code.in_(DEAD_GRANT_CODES),
                        StravaLink.error_since < dead_before,
                    )
                    .limit(batch_size)
                    .with_for_update(skip_locked=True)
                )
            )
            for link in batch:
                workouts += service.purge_strava_data(session, link.runner_id)
                # The runner sees why the link is gone, with Reconnect.
                service.record_revocation(session, link.runner_id, utcnow())
                log.info(
                    "strava.dead_link_purged",
                    runner_id=str(link.runner_id),
                    error_code=link.error_code,
                )
        links += len(batch)
        if len(batch) < batch_size:
            return links, workouts
