"""The lease of a running sync (docs/architecture.md §4).

The worker running a sync renews the run's `heartbeat_at` before every Strava request but the
first (its claim has just set it; a claim whose token needs a refresh renews after it), each
renewal one statement committed by itself. A run whose heartbeat is older than
SYNC_LEASE_SECONDS has lost its worker (killed, out of memory, its machine gone): the takeover
claim (sync.py), the beat tick's sweep and a manual sync (scheduling.py) treat it as lost at
once, instead of blocking the runner until the task time limit has passed. The lease outlasts
the longest wait between two renewals, one Strava request timing out on every try (config.py).
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import cast

from sqlalchemy import ColumnElement, Table, Update, bindparam, func, update
from sqlalchemy.orm import Session, sessionmaker

from app.clock import as_utc
from app.codes import RunState
from app.db import autocommit_connection
from app.strava.models import SyncRun


class LeaseLost(Exception):
    """This worker's run was declared lost (or taken over) meanwhile: stop, write nothing."""


def _renew_statement() -> Update:
    table = cast(Table, SyncRun.__table__)
    runs = table.c
    return (
        update(table)
        .where(
            runs.id == bindparam("run_id"),
            runs.state == RunState.RUNNING,
            runs.attempts == bindparam("attempt"),
        )
        .values(heartbeat_at=bindparam("now"))
    )


# Built once (Core, bound parameters): a running sync renews its lease between its pages.
_RENEW = _renew_statement()


def renew(sessions: sessionmaker[Session], run_id: uuid.UUID, attempt: int, now: datetime) -> None:
    """Renew the lease of this worker's attempt at the run; LeaseLost when the run is no longer
    running or another attempt took it over."""
    # One round trip (no BEGIN, no COMMIT) and no Session: a plain Core statement.
    with autocommit_connection(sessions) as connection:
        renewed = connection.execute(_RENEW, {"run_id": run_id, "attempt": attempt, "now": now})
    if renewed.rowcount != 1:
        raise LeaseLost(str(run_id))


def expired(run: SyncRun, now: datetime, lease: timedelta) -> bool:
    """Whether a running run's worker has not been heard of for longer than the lease."""
    last = run.heartbeat_at or run.started_at
    return last is None or as_utc(last) < now - lease


def expired_before(cutoff: datetime) -> ColumnElement[bool]:
    """SQL: the run's last sign of life (heartbeat, else start) is older than `cutoff`."""
    return func.coalesce(SyncRun.heartbeat_at, SyncRun.started_at) < cutoff
