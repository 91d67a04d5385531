"""The training-load model on the web summary (issue 12), in a real browser: daily load bars with
fitness and fatigue lines drawn as inline SVG, form and the acute:chronic ratio in plain words,
"provisional" while the history is shorter than 42 days. A sandbox athlete synced by a real
worker; screenshots at phone and desktop sizes in test-output/screenshots/."""

from __future__ import annotations

import math
import re
from typing import Any

import pytest
from playwright.sync_api import expect
from strava_emulator.testing import EmulatorHandle
from web.browser_support import DESKTOP, PHONE, Visitor

pytestmark = pytest.mark.browser


def test_summary_draws_the_load_model_in_words_and_a_chart(
    visitor: Visitor, web_worker: None, emulator: EmulatorHandle
) -> None:
    athlete = emulator.admin.create_athlete(firstname="Jane", lastname="Doe")
    visitor.submit_profile("Jane Runner")
    visitor.link_strava(athlete["id"])
    visitor.continue_to_summary()
    page = visitor.page
    expect(page.locator("body")).to_have_attribute("data-sync-state", "idle")
    expect(page.locator("#last-sync")).to_have_text("just now")
    model: dict[str, Any] = visitor.api("GET", "/api/v1/training/load?days=28")
    current = model["current"]
    days = model["days"]
    assert any(day["load"] > 0 for day in days), "the sandbox athlete trains"

    card = page.locator("#training-card")
    expect(card.get_by_role("heading", name="Training load")).to_be_visible()
    # 28 days of history: fitness has not settled, and the page says so.
    assert current["provisional"] is True
    expect(card.locator("#training-badge")).to_have_text("Provisional")
    expect(card.locator("#load-sentences > li")).to_have_text(current["sentences"])
    expect(card.get_by_text("These figures are provisional")).to_be_visible()
    # Form and the acute:chronic ratio, in words (docs/training-load.md §5).
    form_words = re.compile(r"fatigue|fresh|in balance", re.IGNORECASE)
    ratio_words = re.compile(r"recent weeks|times your usual")
    assert any(form_words.search(sentence) for sentence in current["sentences"])
    assert any(ratio_words.search(sentence) for sentence in current["sentences"])

    expect(card.locator("#figure-fitness")).to_have_text(_points(current["ctl"]))
    expect(card.locator("#figure-fatigue")).to_have_text(_points(current["atl"]))
    expect(card.locator("#figure-form")).to_have_text(_points(current["form"]))

    chart = card.locator("#load-plot svg")
    expect(chart).to_have_attribute("role", "img")
    loaded = [day for day in days if day["load"] > 0]
    expect(chart.locator("rect.bar-load")).to_have_count(len(loaded))
    first = chart.locator("rect.bar-load").first
    expect(first).to_have_attribute("data-date", loaded[0]["date"])
    expect(first.locator("title")).to_contain_text(" points (")
    for line in ("polyline.line-fitness", "polyline.line-fatigue"):
        drawn = chart.locator(line).get_attribute("points")
        assert drawn is not None
        assert len(drawn.split()) == len(days) == 28, line
    # The tallest bar is the day with the most load; bars stand on the same baseline.
    heights = [
        float(h)
        for h in chart.locator("rect.bar-load").evaluate_all(
            "bars => bars.map(bar => bar.getAttribute('height'))"
        )
    ]
    tallest = max(range(len(loaded)), key=lambda index: loaded[index]["load"])
    assert heights[tallest] == max(heights)
    expect(chart.locator("text", has_text="Today")).to_have_count(1)

    # What the figures rest on, estimates saying they are estimates.
    physiology = model["physiology"]
    basis = card.locator("#basis-list > li")
    expect(basis).to_have_count(5)
    max_hr = physiology["max_hr"]
    assert max_hr["source"] == "estimated", "the sandbox athlete records heart rate"
    card.get_by_text("What these figures are based on").click()
    expect(basis.first).to_have_text(
        f"{max_hr['note'][0].upper()}{max_hr['note'][1:]}: {_points(max_hr['value'])} bpm."
    )
    expect(basis.first).to_have_attribute("data-source", "estimated")
    expect(card.get_by_text("Resting heart rate assumed 60 bpm")).to_be_visible()

    visitor.snap("training-load")
    # Redrawn to the card's width at desktop size (text keeps its size instead of stretching).
    page.set_viewport_size(DESKTOP)
    expect(card.locator("#load-plot svg")).to_have_attribute(
        "width", re.compile(r"^\d{4}$|^[6-9]\d\d$")
    )
    page.set_viewport_size(PHONE)
    expect(card.locator("#load-plot svg")).to_have_attribute("width", re.compile(r"^[23]\d\d$"))


def _points(value: float) -> str:
    """As the page shows it: JavaScript's Math.round (halves up), a true minus sign."""
    rounded = math.floor(value + 0.5)
    return f"\u2212{abs(rounded)}" if rounded < 0 else str(rounded)


def test_before_the_first_sync_the_load_card_says_what_is_coming(
    visitor: Visitor, web_athlete: dict[str, Any]
) -> None:
    """No worker: the first sync stays queued, and there is nothing to chart yet."""
    visitor.submit_profile()
    visitor.link_strava(web_athlete["id"])
    visitor.continue_to_summary()
    card = visitor.page.locator("#training-card")
    expect(card.locator("#training-pending")).to_have_text(
        "Your fitness, fatigue and form appear here once your workouts are synced."
    )
    expect(card.locator("#training-body")).to_be_hidden()
    expect(card.locator("#training-badge")).to_be_hidden()
