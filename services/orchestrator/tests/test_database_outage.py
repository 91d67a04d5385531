"""A database that hangs or refuses (issue 10 item 10): connect and statement timeouts, liveness
off the threadpool, a bounded /readyz, and every database error a JSON 503 service_unavailable
with Retry-After, never a text/plain 500."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
from app.config import Settings
from app.db import EngineOptions, make_engine
from app.main import create_app
from fastapi.testclient import TestClient
from live import closed_port, serving, silent_database
from sqlalchemy import Connection, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

# A ceiling for a slow machine, never a wait: the answers come as soon as the server gives them.
CEILING_S = 30.0


def _pointed_at(settings: Settings, port: int, **update: Any) -> Settings:
    return settings.model_copy(
        update={
            "database_url": f"postgresql+psycopg://postgres@127.0.0.1:{port}/orchestrator",
            "db_connect_timeout_seconds": 2,
            "readyz_timeout_seconds": 1.0,
            **update,
        }
    )


def _assert_service_unavailable(response: Any) -> None:
    assert isinstance(response, httpx2.Response), response
    assert response.status_code == 503, response.text[:200]
    assert response.headers["content-type"].startswith("application/json")
    assert response.json()["error"] == "service_unavailable"
    assert int(response.headers["retry-after"]) >= 1


@pytest.fixture
def silent_port() -> Iterator[int]:
    with silent_database() as port:
        yield port


def test_a_silent_database_leaves_healthz_live_and_readyz_bounded(
    settings: Settings, silent_port: int
) -> None:
    app = create_app(_pointed_at(settings, silent_port), enqueue_sync=lambda _: None)
    headers = {"Authorization": "Bearer some-runner-token"}
    answers: list[Any] = []
    lock = threading.Lock()

    def status(base_url: str) -> None:
        try:
            answer: Any = httpx2.get(
                f"{base_url}/api/v1/strava/status", headers=headers, timeout=CEILING_S * 2
            )
        except httpx2.HTTPError as exc:
            answer = exc
        with lock:
            answers.append(answer)

    with serving(app) as base_url:
        # 45 API calls stuck on the database, as many probes as the reproduction.
        callers = [threading.Thread(target=status, args=(base_url,)) for _ in range(45)]
        for caller in callers:
            caller.start()
        live = httpx2.get(f"{base_url}/healthz", timeout=CEILING_S)
        ready = httpx2.get(f"{base_url}/readyz", timeout=CEILING_S)
        for caller in callers:
            caller.join()
    assert live.status_code == 200
    assert live.json() == {"status": "ok"}
    assert ready.status_code == 503
    assert ready.json()["status"] == "not_ready"
    assert ready.json()["checks"]["database"] == "unavailable"
    for answer in answers:
        _assert_service_unavailable(answer)


def test_a_refused_database_gives_json_503_on_api_calls(settings: Settings) -> None:
    app = create_app(_pointed_at(settings, closed_port()), enqueue_sync=lambda _: None)
    headers = {"Authorization": "Bearer some-runner-token"}
    with TestClient(app, raise_server_exceptions=False) as api:
        _assert_service_unavailable(api.post("/api/v1/auth/sessions", json={}))
        _assert_service_unavailable(api.get("/api/v1/strava/status", headers=headers))
        _assert_service_unavailable(api.post("/api/v1/strava/sync", json={}, headers=headers))
        _assert_service_unavailable(api.get("/api/v1/workouts", headers=headers))
        ready = api.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["checks"]["database"] == "unavailable"
        assert api.get("/healthz").status_code == 200


def test_a_statement_over_the_timeout_is_cancelled(settings: Settings) -> None:
    from app.db import EngineOptions, make_engine

    engine = make_engine(settings.database_url, EngineOptions(statement_timeout_s=0.2))
    try:
        with engine.connect() as connection, pytest.raises(OperationalError) as cancelled:
            connection.execute(text("SELECT pg_sleep(30)"))
        assert type(cancelled.value.orig).__name__ == "QueryCanceled"
    finally:
        engine.dispose()


def test_the_embedded_database_opens_as_many_connections_as_sessions_are_admitted(
    tmp_path: Path,
) -> None:
    """admit_session lets pool_capacity requests hold a session: on SQLite too, each of them
    gets a connection at once (SQLAlchemy's default would stop at 5 + 10), and no more."""
    options = EngineOptions(pool_size=2, max_overflow=14, pool_timeout_s=0.1)
    engine = make_engine(f"sqlite:///{tmp_path / 'embedded.db'}", options)
    held: list[Connection] = []
    try:
        for _ in range(options.pool_capacity):
            held.append(engine.connect())
        with pytest.raises(PoolTimeout):
            engine.connect()
    finally:
        for connection in held:
            connection.close()
        engine.dispose()
