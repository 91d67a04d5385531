"""The shared rate budget (app/strava/budget.py): the same behaviour from Redis (production), the
PostgreSQL row and the SQLite row (the embedded default). Also the SQLite half of the bulk
upsert, which must work on the embedded database too."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import time_machine
from app.strava.budget import BudgetSpent, DatabaseBudget, RateBudget, RedisBudget
from app.strava.ratelimit import RateLimitSnapshot
from sqlalchemy.orm import Session, sessionmaker

NOW = datetime(2026, 11, 24, 10, 7, 30, tzinfo=UTC)
# Each runner may use a tenth of a window's sync budget (RATE_BUDGET_RUNNER_SHARE).
RUNNER_SHARE = 0.1


def _snapshot(
    read_usage: tuple[int, int], read_limit: tuple[int, int] = (100, 1000)
) -> RateLimitSnapshot:
    return RateLimitSnapshot(
        overall_limit=(200, 2000),
        overall_usage=read_usage,
        read_limit=read_limit,
        read_usage=read_usage,
    )


@pytest.fixture(scope="module")
def sqlite_sessions(tmp_path_factory: pytest.TempPathFactory) -> sessionmaker[Session]:
    from app.db import make_engine
    from app.migrations import upgrade

    url = f"sqlite:///{tmp_path_factory.mktemp('embedded') / 'orchestrator.db'}"
    upgrade(url)
    return sessionmaker(bind=make_engine(url), expire_on_commit=False)


@pytest.fixture(params=["redis", "postgresql", "sqlite"])
def budget(
    request: pytest.FixtureRequest, sqlite_sessions: sessionmaker[Session]
) -> Iterator[RateBudget]:
    made: RateBudget
    if request.param == "redis":
        import redis

        url = request.getfixturevalue("redis_url")
        made = RedisBudget(
            redis.Redis.from_url(url),
            prefix=f"test-budget-{uuid.uuid4().hex}",
            reserve=0.05,
            runner_share=RUNNER_SHARE,
        )
    elif request.param == "postgresql":
        request.getfixturevalue("settings")
        from app.db import get_sessionmaker

        made = DatabaseBudget(get_sessionmaker(), reserve=0.05, runner_share=RUNNER_SHARE)
    else:
        made = DatabaseBudget(sqlite_sessions, reserve=0.05, runner_share=RUNNER_SHARE)
    made.reset()
    with time_machine.travel(NOW, tick=False):
        yield made
    made.reset()


def test_unknown_limits_do_not_stop_anyone(budget: RateBudget) -> None:
    for _ in range(50):
        budget.acquire(NOW)
    assert budget.view(NOW).used_short == 50


def test_the_short_window_stops_at_the_limit_less_the_reserve(budget: RateBudget) -> None:
    budget.record(_snapshot((90, 400)), NOW)  # 95 of 100 may be used by syncs
    for _ in range(5):
        budget.acquire(NOW)
    with pytest.raises(BudgetSpent) as spent:
        budget.acquire(NOW)
    assert spent.value.window == "short"
    assert spent.value.retry_at == datetime(2026, 11, 24, 10, 15, tzinfo=UTC)
    assert budget.view(NOW).remaining_short(0.05) == 0
    # The next window starts from zero.
    budget.acquire(NOW + timedelta(minutes=8))


def test_the_daily_window_defers_until_midnight(budget: RateBudget) -> None:
    budget.record(_snapshot((3, 950)), NOW)
    with pytest.raises(BudgetSpent) as spent:
        budget.acquire(NOW)
    assert spent.value.window == "daily"
    assert spent.value.retry_at == datetime(2026, 11, 25, tzinfo=UTC)


def test_a_spent_window_in_the_headers_blocks_everyone(budget: RateBudget) -> None:
    budget.record(_snapshot((100, 400)), NOW)
    view = budget.view(NOW)
    assert view.blocked_until == datetime(2026, 11, 24, 10, 15, tzinfo=UTC)
    with pytest.raises(BudgetSpent):
        budget.acquire(NOW)


def test_a_block_after_a_429_lasts_until_its_time(budget: RateBudget) -> None:
    until = NOW + timedelta(minutes=7, seconds=30)
    budget.block(until, "short")
    budget.block(NOW + timedelta(minutes=1), "short")  # never shortened
    with pytest.raises(BudgetSpent) as spent:
        budget.acquire(NOW + timedelta(minutes=5))
    assert spent.value.retry_at == until
    with time_machine.travel(until + timedelta(seconds=1), tick=False):
        budget.acquire(until + timedelta(seconds=1))


def test_usage_reported_by_strava_is_never_lowered(budget: RateBudget) -> None:
    for _ in range(10):
        budget.acquire(NOW)
    budget.record(_snapshot((4, 4)), NOW)
    assert budget.view(NOW).used_short == 10
    budget.record(_snapshot((30, 30)), NOW)
    assert budget.view(NOW).used_short == 30


@pytest.fixture
def two_runners(
    request: pytest.FixtureRequest, sqlite_sessions: sessionmaker[Session]
) -> list[uuid.UUID]:
    """Two runners in the budget's database (its per-runner counters refer to them)."""
    from app.runners.models import Runner

    ids = [uuid.uuid4(), uuid.uuid4()]
    store = request.node.callspec.params["budget"]
    if store != "redis":
        from app.db import get_sessionmaker

        sessions = get_sessionmaker() if store == "postgresql" else sqlite_sessions
        with sessions.begin() as session:
            session.add_all(Runner(id=runner_id) for runner_id in ids)
    return ids


