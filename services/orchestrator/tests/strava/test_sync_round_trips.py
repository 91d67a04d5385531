"""What one sync run sends to the database (issue 13): counted statements, not timings."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis
from app.clock import utcnow
from app.config import Settings
from app.db import get_engine, session_scope
from app.strava.budget import RedisBudget
from app.strava.models import StravaLink
from app.strava.ratelimit import RateLimitSnapshot
from app.strava.runtime import StravaRuntime
from app.strava.sync import run_sync
from factories import linked_runner
from fastapi.testclient import TestClient
from sqlalchemy import event, select, update


@pytest.fixture
def statements(settings: Settings) -> Iterator[list[str]]:
    """The SQL of every statement the process's engine sends from here on."""
    sent: list[str] = []

    def note(_: Any, __: Any, statement: str, *___: Any) -> None:
        sent.append(" ".join(statement.split()))

    engine = get_engine()
    event.listen(engine, "before_cursor_execute", note)
    yield sent
    event.remove(engine, "before_cursor_execute", note)


def _queued_run(api: TestClient, athlete: dict[str, Any], enqueued: list[uuid.UUID]) -> uuid.UUID:
    linked_runner(api, athlete["id"])
    return enqueued[-1]


def test_a_sync_run_reads_the_link_twice_claim_and_locked_write(
    api: TestClient,
    athlete: dict[str, Any],
    enqueued: list[uuid.UUID],
    strava_runtime: StravaRuntime,
    statements: list[str],
) -> None:
    run_id = _queued_run(api, athlete, enqueued)
    statements.clear()

    outcome = run_sync(strava_runtime, run_id)

    assert outcome.result == "ok"
    assert outcome.fetched > 0
    link_reads = [s for s in statements if s.startswith("SELECT") and "FROM strava_links" in s]
    # The claim's read serves the access token (fresh): no read of its own before the listing.
    assert len(link_reads) == 2
    assert link_reads[-1].endswith("FOR UPDATE")


def test_an_expiring_token_is_still_refreshed_before_the_listing(
    api: TestClient,
    athlete: dict[str, Any],
    enqueued: list[uuid.UUID],
    strava_runtime: StravaRuntime,
) -> None:
    runner = linked_runner(api, athlete["id"])
    with session_scope() as session:
        session.execute(
            update(StravaLink)
            .where(StravaLink.runner_id == uuid.UUID(runner.runner_id))
            .values(access_token_expires_at=datetime.now(UTC) + timedelta(minutes=1))
        )

    assert run_sync(strava_runtime, enqueued[-1]).result == "ok"

    with session_scope() as session:
        link = session.scalars(
            select(StravaLink).where(StravaLink.runner_id == uuid.UUID(runner.runner_id))
        ).one()
        assert link.token_version == 2  # refreshed once, through access_grant


class _CountingConnection(redis.Connection):
    """A Redis connection that counts what it sends: one send per round trip."""

    sends = 0

    def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        type(self).sends += 1
        super().send_packed_command(command, check_health)


def test_recording_a_response_in_the_redis_budget_is_one_round_trip(redis_url: str) -> None:
    pool = redis.ConnectionPool.from_url(redis_url, connection_class=_CountingConnection)
    client = redis.Redis(connection_pool=pool)
    prefix = f"test-budget-{uuid.uuid4().hex}"
    budget = RedisBudget(client, prefix=prefix)
    snapshot = RateLimitSnapshot(
        overall_limit=(200, 2000),
        overall_usage=(10, 100),
        read_limit=(100, 1000),
        read_usage=(5, 50),
    )
    now = utcnow()
    try:
        budget.record(snapshot, now)  # the first call may load the script into Redis
        _CountingConnection.sends = 0

        budget.record(snapshot, now)

        assert _CountingConnection.sends == 1
        view = budget.view(now)
        assert view.limits is not None
        assert (view.limits.overall, view.limits.read) == ((200, 2000), (100, 1000))
        assert (view.used_short, view.used_daily) == (10, 100)
    finally:
        client.delete(*client.keys(f"{prefix}*"))
        client.close()
