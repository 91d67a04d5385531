"""The 28-day training load the coach plans from (docs/contract.md §3 TrainingLoad)."""

from __future__ import annotations

import uuid
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.clock import as_utc, utcnow, window_start
from app.training.schemas import TrainingLoad, WeekLoad
from app.workouts.models import Workout


def training_load(session: Session, runner_id: uuid.UUID, *, window_days: int) -> TrainingLoad:
    now = utcnow()
    start = window_start(now, window_days)
    runs = session.execute(
        select(Workout.start_date, Workout.distance_m, Workout.moving_time_s).where(
            Workout.runner_id == runner_id, Workout.is_run.is_(True), Workout.start_date >= start
        )
    ).all()
    # Four 7-day buckets ending now, oldest first.
    week_count = max(1, window_days // 7)
    weeks = [
        WeekLoad(
            week_start=now - timedelta(days=7 * (week_count - index)),
            runs=0,
            distance_m=0.0,
            moving_time_s=0,
        )
        for index in range(week_count)
    ]
    for started, distance, moving in runs:
        age_days = (now - as_utc(started)).total_seconds() / 86400
        index = week_count - 1 - min(week_count - 1, int(age_days // 7))
        week = weeks[index]
        week.runs += 1
        week.distance_m += distance or 0.0
        week.moving_time_s += moving or 0
    total_distance = sum(week.distance_m for week in weeks)
    # Acute:chronic = last 7 days against the weekly average of the window (distance as the load).
    chronic = total_distance / week_count
    ratio = round(weeks[-1].distance_m / chronic, 2) if chronic > 0 else None
    return TrainingLoad(
        window_days=window_days,
        runs=len(runs),
        distance_m=round(total_distance, 1),
        moving_time_s=sum(week.moving_time_s for week in weeks),
        longest_run_m=max((distance or 0.0 for _, distance, _ in runs), default=0.0),
        weeks=weeks,
        acute_chronic_ratio=ratio,
    )
