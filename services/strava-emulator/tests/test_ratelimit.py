"""Rate limits: headers on every Strava response, aligned windows, 429s that still count."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx2
import pytest
import time_machine
from strava_emulator.ratelimit import RateLimiter
from strava_emulator.testing import EmulatorHandle

RATE_LIMITED = (
    b'{"message":"Rate Limit Exceeded","errors":[{"resource":"Application",'
    b'"field":"rate limit","code":"exceeded"}]}'
)
HEADERS = (
    "x-ratelimit-limit",
    "x-ratelimit-usage",
    "x-readratelimit-limit",
    "x-readratelimit-usage",
)


@pytest.fixture(autouse=True)
def _mid_window() -> Iterator[None]:
    """Frozen mid-quarter, so no real window boundary can pass during a test."""
    with time_machine.travel(datetime(2026, 3, 10, 9, 7, 30, tzinfo=UTC), tick=False):
        yield


def usage(response: httpx2.Response) -> tuple[str, str]:
    return response.headers["x-ratelimit-usage"], response.headers["x-readratelimit-usage"]


def test_every_strava_response_carries_the_four_headers(
    emu: EmulatorHandle, api: httpx2.Client
) -> None:
    responses = [
        api.get("/athlete"),
        api.get("/athlete/activities"),
        api.get("/activities/1"),  # 404
        api.get("/no/such/path"),  # 404
        httpx2.get(f"{emu.api_base_url}/athlete"),  # 401
        httpx2.post(f"{emu.oauth_base_url}/token", data={"client_id": "1"}),  # 400
    ]
    for response in responses:
        assert all(response.headers.get(name) for name in HEADERS), response.request.url
        assert "retry-after" not in response.headers
    assert responses[0].headers["x-ratelimit-limit"] == "200,2000"
    assert responses[0].headers["x-readratelimit-limit"] == "100,1000"
    assert usage(responses[-1]) == ("6,6", "6,6")


def test_admin_and_authorize_pages_are_not_counted(emu: EmulatorHandle, api: httpx2.Client) -> None:
    emu.admin.list_athletes()
    page = httpx2.get(
        f"{emu.oauth_base_url}/authorize",
        params={"client_id": 1000, "redirect_uri": "http://localhost/", "response_type": "code"},
    )
    assert page.status_code == 200
    assert "x-ratelimit-usage" not in page.headers
    assert usage(api.get("/athlete")) == ("1,1", "1,1")
    assert emu.admin.get_rate_limits()["read_usage"] == [1, 1]


def test_the_fifteen_minute_window_is_aligned_to_the_quarter_hour(
    emu: EmulatorHandle, athlete: dict[str, Any]
) -> None:
    with time_machine.travel(datetime(2026, 3, 10, 12, 14, 59, tzinfo=UTC), tick=False) as clock:
        token = emu.admin.issue_tokens(athlete["id"])["access_token"]
        headers = {"Authorization": f"Bearer {token}"}
        url = f"{emu.api_base_url}/athlete"
        assert usage(httpx2.get(url, headers=headers)) == ("1,1", "1,1")
        assert usage(httpx2.get(url, headers=headers)) == ("2,2", "2,2")
        clock.move_to(datetime(2026, 3, 10, 12, 15, 0, tzinfo=UTC))
        assert usage(httpx2.get(url, headers=headers)) == ("1,3", "1,3")
        clock.move_to(datetime(2026, 3, 10, 12, 29, 59, tzinfo=UTC))
        assert usage(httpx2.get(url, headers=headers)) == ("2,4", "2,4")
        clock.move_to(datetime(2026, 3, 10, 12, 30, 0, tzinfo=UTC))
        assert usage(httpx2.get(url, headers=headers)) == ("1,5", "1,5")


def test_the_daily_window_resets_at_midnight_utc(
    emu: EmulatorHandle, athlete: dict[str, Any]
) -> None:
    with time_machine.travel(datetime(2026, 3, 10, 23, 59, 0, tzinfo=UTC), tick=False) as clock:
        token = emu.admin.issue_tokens(athlete["id"])["access_token"]
        headers = {"Authorization": f"Bearer {token}"}
        emu.admin.set_rate_limits(overall_usage=(3, 1500), read_usage=(3, 900))
        response = httpx2.get(f"{emu.api_base_url}/athlete", headers=headers)
        assert usage(response) == ("4,1501", "4,901")
        clock.move_to(datetime(2026, 3, 11, 0, 0, 0, tzinfo=UTC))
        response = httpx2.get(f"{emu.api_base_url}/athlete", headers=headers)
        assert usage(response) == ("1,1", "1,1")


def test_over_the_read_limit_is_a_429_that_still_counts(
    emu: EmulatorHandle, api: httpx2.Client
) -> None:
    emu.admin.set_rate_limits(read_limit=(3, 1000))
    statuses = [api.get("/athlete").status_code for _ in range(5)]
    assert statuses == [200, 200, 200, 429, 429]
    rejected = api.get("/athlete/activities")
    assert rejected.status_code == 429
    assert rejected.content == RATE_LIMITED
    assert rejected.headers["x-readratelimit-limit"] == "3,1000"
    assert usage(rejected) == ("6,6", "6,6")
    assert "retry-after" not in rejected.headers
    logged = emu.admin.requests(path="/api/v3/athlete/activities")
    assert logged[-1]["status"] == 429


def test_the_daily_limit_also_rejects_and_the_next_day_is_fresh(
    emu: EmulatorHandle, api: httpx2.Client
) -> None:
    emu.admin.set_rate_limits(overall_limit=(200, 10), overall_usage=(0, 10))
    assert api.get("/athlete").status_code == 429
    tomorrow = emu.admin.clock_now().replace(hour=0, minute=0, second=0) + timedelta(days=1)
    emu.admin.set_clock(tomorrow)
    fresh = emu.admin.issue_tokens(emu.admin.list_athletes(limit=1)[0]["id"])
    ok = httpx2.get(
        f"{emu.api_base_url}/athlete", headers={"Authorization": f"Bearer {fresh['access_token']}"}
    )
    assert ok.status_code == 200
    assert ok.headers["x-ratelimit-usage"].endswith(",1")


def test_put_rate_limits_is_partial(emu: EmulatorHandle) -> None:
    before = emu.admin.get_rate_limits()
    after = emu.admin.set_rate_limits(read_usage=(7, 70))
    assert after["read_usage"] == [7, 70]
    assert after["overall_limit"] == before["overall_limit"] == [200, 2000]
    assert after["read_limit"] == [100, 1000]


def test_rate_limiter_counts_rejections_in_both_windows() -> None:
    limiter = RateLimiter((2, 3), (100, 1000))
    now = datetime(2026, 1, 1, 9, 0, tzinfo=UTC).timestamp()
    results = [limiter.hit(now)[0] for _ in range(3)]
    assert results == [True, True, False]
    # Next quarter: the short window is fresh, but the day already holds 3 (the limit).
    allowed, headers = limiter.hit(now + 900)
    assert not allowed
    assert dict(headers)[b"x-ratelimit-usage"] == b"1,4"
