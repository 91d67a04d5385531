"""Small factories for tests: runners, PKCE pairs, the link dance against the emulator, stored
workouts and inbox events."""

from __future__ import annotations

import base64
import hashlib
import random
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx2
from app.clock import utcnow
from app.db import session_scope
from app.inbox import service as inbox
from app.inbox.models import InboxEvent
from app.strava.client import StravaClient
from app.strava.payloads import TokenResponse
from app.strava.runtime import StravaRuntime
from app.workouts.models import Workout
from fastapi.testclient import TestClient
from sqlalchemy import select


def pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)[:64]
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


@dataclass
class Runner:
    api: TestClient
    runner_id: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def get(self, path: str, **kwargs: Any) -> Any:
        return self.api.get(path, headers=self.headers, **kwargs)

    def post(self, path: str, json: Any = None, **kwargs: Any) -> Any:
        return self.api.post(path, json=json, headers=self.headers, **kwargs)

    def put(self, path: str, json: Any = None, **kwargs: Any) -> Any:
        return self.api.put(path, json=json, headers=self.headers, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> Any:
        return self.api.delete(path, headers=self.headers, **kwargs)

    def status(self) -> dict[str, Any]:
        response = self.get("/api/v1/strava/status")
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body


def new_runner(api: TestClient, *, profile: bool = True, name: str = "Jane Doe") -> Runner:
    response = api.post("/api/v1/auth/sessions", json={})
    assert response.status_code == 201, response.text
    body = response.json()
    runner = Runner(api, body["runner_id"], body["access_token"])
    if profile:
        assert runner.put("/api/v1/profile", {"display_name": name}).status_code == 200
    return runner


@dataclass
class LinkStart:
    state: str
    verifier: str
    authorize_url: str


def start_link(runner: Runner, **body: Any) -> LinkStart:
    verifier, challenge = pkce_pair()
    payload = {"code_challenge": challenge, "code_challenge_method": "S256", **body}
    response = runner.post("/api/v1/strava/link-token", payload)
    assert response.status_code == 201, response.text
    token = response.json()
    return LinkStart(token["state"], verifier, token["authorize_url"])


def consent(
    authorize_url: str, athlete_id: int, *, scope: str | None = None, cancel: bool = False
) -> dict[str, str]:
    """Follow the authorize URL on the emulator as the athlete would; returns the callback query."""
    extra: dict[str, str] = {"emulator_athlete_id": str(athlete_id)}
    if scope is not None:
        extra["emulator_scope"] = scope
    if cancel:
        extra["emulator_decision"] = "cancel"
    response = httpx2.get(f"{authorize_url}&{urlencode(extra)}", follow_redirects=False)
    assert response.status_code == 302, response.text
    query = parse_qs(urlsplit(response.headers["location"]).query, keep_blank_values=True)
    return {key: values[0] for key, values in query.items()}


def link(
    runner: Runner, athlete_id: int, *, scope: str | None = None
) -> tuple[int, dict[str, Any]]:
    start = start_link(runner)
    callback = consent(start.authorize_url, athlete_id, scope=scope)
    response = runner.post("/api/v1/strava/callback", {**callback, "code_verifier": start.verifier})
    body: dict[str, Any] = response.json()
    return response.status_code, body


def synced_runner(
    api: TestClient, athlete: dict[str, Any], enqueued: list[uuid.UUID], runtime: StravaRuntime
) -> Runner:
    """A runner linked to `athlete` whose first sync (the link's own) has run."""
    from app.strava.sync import run_sync

    runner = linked_runner(api, athlete["id"])
    assert run_sync(runtime, enqueued[-1]).result == "ok"
    return runner


def linked_runner(api: TestClient, athlete_id: int, **kwargs: Any) -> Runner:
    runner = new_runner(api, **kwargs)
    status, body = link(runner, athlete_id)
    assert status == 200, body
    return runner


class RecordingClient(StravaClient):
    """The real client over real HTTP, remembering the tokens it received (to look for them)."""

    received: list[TokenResponse]

    def exchange_code(self, code: str) -> TokenResponse:
        tokens = super().exchange_code(code)
        self.received.append(tokens)
        return tokens


def add_workout(runner_id: uuid.UUID | str, day: date, **fields: Any) -> uuid.UUID:
    """A stored workout as a sync would have written it, at 07:00 local (and UTC) time on `day`:
    a run by default, every other column from `fields`."""
    started = datetime(day.year, day.month, day.day, 7, 0)
    values: dict[str, Any] = {
        "id": uuid.uuid4(),
        "runner_id": uuid.UUID(str(runner_id)),
        "source": "strava",
        "source_id": random.randrange(10**12),
        "sport_type": "Run",
        "is_run": True,
        "start_date": started.replace(tzinfo=UTC),
        "start_date_local": started,
        "manual": False,
        "trainer": False,
        "raw": {},
        **fields,
    }
    with session_scope() as session:
        session.add(Workout(**values))
    workout_id: uuid.UUID = values["id"]
    return workout_id


def stored_event(
    runner_id: uuid.UUID,
    object_id: int,
    *,
    object_type: str = "activity",
    aspect: str = "create",
    updates: dict[str, str] | None = None,
    event_time: datetime | None = None,
) -> uuid.UUID:
    """A webhook event of the runner's, stored in the inbox (pending) as the intake stores one;
    its id."""
    now = utcnow()
    event = inbox.NewEvent(
        source="strava",
        dedupe_key=uuid.uuid4().hex,
        runner_id=runner_id,
        object_type=object_type,
        object_id=object_id,
        aspect_type=aspect,
        updates=updates or {},
        event_time=event_time or now,
    )
    with session_scope() as session:
        assert inbox.store(session, event, now)
        event_id = session.scalar(
            select(InboxEvent.id).where(InboxEvent.dedupe_key == event.dedupe_key)
        )
    assert event_id is not None
    return event_id
