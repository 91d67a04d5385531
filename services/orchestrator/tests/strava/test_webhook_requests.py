"""One processing task per runner per burst (app/strava/webhook_requests.py): a Redis flag per
runner, set by the event that publishes and cleared by the task before it drains; every event
publishes without Redis; a failed publish loses nothing (the beat re-drives). Real Redis, the
real Celery worker, PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
import redis
from app.clock import utcnow
from app.config import Settings
from app.db import session_scope
from app.inbox.models import EventState, InboxEvent
from app.runners.models import Runner
from app.strava.models import StravaLink
from app.strava.runtime import StravaRuntime
from app.strava.scheduling import redrive_webhooks
from app.strava.webhook_requests import KEY_PREFIX, WebhookRequests
from fastapi.testclient import TestClient
from sqlalchemy import delete, select
from waiting import wait_until
from webhook_support import insert_link


@pytest.fixture
def client(redis_url: str) -> Iterator[redis.Redis[bytes]]:
    connection: redis.Redis[bytes] = redis.Redis.from_url(redis_url)
    yield connection
    connection.close()


@pytest.fixture
def prefix(client: redis.Redis[bytes]) -> Iterator[str]:
    """A key prefix of the test's own on the shared Redis, forgotten afterwards."""
    prefix = f"test-webhooks-requested-{uuid.uuid4().hex[:10]}"
    yield prefix
    keys = list(client.scan_iter(match=f"{prefix}:*"))
    if keys:
        client.delete(*keys)


def test_a_burst_publishes_once_until_the_task_clears_the_flag(
    client: redis.Redis[bytes], prefix: str
) -> None:
    published: list[uuid.UUID] = []
    requests = WebhookRequests(published.append, client, prefix=prefix)
    runner, other = uuid.uuid4(), uuid.uuid4()
    assert [requests.request(runner) for _ in range(5)] == [True, False, False, False, False]
    assert requests.request(other)
    assert published == [runner, other]
    assert 0 < client.ttl(f"{prefix}:{runner}") <= 300  # a lost task's flag expires

    requests.clear(runner)  # the task starts: a later event asks for another task
    assert requests.request(runner)
    assert not requests.request(runner)
    assert published == [runner, other, runner]


def test_without_redis_every_event_publishes() -> None:
    published: list[uuid.UUID] = []
    requests = WebhookRequests(published.append)
    runner = uuid.uuid4()
    assert [requests.request(runner) for _ in range(3)] == [True, True, True]
    requests.clear(runner)
    assert published == [runner] * 3


def test_the_worker_task_clears_the_flag_so_a_later_event_publishes_again(
    worker_settings: Settings, celery_worker: Any, client: redis.Redis[bytes]
) -> None:
    from app.strava import tasks

    published: list[uuid.UUID] = []
    # The worker's own prefix (webhook_requests.from_settings), publishing recorded here.
    requests = WebhookRequests(published.append, client)
    runner = uuid.uuid4()
    assert requests.request(runner)
    assert not requests.request(runner)
    tasks.enqueue_webhook_processing(runner)  # the real task on the module's worker
    wait_until(lambda: not client.exists(f"{KEY_PREFIX}:{runner}"))
    assert requests.request(runner)
    assert published == [runner, runner]
    client.delete(f"{KEY_PREFIX}:{runner}")


class _BrokerDown(Exception):
    pass


def test_a_failed_publish_acknowledges_the_event_and_leaves_it_for_the_beat(
    settings: Settings,
    redis_url: str,
    client: redis.Redis[bytes],
    strava_runtime: StravaRuntime,
) -> None:
    from app.main import create_app

    attempts: list[uuid.UUID] = []

    def broker_down(runner_id: uuid.UUID) -> None:
        attempts.append(runner_id)
        raise _BrokerDown()

    app = create_app(
        settings.model_copy(update={"redis_url": redis_url}), enqueue_webhooks=broker_down
    )
    athlete_id = 890_000_000 + uuid.uuid4().int % 1_000_000
    runner_id = insert_link(app.state.sessions, app.state.keyring, athlete_id)
    event = {
        "aspect_type": "create",
        "event_time": 1_764_000_000,
        "object_id": 55,
        "object_type": "activity",
        "owner_id": athlete_id,
        "subscription_id": 1,
        "updates": {},
    }
    try:
        with TestClient(app) as api:
            response = api.post("/api/v1/strava/webhook", json=event)
            assert response.status_code == 200
            assert response.json() == {"status": "stored"}
            # The flag went with the failed publish: the runner's next event tries again.
            assert not client.exists(f"{KEY_PREFIX}:{runner_id}")
            again = api.post("/api/v1/strava/webhook", json={**event, "object_id": 56})
            assert again.json() == {"status": "stored"}
        assert attempts == [runner_id, runner_id]
        with session_scope() as session:
            states = list(
                session.scalars(select(InboxEvent.state).where(InboxEvent.runner_id == runner_id))
            )
        assert states == [EventState.PENDING, EventState.PENDING]
        # The beat's re-drive sends the runner's task for its pending events.
        redriven: list[uuid.UUID] = []
        redrive_webhooks(
            strava_runtime,
            now=utcnow() + timedelta(minutes=5),
            enqueue_webhooks=redriven.append,
            stale_pending=timedelta(minutes=2),
        )
        assert runner_id in redriven
    finally:
        with session_scope() as session:
            session.execute(delete(InboxEvent).where(InboxEvent.runner_id == runner_id))
            session.execute(delete(StravaLink).where(StravaLink.runner_id == runner_id))
            session.execute(delete(Runner).where(Runner.id == runner_id))
        client.delete(f"{KEY_PREFIX}:{runner_id}")
