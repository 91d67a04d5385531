"""GET /api/v1/workouts (docs/contract.md §3): parse, call one service, return."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query

from app.deps import RunnerIdDep, SessionDep
from app.text import PLAIN_TEXT_PATTERN
from app.workouts import service
from app.workouts.schemas import WorkoutOut, WorkoutPage

# Tagged "strava" as before the move: the OpenAPI document stays exactly as it was.
router = APIRouter(prefix="/api/v1", tags=["strava"])


@router.get("/workouts")
def list_workouts(
    session: SessionDep,
    runner_id: RunnerIdDep,
    since: datetime | None = None,
    until: datetime | None = None,
    # The patterns declare what the service accepts; outside them the answer is its 400.
    sport_type: Annotated[
        str | None, Query(max_length=60, json_schema_extra={"pattern": PLAIN_TEXT_PATTERN})
    ] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[
        str | None, Query(max_length=200, json_schema_extra={"pattern": "^[A-Za-z0-9_-]*$"})
    ] = None,
) -> WorkoutPage:
    rows, next_cursor = service.list_workouts(
        session,
        runner_id,
        since=since,
        until=until,
        sport_type=sport_type,
        limit=limit,
        cursor=cursor,
    )
    return WorkoutPage(
        items=[WorkoutOut.model_validate(row) for row in rows], next_cursor=next_cursor
    )
