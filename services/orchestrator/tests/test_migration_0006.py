"""Migration 0006 fills workouts' new power columns from the JSON each row already holds, on
both databases the service runs on (a scratch PostgreSQL database and a SQLite file)."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command
from alembic.script import ScriptDirectory
from app.migrations import alembic_config
from sqlalchemy import create_engine, text

ADMIN_URL = os.environ.get("TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")

RAWS = {
    "power": {"weighted_average_watts": 212, "device_watts": True},
    "estimated": {"weighted_average_watts": 150.5, "device_watts": False},
    "none": {"average_heartrate": 150},
    "garbage": {"weighted_average_watts": "lots", "device_watts": "yes"},
}
EXPECTED = {
    "power": (212.0, True),
    "estimated": (150.5, False),
    "none": (None, None),
    "garbage": (None, None),
}


@pytest.fixture
def scratch_postgres(database_url: str) -> Iterator[str]:
    name = f"orch_mig_{uuid.uuid4().hex[:8]}"
    admin = create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _backfilled(url: str) -> dict[str, tuple[float | None, bool | None]]:
    config = alembic_config(url)
    before = ScriptDirectory.from_config(config).get_revision("0006").down_revision
    assert isinstance(before, str)
    command.upgrade(config, before)
    engine = create_engine(url)
    runner_id = uuid.uuid4()
    with engine.begin() as connection:
        connection.execute(
            text("INSERT INTO runners (id, created_at) VALUES (:id, CURRENT_TIMESTAMP)"),
            {"id": runner_id.hex if url.startswith("sqlite") else runner_id},
        )
        for index, (name, raw) in enumerate(RAWS.items()):
            connection.execute(
                text(
                    "INSERT INTO workouts (id, runner_id, source, source_id, name, sport_type,"
                    " is_run, start_date, manual, trainer, raw) VALUES (:id, :runner, 'strava',"
                    " :source_id, :name, 'Ride', false, CURRENT_TIMESTAMP, false, false, :raw)"
                ),
                {
                    "id": uuid.uuid4().hex if url.startswith("sqlite") else uuid.uuid4(),
                    "runner": runner_id.hex if url.startswith("sqlite") else runner_id,
                    "source_id": index,
                    "name": name,
                    "raw": json.dumps(raw),
                },
            )
    command.upgrade(config, "head")
    with engine.connect() as connection:
        rows = connection.execute(
            text("SELECT name, weighted_average_watts, device_watts FROM workouts")
        ).all()
    engine.dispose()
    return {name: (watts, None if device is None else bool(device)) for name, watts, device in rows}


def test_backfill_on_postgresql(scratch_postgres: str) -> None:
    assert _backfilled(scratch_postgres) == EXPECTED


def test_backfill_on_sqlite(tmp_path: Path) -> None:
    assert _backfilled(f"sqlite:///{tmp_path / 'embedded.db'}") == EXPECTED
