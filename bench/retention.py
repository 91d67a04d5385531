"""Retention cost on PostgreSQL: one pass of the policy (docs/retention.md) over a large table.

    uv run python bench/retention.py [--runners 2000] [--workouts-per-runner 60]

Needs PostgreSQL (TEST_DATABASE_URL, default postgresql+psycopg://postgres@127.0.0.1:5432/test:
a database of its own is created next to it and dropped at the end).

1. Set-up (not timed): a fresh database built by the migrations; N runners, each with W Strava
   workouts spread evenly over the last 2 x SYNC_WINDOW_DAYS (so about half are out of the
   window), and one finished sync run per workout day.
2. A pass that deletes: the out-of-window half (and nothing else), in batches of 1,000.
3. A pass with nothing to delete: what the hourly run costs once the backlog is gone.

Reported: rows deleted, seconds, rows/s, and the idle pass in ms.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import uuid
from datetime import timedelta
from pathlib import Path

ADMIN_URL = os.environ.get("TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
ROOT = Path(__file__).resolve().parents[1]
BENCH_KEY = (
    "q1pEzX0JcDzLm1sXzUTPlTx2sAfE2F1sAlyo3qNQ_5U"  # a throwaway key for a throwaway database
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runners", type=int, default=2000)
    parser.add_argument("--workouts-per-runner", type=int, default=60)
    args = parser.parse_args()

    name = f"bench_retention_{uuid.uuid4().hex[:8]}"
    url = ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    os.environ.update(
        {
            "DATABASE_URL": url,
            "TOKEN_ENCRYPTION_KEYS": "q1pEzX0JcDzLm1sXzUTPlTx2sAfE2F1sAlyo3qNQ_5U",
        }
    )
    sys.path.insert(0, str(ROOT / "services" / "orchestrator"))

    from sqlalchemy import create_engine, text

    admin = create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        run(url, args.runners, args.workouts_per_runner)
    finally:
        from app.db import get_engine

        get_engine().dispose()
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def run(url: str, runners: int, per_runner: int) -> None:
    from app.clock import utcnow
    from app.config import get_settings
    from app.db import get_sessionmaker, session_scope
    from app.migrations import upgrade
    from app.runners.models import Runner
    from app.strava.models import SyncRun
    from app.strava.retention import RetentionPolicy, apply_retention
    from app.workouts.models import Workout
    from sqlalchemy import insert as sql_insert

    upgrade(url)
    settings = get_settings()
    policy = RetentionPolicy.from_settings(settings)
    now = utcnow()
    span = timedelta(days=2 * policy.window_days)
    source_id = 0
    with session_scope() as session:
        for _ in range(runners):
            runner_id = uuid.uuid4()
            session.execute(sql_insert(Runner).values(id=runner_id, created_at=now))
            rows = []
            for n in range(per_runner):
                source_id += 1
                rows.append(
                    {
                        "id": uuid.uuid4(),
                        "runner_id": runner_id,
                        "source": "strava",
                        "source_id": source_id,
                        "sport_type": "Run",
                        "is_run": True,
                        "start_date": now - span * (n + 0.5) / per_runner,
                        "raw": {},
                        "manual": False,
                        "trainer": False,
                    }
                )
            session.execute(sql_insert(Workout), rows)
            session.execute(
                sql_insert(SyncRun),
                [
                    {
                        "id": uuid.uuid4(),
                        "runner_id": runner_id,
                        "trigger": "schedule",
                        "state": "finished",
                        "created_at": now - timedelta(days=day),
                        "result": "ok",
                    }
                    for day in range(2 * policy.window_days)
                ],
            )
    total = runners * per_runner
    print(f"set-up: {runners} runners, {total} workouts, {runners * 2 * policy.window_days} runs")

    started = time.perf_counter()
    report = apply_retention(get_sessionmaker(), policy)
    elapsed = time.perf_counter() - started
    deleted = report.total
    print(f"pass with a backlog: {report.summary()}")
    print(f"  {deleted} rows in {elapsed:.2f} s = {deleted / elapsed:,.0f} rows/s")

    started = time.perf_counter()
    idle = apply_retention(get_sessionmaker(), policy)
    elapsed_idle = time.perf_counter() - started
    assert idle.total == 0, idle.summary()
    left = total - report.workouts_out_of_window
    print(f"idle pass over {left} workouts: {elapsed_idle * 1000:.0f} ms")


if __name__ == "__main__":
    main()
