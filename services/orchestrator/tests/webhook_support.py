"""The API served for real on loopback as Strava's webhook callback, and our subscription at the
emulator (tests of issue 11)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx2
from fastapi import FastAPI
from live import serving
from pydantic import SecretStr

if TYPE_CHECKING:
    from app.config import Settings
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
    """Our push subscription at the emulator (its creation runs the validation handshake); the
    API then ignores events of any other subscription id. Deleted afterwards."""
    created = emulator.subscribe(hooks.callback_url, VERIFY_TOKEN)
    assert created.status_code == 201, created.text
    subscription_id = int(created.json()["id"])
    settings: Settings = hooks.app.state.settings
    hooks.app.state.settings = settings.model_copy(
        update={"strava_webhook_subscription_id": subscription_id}
    )
    try:
        yield subscription_id
    finally:
        httpx2.delete(
            f"{emulator.api_base_url}/push_subscriptions/{subscription_id}",
            params={
                "client_id": str(emulator.config.client_id),
                "client_secret": emulator.config.client_secret,
            },
        )
