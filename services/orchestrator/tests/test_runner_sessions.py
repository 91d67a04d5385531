"""Anonymous sessions (issue 10 item 15): a per-client limit on creating them (in memory, or in
Redis shared by every API process) and an expiry after which the token is refused."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest
import time_machine
from app.clock import utcnow
from app.config import Settings
from app.main import create_app
from factories import new_runner
from fastapi.testclient import TestClient

SESSIONS = "/api/v1/auth/sessions"


def _client(settings: Settings, address: str = "198.51.100.7") -> TestClient:
    return TestClient(create_app(settings, enqueue_sync=lambda _: None), client=(address, 40000))


def _limited(settings: Settings, **extra: object) -> Settings:
    return settings.model_copy(
        update={"session_create_limit": 3, "session_create_window_seconds": 600, **extra}
    )


def test_a_client_creating_too_many_sessions_gets_429_with_retry_after(
    settings: Settings,
) -> None:
    with _client(_limited(settings)) as api:
        for _ in range(3):
            assert api.post(SESSIONS, json={}).status_code == 201
        refused = api.post(SESSIONS, json={})
    assert refused.status_code == 429, refused.text
    assert refused.json()["error"] == "rate_limited"
    retry_after = int(refused.headers["Retry-After"])
    assert 0 < retry_after <= 600
    assert refused.json()["detail"] == {"retry_after": retry_after}


def test_the_session_limit_is_per_client_address(settings: Settings) -> None:
    limited = _limited(settings)
    app = create_app(limited, enqueue_sync=lambda _: None)
    with (
        TestClient(app, client=("198.51.100.8", 1)) as first,
        TestClient(app, client=("198.51.100.9", 1)) as second,
    ):
        for _ in range(3):
            assert first.post(SESSIONS, json={}).status_code == 201
        assert first.post(SESSIONS, json={}).status_code == 429
        assert second.post(SESSIONS, json={}).status_code == 201


@pytest.fixture
def redis_limited(settings: Settings, redis_url: str) -> Iterator[Settings]:
    import redis

    prefix = f"test-ratelimit-{uuid.uuid4().hex[:10]}"
    yield _limited(settings, redis_url=redis_url, rate_limit_prefix=prefix)
    client = redis.Redis.from_url(redis_url)
    keys = list(client.scan_iter(match=f"{prefix}:*"))
    if keys:
        client.delete(*keys)
    client.close()


def test_with_redis_every_api_process_counts_against_one_limit(redis_limited: Settings) -> None:
    # Two apps stand for two API processes behind a load balancer.
    with _client(redis_limited) as one, _client(redis_limited) as other:
        assert one.post(SESSIONS, json={}).status_code == 201
        assert other.post(SESSIONS, json={}).status_code == 201
        assert one.post(SESSIONS, json={}).status_code == 201
        refused = other.post(SESSIONS, json={})
    assert refused.status_code == 429, refused.text
    assert int(refused.headers["Retry-After"]) > 0


def test_a_session_expires_after_its_lifetime(api: TestClient, settings: Settings) -> None:
    runner = new_runner(api)
    response = api.post(SESSIONS, json={})
    expires_at = datetime.fromisoformat(response.json()["expires_at"])
    lifetime = timedelta(seconds=settings.session_ttl_seconds)
    assert abs(expires_at - (utcnow() + lifetime)) < timedelta(minutes=1)

    with time_machine.travel(utcnow() + lifetime - timedelta(minutes=5), tick=False):
        assert runner.get("/api/v1/strava/status").status_code == 200
    with time_machine.travel(utcnow() + lifetime + timedelta(minutes=5), tick=False):
        expired = runner.get("/api/v1/strava/status")
    assert expired.status_code == 401
    assert expired.json()["error"] == "unauthenticated"