def test_one_runner_cannot_spend_everyone_s_window(
    budget: RateBudget, two_runners: list[uuid.UUID]
) -> None:
    greedy, other = two_runners
    budget.record(_snapshot((0, 0)), NOW)  # 95 of 100 for syncs: 9 for each runner
    for _ in range(9):
        budget.acquire(NOW, greedy)
    with pytest.raises(BudgetSpent) as spent:
        budget.acquire(NOW, greedy)
    assert spent.value.retry_at == datetime(2026, 11, 24, 10, 15, tzinfo=UTC)
    # The others go on: another runner, and requests charged to no runner (a token refresh).
    for _ in range(9):
        budget.acquire(NOW, other)
    budget.acquire(NOW)
    assert budget.view(NOW).blocked_until is None
    assert budget.view(NOW).used_short == 19
    # The next window gives the greedy runner a fresh share.
    budget.acquire(NOW + timedelta(minutes=8), greedy)


def test_concurrent_workers_never_overspend(budget: RateBudget) -> None:
    budget.record(_snapshot((0, 0), read_limit=(40, 1000)), NOW)  # 38 with the reserve
    granted: list[bool] = []
    lock = threading.Lock()

    def worker() -> None:
        for _ in range(10):
            try:
                budget.acquire(NOW)
                ok = True
            except BudgetSpent:
                ok = False
            with lock:
                granted.append(ok)

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert granted.count(True) == 38


def test_bulk_upsert_on_sqlite(sqlite_sessions: sessionmaker[Session], tmp_path: Path) -> None:
    """The embedded database takes the same INSERT .. ON CONFLICT DO UPDATE path."""
    from app.runners.models import Runner
    from app.strava.ingest import delete_vanished, upsert_workouts
    from app.strava.payloads import SummaryActivity
    from app.workouts.models import Workout
    from sqlalchemy import select

    runner_id = uuid.uuid4()

    def activity(activity_id: int, name: str) -> SummaryActivity:
        return SummaryActivity.model_validate(
            {
                "id": activity_id,
                "name": name,
                "sport_type": "Run",
                "start_date": "2026-11-20T07:00:00Z",
                "elapsed_time": 1800,
                "map": None,
            }
        )

    with sqlite_sessions.begin() as session:
        session.add(Runner(id=runner_id))
    with sqlite_sessions.begin() as session:
        first = upsert_workouts(session, runner_id, [activity(1, "a"), activity(2**62, "b")], NOW)
    assert (first.inserted, first.updated, first.unchanged) == (2, 0, 0)
    with sqlite_sessions.begin() as session:
        second = upsert_workouts(session, runner_id, [activity(1, "a"), activity(2**62, "c")], NOW)
        gone = delete_vanished(session, runner_id, {2**62}, NOW - timedelta(days=28))
    assert (second.inserted, second.updated, second.unchanged) == (0, 1, 1)
    assert gone == 1
    with sqlite_sessions() as session:
        rows = session.execute(
            select(Workout.source_id, Workout.name).where(Workout.runner_id == runner_id)
        ).all()
    assert [tuple(row) for row in rows] == [(2**62, "c")]
