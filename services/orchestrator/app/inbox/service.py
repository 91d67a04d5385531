"""Storing, claiming and settling inbox events. Services take a Session and never commit.

* `store_owned`: the intake's one statement (autocommit; built once by `owned_store`):
  `INSERT .. SELECT` of the event with its owner resolved by the provider's own lookup and
  admitted by its own condition, `ON CONFLICT (dedupe_key) DO NOTHING RETURNING`, so a delivery
  repeated any number of times (or racing itself) is one row; only when nothing was inserted a
  second read says why (duplicate, no owner, not admitted). `store` is the same statement for
  an event whose owner is known;
* `claim_due`: a runner's due events move to `processing` in one `UPDATE .. WHERE id IN (SELECT
  .. FOR UPDATE SKIP LOCKED) RETURNING` (two workers never take the same row), in a transaction
  of their own; the caller processes them with no transaction open, renews its claim before
  every remote request (`renew_claims`: a lease, like a running sync's) and settles them
  (`settle`, `settle_many`: one statement per outcome; `defer`);
* `owners_to_redrive`: what the beat tick sends again: due deferred events, pending ones whose
  task was lost, and `processing` claims older than a task may live (the worker died);
* `prune_settled`: settled events are deleted after INBOX_RETENTION (the tick).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Select,
    and_,
    bindparam,
    delete,
    func,
    or_,
    select,
    true,
    update,
)
from sqlalchemy.orm import Session

from app.clock import as_utc
from app.db import sqlite_write_lock
from app.inbox.models import OPEN_STATES, EventState, InboxEvent, StoreOutcome
from app.security import KeyRing


def dedupe_key(keyring: KeyRing, source: str, content: Mapping[str, Any]) -> str:
    """A keyed hash (HMAC-SHA-256 under the key ring's blind-index secret) of the event's
    canonical content: equal deliveries collide, and the stored key cannot be brute-forced back
    to the provider's account id without the key."""
    canonical = json.dumps(
        {"source": source, **content}, sort_keys=True, separators=(",", ":"), ensure_ascii=True
    )
    # Domain-separated from the link's athlete index, which uses the same secret.
    return keyring.blind_indexes("inbox-event:" + canonical)[0]


def _insert(dialect: str) -> Any:
    """The dialect's INSERT construct (both have ON CONFLICT DO NOTHING)."""
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert  # type: ignore[assignment]
    return insert


@dataclass(frozen=True)
class PushedEvent:
    """An event as pushed, before its owner is known (`store_owned` resolves it)."""

    source: str
    dedupe_key: str
    object_type: str
    object_id: int
    aspect_type: str
    updates: dict[str, str]
    event_time: datetime


@dataclass(frozen=True)
class NewEvent(PushedEvent):
    """An event whose owner is already known (`store`)."""

    runner_id: uuid.UUID


@dataclass(frozen=True)
class Stored:
    outcome: StoreOutcome
    runner_id: uuid.UUID | None = None


# The event's own values in `store_owned`'s statement, bound by column name.
_PUSHED_COLUMNS = (
    "id",
    "source",
    "dedupe_key",
    "object_type",
    "object_id",
    "aspect_type",
    "updates",
    "event_time",
    "received_at",
    "state",
    "attempts",
    "next_attempt_at",
)


@dataclass(frozen=True)
class OwnedStore:
    """`store_owned`'s two statements, built once per owner lookup and dialect and reused: the
    push path then pays no statement construction, only binding (`owned_store`)."""

    insert: Any
    why_not: Select[Any, bool]


def owned_store(
    dialect: str, owner: Select[uuid.UUID], admitted: ColumnElement[bool]
) -> OwnedStore:
    """The statements storing an event for the runner `owner` selects (its first row) when
    `admitted` holds. `owner` and `admitted` bind their own parameters (named unlike the inbox's
    columns), given to `store_owned` as `params`."""
    table = InboxEvent.__table__
    columns = table.c
    owners = owner.limit(1).subquery("owner")
    runner = next(iter(owners.c))
    rows = select(
        *(bindparam(name, type_=columns[name].type).label(name) for name in _PUSHED_COLUMNS),
        runner.label("runner_id"),
    ).where(admitted)  # a WHERE also keeps SQLite's parser from reading ON CONFLICT as a join's
    insert = (
        _insert(dialect)(table)
        .from_select([*_PUSHED_COLUMNS, "runner_id"], rows)
        .on_conflict_do_nothing(index_elements=["dedupe_key"])
        .returning(columns.runner_id)
    )
    return OwnedStore(insert, select(owner.limit(1).scalar_subquery(), admitted))


def store_owned(
    connection: Connection,
    statements: OwnedStore,
    event: PushedEvent,
    *,
    params: Mapping[str, Any],
    now: datetime,
) -> Stored:
    """Store `event` in ONE statement (`owned_store`'s insert): on an autocommit connection the
    answer is durable when this returns (one round trip on the push path). Unstored, a second
    read tells a duplicate from an unknown owner or an event not admitted (the rare paths).
    SQLite ≥ 3.35 runs the same statement."""
    values: dict[str, Any] = {
        "id": uuid.uuid4(),
        "source": event.source,
        "dedupe_key": event.dedupe_key,
        "object_type": event.object_type,
        "object_id": event.object_id,
        "aspect_type": event.aspect_type,
        "updates": event.updates,
        "event_time": event.event_time,
        "received_at": now,
        "state": EventState.PENDING,
        "attempts": 0,
        "next_attempt_at": now,
        **params,
    }
    inserted = connection.execute(statements.insert, values).first()
    if inserted is not None:
        return Stored(StoreOutcome.STORED, inserted[0])
    runner_id, is_admitted = connection.execute(statements.why_not, dict(params)).one()
    if not is_admitted:
        return Stored(StoreOutcome.NOT_ADMITTED)
    if runner_id is None:
        return Stored(StoreOutcome.NO_OWNER)
    return Stored(StoreOutcome.DUPLICATE, runner_id)


@cache
def _known_owner_store(dialect: str) -> OwnedStore:
    """`owned_store`'s statements for an owner given as a parameter (`owner_runner_id`) and
    always admitted: `store`'s, built once per dialect."""
    owner = select(
        bindparam("owner_runner_id", type_=InboxEvent.__table__.c.runner_id.type).label("runner_id")
    )
    return owned_store(dialect, owner, true())


def store(session: Session, event: NewEvent, now: datetime) -> bool:
    """Insert the event for its known owner unless an equal one is stored (the same statement
    as the intake's, `store_owned`); True when it is new."""
    connection = session.connection()
    stored = store_owned(
        connection,
        _known_owner_store(connection.dialect.name),
        event,
        params={"owner_runner_id": event.runner_id},
        now=now,
    )
    return stored.outcome == StoreOutcome.STORED


def _due(now: datetime) -> Any:
    return and_(
        InboxEvent.state.in_((EventState.PENDING, EventState.DEFERRED)),
        InboxEvent.next_attempt_at <= now,
    )


def claim_due(
    session: Session,
    runner_id: uuid.UUID,
    now: datetime,
    *,
    take_over: bool = False,
    stale_before: datetime | None = None,
    limit: int = 500,
) -> list[InboxEvent]:
    """The runner's due events, oldest first, moved to `processing` for this worker.

    Events left in `processing` are claimed too when this task is a redelivery (`take_over`: the
    worker that had it died) or when their claim is older than any task may run
    (`stale_before`), as a sync run is taken over (app/strava/sync.py claim_run)."""
    # No row locks on SQLite: its write lock first, so two claims are serialised instead of
    # both reading the same due rows.
    events = InboxEvent.__table__
    where = and_(events.c.runner_id == runner_id, events.c.id.is_(None))
    sqlite_write_lock(session.connection(), events, where, events.c.state)
    claimable = _due(now)
    if take_over:
        claimable = or_(claimable, InboxEvent.state == EventState.PROCESSING)
    elif stale_before is not None:
        claimable = or_(
            claimable,
            and_(InboxEvent.state == EventState.PROCESSING, InboxEvent.claimed_at < stale_before),
        )
    # One round trip: the rows are chosen (oldest first, locked rows skipped) and moved to
    # `processing` by the same statement, which returns them.
    chosen = (
        select(InboxEvent.id)
        .where(InboxEvent.runner_id == runner_id, claimable)
        .order_by(InboxEvent.event_time, InboxEvent.received_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    rows = list(
        session.scalars(
            update(InboxEvent)
            .where(InboxEvent.id.in_(chosen.scalar_subquery()))
            .values(state=EventState.PROCESSING, claimed_at=now, attempts=InboxEvent.attempts + 1)
            .returning(InboxEvent)
            .execution_options(synchronize_session=False, populate_existing=True)
        )
    )
    rows.sort(key=lambda row: (row.event_time, row.received_at))
    return rows


def renew_claims(session: Session, event_ids: list[uuid.UUID], now: datetime) -> None:
    """A live worker's heartbeat on the events it still holds (see `owners_to_redrive`)."""
    if event_ids:
        session.execute(
            update(InboxEvent)
            .where(InboxEvent.id.in_(event_ids), InboxEvent.state == EventState.PROCESSING)
            .values(claimed_at=now)
            .execution_options(synchronize_session=False)
        )


def settle(
    session: Session, event_id: uuid.UUID, state: EventState, outcome: str, now: datetime
) -> None:
    """Close a claimed event: done, ignored or failed, with what happened."""
    settle_many(session, [event_id], state, outcome, now)


def settle_many(
    session: Session, event_ids: list[uuid.UUID], state: EventState, outcome: str, now: datetime
) -> None:
    """Close claimed events with one outcome in one statement (a pass settles in batches)."""
    if event_ids:
        session.execute(
            update(InboxEvent)
            .where(InboxEvent.id.in_(event_ids))
            .values(state=state, outcome=outcome, processed_at=now, claimed_at=None)
            .execution_options(synchronize_session=False)
        )


def defer(session: Session, event_ids: list[uuid.UUID], until: datetime, outcome: str) -> None:
    """Put claimed events back to wait (`deferred`) until `until`; they are never dropped."""
    if event_ids:
        session.execute(
            update(InboxEvent)
            .where(InboxEvent.id.in_(event_ids))
            .values(
                state=EventState.DEFERRED, next_attempt_at=until, outcome=outcome, claimed_at=None
            )
            .execution_options(synchronize_session=False)
        )


def owners_to_redrive(
    session: Session,
    now: datetime,
    *,
    pending_after: timedelta,
    stuck_after: timedelta,
    limit: int = 500,
) -> list[uuid.UUID]:
    """Runners with events to send again. Stale `processing` claims go back to `pending` first."""
    session.execute(
        update(InboxEvent)
        .where(InboxEvent.state == EventState.PROCESSING, InboxEvent.claimed_at < now - stuck_after)
        .values(state=EventState.PENDING, claimed_at=None)
        .execution_options(synchronize_session=False)
    )
    return list(
        session.scalars(
            select(InboxEvent.runner_id)
            .where(
                or_(
                    and_(
                        InboxEvent.state == EventState.DEFERRED,
                        InboxEvent.next_attempt_at <= now,
                    ),
                    and_(
                        InboxEvent.state == EventState.PENDING,
                        InboxEvent.received_at < now - pending_after,
                    ),
                )
            )
            .group_by(InboxEvent.runner_id)
            .order_by(func.min(InboxEvent.next_attempt_at))
            .limit(limit)
        )
    )


def prune_settled(session: Session, before: datetime, *, limit: int = 5000) -> int:
    """Delete settled events (done, ignored, failed) processed before `before`; how many. The
    inbox is a queue, not an archive: object ids of a runner's activities do not linger."""
    settled = (EventState.DONE, EventState.IGNORED, EventState.FAILED)
    ids = list(
        session.scalars(
            select(InboxEvent.id)
            .where(InboxEvent.state.in_(settled), InboxEvent.processed_at < before)
            .limit(limit)
        )
    )
    if ids:
        session.execute(
            delete(InboxEvent)
            .where(InboxEvent.id.in_(ids))
            .execution_options(synchronize_session=False)
        )
    return len(ids)


def delete_for_runner(session: Session, runner_id: uuid.UUID, *, keep: set[uuid.UUID]) -> int:
    """Forget a runner's events but those in `keep` (a revocation purges what came from there)."""
    result = session.execute(
        delete(InboxEvent)
        .where(InboxEvent.runner_id == runner_id, InboxEvent.id.not_in(keep or {uuid.UUID(int=0)}))
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def count_open(session: Session, runner_id: uuid.UUID) -> int:
    return (
        session.scalar(
            select(func.count())
            .select_from(InboxEvent)
            .where(InboxEvent.runner_id == runner_id, InboxEvent.state.in_(OPEN_STATES))
        )
        or 0
    )


@dataclass(frozen=True)
class InboxDepth:
    open_events: int
    oldest_received_at: datetime | None

    def oldest_age_seconds(self, now: datetime) -> float:
        if self.oldest_received_at is None:
            return 0.0
        return max(0.0, (now - as_utc(self.oldest_received_at)).total_seconds())


def depth(session: Session) -> InboxDepth:
    """How many events wait and since when (one indexed aggregate; for the gauges)."""
    count, oldest = session.execute(
        select(func.count(), func.min(InboxEvent.received_at)).where(
            InboxEvent.state.in_(OPEN_STATES)
        )
    ).one()
    return InboxDepth(int(count or 0), oldest)
