"""The API served for real on loopback as Strava's webhook callback, and our subscription at the
emulator (tests of issue 11)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import httpx2
from fastapi import FastAPI
from live import serving
from pydantic import SecretStr
from sqlalchemy import delete

if TYPE_CHECKING:
    from app.config import Settings
    from app.security import KeyRing
    from sqlalchemy.orm import Session, sessionmaker
    from strava_emulator.testing import EmulatorHandle

VERIFY_TOKEN = "verify-token-for-tests"
PATH_SECRET = "s3cret-path-segment"


@dataclass
class HookServer:
    base_url: str
    app: FastAPI

    @property
    def callback_url(self) -> str:
        return f"{self.base_url}/api/v1/strava/webhook/{PATH_SECRET}"

    def post(self, body: Any, **kwargs: Any) -> httpx2.Response:
        return httpx2.post(self.callback_url, json=body, timeout=10, **kwargs)


@contextmanager
def serve_hooks(settings: Settings) -> Iterator[HookServer]:
    """create_app(settings) with a verify token and a secret callback path, served on loopback
    (tests/live.py); it enqueues processing through Celery."""
    from app.main import create_app

    app = create_app(
        settings.model_copy(
            update={
                "strava_webhook_verify_token": SecretStr(VERIFY_TOKEN),
                "strava_webhook_path_secret": SecretStr(PATH_SECRET),
            }
        )
    )
    with serving(app) as base_url:
        yield HookServer(base_url, app)


@contextmanager
def subscribed(emulator: EmulatorHandle, hooks: HookServer) -> Iterator[int]:
    """Our push subscription at the emulator (its creation runs the validation handshake),
    recorded as `orchestrator strava-webhook subscribe` records it: the API then ignores events
    of any other subscription id. Deleted (here and at the emulator) afterwards."""
    from app.db import session_scope
    from app.strava.models import PushSubscriptionRecord
    from app.strava.payloads import PushSubscription
    from app.strava.subscriptions import record

    created = emulator.subscribe(hooks.callback_url, VERIFY_TOKEN)
    assert created.status_code == 201, created.text
    subscription = PushSubscription.model_validate(created.json())
    with session_scope() as session:
        record(session, subscription)
    try:
        yield subscription.id
    finally:
        with session_scope() as session:
            session.execute(delete(PushSubscriptionRecord))
        httpx2.delete(
            f"{emulator.api_base_url}/push_subscriptions/{subscription.id}",
            params={
                "client_id": str(emulator.config.client_id),
                "client_secret": emulator.config.client_secret,
            },
        )


def insert_link(
    sessions: sessionmaker[Session],
    keyring: KeyRing,
    athlete_id: int,
    *,
    subscription: int | None = None,
) -> uuid.UUID:
    """A runner whose link's blind index is the athlete's, written directly (the tokens are
    never read by the intake), and our subscription recorded when given; the runner's id."""
    from app.clock import utcnow
    from app.db import session_scope
    from app.runners.models import Runner
    from app.strava.models import PushSubscriptionRecord, StravaLink

    with session_scope(sessions) as session:
        runner = Runner(id=uuid.uuid4())
        session.add(runner)
        session.flush()
        session.add(
            StravaLink(
                runner_id=runner.id,
                athlete_index=keyring.blind_indexes(str(athlete_id))[0],
                key_id="test",
                athlete_ciphertext=b"-",
                access_token_ciphertext=b"-",
                refresh_token_ciphertext=b"-",
                access_token_expires_at=utcnow() + timedelta(hours=6),
                scopes="read,activity:read_all",
                linked_at=utcnow(),
            )
        )
        if subscription is not None:
            session.add(
                PushSubscriptionRecord(
                    id=subscription,
                    callback_url="http://127.0.0.1/api/v1/strava/webhook",
                    created_at=utcnow(),
                    recorded_at=utcnow(),
                )
            )
    return runner.id
