"""The inbox on PostgreSQL: duplicates stored once, claims that two workers never share, and
what the beat tick re-drives."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from app.config import Settings
from app.db import get_sessionmaker, session_scope
from app.inbox import service as inbox
from app.inbox.models import EventState, InboxEvent
from app.runners.models import Runner
from app.security import KeyRing
from sqlalchemy import func, select

# Long past: the settled events of other tests (processed now) are never before it.
NOW = datetime(2020, 6, 1, 12, 0, tzinfo=UTC)
KEYRING = KeyRing(["q1pEzX0JcDzLm1sXzUTPlTx2sAfE2F1sAlyo3qNQ_5U"])


@pytest.fixture
def runner_id(settings: Settings) -> uuid.UUID:
    with session_scope() as session:
        runner = Runner(id=uuid.uuid4())
        session.add(runner)
    return runner.id


def _event(runner_id: uuid.UUID, object_id: int = 1, aspect: str = "create") -> inbox.NewEvent:
    content = {"object_id": object_id, "aspect_type": aspect, "owner_id": str(runner_id)}
    return inbox.NewEvent(
        source="strava",
        dedupe_key=inbox.dedupe_key(KEYRING, "strava", content),
        runner_id=runner_id,
        object_type="activity",
        object_id=object_id,
        aspect_type=aspect,
        updates={},
        event_time=NOW,
    )


def _count(runner_id: uuid.UUID) -> int:
    with session_scope() as session:
        return int(
            session.scalar(
                select(func.count())
                .select_from(InboxEvent)
                .where(InboxEvent.runner_id == runner_id)
            )
            or 0
        )


def test_the_dedupe_key_is_keyed_and_follows_the_content() -> None:
    content = {"owner_id": 7, "object_id": 1}
    key = inbox.dedupe_key(KEYRING, "strava", content)
    assert key == inbox.dedupe_key(KEYRING, "strava", dict(reversed(list(content.items()))))
    assert key != inbox.dedupe_key(KEYRING, "strava", {**content, "object_id": 2})
    other_ring = KeyRing(["AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"])
    assert key != inbox.dedupe_key(other_ring, "strava", content)
    assert len(key) == 64
    assert key not in KEYRING.blind_indexes("7")  # domain-separated from the athlete index


def test_the_same_event_stored_three_times_is_one_row(runner_id: uuid.UUID) -> None:
    results = []
    for _ in range(3):
        with session_scope() as session:
            results.append(inbox.store(session, _event(runner_id), NOW))
    assert results == [True, False, False]
    assert _count(runner_id) == 1


def test_two_workers_never_claim_the_same_events(runner_id: uuid.UUID) -> None:
    with session_scope() as session:
        for object_id in (1, 2):
            inbox.store(session, _event(runner_id, object_id), NOW)
    sessions = get_sessionmaker()
    with sessions() as first, sessions() as second:
        claimed = inbox.claim_due(first, runner_id, NOW)
        assert len(claimed) == 2
        assert inbox.claim_due(second, runner_id, NOW) == []  # skipped, not waited for
        first.commit()
        second.rollback()
    assert all(e.state == EventState.PROCESSING for e in claimed)
    with sessions() as third:
        assert inbox.claim_due(third, runner_id, NOW) == []  # processing is not due


def test_deferred_events_wait_for_their_time(runner_id: uuid.UUID) -> None:
    with session_scope() as session:
        inbox.store(session, _event(runner_id), NOW)
        (event,) = inbox.claim_due(session, runner_id, NOW)
        inbox.defer(session, [event.id], NOW + timedelta(minutes=15), "rate_limited")
    with session_scope() as session:
        assert inbox.claim_due(session, runner_id, NOW + timedelta(minutes=14)) == []
        again = inbox.claim_due(session, runner_id, NOW + timedelta(minutes=15))
        assert [e.id for e in again] == [event.id]
        assert again[0].attempts == 2


def test_the_tick_redrives_stale_claims_due_deferrals_and_lost_pending(
    runner_id: uuid.UUID,
) -> None:
    with session_scope() as session:
        inbox.store(session, _event(runner_id, 1), NOW)
        inbox.claim_due(session, runner_id, NOW)
    pending_after, stuck_after = timedelta(minutes=2), timedelta(minutes=11)
    with session_scope() as session:
        # Claimed a minute ago: its worker may still be at it.
        assert runner_id not in inbox.owners_to_redrive(
            session,
            NOW + timedelta(minutes=1),
            pending_after=pending_after,
            stuck_after=stuck_after,
        )
    with session_scope() as session:
        # Claimed longer ago than a task may run: the worker died; back to pending and re-sent.
        assert runner_id in inbox.owners_to_redrive(
            session,
            NOW + timedelta(minutes=12),
            pending_after=pending_after,
            stuck_after=stuck_after,
        )
    with session_scope() as session:
        states = set(
            session.scalars(select(InboxEvent.state).where(InboxEvent.runner_id == runner_id))
        )
    assert states == {EventState.PENDING}


def test_settled_events_are_pruned_after_their_retention(runner_id: uuid.UUID) -> None:
    with session_scope() as session:
        for object_id in (1, 2):
            inbox.store(session, _event(runner_id, object_id), NOW)
        first, second = inbox.claim_due(session, runner_id, NOW)
        inbox.settle(session, first.id, EventState.DONE, "upserted", NOW)
    with session_scope() as session:
        assert inbox.prune_settled(session, NOW) == 0  # processed at NOW: not before it
    with session_scope() as session:
        assert inbox.prune_settled(session, NOW + timedelta(days=7)) == 1
    with session_scope() as session:
        left = list(session.scalars(select(InboxEvent.id).where(InboxEvent.runner_id == runner_id)))
    assert left == [second.id]  # still processing: never pruned


def test_the_inbox_works_on_the_embedded_sqlite_database(tmp_path: Path) -> None:
    from app.db import Base, make_engine
    from app.models import import_all_models
    from sqlalchemy.orm import sessionmaker

    import_all_models()
    engine = make_engine(f"sqlite:///{tmp_path / 'embedded.db'}")
    Base.metadata.create_all(engine)
    sessions = sessionmaker(bind=engine, expire_on_commit=False)
    with session_scope(sessions) as session:
        runner = Runner(id=uuid.uuid4())
        session.add(runner)
    with session_scope(sessions) as session:
        assert inbox.store(session, _event(runner.id), NOW)
        assert not inbox.store(session, _event(runner.id), NOW)
    with session_scope(sessions) as session:
        (claimed,) = inbox.claim_due(session, runner.id, NOW)
    with session_scope(sessions) as session:
        assert inbox.claim_due(session, runner.id, NOW) == []
        inbox.settle(session, claimed.id, EventState.DONE, "upserted", NOW)
        assert inbox.depth(session).open_events == 0
    engine.dispose()
