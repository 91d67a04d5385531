"""The API served for real on loopback, as Strava's webhook callback (tests of issue 11)."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx2
from fastapi import FastAPI
from pydantic import SecretStr
from waiting import wait_until

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
    """create_app(settings) with a verify token and a secret callback path, served by uvicorn on
    127.0.0.1:<free port> in a thread; it enqueues processing through Celery."""
    import uvicorn
    from app.main import create_app

    app = create_app(
        settings.model_copy(
            update={
                "strava_webhook_verify_token": SecretStr(VERIFY_TOKEN),
                "strava_webhook_path_secret": SecretStr(PATH_SECRET),
            }
        )
    )
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    base_url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    server = uvicorn.Server(
        uvicorn.Config(
            app, log_level="warning", access_log=False, lifespan="on", timeout_graceful_shutdown=1
        )
    )
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name="orchestrator-hooks", daemon=True
    )
    thread.start()
    wait_until(lambda: server.started, timeout=30)
    try:
        yield HookServer(base_url, app)
    finally:
        server.should_exit = True
        thread.join(timeout=10)


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
