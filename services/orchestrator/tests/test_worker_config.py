"""The Celery configuration computed from Settings: time limits (issue 10 item 11)."""

from __future__ import annotations

import pytest
from app.config import Settings
from app.worker import configure
from celery import Celery
from pydantic import ValidationError


def _celery(**settings: object) -> Celery:
    celery = Celery("config-test")
    configure(celery, Settings(**settings))  # type: ignore[arg-type]
    return celery


@pytest.mark.parametrize(
    ("hard", "soft"),
    [(36, 30), (60, 51), (600, 510), (3000, 2550)],
)
def test_the_soft_time_limit_is_a_share_of_the_hard_limit(hard: int, soft: int) -> None:
    celery = _celery(task_time_limit_seconds=hard)
    assert celery.conf.task_time_limit == hard
    assert celery.conf.task_soft_time_limit == soft


def test_a_short_limit_still_leaves_the_sync_most_of_its_time() -> None:
    # Before: max(1, limit - 30) gave a 1 s soft limit to every limit up to 31 s.
    celery = _celery(task_time_limit_seconds=8, strava_timeout_seconds=2)
    assert celery.conf.task_soft_time_limit == 6


@pytest.mark.parametrize(
    ("limit", "timeout", "minimum"),
    [(10, 10.0, 36), (35, 10.0, 36), (3, 1.0, 4)],
)
def test_a_time_limit_shorter_than_a_slow_strava_page_is_refused_with_a_clear_message(
    limit: int, timeout: float, minimum: int
) -> None:
    with pytest.raises(ValidationError) as refused:
        Settings(task_time_limit_seconds=limit, strava_timeout_seconds=timeout)
    message = str(refused.value)
    assert f"TASK_TIME_LIMIT_SECONDS={limit} is too short" in message
    assert f"at least {minimum}" in message
    assert "STRAVA_TIMEOUT_SECONDS" in message


def test_the_shortest_accepted_limit_leaves_room_for_a_page_tried_three_times() -> None:
    settings = Settings(task_time_limit_seconds=36, strava_timeout_seconds=10)
    assert settings.task_soft_time_limit_seconds >= 3 * settings.strava_timeout_seconds
    assert settings.task_soft_time_limit_seconds >= 3 * settings.strava_timeout_seconds


def test_a_lease_shorter_than_a_slow_strava_page_is_refused() -> None:
    with pytest.raises(ValidationError, match="SYNC_LEASE_SECONDS=20 is too short"):
        Settings(sync_lease_seconds=20, strava_timeout_seconds=10)
    assert Settings(sync_lease_seconds=36, strava_timeout_seconds=10).sync_lease_seconds == 36
