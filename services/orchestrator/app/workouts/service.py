"""Reading and deleting a runner's workouts, whatever their source.

Services take a Session and never commit (the request or task owns the transaction).
"""

from __future__ import annotations

import base64
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, delete, func, or_, select
from sqlalchemy.orm import Session

from app.clock import as_utc
from app.codes import Source
from app.errors import InvalidRequest
from app.text import has_forbidden_chars
from app.workouts.models import Workout


def encode_cursor(workout: Workout) -> str:
    raw = f"{as_utc(workout.start_date).isoformat()}|{workout.id}"
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        started, workout_id = raw.split("|")
        return as_utc(datetime.fromisoformat(started)), uuid.UUID(workout_id)
    except (ValueError, UnicodeDecodeError, OverflowError) as exc:
        raise InvalidRequest("cursor is not valid.") from exc


def _utc_bound(name: str, value: datetime) -> datetime:
    try:
        return as_utc(value)
    except OverflowError as exc:  # e.g. 0001-01-01T00:00:00+05:00 is before year 1 in UTC
        raise InvalidRequest(f"{name} is out of range.") from exc


def list_workouts(
    session: Session,
    runner_id: uuid.UUID,
    *,
    since: datetime | None,
    until: datetime | None,
    sport_type: str | None,
    limit: int,
    cursor: str | None,
) -> tuple[list[Workout], str | None]:
    """Newest first, keyset-paginated on (start_date, id)."""
    query = select(Workout).where(Workout.runner_id == runner_id)
    if since is not None:
        query = query.where(Workout.start_date >= _utc_bound("since", since))
    if until is not None:
        query = query.where(Workout.start_date < _utc_bound("until", until))
    if sport_type is not None:
        # No sport type has a control character; PostgreSQL text cannot even hold a NUL.
        if has_forbidden_chars(sport_type):
            raise InvalidRequest("sport_type is not valid.")
        query = query.where(Workout.sport_type == sport_type)
    if cursor is not None:
        started, workout_id = decode_cursor(cursor)
        query = query.where(
            or_(
                Workout.start_date < started,
                and_(Workout.start_date == started, Workout.id < workout_id),
            )
        )
    rows = list(
        session.scalars(
            query.order_by(Workout.start_date.desc(), Workout.id.desc()).limit(limit + 1)
        )
    )
    next_cursor = encode_cursor(rows[limit - 1]) if len(rows) > limit else None
    return rows[:limit], next_cursor


def count_since_query(
    runner_id: uuid.UUID | ColumnElement[Any], since: datetime | ColumnElement[Any]
) -> Select[int]:
    """How many of the runner's workouts started at or after `since`, as a Core query: another
    read can embed it as a scalar subquery (the runner a bound parameter or the enclosing read's
    column), in a statement built once."""
    workouts = Workout.__table__.c
    return select(func.count()).where(workouts.runner_id == runner_id, workouts.start_date >= since)


def count_since(session: Session, runner_id: uuid.UUID, since: datetime) -> int:
    """How many of the runner's workouts started at or after `since`."""
    return session.scalar(count_since_query(runner_id, since)) or 0


def delete_by_source(session: Session, runner_id: uuid.UUID, source: Source) -> int:
    """Hard-delete every workout of this runner that came from `source`; returns how many."""
    result = session.execute(
        delete(Workout).where(Workout.runner_id == runner_id, Workout.source == source)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
