"""`orchestrator dev` (the README's run command) on embedded defaults: SQLite, the SQLAlchemy
broker, a real worker and beat, and the bundled emulator — linked and synced over real HTTP."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import httpx2
import pytest
from app.config import SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET
from factories import consent as consent_on_emulator
from factories import pkce_pair

T = TypeVar("T")
# Settings the rest of the suite points at PostgreSQL and friends; the sandbox must run without.
OUR_SETTINGS = (
    "DATABASE_URL",
    "REDIS_URL",
    "TOKEN_ENCRYPTION_KEYS",
    "STRAVA_REDIRECT_URIS",
    "PUBLIC_BASE_URL",
    "SANDBOX_EMULATOR_URL",
    "SYNC_QUEUE",
    "RATE_BUDGET_PREFIX",
    "STRAVA_CLIENT_ID",
    "STRAVA_CLIENT_SECRET",
)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for(probe: Callable[[], T | None], *, timeout_s: float, what: str) -> T:
    """Poll `probe` until it returns a value (a deadline, not a sleep-as-synchronisation)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            value = probe()
        except httpx2.TransportError:
            value = None
        if value is not None:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str, Path]]:
    workdir = tmp_path_factory.mktemp("sandbox")
    port, emulator_port = _free_port(), _free_port()
    env = {key: value for key, value in os.environ.items() if key not in OUR_SETTINGS}
    log = workdir / "dev.log"
    with log.open("w") as output:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "app.cli",
                "dev",
                "--port",
                str(port),
                "--emulator-port",
                str(emulator_port),
            ],
            cwd=workdir,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    base, emulator = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{emulator_port}"
    try:
        wait_for(
            lambda: httpx2.get(f"{base}/healthz").status_code == 200 or None,
            timeout_s=60,
            what="the sandbox API",
        )
        wait_for(
            lambda: httpx2.get(f"{emulator}/_emulator/healthz").status_code == 200 or None,
            timeout_s=30,
            what="the sandbox emulator",
        )
        yield base, emulator, log
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)


@pytest.mark.worker
def test_dev_prints_the_url_and_serves_the_onboarding(sandbox: tuple[str, str, Path]) -> None:
    base, _, log = sandbox
    assert f"open {base}/" in " ".join(log.read_text().split())
    page = httpx2.get(f"{base}/")
    assert page.status_code == 200
    assert "text/html" in page.headers["content-type"]


def _linked_and_synced(base: str, emulator: str, athlete_id: int) -> tuple[httpx2.Client, Any]:
    """A runner of the sandbox linked to the emulator athlete, once its first sync is done."""
    api = httpx2.Client(base_url=base, timeout=10)
    token = api.post("/api/v1/auth/sessions", json={}).json()["access_token"]
    api.headers["Authorization"] = f"Bearer {token}"
    assert api.put("/api/v1/profile", json={"display_name": "Sandy"}).status_code == 200
    verifier, challenge = pkce_pair()
    start = api.post(
        "/api/v1/strava/link-token",
        json={"code_challenge": challenge, "code_challenge_method": "S256"},
    ).json()
    callback = consent_on_emulator(start["authorize_url"], athlete_id)
    linked = api.post("/api/v1/strava/callback", json={**callback, "code_verifier": verifier})
    assert linked.status_code == 200, linked.text

    def synced() -> dict[str, Any] | None:
        status: dict[str, Any] = api.get("/api/v1/strava/status").json()
        return status if status["sync"]["last_result"] == "ok" else None

    return api, wait_for(synced, timeout_s=90, what="the first sync on the embedded broker")


def _athlete_ids(emulator: str) -> list[int]:
    return [
        athlete["id"] for athlete in httpx2.get(f"{emulator}/_emulator/athletes").json()["items"]
    ]


@pytest.mark.worker
def test_dev_links_and_syncs_on_embedded_defaults(sandbox: tuple[str, str, Path]) -> None:
    base, emulator, workdir_log = sandbox
    api, status = _linked_and_synced(base, emulator, _athlete_ids(emulator)[0])
    assert status["status"] == "linked"
    assert status["sync"]["workouts_in_window"] > 0
    workouts = api.get("/api/v1/workouts?limit=5").json()["items"]
    assert workouts
    assert (workdir_log.parent / "var" / "orchestrator.db").exists()


@pytest.mark.worker
def test_dev_subscribes_so_a_new_run_arrives_without_a_sync(
    sandbox: tuple[str, str, Path],
) -> None:
    """`./scripts/dev` subscribes to the emulator by itself: a run "uploaded" in the emulator's
    admin API reaches the runner's workouts through the webhook, with no sync asked for."""
    base, emulator, _ = sandbox
    listed = httpx2.get(
        f"{emulator}/api/v3/push_subscriptions",
        params={"client_id": SANDBOX_CLIENT_ID, "client_secret": SANDBOX_CLIENT_SECRET},
    ).json()
    assert [found["callback_url"] for found in listed] == [f"{base}/api/v1/strava/webhook"]
    athlete_id = _athlete_ids(emulator)[1]
    api, status = _linked_and_synced(base, emulator, athlete_id)
    assert status["sync"]["updates"] == "live"

    started = datetime.now(UTC) - timedelta(hours=1)
    uploaded = httpx2.post(
        f"{emulator}/_emulator/athletes/{athlete_id}/activities",
        json={"sport_type": "Run", "distance": 5000.0, "start_date": started.isoformat()},
    )
    assert uploaded.status_code == 201, uploaded.text
    activity_id = uploaded.json()["id"]

    def arrived() -> bool | None:
        items = api.get("/api/v1/workouts", params={"limit": 50}).json()["items"]
        return any(item["source_id"] == activity_id for item in items) or None

    wait_for(arrived, timeout_s=30, what="the uploaded run to arrive through the webhook")
    triggers = {run["trigger"] for run in api.get("/api/v1/strava/sync-runs").json()["items"]}
    assert triggers <= {"link", "webhook"}  # no manual or scheduled sync brought it
