"""Shared fixtures: one real emulator server per test module, a fresh athlete per test."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx2
import pytest
from strava_emulator.callback_receiver import CallbackReceiver
from strava_emulator.config import EmulatorConfig
from strava_emulator.testing import EmulatorHandle, TokenResponse, run_emulator


@pytest.fixture(scope="module")
def emu() -> Iterator[EmulatorHandle]:
    with run_emulator(EmulatorConfig(athletes=5, history_days=60)) as handle:
        yield handle


@pytest.fixture(autouse=True)
def _clean_emulator(request: pytest.FixtureRequest) -> Iterator[None]:
    """Faults, clock and rate-limit usage are shared by a module's tests: reset after each."""
    yield
    if "emu" in request.fixturenames:
        handle: EmulatorHandle = request.getfixturevalue("emu")
        handle.admin.reset()


@pytest.fixture
def athlete(emu: EmulatorHandle) -> dict[str, Any]:
    return emu.admin.create_athlete()


@pytest.fixture
def tokens(emu: EmulatorHandle, athlete: dict[str, Any]) -> TokenResponse:
    return emu.admin.issue_tokens(athlete["id"], scope="read,activity:read_all,profile:read_all")


@pytest.fixture
def api(emu: EmulatorHandle, tokens: TokenResponse) -> Iterator[httpx2.Client]:
    """An API client authorised as the test's athlete."""
    with httpx2.Client(
        base_url=emu.api_base_url,
        headers={"Authorization": f"Bearer {tokens['access_token']}"},
        timeout=10,
    ) as client:
        yield client


@pytest.fixture
def callback() -> Iterator[CallbackReceiver]:
    with CallbackReceiver() as receiver:
        yield receiver
