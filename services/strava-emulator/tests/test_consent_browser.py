"""The consent page in a real (Debian) Chromium: the selectors work as browser tests use them."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from strava_emulator.testing import EmulatorHandle

pytestmark = pytest.mark.browser

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
CALLBACK = "http://localhost/strava/callback"


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not os.access(CHROMIUM, os.X_OK):
        pytest.skip(f"no Chromium at {CHROMIUM}")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=CHROMIUM, args=["--headless", "--no-sandbox", "--disable-gpu"]
        )
        yield launched
        launched.close()


def run_consent(
    emu: EmulatorHandle, browser: Any, athlete_id: int, untick: list[str], button: str
) -> dict[str, list[str]]:
    page = browser.new_page()
    landed: list[str] = []

    def capture(route: Any) -> None:  # the app's callback: record it, answer with a stub page
        landed.append(route.request.url)
        route.fulfill(status=200, content_type="text/html", body="<p>callback</p>")

    page.route(f"{CALLBACK}**", capture)
    query = urlencode(
        {
            "client_id": emu.config.client_id,
            "redirect_uri": CALLBACK,
            "response_type": "code",
            "scope": "read,activity:read_all,profile:read_all",
            "state": "browser-state",
        }
    )
    page.goto(f"{emu.oauth_base_url}/authorize?{query}")
    page.select_option("select#athlete", str(athlete_id))
    for scope in untick:
        page.uncheck(f'input[type=checkbox][name=scope][value="{scope}"]')
    page.click(f"button#{button}")
    page.wait_for_url(f"{CALLBACK}**")
    page.close()
    assert len(landed) == 1
    return parse_qs(urlsplit(landed[0]).query)


def test_authorize_in_a_browser(emu: EmulatorHandle, browser: Any, athlete: dict[str, Any]) -> None:
    params = run_consent(emu, browser, athlete["id"], ["profile:read_all"], "authorize")
    assert params["state"] == ["browser-state"]
    assert params["scope"] == ["read,activity:read_all"]
    assert len(params["code"][0]) == 40


def test_cancel_in_a_browser(emu: EmulatorHandle, browser: Any, athlete: dict[str, Any]) -> None:
    params = run_consent(emu, browser, athlete["id"], [], "cancel")
    assert params == {"state": ["browser-state"], "error": ["access_denied"]}
