from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from app.deps import RunnerIdDep, SessionDep, SettingsDep
from app.training import service as training
from app.training.schemas import TrainingLoadModelOut

router = APIRouter(prefix="/api/v1/training", tags=["training"])


@router.get("/load")
def get_training_load(
    session: SessionDep,
    runner_id: RunnerIdDep,
    settings: SettingsDep,
    days: Annotated[
        int,
        Query(
            ge=training.MIN_SERIES_DAYS,
            le=training.MAX_SERIES_DAYS,
            description="Days of daily series to return, ending today (docs/training-load.md).",
        ),
    ] = 28,
) -> TrainingLoadModelOut:
    """The training-load model: per-day load, fatigue (ATL), fitness (CTL) and form with each
    day's workouts and how their load was found; today's figures, flags and plain sentences;
    the physiology used, each value with its source."""
    return training.training_load_document(
        session, runner_id, days=days, window_days=settings.sync_window_days
    )
