"""Test set-up: a PostgreSQL database of our own built by the migrations, the Strava emulator
over real HTTP, and the API in-process.

Tests commit for real (a worker in another thread or process must see the data), so isolation
comes from every test making its own runner and its own emulator athlete; the database is
dropped at the end of the session.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from app.config import Settings
    from app.strava.runtime import StravaRuntime
    from factories import RecordingClient
    from fastapi.testclient import TestClient
    from strava_emulator.testing import EmulatorHandle

IN_CI = os.environ.get("CI") == "true"
ADMIN_URL = os.environ.get("TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
TEST_DB = f"orch_test_{os.getpid()}_{uuid.uuid4().hex[:6]}"
TEST_DB_URL = ADMIN_URL.rsplit("/", 1)[0] + "/" + TEST_DB
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
EMULATOR_LIMITS = (1_000_000, 10_000_000)

# Settings are read from the environment: point them at the test services before app imports.
os.environ.update(
    {
        "DATABASE_URL": TEST_DB_URL,
        "TOKEN_ENCRYPTION_KEYS": "q1pEzX0JcDzLm1sXzUTPlTx2sAfE2F1sAlyo3qNQ_5U",
        "STRAVA_REDIRECT_URIS": "coachai://oauth/strava",
        "PUBLIC_BASE_URL": "http://127.0.0.1:8000",
        # The suite creates hundreds of runners from one client; tests/test_runner_sessions.py
        # checks the per-client limit with a small one of its own.
        "SESSION_CREATE_LIMIT": "1000000",
    }
)
os.environ.pop("REDIS_URL", None)
os.environ.pop("STRAVA_CLIENT_ID", None)


def _unavailable(what: str, exc: Exception) -> None:
    message = f"{what} is not reachable: {exc}"
    if IN_CI:
        pytest.fail(message)  # under CI a missing service is a failure, never a skip
    pytest.skip(message)


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    from sqlalchemy import create_engine, text

    admin = create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{TEST_DB}"'))
    except Exception as exc:
        _unavailable("PostgreSQL", exc)
    from app.migrations import upgrade

    upgrade(TEST_DB_URL)
    yield TEST_DB_URL
    from app.db import get_engine

    get_engine().dispose()
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{TEST_DB}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(scope="session")
def redis_url() -> str:
    import redis

    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
    except redis.RedisError as exc:
        _unavailable("Redis", exc)
    return REDIS_URL


@pytest.fixture(scope="session")
def emulator() -> Iterator[EmulatorHandle]:
    from strava_emulator.config import EmulatorConfig
    from strava_emulator.testing import run_emulator

    # The deep link coachai://oauth/strava has the host `oauth`: that is the callback domain.
    # Limits far above what the suite spends: the rate-limit tests lower them for themselves.
    # Webhooks: a failed delivery is retried after 0.2 s (Strava: minutes), and generated
    # activities get their events only when a test asks (no background scan).
    config = EmulatorConfig(
        callback_domain="oauth",
        athletes=3,
        overall_limit=EMULATOR_LIMITS,
        read_limit=EMULATOR_LIMITS,
        webhook_retry_delay_seconds=0.2,
        webhook_scan_seconds=0,
    )
    with run_emulator(config) as handle:
        yield handle


@pytest.fixture(scope="session")
def settings(database_url: str, emulator: EmulatorHandle) -> Settings:
    from app.config import get_settings
    from app.db import engine_for, sessionmaker_for

    os.environ["SANDBOX_EMULATOR_URL"] = emulator.base_url
    get_settings.cache_clear()
    engine_for.cache_clear()
    sessionmaker_for.cache_clear()
    settings = get_settings()
    assert settings.database_url.endswith(TEST_DB)
    return settings


@pytest.fixture
def enqueued() -> list[uuid.UUID]:
    """Sync runs the API asked to enqueue (tests of the link flow run no worker)."""
    return []


@pytest.fixture
def api(settings: Settings, enqueued: list[uuid.UUID]) -> Iterator[TestClient]:
    from app.main import create_app
    from fastapi.testclient import TestClient

    with TestClient(create_app(settings, enqueue_sync=enqueued.append)) as client:
        yield client


@pytest.fixture
def athlete(emulator: EmulatorHandle) -> dict[str, Any]:
    """A fresh emulator athlete with generated history, for this test alone."""
    return emulator.admin.create_athlete()


@pytest.fixture(autouse=True)
def _clear_emulator_faults(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if "emulator" in request.fixturenames:
        request.getfixturevalue("emulator").admin.clear_faults()


# --- sync (issue 4) ------------------------------------------------------------------------------


@pytest.fixture
def strava_runtime(settings: Settings) -> Iterator[StravaRuntime]:
    """The sync's collaborators against the emulator and the test database, with the embedded
    (database) rate budget emptied before and after; client retries do not wait."""
    import stamina
    from app.db import get_sessionmaker
    from app.strava.budget import DatabaseBudget
    from app.strava.runtime import build_runtime

    budget = DatabaseBudget(get_sessionmaker(), reserve=settings.rate_budget_reserve)
    budget.reset()
    deps = build_runtime(settings, budget=budget, timeout_s=2.0)
    with stamina.set_testing(True, attempts=3, cap=True):
        yield deps
    budget.reset()
    deps.close()


@pytest.fixture
def tight_rate_limits(emulator: EmulatorHandle) -> Iterator[None]:
    """For a test that spends Strava's limits: the emulator's generous limits come back after."""
    yield
    emulator.admin.set_rate_limits(
        overall_limit=EMULATOR_LIMITS,
        read_limit=EMULATOR_LIMITS,
        overall_usage=(0, 0),
        read_usage=(0, 0),
    )


# --- real Celery workers on Redis ---------------------------------------------------------------


@pytest.fixture(scope="module")
def worker_settings(
    settings: Settings, redis_url: str, emulator: EmulatorHandle
) -> Iterator[Settings]:
    from workers import forget_redis_keys, worker_env_vars, worker_environment

    with worker_environment(**worker_env_vars(redis_url)) as worker_settings:
        yield worker_settings
    forget_redis_keys(redis_url, worker_settings)


@pytest.fixture(scope="module")
def celery_worker(worker_settings: Settings) -> Iterator[Any]:
    """A real Celery worker (solo pool) in a thread of this process, consuming the session's
    own queue on Redis (celery.contrib.testing; no Docker)."""
    import stamina
    from app.worker import celery_app
    from celery.contrib.testing.worker import start_worker

    with (
        stamina.set_testing(True, attempts=3, cap=True),
        start_worker(
            celery_app,
            pool="solo",
            perform_ping_check=False,
            loglevel="WARNING",
            shutdown_timeout=60,
        ) as worker,
    ):
        yield worker


@pytest.fixture
def worker_api(worker_settings: Settings, celery_worker: Any) -> Iterator[TestClient]:
    """The API enqueueing through Celery for the worker above; an empty rate budget per test."""
    from app.main import create_app
    from app.strava import tasks
    from fastapi.testclient import TestClient

    tasks.runtime().budget.reset()
    with TestClient(create_app(worker_settings)) as client:
        yield client
    tasks.runtime().budget.reset()


@pytest.fixture
def recording_api(settings: Settings) -> Iterator[tuple[TestClient, RecordingClient]]:
    """The API with a Strava client that remembers the tokens it received (to look for them)."""
    import httpx2
    from app.main import create_app
    from factories import RecordingClient
    from fastapi.testclient import TestClient

    with httpx2.Client() as http:
        client = RecordingClient(
            http,
            api_base_url=settings.api_base_url,
            oauth_base_url=settings.oauth_base_url,
            client_id=settings.client_id,
            client_secret=settings.client_secret,
        )
        client.received = []
        with TestClient(
            create_app(settings, strava_client=client, enqueue_sync=lambda _: None)
        ) as api:
            yield api, client
