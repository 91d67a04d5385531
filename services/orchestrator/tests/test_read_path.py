"""The read path the app polls (status, profile summary) and the pool under it (issue 13): what
each read sends to the database, read-only sessions, the liveness of pooled connections, the
access log. Speed itself is measured by bench/api.py, never here."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import time_machine
from app.clock import utcnow
from app.config import Settings
from app.db import EngineOptions, ReadOnlyError, engine_for, make_engine, read_sessionmaker_for
from app.main import create_app
from app.runners.models import Runner
from app.strava.models import StravaLink
from factories import linked_runner, new_runner, synced_runner
from fastapi.testclient import TestClient
from psycopg.pq import TransactionStatus
from sqlalchemy import Engine, create_engine, event, select, text, update
from sqlalchemy.exc import DBAPIError
from waiting import wait_until


@pytest.fixture
def database_work() -> Iterator[Counter[str]]:
    """What the API's engines send from here on (the sync one and the polled reads' async one,
    app.db.make_read_engine): statements, commits."""
    engine = Engine  # every engine of the process
    counts: Counter[str] = Counter()

    def statement(*_: Any) -> None:
        counts["statements"] += 1

    def commit(*_: Any) -> None:
        counts["commits"] += 1

    event.listen(engine, "before_cursor_execute", statement)
    event.listen(engine, "commit", commit)
    yield counts
    event.remove(engine, "before_cursor_execute", statement)
    event.remove(engine, "commit", commit)


def test_the_status_is_one_statement_token_included_and_commits_nothing(
    api: TestClient,
    athlete: dict[str, Any],
    enqueued: list[uuid.UUID],
    strava_runtime: Any,
    database_work: Counter[str],
) -> None:
    runner = synced_runner(api, athlete, enqueued, strava_runtime)
    database_work.clear()

    status = runner.status()

    assert status["status"] == "linked"
    assert status["sync"]["workouts_in_window"] > 0
    # The token, the link, the active run, the window count, the last attempt: one statement.
    assert database_work == Counter({"statements": 1})


def test_the_summary_commits_nothing_and_reads_in_one_statement(
    api: TestClient, athlete: dict[str, Any], database_work: Counter[str]
) -> None:
    runner = linked_runner(api, athlete["id"])
    database_work.clear()

    response = runner.get("/api/v1/profile/summary")

    assert response.status_code == 200, response.text
    assert response.json()["strava"]["status"] == "linked"
    # The token, the profile, the status and the training load's workouts: one statement.
    assert database_work == Counter({"statements": 1})


def test_a_read_without_a_valid_token_is_401_before_any_work(api: TestClient) -> None:
    for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic a"}):
        for path in ("/api/v1/strava/status", "/api/v1/profile/summary"):
            response = api.get(path, headers=headers)
            assert response.status_code == 401, (path, headers)
            assert response.json()["error"] == "unauthenticated"


def test_the_status_of_a_runner_never_linked_shows_the_last_failed_attempt(
    api: TestClient, emulator: Any
) -> None:
    from factories import consent, start_link

    runner = new_runner(api)
    assert runner.status()["error"] is None
    start = start_link(runner)
    callback = consent(start.authorize_url, emulator.admin.create_athlete()["id"], cancel=True)
    runner.post("/api/v1/strava/callback", {**callback, "code_verifier": start.verifier})

    status = runner.status()

    assert status["status"] == "not_linked"
    assert status["error"]["code"] == "access_denied"
    assert {key: status["sync"][key] for key in ("state", "last_result", "workouts_in_window")} == {
        "state": "idle",
        "last_result": None,
        "workouts_in_window": 0,
    }


def test_a_read_only_session_holds_no_transaction_and_refuses_writes(settings: Settings) -> None:
    with read_sessionmaker_for(settings.database_url)() as session:
        session.execute(select(1))
        dbapi = session.connection().connection.dbapi_connection
        assert dbapi is not None
        # Autocommit: nothing was begun, so there is nothing to commit or roll back.
        assert dbapi.info.transaction_status == TransactionStatus.IDLE

        session.add(Runner(id=uuid.uuid4()))
        with pytest.raises(ReadOnlyError):
            session.flush()
        session.rollback()
        with pytest.raises(ReadOnlyError):
            session.execute(update(StravaLink).values(scopes="read"))


def _backend_pid(engine: Engine) -> int:
    with engine.connect() as connection:
        pid: int = connection.execute(text("SELECT pg_backend_pid()")).scalar_one()
    return pid


def _terminate(admin: Engine, pid: int) -> None:
    with admin.connect() as connection:
        connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})

    def gone() -> bool:
        with admin.connect() as connection:
            return not connection.execute(
                text("SELECT 1 FROM pg_stat_activity WHERE pid = :pid"), {"pid": pid}
            ).first()

    wait_until(gone, timeout=10)


@pytest.fixture
def admin(settings: Settings) -> Iterator[Engine]:
    engine = create_engine(settings.database_url, isolation_level="AUTOCOMMIT")
    yield engine
    engine.dispose()


def _count_pings(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    pings: list[int] = []
    real_ping = engine.dialect.do_ping

    def counting_ping(dbapi_connection: Any) -> bool:
        pings.append(1)
        return real_ping(dbapi_connection)

    monkeypatch.setattr(engine.dialect, "do_ping", counting_ping)
    return pings


def test_a_connection_back_in_the_pool_moments_ago_is_used_without_a_ping(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = make_engine(settings.database_url, ping_idle_after_s=3600)
    pings = _count_pings(engine, monkeypatch)
    try:
        first, second = _backend_pid(engine), _backend_pid(engine)
    finally:
        engine.dispose()

    assert first == second  # the same pooled connection, reused
    assert pings == []


def test_an_idle_connection_that_died_is_replaced_before_use(
    settings: Settings, admin: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Idle for 0 s or more: every checkout of a pooled connection counts as idle here.
    engine = make_engine(settings.database_url, ping_idle_after_s=0)
    pings = _count_pings(engine, monkeypatch)
    try:
        killed = _backend_pid(engine)
        _terminate(admin, killed)

        replacement = _backend_pid(engine)  # no error: the ping found it dead
    finally:
        engine.dispose()

    assert replacement != killed
    assert pings


def test_a_connection_that_died_while_busy_fails_once_then_the_pool_reconnects(
    settings: Settings, admin: Engine
) -> None:
    engine = make_engine(settings.database_url, ping_idle_after_s=3600)
    try:
        killed = _backend_pid(engine)
        _terminate(admin, killed)
        with pytest.raises(DBAPIError) as failure, engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        assert failure.value.connection_invalidated

        assert _backend_pid(engine) != killed
    finally:
        engine.dispose()


def test_the_access_log_records_every_request_a_crash_included(
    settings: Settings, capfd: pytest.CaptureFixture[str]
) -> None:
    app = create_app(settings, enqueue_sync=lambda _: None)

    @app.get("/crash")
    def crash() -> None:
        raise RuntimeError("boom")

    with TestClient(app, raise_server_exceptions=False) as client:
        assert client.get("/healthz?code=secret-code").status_code == 200
        assert client.get("/crash").status_code == 500
    logs = capfd.readouterr()
    lines = [line for line in (logs.out + logs.err).splitlines() if "http.request" in line]

    assert any("path=/healthz" in line and "status=200" in line for line in lines), lines
    assert any("path=/crash" in line and "status=500" in line for line in lines), lines
    assert "secret-code" not in logs.out + logs.err


def test_a_defect_is_a_json_500_that_does_not_echo_the_exception(
    settings: Settings, capfd: pytest.CaptureFixture[str]
) -> None:
    app = create_app(settings, enqueue_sync=lambda _: None)

    @app.get("/crash")
    def crash() -> None:
        raise RuntimeError("token=secret-value")

    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.get("/crash")

    assert response.status_code == 500
    assert response.headers["content-type"] == "application/json"
    assert response.json()["error"] == "internal_error"
    assert "secret-value" not in response.text
    logs = capfd.readouterr()
    assert "http.internal_error" in logs.out + logs.err


def test_the_polled_reads_run_on_the_async_driver(api: TestClient, athlete: dict[str, Any]) -> None:
    """Status and summary read on the event loop (app.db.make_read_engine), not in a thread."""
    runner = linked_runner(api, athlete["id"])
    drivers: list[bool] = []

    def record(connection: Any, *_: Any) -> None:
        drivers.append(connection.dialect.is_async)

    event.listen(Engine, "before_cursor_execute", record)
    try:
        assert runner.get("/api/v1/strava/status").status_code == 200
        assert runner.get("/api/v1/profile/summary").status_code == 200
    finally:
        event.remove(Engine, "before_cursor_execute", record)

    assert drivers == [True, True]  # one statement each


def test_the_polled_reads_connection_refuses_writes_on_the_server(settings: Settings) -> None:
    from app.db import make_read_engine
    from sqlalchemy.exc import InternalError

    async def write() -> None:
        engine = make_read_engine(settings.database_url)
        assert engine is not None
        try:
            async with engine.connect() as connection:
                await connection.execute(update(StravaLink).values(scopes="read"))
        finally:
            await engine.dispose()

    with pytest.raises(InternalError, match="read-only transaction"):
        asyncio.run(write())


def test_an_expired_token_reads_no_summary(api: TestClient, settings: Settings) -> None:
    runner = new_runner(api)
    lifetime = timedelta(seconds=settings.session_ttl_seconds)

    with time_machine.travel(utcnow() + lifetime - timedelta(minutes=5), tick=False):
        assert runner.get("/api/v1/profile/summary").status_code == 200
    with time_machine.travel(utcnow() + lifetime + timedelta(minutes=5), tick=False):
        expired = runner.get("/api/v1/profile/summary")

    assert expired.status_code == 401
    assert expired.json()["error"] == "unauthenticated"


def test_the_polled_reads_work_on_the_embedded_database(settings: Settings, tmp_path: Path) -> None:
    """SQLite has no async driver here: the reads take one thread-pool hop, same answers."""
    from app.migrations import upgrade

    url = f"sqlite:///{tmp_path / 'embedded.db'}"
    upgrade(url)
    embedded = settings.model_copy(update={"database_url": url})
    with TestClient(create_app(embedded, enqueue_sync=lambda _: None)) as client:
        runner = new_runner(client, name="Embedded Runner")
        status = runner.get("/api/v1/strava/status")
        summary = runner.get("/api/v1/profile/summary")
        refused = client.get(
            "/api/v1/profile/summary", headers={"Authorization": "Bearer not-a-token"}
        )
    engine_for(url, EngineOptions.from_settings(embedded)).dispose()

    assert status.status_code == 200, status.text
    assert status.json()["status"] == "not_linked"
    assert summary.status_code == 200, summary.text
    assert summary.json()["profile"]["display_name"] == "Embedded Runner"
    assert summary.json()["strava"]["status"] == "not_linked"
    assert summary.json()["training"]["runs"] == 0
    assert refused.status_code == 401


def test_an_idle_read_connection_that_died_is_replaced_before_use(
    settings: Settings, admin: Engine
) -> None:
    """The async read engine pings idle connections as the other does (make_engine)."""
    from app.db import make_read_engine

    async def backend_pid(engine: Any) -> int:
        async with engine.connect() as connection:
            pid: int = (await connection.execute(text("SELECT pg_backend_pid()"))).scalar_one()
        return pid

    async def check() -> tuple[int, int]:
        # Idle for 0 s or more: every checkout of a pooled connection is pinged here.
        engine = make_read_engine(settings.database_url, ping_idle_after_s=0)
        assert engine is not None
        try:
            killed = await backend_pid(engine)
            await asyncio.to_thread(_terminate, admin, killed)
            return killed, await backend_pid(engine)  # no error: the ping found it dead
        finally:
            await engine.dispose()

    killed, replacement = asyncio.run(check())

    assert replacement != killed


def test_one_app_under_two_lifespans_reads_on_each_loops_own_engine(settings: Settings) -> None:
    """Two TestClients run one app on two event loops: each reads on its own loop's engine, and
    the first one ending leaves the second reading."""
    app = create_app(settings, enqueue_sync=lambda _: None)
    with TestClient(app) as second:
        with TestClient(app) as first:
            runner = new_runner(first)
            assert first.get("/api/v1/strava/status", headers=runner.headers).status_code == 200
            summary = second.get("/api/v1/profile/summary", headers=runner.headers)
            assert summary.status_code == 200
        # The first lifespan ended (its engine disposed): the second reads on its own.
        assert second.get("/api/v1/strava/status", headers=runner.headers).status_code == 200
