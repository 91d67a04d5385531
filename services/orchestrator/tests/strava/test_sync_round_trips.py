"""What one sync run sends to the database (issue 13): counted statements, not timings."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from app.clock import utcnow
from app.codes import RunState
from app.config import Settings
from app.db import get_engine, session_scope
from app.strava.models import StravaLink
from app.strava.runtime import StravaRuntime
from app.strava.sync import claim_run, run_sync
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


def test_the_claim_is_one_statement_and_takes_a_queued_run_once(
    api: TestClient,
    athlete: dict[str, Any],
    enqueued: list[uuid.UUID],
    statements: list[str],
) -> None:
    run_id = _queued_run(api, athlete, enqueued)
    now = utcnow()
    window = (now - timedelta(days=28), now)
    statements.clear()
    with session_scope() as session:
        claimed = claim_run(
            session,
            run_id,
            now,
            redelivered=False,
            stale_after=timedelta(minutes=10),
            window=window,
        )
        assert claimed is not None
        assert (claimed.state, claimed.attempts) == (RunState.RUNNING, 1)
        assert claimed.window_start == window[0]
        assert claimed.window_end == now
    on_runs = [sql for sql in statements if "sync_runs" in sql]
    assert len(on_runs) == 1
    assert on_runs[0].startswith("UPDATE sync_runs")

    with session_scope() as session:  # a duplicate message for the live run: nothing
        again = claim_run(
            session,
            run_id,
            now,
            redelivered=False,
            stale_after=timedelta(minutes=10),
            window=window,
        )
        assert again is None


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
