"""The web summary follows Strava's webhooks without a click (issue 11): a run made in the emulator
appears in Recent workouts, and revoking the app in the emulator empties the page and offers
Reconnect. The emulator is subscribed to the API's real webhook callback (tests/webhook_support.py,
sharing the database of the live server the browser uses); events are processed by the real Celery
worker. Screenshots at phone and desktop sizes in test-output/screenshots/."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest
from playwright.sync_api import expect
from web.browser_support import Visitor
from webhook_support import serve_hooks, subscribed

if TYPE_CHECKING:
    from app.config import Settings
    from strava_emulator.testing import EmulatorHandle

pytestmark = [pytest.mark.browser, pytest.mark.worker]


@pytest.fixture
def webhooks(
    worker_settings: Settings, web_worker: None, emulator: EmulatorHandle
) -> Iterator[None]:
    """The emulator pushing events to our callback; the worker (web_worker) processes them."""
    with serve_hooks(worker_settings) as hooks, subscribed(emulator, hooks):
        yield


def _linked_and_synced(visitor: Visitor, athlete: dict[str, Any]) -> None:
    visitor.submit_profile("Jane Runner")
    visitor.link_strava(athlete["id"])
    visitor.continue_to_summary()
    page = visitor.page
    expect(page.locator("body")).to_have_attribute("data-sync-state", "idle")
    expect(page.locator("#last-sync")).to_have_text("just now")
    expect(page.locator("#workouts > li").first).to_be_visible()


def test_a_new_activity_made_in_the_emulator_appears_without_a_click(
    visitor: Visitor, webhooks: None, web_athlete: dict[str, Any], emulator: EmulatorHandle
) -> None:
    _linked_and_synced(visitor, web_athlete)
    page = visitor.page
    name = "Harbour loop pushed by Strava"
    expect(page.locator("#workouts")).not_to_contain_text(name)

    emulator.admin.create_activity(
        web_athlete["id"], name=name, sport_type="Run", distance=8000.0, moving_time=2400
    )

    # No click, no reload: the idle poll of the visible page picks up the processed event.
    newest = page.locator("#workouts > li").first
    expect(newest.locator(".workout-name")).to_have_text(name)
    expect(newest.locator(".workout-meta")).to_contain_text("8.0\u00a0km")
    visitor.snap("new-run")


def test_revoking_the_app_in_the_emulator_empties_the_summary_and_shows_reconnect(
    visitor: Visitor, webhooks: None, web_athlete: dict[str, Any], emulator: EmulatorHandle
) -> None:
    _linked_and_synced(visitor, web_athlete)
    page = visitor.page

    emulator.admin.revoke(web_athlete["id"])  # the deauthorization event, confirmed at Strava

    # No click, no reload: the page says access was removed and offers Reconnect.
    expect(page.locator("#error-title")).to_have_text("Coach George's access was removed on Strava")
    expect(page.locator("#error-message")).to_have_text(
        "Your Strava workouts were removed from Coach George, as Strava asks. "
        "Reconnect Strava to sync them again."
    )
    expect(page.locator("#strava-error")).to_have_attribute("data-code", "revoked")
    expect(page.get_by_role("button", name="Reconnect Strava")).to_be_visible()
    expect(page.locator("#strava-badge")).to_have_text("Not connected")
    # Nothing from Strava is left on the page: no workouts, load, athlete or generic Connect card.
    expect(page.locator("#workouts-card")).to_be_hidden()
    expect(page.locator("#workouts > li")).to_have_count(0)
    expect(page.locator("#load-card")).to_be_hidden()
    expect(page.locator("#training-card")).to_be_hidden()
    expect(page.locator("#link-facts")).to_be_hidden()
    expect(page.locator("#not-linked")).to_be_hidden()
    assert visitor.api("GET", "/api/v1/workouts?limit=5")["items"] == []
    visitor.snap("revoked")

    # Reconnect leads to the consent page again.
    visitor.open_consent("Reconnect Strava")
