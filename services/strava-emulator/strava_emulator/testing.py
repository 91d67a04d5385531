"""Test helpers: a real emulator server in a background thread, and a typed admin client.

with run_emulator() as emu:
    athlete = emu.admin.create_athlete()
    tokens = emu.admin.issue_tokens(athlete["id"], scope="read,activity:read_all")
    httpx2.get(f"{emu.api_base_url}/athlete",
               headers={"Authorization": f"Bearer {tokens['access_token']}"})
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypedDict, cast

import httpx2
import uvicorn

from strava_emulator.app import create_app
from strava_emulator.config import EmulatorConfig
from strava_emulator.delivery import DeliveryFaultKind
from strava_emulator.faults import FaultKind

STARTUP_TIMEOUT_SECONDS = 30.0


class TokenResponse(TypedDict):
    token_type: str
    expires_at: int
    expires_in: int
    refresh_token: str
    access_token: str
    athlete: dict[str, Any]


class RateLimits(TypedDict):
    overall_limit: list[int]
    read_limit: list[int]
    overall_usage: list[int]
    read_usage: list[int]


class AppSettings(TypedDict):
    athlete_capacity: int | None
    connected_athletes: int


class RequestRecord(TypedDict):
    method: str
    path: str
    query: dict[str, str]
    status: int
    athlete_id: int | None
    at: str


class WebhookEvent(TypedDict):
    aspect_type: str
    event_time: int
    object_id: int
    object_type: str
    owner_id: int
    subscription_id: int
    updates: dict[str, str]


class DeliveryAttempt(TypedDict):
    at: str
    status_code: int | None
    error: str | None
    duration_ms: float
    wall_ts: float


class WebhookDelivery(TypedDict):
    id: int
    event: WebhookEvent
    callback_url: str
    queued_at: str
    """Emulator time (second precision)."""
    queued_wall_ts: float
    """Real epoch seconds, like each attempt's ``wall_ts``."""
    state: str
    """pending, delivered, failed (three attempts without a 200) or dropped."""
    fault: str | None
    attempts: list[DeliveryAttempt]


def _parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)


