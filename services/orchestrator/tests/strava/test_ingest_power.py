"""Ingest keeps a ride's weighted watts and whether a power meter measured them (issue 12: the
training load's power method reads these columns, never the raw JSON)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from app.strava.ingest import workout_values
from app.strava.payloads import SummaryActivity

NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)


def _ride(**power: object) -> SummaryActivity:
    return SummaryActivity.model_validate(
        {
            "id": 42,
            "sport_type": "Ride",
            "start_date": "2026-12-03T07:00:00Z",
            "moving_time": 3600,
            **power,
        }
    )


def test_weighted_watts_and_the_power_meter_flag_are_stored() -> None:
    values = workout_values(uuid.uuid4(), _ride(weighted_average_watts=212, device_watts=True), NOW)
    assert values is not None
    assert (values["weighted_average_watts"], values["device_watts"]) == (212.0, True)
    estimated = workout_values(
        uuid.uuid4(), _ride(weighted_average_watts=150.5, device_watts=False), NOW
    )
    assert estimated is not None
    assert (estimated["weighted_average_watts"], estimated["device_watts"]) == (150.5, False)


def test_a_ride_without_power_stores_nulls() -> None:
    values = workout_values(uuid.uuid4(), _ride(), NOW)
    assert values is not None
    assert (values["weighted_average_watts"], values["device_watts"]) == (None, None)
