"""The periodic check: generated activities that appear as real time passes (no clock move
through the admin API) become create events on their own."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from strava_emulator.callback_receiver import CallbackReceiver
from strava_emulator.config import EmulatorConfig
from strava_emulator.testing import EmulatorHandle, run_emulator


@pytest.fixture(scope="module")
def emu() -> Iterator[EmulatorHandle]:
    config = EmulatorConfig(athletes=1, history_days=3, webhook_scan_seconds=0.05)
    with run_emulator(config) as handle:
        yield handle


def test_activities_appearing_with_time_are_announced_by_the_periodic_check(
    emu: EmulatorHandle, callback: CallbackReceiver
) -> None:
    assert emu.subscribe(callback.url, "vt").status_code == 201
    athlete_id = int(emu.admin.create_athlete(history_days=1)["id"])
    emu.admin.issue_tokens(athlete_id, scope="read,activity:read_all")
    emu.admin.list_activities(athlete_id)  # history scheduled from now on
    start = datetime.now(UTC)
    later = start + timedelta(days=3)
    # Real time jumps (the emulator reads time.time()); only the periodic check can notice.
    with time_machine.travel(later, tick=True):
        expected = {
            a["id"]
            for a in emu.admin.list_activities(athlete_id)
            if start.timestamp() < _ts(a["available_at"]) <= later.timestamp()
        }
        assert expected
        deadline = time.monotonic() + 30
        while {e["object_id"] for e in callback.received()} != expected:
            assert time.monotonic() < deadline, "periodic check did not announce them"
            time.sleep(0.02)
    assert {e["aspect_type"] for e in callback.received()} == {"create"}


def _ts(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
