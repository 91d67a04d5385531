"""The webhook intake's every outcome, on PostgreSQL and on the embedded SQLite database: the
one-statement store (inbox.store_owned) must tell stored, duplicate, unknown athlete and other
subscription apart on both, and answer 400, 413 and 503 as before (issue 11)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from app.config import Settings
from app.db import session_scope
from app.inbox.models import EventState, InboxEvent
from app.runners.models import Runner
from app.strava.models import PushSubscriptionRecord, StravaLink
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY
from sqlalchemy import create_engine, delete, func, select
from sqlalchemy.orm import Session, sessionmaker
from webhook_support import insert_link

SUBSCRIPTION = 771_001
URL = "/api/v1/strava/webhook"


@dataclass
class Intake:
    api: TestClient
    sessions: sessionmaker[Session]
    published: list[uuid.UUID]
    runner_id: uuid.UUID
    athlete_id: int
    dead_url: str

    def post(self, owner: int | None = None, subscription: int = SUBSCRIPTION, **extra: Any) -> Any:
        return self.api.post(URL, json=_event(owner or self.athlete_id, subscription, **extra))

    def total(self) -> int:
        """Every inbox row of the database (other tests' too): what an ignored event must not
        change."""
        with session_scope(self.sessions) as session:
            return int(session.scalar(select(func.count()).select_from(InboxEvent)) or 0)

    def rows(self) -> list[InboxEvent]:
        with session_scope(self.sessions) as session:
            return list(
                session.scalars(select(InboxEvent).where(InboxEvent.runner_id == self.runner_id))
            )


def _event(owner: int, subscription: int, **extra: Any) -> dict[str, Any]:
    return {
        "aspect_type": "create",
        "event_time": 1_764_000_000,
        "object_id": 123_456,
        "object_type": "activity",
        "owner_id": owner,
        "subscription_id": subscription,
        "updates": {},
        **extra,
    }


@pytest.fixture(params=["postgresql", "sqlite"])
def intake(request: pytest.FixtureRequest, settings: Settings, tmp_path: Path) -> Iterator[Intake]:
    """The API on PostgreSQL (the tests' database) or on a fresh embedded SQLite file, one
    linked athlete, our subscription recorded; publishes are recorded, not sent."""
    from app.db import engine_for, sessionmaker_for
    from app.main import create_app
    from app.models import import_all_models

    athlete_id = 880_000_000 + uuid.uuid4().int % 1_000_000
    if request.param == "sqlite":
        import_all_models()
        app_settings = settings.model_copy(
            update={"database_url": f"sqlite:///{tmp_path / 'embedded.db'}", "redis_url": None}
        )
        from app.db import Base, EngineOptions

        options = EngineOptions.from_settings(app_settings)
        Base.metadata.create_all(engine_for(app_settings.database_url, options))
        dead_url = f"sqlite:///{tmp_path / 'missing' / 'dir' / 'none.db'}"
    else:
        app_settings = settings
        dead_url = "postgresql+psycopg://postgres@127.0.0.1:1/none"
    published: list[uuid.UUID] = []
    app = create_app(app_settings, enqueue_webhooks=published.append)
    sessions: sessionmaker[Session] = app.state.sessions
    runner_id = insert_link(sessions, app.state.keyring, athlete_id, subscription=SUBSCRIPTION)
    try:
        with TestClient(app) as api:
            yield Intake(api, sessions, published, runner_id, athlete_id, dead_url)
    finally:
        with session_scope(sessions) as session:
            session.execute(delete(InboxEvent).where(InboxEvent.runner_id == runner_id))
            session.execute(delete(StravaLink).where(StravaLink.runner_id == runner_id))
            session.execute(delete(Runner).where(Runner.id == runner_id))
            session.execute(delete(PushSubscriptionRecord))
        if request.param == "sqlite":
            engine_for(app_settings.database_url, options).dispose()
            engine_for.cache_clear()
            sessionmaker_for.cache_clear()


def _counter(outcome: str) -> float:
    labels = {"object_type": "activity", "aspect_type": "create", "outcome": outcome}
    return REGISTRY.get_sample_value("strava_webhook_events_total", labels) or 0.0


def test_an_event_is_stored_once_and_asks_for_processing_once(intake: Intake) -> None:
    first = intake.post()
    assert first.status_code == 200
    assert first.json() == {"status": "stored"}
    (row,) = intake.rows()
    assert row.runner_id == intake.runner_id
    assert row.state == EventState.PENDING
    assert (row.object_type, row.object_id, row.aspect_type) == ("activity", 123_456, "create")
    assert intake.published == [intake.runner_id]

    again = intake.post()
    assert again.status_code == 200
    assert again.json() == {"status": "duplicate"}
    assert len(intake.rows()) == 1
    assert intake.published == [intake.runner_id]


def test_an_unknown_athlete_is_acknowledged_ignored_and_counted(intake: Intake) -> None:
    before, stored = _counter("unknown_athlete"), intake.total()
    response = intake.post(owner=intake.athlete_id + 1)
    assert response.status_code == 200
    assert response.json() == {"status": "unknown_athlete"}
    assert _counter("unknown_athlete") == before + 1
    assert intake.total() == stored
    assert intake.published == []


def test_an_event_of_another_subscription_is_ignored(intake: Intake) -> None:
    response = intake.post(subscription=SUBSCRIPTION + 1)
    assert response.status_code == 200
    assert response.json() == {"status": "unknown_subscription"}
    assert intake.rows() == []
    assert intake.published == []


def test_with_no_subscription_recorded_any_subscription_is_taken(intake: Intake) -> None:
    with session_scope(intake.sessions) as session:
        session.execute(delete(PushSubscriptionRecord))
    assert intake.post(subscription=SUBSCRIPTION + 1).json() == {"status": "stored"}
    assert len(intake.rows()) == 1


def test_a_malformed_event_is_400_and_stores_nothing(intake: Intake) -> None:
    response = intake.post(object_id="123")
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"
    assert intake.api.post(URL, content=b"{not json").status_code == 400
    assert intake.rows() == []


def test_an_oversized_body_is_413(intake: Intake) -> None:
    response = intake.api.post(URL, content=b"{" + b" " * 2_000_000 + b"}")
    assert response.status_code == 413
    assert intake.rows() == []


def test_the_database_down_is_503_and_the_retry_is_stored(intake: Intake) -> None:
    app = intake.api.app
    real = app.state.sessions  # type: ignore[attr-defined]
    dead = sessionmaker(bind=create_engine(intake.dead_url))
    app.state.sessions = dead  # type: ignore[attr-defined]
    try:
        response = intake.post()
    finally:
        app.state.sessions = real  # type: ignore[attr-defined]
        dead.kw["bind"].dispose()
    assert response.status_code == 503
    assert response.headers["retry-after"] == "5"
    assert intake.published == []
    assert intake.post().json() == {"status": "stored"}
    assert intake.published == [intake.runner_id]