class AdminClient:
    """Mirrors the ``/_emulator`` admin API. Raises ``httpx2.HTTPStatusError`` on errors."""

    def __init__(self, base_url: str, *, timeout: float = 30.0) -> None:
        self._http = httpx2.Client(base_url=f"{base_url}/_emulator", timeout=timeout)

    def close(self) -> None:
        self._http.close()

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self._http.request(method, path, **kwargs)
        response.raise_for_status()
        return None if response.status_code == 204 else response.json()

    def healthz(self) -> bool:
        return bool(self._call("GET", "/healthz")["status"] == "ok")

    # athletes and activities
    def create_athlete(
        self,
        firstname: str | None = None,
        lastname: str | None = None,
        history_days: int | None = None,
    ) -> dict[str, Any]:
        body = {"firstname": firstname, "lastname": lastname, "history_days": history_days}
        payload = {key: value for key, value in body.items() if value is not None}
        return cast(dict[str, Any], self._call("POST", "/athletes", json=payload))

    def list_athletes(self, offset: int = 0, limit: int = 100) -> list[dict[str, Any]]:
        found = self._call("GET", "/athletes", params={"offset": offset, "limit": limit})
        return cast(list[dict[str, Any]], found["items"])

    def list_activities(self, athlete_id: int) -> list[dict[str, Any]]:
        """All of the athlete's activities (any visibility), newest first."""
        found = self._call("GET", f"/athletes/{athlete_id}/activities")
        return cast(list[dict[str, Any]], found["items"])

    def create_activity(self, athlete_id: int, **fields: Any) -> dict[str, Any]:
        """Partial fields (e.g. ``sport_type="Run", distance=5000.0, start_date=datetime``)."""
        body = _jsonable(fields)
        return cast(
            dict[str, Any], self._call("POST", f"/athletes/{athlete_id}/activities", json=body)
        )

    def update_activity(self, activity_id: int, **fields: Any) -> dict[str, Any]:
        body = _jsonable(fields)
        return cast(dict[str, Any], self._call("PATCH", f"/activities/{activity_id}", json=body))

    def delete_activity(self, activity_id: int) -> None:
        self._call("DELETE", f"/activities/{activity_id}")

    # tokens
    def revoke(self, athlete_id: int) -> None:
        self._call("POST", f"/athletes/{athlete_id}/revoke")

    def issue_tokens(self, athlete_id: int, scope: str = "read,activity:read_all") -> TokenResponse:
        found = self._call("POST", f"/athletes/{athlete_id}/tokens", json={"scope": scope})
        return cast(TokenResponse, found)

    # clock
    def clock_now(self) -> datetime:
        return _parse_time(self._call("GET", "/clock")["now"])

    def advance_clock(self, seconds: float) -> datetime:
        return _parse_time(self._call("POST", "/clock", json={"advance_seconds": seconds})["now"])

    def set_clock(self, now: datetime) -> datetime:
        if now.tzinfo is None:
            now = now.replace(tzinfo=UTC)
        return _parse_time(self._call("POST", "/clock", json={"now": now.isoformat()})["now"])

    # rate limits
    def get_rate_limits(self) -> RateLimits:
        return cast(RateLimits, self._call("GET", "/rate-limits"))

    def set_rate_limits(
        self,
        *,
        overall_limit: tuple[int, int] | None = None,
        read_limit: tuple[int, int] | None = None,
        overall_usage: tuple[int, int] | None = None,
        read_usage: tuple[int, int] | None = None,
    ) -> RateLimits:
        body = {
            "overall_limit": overall_limit,
            "read_limit": read_limit,
            "overall_usage": overall_usage,
            "read_usage": read_usage,
        }
        payload = {key: list(value) for key, value in body.items() if value is not None}
        return cast(RateLimits, self._call("PUT", "/rate-limits", json=payload))

    # the application's settings at Strava
    def get_settings(self) -> AppSettings:
        return cast(AppSettings, self._call("GET", "/settings"))

    def set_athlete_capacity(self, capacity: int | None) -> AppSettings:
        """Cap the athletes that may hold a grant at once (None: unlimited)."""
        body = {"athlete_capacity": capacity}
        return cast(AppSettings, self._call("PUT", "/settings", json=body))

    # faults
    def add_fault(
        self,
        path: str,
        kind: FaultKind = "status",
        *,
        method: str = "GET",
        count: int = 1,
        status: int = 503,
        latency_ms: int = 0,
        query: dict[str, str] | None = None,
    ) -> str:
        body = {
            "method": method,
            "path": path,
            "kind": kind,
            "count": count,
            "status": status,
            "latency_ms": latency_ms,
            "query": query or {},
        }
        return str(self._call("POST", "/faults", json=body)["id"])

    def clear_faults(self) -> None:
        self._call("DELETE", "/faults")

    # request log
    def requests(self, path: str | None = None, method: str | None = None) -> list[RequestRecord]:
        params = {key: value for key, value in (("path", path), ("method", method)) if value}
        return cast(list[RequestRecord], self._call("GET", "/requests", params=params)["items"])

    def clear_requests(self) -> None:
        self._call("DELETE", "/requests")

    def reset(self) -> None:
        self._call("POST", "/reset")

    # webhooks (the subscription itself is made through Strava's /api/v3/push_subscriptions)
    def webhook_deliveries(self, state: str | None = None) -> list[WebhookDelivery]:
        """Queued events, oldest first, with their attempts; ``state`` filters."""
        params = {"state": state} if state else {}
        found = self._call("GET", "/webhooks/deliveries", params=params)
        return cast(list[WebhookDelivery], found["items"])

    def clear_webhook_deliveries(self) -> None:
        self._call("DELETE", "/webhooks/deliveries")

    def webhook_pending(self) -> int:
        return int(self._call("GET", "/webhooks/pending")["pending"])

    def wait_for_webhooks(self, timeout: float = 10.0) -> list[WebhookDelivery]:
        """Poll until no event is pending (delivered, failed or dropped); the delivery log.
        Raises ``TimeoutError`` after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while self.webhook_pending():
            if time.monotonic() > deadline:
                raise TimeoutError(f"webhook deliveries still pending after {timeout} s")
            time.sleep(0.01)
        return self.webhook_deliveries()

    def scan_webhooks(self) -> int:
        """Queue create events for generated activities that have appeared; how many."""
        return int(self._call("POST", "/webhooks/scan")["events"])

    def add_webhook_fault(
        self,
        kind: DeliveryFaultKind,
        *,
        count: int = 1,
        delay_ms: int = 0,
        object_type: str | None = None,
        aspect_type: str | None = None,
    ) -> str:
        """Spoil the next ``count`` matching events: drop, duplicate, delay, out_of_order."""
        body: dict[str, Any] = {"kind": kind, "count": count, "delay_ms": delay_ms}
        if object_type is not None:
            body["object_type"] = object_type
        if aspect_type is not None:
            body["aspect_type"] = aspect_type
        return str(self._call("POST", "/webhooks/faults", json=body)["id"])

    def clear_webhook_faults(self) -> None:
        self._call("DELETE", "/webhooks/faults")


def _jsonable(fields: dict[str, Any]) -> dict[str, Any]:
    return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in fields.items()}


@dataclass(frozen=True)
class EmulatorHandle:
    base_url: str
    config: EmulatorConfig
    admin: AdminClient

    @property
    def api_base_url(self) -> str:
        return f"{self.base_url}/api/v3"

    @property
    def oauth_base_url(self) -> str:
        return f"{self.base_url}/oauth"

    def subscribe(self, callback_url: str, verify_token: str) -> httpx2.Response:
        """Strava's ``POST /push_subscriptions`` as the application makes it (form fields);
        the raw response, so tests can check refusals too."""
        return httpx2.post(
            f"{self.api_base_url}/push_subscriptions",
            data={
                "client_id": str(self.config.client_id),
                "client_secret": self.config.client_secret,
                "callback_url": callback_url,
                "verify_token": verify_token,
            },
            timeout=30,
        )


@contextmanager
def run_emulator(config: EmulatorConfig | None = None) -> Iterator[EmulatorHandle]:
    """A real uvicorn server on 127.0.0.1 and a free port, in a daemon thread."""
    config = config or EmulatorConfig()
    app = create_app(config)
    # Bind first so the port is known (and ours) before the server starts.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            log_level="warning",
            access_log=False,
            lifespan="off",
            # Don't let a request held by a `timeout` fault delay shutdown.
            timeout_graceful_shutdown=1,
        )
    )
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name=f"strava-emulator:{port}", daemon=True
    )
    thread.start()
    deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
    while not server.started:  # readiness poll, not a fixed sleep
        if not thread.is_alive():
            sock.close()
            raise RuntimeError("strava emulator failed to start")
        if time.monotonic() > deadline:
            server.should_exit = True
            raise TimeoutError("strava emulator did not start in time")
        time.sleep(0.005)
    base_url = f"http://127.0.0.1:{port}"
    admin = AdminClient(base_url)
    try:
        yield EmulatorHandle(base_url=base_url, config=config, admin=admin)
    finally:
        admin.close()
        app.state.emulator.faults.held.release_all()  # don't wait out `timeout` faults
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
