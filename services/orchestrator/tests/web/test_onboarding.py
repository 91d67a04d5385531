"""The web onboarding in a real browser (issue 5): profile → Connect with Strava → the emulator's
consent page → the callback page → the profile summary, and every way that can go wrong."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, cast

import pytest
from app.db import session_scope
from app.security import s256_challenge
from app.strava.models import StravaLink, SyncRun
from playwright.sync_api import expect
from sqlalchemy import update
from strava_emulator.testing import EmulatorHandle
from web.browser_support import CALLBACK, DESKTOP, Visitor

pytestmark = pytest.mark.browser

PAGES = ["/", "/onboarding/profile", "/onboarding/strava", CALLBACK, "/onboarding/summary"]


# --- headers ---


def test_onboarding_pages_send_security_headers(visitor: Visitor) -> None:
    for path in PAGES:
        response = visitor.page.request.get(visitor.server.url(path))
        assert response.status == 200, path
        headers = response.headers
        assert headers["referrer-policy"] == "no-referrer", path
        csp = headers["content-security-policy"]
        assert "default-src 'self'" in csp, path
        assert "script-src 'self'" in csp, path
        assert "frame-ancestors 'none'" in csp, path
        assert headers["x-content-type-options"] == "nosniff", path


def test_callback_page_is_never_cached_and_strips_its_query(visitor: Visitor) -> None:
    response = visitor.goto(f"{CALLBACK}?state=abc&code=secret-code&scope=read")
    assert response is not None
    assert response.status == 200
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["referrer-policy"] == "no-referrer"
    # No session in this browser: onboarding starts over, and the code went nowhere.
    expect(visitor.page).to_have_url(visitor.server.url("/onboarding/profile"))
    assert [url for url in visitor.requests if "secret-code" in url] == [
        visitor.server.url(f"{CALLBACK}?state=abc&code=secret-code&scope=read")
    ]


def test_only_known_assets_are_served(visitor: Visitor) -> None:
    for path in ("/onboarding/assets/nope.js", "/onboarding/assets/..%2Fsummary.html"):
        assert visitor.page.request.get(visitor.server.url(path)).status == 404, path
    ok = visitor.page.request.get(visitor.server.url("/onboarding/assets/app.js"))
    assert ok.status == 200
    assert ok.headers["content-type"].startswith("text/javascript")


# --- the link flow and what can go wrong ---


def test_cancelling_on_the_consent_page_says_so_and_try_again_restarts(
    visitor: Visitor, web_athlete: dict[str, Any]
) -> None:
    visitor.submit_profile()
    visitor.link_strava(web_athlete["id"], cancel=True)

    visitor.expect_problem("access_denied", "You cancelled the connection")
    assert visitor.session_storage() == {}, "the verifier must be gone after use"
    visitor.snap("cancelled")

    visitor.open_consent("Try again")
    visitor.decide(web_athlete["id"])
    expect(visitor.page.locator("#linked-as")).to_have_text("Linked as Jane D.")


def test_unticking_private_activities_is_insufficient_scope(
    visitor: Visitor, web_athlete: dict[str, Any]
) -> None:
    visitor.submit_profile()
    visitor.link_strava(web_athlete["id"], untick=("activity:read_all",))

    visitor.expect_problem("insufficient_scope", "Coach George needs to see your activities")
    visitor.snap("insufficient-scope")

    # The summary remembers why the last attempt failed and offers the Connect button again.
    page = visitor.page
    page.get_by_role("link", name="Back to your profile").click()
    expect(page.locator("#strava-badge")).to_have_text("Not connected")
    expect(page.locator("#error-title")).to_have_text("Coach George needs to see your activities")
    expect(page.get_by_role("button", name="Connect with Strava")).to_be_enabled()
    visitor.snap("summary-after-failure")


def test_a_second_runner_cannot_link_an_athlete_already_linked(
    new_visitor: Callable[..., Visitor], web_athlete: dict[str, Any]
) -> None:
    first = new_visitor("first")
    first.submit_profile("First Runner")
    first.link_strava(web_athlete["id"])
    expect(first.page.locator("#linked-as")).to_have_text("Linked as Jane D.")

    second = new_visitor("second")
    second.submit_profile("Second Runner")
    second.link_strava(web_athlete["id"])

    second.expect_problem("athlete_already_linked", "This Strava account is already linked")
    second.snap("already-linked")


def test_replaying_a_callback_url_is_refused(visitor: Visitor, web_athlete: dict[str, Any]) -> None:
    visitor.submit_profile()
    visitor.link_strava(web_athlete["id"])
    expect(visitor.page.locator("#linked-as")).to_have_text("Linked as Jane D.")
    callback_url = next(url for url in visitor.requests if f"{CALLBACK}?" in url)
    assert "code=" in callback_url

    visitor.page.goto(callback_url)  # the same code and state again: this tab's verifier is gone
    visitor.expect_problem("invalid_state", "This link attempt is no longer valid")


def test_an_attempt_the_server_does_not_know_shows_invalid_state(visitor: Visitor) -> None:
    visitor.submit_profile()
    visitor.page.evaluate(
        """sessionStorage.setItem("coachGeorge.stravaLink",
             JSON.stringify({state: "stale-state", verifier: "v".repeat(64)}))"""
    )
    visitor.goto(f"{CALLBACK}?state=stale-state&code=whatever&scope=read,activity:read_all")
    visitor.expect_problem("invalid_state", "This link attempt is no longer valid")
    assert visitor.session_storage() == {}


def test_the_browser_makes_the_pkce_pair_and_sends_the_verifier_once(
    visitor: Visitor, web_athlete: dict[str, Any]
) -> None:
    visitor.submit_profile()
    page = visitor.page
    with page.expect_request(re.compile(r"/api/v1/strava/link-token$")) as token_request:
        visitor.open_consent()
    token_body = cast(dict[str, Any], token_request.value.post_data_json)
    assert token_body["code_challenge_method"] == "S256"
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", token_body["code_challenge"])
    assert token_body["redirect_uri"] == visitor.server.url(CALLBACK)

    with page.expect_request(re.compile(r"/api/v1/strava/callback$")) as callback_request:
        visitor.decide(web_athlete["id"])
    callback_body = cast(dict[str, Any], callback_request.value.post_data_json)
    verifier = callback_body["code_verifier"]
    assert re.fullmatch(r"[A-Za-z0-9_-]{64}", verifier)
    assert s256_challenge(verifier) == token_body["code_challenge"]
    assert set(callback_body) == {"state", "code", "scope", "code_verifier"}
    expect(page.locator("#linked-as")).to_have_text("Linked as Jane D.")
    assert visitor.session_storage() == {}


# --- keyboard and layout ---


def test_profile_step_works_with_the_keyboard_alone(visitor: Visitor) -> None:
    page = visitor.page
    visitor.goto("/onboarding/profile")
    expect(page.get_by_label("Time zone")).to_have_value("Europe/Berlin")  # prefilled from Intl
    page.keyboard.press("Tab")
    expect(page.get_by_role("link", name="Skip to content")).to_be_focused()
    page.keyboard.press("Tab")
    expect(page.get_by_role("link", name="Coach George")).to_be_focused()
    page.keyboard.press("Tab")
    expect(page.get_by_label("Your name")).to_be_focused()
    outline = page.get_by_label("Your name").evaluate(
        "el => [getComputedStyle(el).outlineStyle, getComputedStyle(el).outlineWidth]"
    )
    assert outline == ["solid", "3px"], "keyboard focus must be visible"

    page.keyboard.press("Enter")  # submitting it empty: a message, and focus stays on the field
    expect(page.get_by_text("Enter your name")).to_be_visible()
    expect(page.get_by_label("Your name")).to_be_focused()
    expect(page.get_by_label("Your name")).to_have_attribute("aria-invalid", "true")
    visitor.snap("profile-error")

    page.keyboard.type("Kim Keyboard")
    page.keyboard.press("Tab")
    expect(page.get_by_label("Time zone")).to_be_focused()
    page.keyboard.press("Tab")
    expect(page.get_by_label("Weekly distance goal")).to_be_focused()
    page.keyboard.type("35")
    page.keyboard.press("Tab")
    expect(page.get_by_role("button", name="Continue")).to_be_focused()
    page.keyboard.press("Enter")
    expect(page).to_have_url(visitor.server.url("/onboarding/strava"))


def test_connect_step_follows_the_brand_rules(visitor: Visitor) -> None:
    visitor.submit_profile()
    page = visitor.page
    button = page.get_by_role("button", name="Connect with Strava")
    box = button.bounding_box()
    assert box is not None
    assert box["height"] == 48
    colours = button.evaluate(
        "el => [getComputedStyle(el).backgroundColor, getComputedStyle(el).color]"
    )
    assert colours == ["rgb(252, 82, 0)", "rgb(255, 255, 255)"]
    expect(page.get_by_text("Powered by Strava")).to_be_visible()
    expect(page.get_by_text("activities of the last 28 days").first).to_be_visible()
    expect(page.get_by_text("real training load")).to_be_visible()
    visitor.snap("connect")


def test_desktop_size_onboarding(new_visitor: Callable[..., Visitor]) -> None:
    desk = new_visitor("desk", viewport=DESKTOP)
    desk.submit_profile()
    box = desk.page.get_by_role("button", name="Connect with Strava").bounding_box()
    assert box is not None
    assert box["height"] == 48


# --- the summary ---


def test_summary_shows_the_first_sync_in_progress(
    visitor: Visitor, web_athlete: dict[str, Any]
) -> None:
    """No worker here: the first sync stays queued, which is exactly the progress state."""
    visitor.submit_profile("Jane Runner", goal="40")
    visitor.link_strava(web_athlete["id"])
    expect(visitor.page.locator("#linked-as")).to_have_text("Linked as Jane D.")
    visitor.snap("linked")
    visitor.continue_to_summary()
    page = visitor.page

    expect(page.get_by_role("heading", name="Hi Jane Runner")).to_be_visible()
    expect(page.get_by_text("Weekly goal: 40 km")).to_be_visible()
    strava = page.locator("#strava-card")
    expect(strava.locator("#strava-badge")).to_have_text("Connected")
    expect(strava.locator("#athlete-name")).to_have_text("Jane D.")
    expect(strava.get_by_text("Syncing your last 28 days from Strava…")).to_be_visible()
    expect(strava.locator("#last-sync")).to_have_text("First sync in progress")
    expect(page.locator("#workouts-empty")).to_contain_text("once the first sync is done")
    expect(page.get_by_text("Powered by Strava")).to_be_visible()
    visitor.snap("summary-syncing")


def test_disconnecting_asks_first_then_removes_the_link(
    visitor: Visitor, web_athlete: dict[str, Any], emulator: EmulatorHandle
) -> None:
    visitor.submit_profile()
    visitor.link_strava(web_athlete["id"])
    visitor.continue_to_summary()
    page = visitor.page
    dialog = page.get_by_role("dialog", name="Disconnect Strava?")

    page.get_by_role("button", name="Disconnect Strava").click()
    expect(dialog).to_be_visible()
    expect(dialog.get_by_role("button", name="Keep connected")).to_be_focused()
    visitor.snap("unlink-dialog")
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    expect(page.get_by_role("button", name="Disconnect Strava")).to_be_focused()
    expect(page.locator("#strava-badge")).to_have_text("Connected")

    page.get_by_role("button", name="Disconnect Strava").click()
    dialog.get_by_role("button", name="Disconnect", exact=True).click()

    expect(page.locator("#strava-badge")).to_have_text("Not connected")
    expect(page.get_by_role("button", name="Connect with Strava")).to_be_visible()
    expect(page.locator("#live")).to_have_text("Strava is disconnected.")
    expect(page.locator("#load-card")).to_be_hidden()
    assert visitor.api("GET", "/api/v1/strava/status")["status"] == "not_linked"
    deauthorized = emulator.admin.requests(path="/oauth/deauthorize")
    assert [entry["athlete_id"] for entry in deauthorized][-1:] == [web_athlete["id"]]
    visitor.snap("unlinked")


def test_summary_error_states_offer_their_action(
    visitor: Visitor, web_athlete: dict[str, Any]
) -> None:
    """The link's error as the sync records it (written straight to the database here)."""
    visitor.submit_profile()
    visitor.link_strava(web_athlete["id"])
    visitor.continue_to_summary()
    page = visitor.page
    runner_id = visitor.runner_id()
    _finish_queued_syncs(runner_id)
    expect(page.locator("#sync-progress")).to_be_hidden()

    retry_at = datetime(2026, 11, 24, 13, 15, tzinfo=UTC)  # 14:15 in Europe/Berlin
    _set_link_error(runner_id, "rate_limited", retry_at=retry_at)
    page.reload()
    expect(page.locator("#error-title")).to_have_text("Strava is busy, retrying at 14:15")
    expect(page.locator("#error-action")).to_be_hidden()
    visitor.snap("summary-wait")

    _set_link_error(runner_id, "sync_failed")
    page.reload()
    expect(page.locator("#error-title")).to_have_text("The last sync did not finish")
    with page.expect_request(re.compile(r"/api/v1/strava/sync$")) as sync_request:
        page.get_by_role("button", name="Retry sync").click()
    assert sync_request.value.method == "POST"
    expect(page.locator("#sync-progress")).to_be_visible()
    expect(page.locator("#live")).to_have_text("Syncing with Strava…")


