"""Activities → workouts: one Strava activity normalised into a Workout row, and the bulk writes
of a sync run (docs/contract.md §4): upsert by (source, source_id), and delete what a complete
listing no longer has. Runs inside the caller's transaction; sync.py decides when to call what.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import BigInteger, Table, all_, bindparam, delete, select
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session

from app.codes import Source
from app.strava.payloads import SummaryActivity
from app.workouts.models import Workout

__all__ = [
    "RUN_SPORT_TYPES",
    "UpsertResult",
    "delete_vanished",
    "upsert_workouts",
    "workout_values",
]

RUN_SPORT_TYPES = frozenset({"Run", "TrailRun", "VirtualRun"})
_WORKOUTS = cast(Table, Workout.__table__)
# Rows per SELECT ... IN (...) when comparing with what is stored.
LOOKUP_CHUNK = 1000


# --- activities → workouts ----------------------------------------------------------------------


def _clip(value: str | None, length: int) -> str | None:
    return value[:length] if value is not None else None


def _text(value: str | None) -> str | None:
    """Strava's free text as PostgreSQL can store it: text and JSON refuse U+0000."""
    return value.replace("\x00", "") if value is not None else None


def _json_without_nul(value: Any) -> Any:
    if isinstance(value, str):
        return value.replace("\x00", "")
    if isinstance(value, dict):
        return {_json_without_nul(key): _json_without_nul(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_json_without_nul(item) for item in value]
    return value


def workout_values(
    runner_id: uuid.UUID, activity: SummaryActivity, now: datetime
) -> dict[str, Any] | None:
    """The Workout columns of one activity; None when it has no start date (cannot be placed)."""
    if activity.start_date is None:
        return None
    sport_type = _text(activity.sport_type or activity.type) or "Unknown"
    visibility = activity.visibility
    if visibility is None and activity.private is not None:
        visibility = "only_me" if activity.private else None
    return {
        "runner_id": runner_id,
        "source": Source.STRAVA,
        "source_id": activity.id,
        "name": _text(activity.name),
        "sport_type": sport_type[:60],
        "is_run": sport_type in RUN_SPORT_TYPES,
        "start_date": activity.start_date,
        "start_date_local": activity.start_date_local,
        "timezone": _clip(_text(activity.timezone), 100),
        "distance_m": activity.distance,
        "moving_time_s": activity.moving_time,
        "elapsed_time_s": activity.elapsed_time,
        "elevation_gain_m": activity.total_elevation_gain,
        "average_speed_mps": activity.average_speed,
        "max_speed_mps": activity.max_speed,
        "average_heartrate": activity.average_heartrate,
        "max_heartrate": activity.max_heartrate,
        "average_cadence": activity.average_cadence,
        "weighted_average_watts": activity.weighted_average_watts,
        "device_watts": activity.device_watts,
        "workout_type": activity.workout_type,
        "manual": bool(activity.manual),
        "trainer": bool(activity.trainer),
        "visibility": _clip(_text(visibility), 20),
        "summary_polyline": _text(activity.map.summary_polyline) if activity.map else None,
        "raw": _json_without_nul(activity.raw),
        "updated_at": now,
    }


# Everything an update may change; never the id, the source key or created_at.
_UPDATABLE = (
    "runner_id",
    "name",
    "sport_type",
    "is_run",
    "start_date",
    "start_date_local",
    "timezone",
    "distance_m",
    "moving_time_s",
    "elapsed_time_s",
    "elevation_gain_m",
    "average_speed_mps",
    "max_speed_mps",
    "average_heartrate",
    "max_heartrate",
    "average_cadence",
    "weighted_average_watts",
    "device_watts",
    "workout_type",
    "manual",
    "trainer",
    "visibility",
    "summary_polyline",
    "raw",
    "updated_at",
)


@dataclass
class UpsertResult:
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    skipped: int = 0
    # When each inserted activity ended (start + elapsed time), for the ingestion-lag metric.
    inserted_ends: list[datetime] = field(default_factory=list)


_UPSERTS: dict[str, Any] = {}


def _upsert_statement(session: Session) -> Any:
    """`INSERT .. ON CONFLICT (source, source_id) DO UPDATE` on the table (Core), built once per
    dialect, then executed with all the rows at once (the driver's executemany; psycopg
    pipelines it). The ORM's bulk path would send one statement per few rows."""
    dialect = session.get_bind().dialect.name
    if dialect not in _UPSERTS:
        _UPSERTS[dialect] = _build_upsert(dialect)
    return _UPSERTS[dialect]


def _build_upsert(dialect: str) -> Any:
    table = Workout.__table__
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        stmt: Any = pg_insert(table)  # type: ignore[arg-type]
    elif dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        stmt = sqlite_insert(table)  # type: ignore[arg-type]
    else:  # pragma: no cover - PostgreSQL and SQLite are the only supported databases
        raise RuntimeError(f"no upsert for {dialect}")
    return stmt.on_conflict_do_update(
        index_elements=[table.c.source, table.c.source_id],
        set_={name: stmt.excluded[name] for name in _UPDATABLE},
    )


def upsert_workouts(
    session: Session, runner_id: uuid.UUID, activities: Iterable[SummaryActivity], now: datetime
) -> UpsertResult:
    """Insert new activities and update changed ones (raw JSON differs), in bulk."""
    result = UpsertResult()
    rows: dict[int, dict[str, Any]] = {}
    for activity in activities:
        values = workout_values(runner_id, activity, now)
        if values is None:
            result.skipped += 1
            continue
        rows[activity.id] = values
    if not rows:
        return result
    stored: dict[int, tuple[uuid.UUID, Any]] = {}
    ids = list(rows)
    for start in range(0, len(ids), LOOKUP_CHUNK):
        chunk = ids[start : start + LOOKUP_CHUNK]
        for source_id, owner, raw in session.connection().execute(
            select(Workout.source_id, Workout.runner_id, Workout.raw).where(
                Workout.source == Source.STRAVA, Workout.source_id.in_(chunk)
            )
        ):
            stored[source_id] = (owner, raw)
    changes: list[dict[str, Any]] = []
    for source_id, values in rows.items():
        previous = stored.get(source_id)
        if previous is None:
            result.inserted += 1
            changes.append({"id": uuid.uuid4(), **values})
            elapsed = values["elapsed_time_s"] or 0
            result.inserted_ends.append(values["start_date"] + timedelta(seconds=elapsed))
        elif previous[0] != runner_id or previous[1] != values["raw"]:
            result.updated += 1
            changes.append({"id": uuid.uuid4(), **values})
        else:
            result.unchanged += 1
    if changes:
        session.connection().execute(_upsert_statement(session), changes)
    return result


def delete_vanished(
    session: Session, runner_id: uuid.UUID, listed: set[int], window_start: datetime
) -> int:
    """Remove the runner's Strava workouts that started inside the window but are no longer
    listed (deleted or hidden on Strava). Call only after a *complete* listing.

    The window's first second is left alone: whether Strava's `after` includes it is unknown.
    One statement, whatever the count: on PostgreSQL the listed ids travel as one array
    parameter (`<> ALL`), so its text (and prepared plan) is the same for every listing.
    """
    workouts = _WORKOUTS.c
    statement = delete(_WORKOUTS).where(
        workouts.runner_id == runner_id,
        workouts.source == Source.STRAVA,
        workouts.start_date > window_start,
    )
    connection = session.connection()  # Core, past the ORM's execution layer
    if connection.dialect.name == "postgresql":
        listed_ids = bindparam("listed", list(listed), type_=ARRAY(BigInteger))
        statement = statement.where(workouts.source_id != all_(listed_ids))
    elif listed:
        statement = statement.where(workouts.source_id.not_in(listed))
    return int(connection.execute(statement).rowcount or 0)
