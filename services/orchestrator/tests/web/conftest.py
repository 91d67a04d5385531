"""Browser tests of the web onboarding: headless Debian Chromium driven by Playwright, against the
real API served by uvicorn on 127.0.0.1, the Strava emulator on loopback and (where a scenario
needs synced data) a real Celery worker.

Synchronisation is Playwright's auto-waiting `expect(...)` only: no sleeps, no timing thresholds.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import pytest
from web.browser_support import PHONE, LiveServer, Visitor

if TYPE_CHECKING:
    from app.config import Settings
    from playwright.sync_api import Browser, ViewportSize
    from strava_emulator.testing import EmulatorHandle

IN_CI = os.environ.get("CI") == "true"
CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# A ceiling for the slowest step (a first sync through a real worker on a slow CI machine);
# expect() returns as soon as its condition holds, so this is never a wait.
EXPECT_TIMEOUT_MS = 30_000


def _unavailable(what: str, exc: Exception) -> None:
    message = f"{what} is not available: {exc}"
    if IN_CI:
        pytest.fail(message)  # under CI a missing browser is a failure, never a skip
    pytest.skip(message)


@pytest.fixture(scope="session")
def live_server(settings: Settings) -> Iterator[LiveServer]:
    """The real API on 127.0.0.1:<free port>, in a background thread, with PUBLIC_BASE_URL set to
    its origin so the web callback is on the redirect allow-list."""
    from app.config import get_settings
    from app.main import create_app
    from live import base_url_of, reserve_port, serving

    sock = reserve_port()
    base_url = base_url_of(sock)

    previous = os.environ.get("PUBLIC_BASE_URL")
    os.environ["PUBLIC_BASE_URL"] = base_url
    get_settings.cache_clear()
    live_settings = get_settings()
    assert f"{base_url}/onboarding/strava/callback" in live_settings.redirect_uris

    live = LiveServer(base_url=base_url, settings=live_settings)
    app = create_app(live_settings, enqueue_sync=live.enqueue)
    try:
        with serving(app, sock):
            yield live
    finally:
        if previous is None:
            os.environ.pop("PUBLIC_BASE_URL", None)
        else:
            os.environ["PUBLIC_BASE_URL"] = previous
        get_settings.cache_clear()


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    """Debian's Chromium (never `playwright install`)."""
    if not os.access(CHROMIUM, os.X_OK):
        _unavailable("Chromium", FileNotFoundError(CHROMIUM))
    from playwright.sync_api import Error, expect, sync_playwright

    expect.set_options(timeout=EXPECT_TIMEOUT_MS)
    with sync_playwright() as playwright:
        try:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        except Error as exc:
            _unavailable("Chromium", exc)
        yield browser
        browser.close()


@pytest.fixture
def new_visitor(
    browser: Browser, live_server: LiveServer, request: pytest.FixtureRequest
) -> Iterator[Callable[..., Visitor]]:
    """Fresh browser contexts for this test; at the end, none may have left loopback."""
    visitors: list[Visitor] = []
    test_name = request.node.name.removeprefix("test_").replace("[", "-").rstrip("]")

    def make(label: str = "", viewport: ViewportSize | None = None) -> Visitor:
        context = browser.new_context(
            viewport=viewport or PHONE,
            locale="en-GB",
            timezone_id="Europe/Berlin",
            device_scale_factor=1,
        )
        context.set_default_timeout(EXPECT_TIMEOUT_MS)
        requests: list[str] = []
        context.on("request", lambda req: requests.append(req.url))
        page = context.new_page()
        name = f"{test_name}-{label}" if label else test_name
        visitor = Visitor(context, page, live_server, requests, name)
        page.on("pageerror", lambda error: visitor.problems.append(f"uncaught: {error}"))
        page.on(
            "console",
            lambda message: (
                visitor.problems.append(f"console: {message.text}")
                if "Content Security Policy" in message.text or "Refused to" in message.text
                else None
            ),
        )
        visitors.append(visitor)
        return visitor

    yield make
    try:
        for visitor in visitors:
            visitor.assert_only_loopback()
            visitor.assert_no_script_errors()
    finally:
        for visitor in visitors:
            visitor.context.close()


@pytest.fixture
def visitor(new_visitor: Callable[..., Visitor]) -> Visitor:
    return new_visitor()


@pytest.fixture
def web_athlete(emulator: EmulatorHandle) -> dict[str, Any]:
    """A fresh emulator athlete with a known name (the consent page lists it by id)."""
    return emulator.admin.create_athlete(firstname="Jane", lastname="Doe")


@pytest.fixture
def web_worker(live_server: LiveServer, celery_worker: Any) -> Iterator[None]:
    """The live API publishing its sync runs to the real Celery worker of tests/conftest.py
    (`celery_worker`: solo pool, Redis, a queue of this session's own), an empty rate budget."""
    from app.strava import tasks

    tasks.runtime().budget.reset()
    live_server.worker_enqueue = tasks.enqueue_sync
    try:
        yield
    finally:
        live_server.worker_enqueue = None
        tasks.runtime().budget.reset()