def _finish_queued_syncs(runner_id: uuid.UUID) -> None:
    with session_scope() as session:
        session.execute(
            update(SyncRun)
            .where(SyncRun.runner_id == runner_id, SyncRun.state.in_(("queued", "running")))
            .values(state="failed")
        )


def _set_link_error(runner_id: uuid.UUID, code: str, *, retry_at: datetime | None = None) -> None:
    with session_scope() as session:
        session.execute(
            update(StravaLink)
            .where(StravaLink.runner_id == runner_id)
            .values(error_code=code, error_message=None, error_retry_at=retry_at)
        )


# --- with a real worker: synced runs, and a grant revoked on Strava ---


def _expect_synced(visitor: Visitor) -> dict[str, Any]:
    """Wait (auto-waiting expect) until the page shows a finished sync; return the API's view."""
    page = visitor.page
    expect(page.locator("body")).to_have_attribute("data-sync-state", "idle")
    expect(page.locator("#last-sync")).to_have_text("just now")
    summary: dict[str, Any] = visitor.api("GET", "/api/v1/profile/summary")
    return summary


def test_happy_path_from_an_empty_browser_to_synced_runs(
    visitor: Visitor, web_worker: None, emulator: EmulatorHandle
) -> None:
    athlete = emulator.admin.create_athlete(firstname="Jane", lastname="Doe")
    strava_ids = {activity["id"] for activity in emulator.admin.list_activities(athlete["id"])}
    page = visitor.page

    visitor.goto("/")
    expect(page).to_have_url(visitor.server.url("/onboarding/profile"))
    assert page.evaluate("localStorage.length") == 0
    page.get_by_label("Your name").fill("Jane Runner")
    page.get_by_label("Weekly distance goal").fill("42")
    visitor.snap("1-profile")
    page.get_by_role("button", name="Continue").click()
    expect(page.get_by_role("heading", name="Connect Strava")).to_be_visible()
    visitor.snap("2-connect")

    visitor.open_consent()
    visitor.snap("3-consent")
    visitor.decide(athlete["id"])
    expect(page.locator("#linked-as")).to_have_text("Linked as Jane D.")
    visitor.snap("4-linked")

    visitor.continue_to_summary()
    summary = _expect_synced(visitor)
    training = summary["training"]
    assert training["runs"] > 0, "the generated athlete has runs in the last 28 days"
    expect(page.locator("#strava-badge")).to_have_text("Connected")
    expect(page.locator("#athlete-name")).to_have_text("Jane D.")
    expect(page.locator("#stat-runs")).to_have_text(str(training["runs"]))
    expect(page.locator("#stat-distance")).to_contain_text(" km")
    expect(page.locator("#weeks > li")).to_have_count(4)
    expect(page.locator("#goal-line")).to_have_text("Weekly goal: 42 km")

    workouts = visitor.api("GET", "/api/v1/workouts?limit=5")["items"]
    links = page.get_by_role("link", name=re.compile("^View on Strava"))
    expect(links).to_have_count(len(workouts))
    hrefs = [links.nth(index).get_attribute("href") for index in range(len(workouts))]
    assert hrefs == [f"https://www.strava.com/activities/{w['source_id']}" for w in workouts]
    assert {w["source_id"] for w in workouts} <= strava_ids
    expect(page.get_by_text("Powered by Strava")).to_be_visible()
    visitor.snap("5-summary")


def test_revoked_on_strava_then_sync_shows_reconnect_and_reconnecting_fixes_it(
    visitor: Visitor, web_worker: None, emulator: EmulatorHandle, web_athlete: dict[str, Any]
) -> None:
    visitor.submit_profile()
    visitor.link_strava(web_athlete["id"])
    visitor.continue_to_summary()
    _expect_synced(visitor)
    page = visitor.page

    emulator.admin.revoke(web_athlete["id"])
    page.get_by_role("button", name="Sync now").click()

    expect(page.locator("#strava-badge")).to_have_text("Action needed")
    reconnect = page.get_by_role("button", name="Reconnect Strava")
    expect(reconnect).to_be_visible()
    expect(page.locator("#live")).to_contain_text("Strava")
    visitor.snap("revoked")

    reconnect.click()
    expect(page).to_have_url(re.compile(r"/oauth/mobile/authorize\?"))
    visitor.decide(web_athlete["id"])
    expect(page.locator("#linked-as")).to_have_text("Linked as Jane D.")
    visitor.continue_to_summary()
    _expect_synced(visitor)
    expect(page.locator("#strava-badge")).to_have_text("Connected")
    expect(page.locator("#strava-error")).to_be_hidden()
    visitor.snap("reconnected")
