"""What the browser tests share: the live server handle, a runner's browser (`Visitor`) and the
steps of the onboarding journey. Importable as `web.browser_support` (tests/ is on pythonpath)."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from playwright.sync_api import ViewportSize, expect

if TYPE_CHECKING:
    from app.config import Settings
    from playwright.sync_api import BrowserContext, Page, Response

PHONE: ViewportSize = {"width": 390, "height": 844}
DESKTOP: ViewportSize = {"width": 1280, "height": 800}
SCREENSHOTS = Path(__file__).resolve().parents[4] / "test-output" / "screenshots"
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
CALLBACK = "/onboarding/strava/callback"
SUMMARY = "/onboarding/summary"
AUTHORIZE = re.compile(r"^http://127\.0\.0\.1:\d+/oauth/mobile/authorize\?")


@dataclass
class LiveServer:
    """The orchestrator served by uvicorn; `enqueue` decides where its sync runs go."""

    base_url: str
    settings: Settings
    enqueued: list[uuid.UUID] = field(default_factory=list)
    worker_enqueue: Callable[[uuid.UUID], None] | None = None

    def enqueue(self, sync_run_id: uuid.UUID) -> None:
        if self.worker_enqueue is not None:
            self.worker_enqueue(sync_run_id)
        else:
            self.enqueued.append(sync_run_id)

    def url(self, path: str) -> str:
        return f"{self.base_url}{path}"


def is_loopback(url: str) -> bool:
    parts = urlsplit(url)
    if parts.scheme in ("data", "blob", "about"):
        return True
    return (parts.hostname or "") in LOOPBACK_HOSTS


@dataclass
class Visitor:
    """One runner's browser: a fresh context (empty storage) and every request it made."""

    context: BrowserContext
    page: Page
    server: LiveServer
    requests: list[str]
    name: str
    problems: list[str] = field(default_factory=list)

    def goto(self, path: str) -> Response | None:
        return self.page.goto(self.server.url(path))

    def snap(self, step: str) -> None:
        """Full-page screenshots at phone and desktop sizes (then back to the test's own size),
        checking on the way that nothing scrolls sideways."""
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        original = self.page.viewport_size or PHONE
        for label, size in (("phone", PHONE), ("desktop", DESKTOP)):
            self.page.set_viewport_size(size)
            overflow = self.page.evaluate(
                "document.documentElement.scrollWidth - document.documentElement.clientWidth"
            )
            assert overflow <= 0, f"{step} scrolls sideways by {overflow}px at {label} size"
            self.page.screenshot(
                path=str(SCREENSHOTS / f"{self.name}-{step}-{label}.png"), full_page=True
            )
        self.page.set_viewport_size(original)

    def assert_only_loopback(self) -> None:
        outside = [url for url in self.requests if not is_loopback(url)]
        assert not outside, f"requests left 127.0.0.1: {outside}"

    def assert_no_script_errors(self) -> None:
        """No uncaught exception, and nothing the Content-Security-Policy had to block."""
        assert not self.problems, self.problems

    # --- the journey ---

    def submit_profile(self, name: str = "Jane Runner", goal: str | None = None) -> None:
        page = self.page
        self.goto("/")
        expect(page).to_have_url(self.server.url("/onboarding/profile"))
        expect(page.get_by_role("heading", name="Tell us about you")).to_be_visible()
        page.get_by_label("Your name").fill(name)
        if goal is not None:
            page.get_by_label("Weekly distance goal").fill(goal)
        page.get_by_role("button", name="Continue").click()
        expect(page).to_have_url(self.server.url("/onboarding/strava"))
        expect(page.get_by_role("heading", name="Connect Strava")).to_be_visible()

    def open_consent(self, button: str = "Connect with Strava") -> None:
        self.page.get_by_role("button", name=button).click()
        expect(self.page).to_have_url(AUTHORIZE)

    def decide(
        self, athlete_id: int, *, untick: tuple[str, ...] = (), cancel: bool = False
    ) -> None:
        """Act on the emulator's consent page; wait for the callback page to clean its URL."""
        page = self.page
        page.locator("select#athlete").select_option(str(athlete_id))
        for scope in untick:
            page.locator(f'input[name=scope][value="{scope}"]').uncheck()
        page.locator("button#cancel" if cancel else "button#authorize").click()
        expect(page).to_have_url(self.server.url(CALLBACK))

    def link_strava(self, athlete_id: int, **kwargs: Any) -> None:
        self.open_consent()
        self.decide(athlete_id, **kwargs)

    def expect_problem(self, code: str, title: str) -> None:
        page = self.page
        expect(page.get_by_role("heading", level=1)).to_have_text(title)
        expect(page.locator("#problem-code")).to_have_text(code)
        expect(page.get_by_role("button", name="Try again")).to_be_visible()
        expect(page.get_by_role("heading", level=1)).to_be_focused()

    def session_storage(self) -> dict[str, str]:
        stored: dict[str, str] = self.page.evaluate(
            "Object.fromEntries(Object.entries(sessionStorage))"
        )
        return stored

    def api(self, method: str, path: str) -> Any:
        """Call the API as this browser's runner (its bearer token from localStorage)."""
        token = self.page.evaluate("localStorage.getItem('coachGeorge.accessToken')")
        response = self.context.request.fetch(
            self.server.url(path), method=method, headers={"Authorization": f"Bearer {token}"}
        )
        assert response.ok, response.text()
        return None if response.status == 204 else response.json()

    def runner_id(self) -> uuid.UUID:
        return uuid.UUID(self.api("GET", "/api/v1/profile/summary")["profile"]["runner_id"])

    def continue_to_summary(self) -> None:
        self.page.get_by_role("link", name="See your training").click()
        expect(self.page).to_have_url(self.server.url(SUMMARY))
