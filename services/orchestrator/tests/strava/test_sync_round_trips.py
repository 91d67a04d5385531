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
from app.strava.budget import BudgetSpent, RedisBudget
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


def test_a_two_page_sync_run_sends_nine_statements(
    api: TestClient,
    athlete: dict[str, Any],
    enqueued: list[uuid.UUID],
    strava_runtime: StravaRuntime,
    statements: list[str],
) -> None:
    # Issue 13: the claim is one UPDATE .. RETURNING, the link and the push flag one read, the
    # lease one renewal between the two pages (none before the first), and the write locks the
    # link, upserts, deletes what vanished, and updates the link and the run once each. (The
    # tests' budget is the database one: its statements are the budget's, counted apart.)
    run_id = _queued_run(api, athlete, enqueued)
    statements.clear()

    outcome = run_sync(strava_runtime, run_id)

    assert (outcome.result, outcome.strava_requests) == ("ok", 2)
    statements[:] = [s for s in statements if "strava_rate_budget" not in s]
    kinds = [" ".join(s.split()[:3]) for s in statements]
    assert len(statements) == 9, kinds
    assert statements[0].startswith("UPDATE sync_runs SET")
    assert statements[0].split(" RETURNING ")[1].startswith("sync_runs.runner_id")
    assert "FROM strava_links" in statements[1]
    assert "strava_push_subscriptions" in statements[1]
    assert statements[2].startswith("UPDATE sync_runs SET heartbeat_at")
    assert statements[3].startswith("SELECT")
    assert statements[3].endswith("FOR UPDATE")
    assert statements[4].startswith("SELECT")
    assert "FROM workouts" in statements[4]
    assert statements[5].startswith("INSERT INTO workouts")
    assert statements[6].startswith("DELETE FROM workouts")
    assert statements[7].startswith("UPDATE strava_links SET")
    assert statements[8].startswith("UPDATE sync_runs SET")
    assert "sync_runs.attempts =" in statements[8]


def test_acquiring_with_the_previous_responses_figures_is_one_round_trip(redis_url: str) -> None:
    pool = redis.ConnectionPool.from_url(redis_url, connection_class=_CountingConnection)
    client = redis.Redis(connection_pool=pool)
    prefix = f"test-budget-{uuid.uuid4().hex}"
    budget = RedisBudget(client, prefix=prefix)
    seen = RateLimitSnapshot(
        overall_limit=(200, 2000),
        overall_usage=(10, 100),
        read_limit=(100, 1000),
        read_usage=(5, 50),
    )
    runner_id = uuid.uuid4()
    now = utcnow()
    try:
        budget.acquire(now, runner_id, seen=seen)  # the first call may load the script
        _CountingConnection.sends = 0

        budget.acquire(now, runner_id, seen=seen)

        assert _CountingConnection.sends == 1
        view = budget.view(now)
        assert view.limits is not None
        assert (view.limits.overall, view.limits.read) == ((200, 2000), (100, 1000))
        # Strava's figures taken in first (raised to, never lowered), then each request counted.
        assert (view.used_short, view.used_daily) == (12, 102)
        budget.acquire(now, runner_id)
        assert budget.view(now).used_short == 13
    finally:
        client.delete(*client.keys(f"{prefix}*"))
        client.close()


def test_figures_that_say_a_window_is_spent_refuse_the_acquire_they_come_with(
    redis_url: str,
) -> None:
    client = redis.Redis.from_url(redis_url)
    prefix = f"test-budget-{uuid.uuid4().hex}"
    budget = RedisBudget(client, prefix=prefix)
    spent = RateLimitSnapshot(
        overall_limit=(200, 2000),
        overall_usage=(200, 300),
        read_limit=(100, 1000),
        read_usage=(100, 150),
    )
    try:
        with pytest.raises(BudgetSpent) as refused:
            budget.acquire(utcnow(), uuid.uuid4(), seen=spent)
        assert refused.value.window == "short"
        assert budget.view(utcnow()).blocked_until is not None
    finally:
        client.delete(*client.keys(f"{prefix}*"))
        client.close()
