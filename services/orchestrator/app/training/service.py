"""The training-load model over a runner's stored workouts (docs/training-load.md).

Reads `workouts` (one query of the columns the model needs, never the raw JSON) and the runner's
profile; knows no provider. Computed on every read from the workouts as they are then, so a sync,
a webhook, a deletion or an unlink is reflected at once. The profile summary remembers today's
figures with the exact inputs they came from (`_FiguresMemo`): reused only for equal inputs, so
never stale.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections import OrderedDict
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import (
    ColumnElement,
    DateTime,
    Float,
    Text,
    bindparam,
    cast,
    func,
    literal_column,
    select,
)
from sqlalchemy.dialects.postgresql import aggregate_order_by
from sqlalchemy.orm import Session

from app.clock import as_utc, utcnow, window_start
from app.db import Reads
from app.runners import service as runners
from app.runners.models import Profile
from app.runners.schemas import ProfileOut
from app.training.model import CTL_DAYS, TrainingLoadModel, training_load_model
from app.training.physiology import Physiology, WorkoutSummary
from app.training.schemas import LoadFiguresOut, TrainingLoad, TrainingLoadModelOut, WeekLoad
from app.workouts.models import Workout

# The longest series GET /api/v1/training/load serves (its `days` range is 7..365).
MIN_SERIES_DAYS = 7
MAX_SERIES_DAYS = 365
# History read for the model: a full year of series plus the 42 days that seed its CTL. The
# current figures do not depend on the series length asked for.
HISTORY_LIMIT_DAYS = MAX_SERIES_DAYS + CTL_DAYS

# The columns the model reads: summary fields only (docs/training-load.md §6).
_COLUMNS = (
    Workout.id,
    Workout.sport_type,
    Workout.is_run,
    Workout.start_date,
    Workout.start_date_local,
    Workout.distance_m,
    Workout.moving_time_s,
    Workout.average_speed_mps,
    Workout.average_heartrate,
    Workout.max_heartrate,
    Workout.weighted_average_watts,
    Workout.device_watts,
    Workout.manual,
)


def runner_zone(name: str | None) -> tzinfo:
    """The profile's IANA time zone; UTC when unset or unknown (profiles stored before the
    profile checked time zones may hold any string)."""
    if not name:
        return UTC
    try:
        return ZoneInfo(name)
    except (ValueError, KeyError):  # ZoneInfoNotFoundError is a KeyError
        return UTC


def history_start(
    workouts: Sequence[WorkoutSummary], *, today: date, window_first_day: date
) -> date:
    """The first day of complete history: the sync window's first full day, or the earliest
    stored workout when earlier (workouts synced before stay stored), at most a year and the
    seed period back. Days before it are unknown, not rest (docs/training-load.md §3)."""
    earliest = min((workout.local_date for workout in workouts), default=window_first_day)
    return max(today - timedelta(days=HISTORY_LIMIT_DAYS - 1), min(window_first_day, earliest))


# One stored workout as the service uses it: its UTC start, the `is_run` column, the model's input.
_Stored = tuple[datetime, bool, WorkoutSummary]
# Where a row of `_HISTORY` (or of history_json) holds what the summary's distance figures read.
_POSITION = {column.key: index for index, column in enumerate(_COLUMNS)}
_IS_RUN, _START_DATE = _POSITION["is_run"], _POSITION["start_date"]
_DISTANCE_M, _MOVING_TIME_S = _POSITION["distance_m"], _POSITION["moving_time_s"]
# A workout of the window as the distance figures read it: start (UTC), is_run, distance, time.
_InWindow = tuple[datetime, bool, float | None, int | None]


# Built once (bound parameters): GET /training/load, and the profile summary on SQLite.
_HISTORY = select(*_COLUMNS).where(
    Workout.runner_id == bindparam("runner_id"), Workout.start_date >= bindparam("since")
)


def history_since(now: datetime) -> datetime:
    """The earliest start the model reads (the history limit, and a day for time zones)."""
    return now - timedelta(days=HISTORY_LIMIT_DAYS + 1)


def history_json(runner_id: ColumnElement[Any]) -> ColumnElement[Any]:
    """PostgreSQL: `_HISTORY`'s rows as one JSON array of arrays (`[]` for none), a column that
    another read embeds to carry them in its own statement (the profile summary: one round trip
    instead of two). `runner_id` is the enclosing read's column; `history_since` a bound
    parameter (`history_since()`). Exact: PostgreSQL 12+ prints a float8 in its shortest form
    that reads back to the same double (app.db's read engine asks for it); times are ISO 8601
    (`_from_json` parses them). The column is the JSON's text."""
    rows = (
        # In a set order: the same workouts give the same text (the memo's key).
        select(
            func.json_agg(
                aggregate_order_by(func.json_build_array(*_COLUMNS), Workout.start_date, Workout.id)
            )
        )
        .where(
            Workout.runner_id == runner_id,
            Workout.start_date >= bindparam("history_since", type_=DateTime(timezone=True)),
        )
        .scalar_subquery()
    )
    # As text: the summary parses it, and keys its memo of the figures on it (_FiguresMemo).
    return cast(func.coalesce(rows, literal_column("'[]'::json")), Text)


def _read_history(session: Reads, runner_id: uuid.UUID, now: datetime) -> list[tuple[Any, ...]]:
    """The one query: the model's columns of the runner's workouts of the history limit."""
    return list(session.execute(_HISTORY, {"runner_id": runner_id, "since": history_since(now)}))


# The columns JSON cannot carry as they are: times come as ISO 8601 text, and floats as JSON
# numbers (10000.0 prints as 10000; NaN and the infinities as strings).
_TIME_POSITIONS = tuple(i for i, c in enumerate(_COLUMNS) if isinstance(c.type, DateTime))
_FLOAT_POSITIONS = tuple(i for i, c in enumerate(_COLUMNS) if isinstance(c.type, Float))


def _from_json(rows: Sequence[Sequence[Any]]) -> list[tuple[Any, ...]]:
    """history_json's rows with the values `_HISTORY` gives: times parsed, floats as floats."""
    parsed: list[tuple[Any, ...]] = []
    for row in rows:
        values = list(row)
        for index in _TIME_POSITIONS:
            if values[index] is not None:
                values[index] = datetime.fromisoformat(values[index])
        for index in _FLOAT_POSITIONS:
            if values[index] is not None:
                values[index] = float(values[index])
        parsed.append(tuple(values))
    return parsed


def _stored(rows: Sequence[Sequence[Any]], zone: tzinfo) -> list[_Stored]:
    """The rows of `_HISTORY` as the service uses them."""
    stored: list[_Stored] = []
    for (
        workout_id,
        sport_type,
        is_run,
        start_date,
        start_date_local,
        distance_m,
        moving_time_s,
        average_speed_mps,
        average_heartrate,
        max_heartrate,
        weighted_average_watts,
        device_watts,
        manual,
    ) in rows:
        started = as_utc(start_date)
        # The workout's own wall-clock date where it happened; else its start in the runner's zone.
        if start_date_local is not None:
            local_date = start_date_local.date()
        else:
            local_date = started.astimezone(zone).date()
        summary = WorkoutSummary(
            id=str(workout_id),
            local_date=local_date,
            sport_type=sport_type,
            moving_time_s=moving_time_s,
            distance_m=distance_m,
            average_speed_mps=average_speed_mps,
            average_heartrate=average_heartrate,
            max_heartrate=max_heartrate,
            weighted_average_watts=weighted_average_watts,
            device_watts=device_watts,
            manual=bool(manual),
        )
        stored.append((started, is_run, summary))
    return stored


def compute(
    session: Session,
    runner_id: uuid.UUID,
    profile: Profile | None,
    *,
    window_days: int,
    days: int,
    now: datetime | None = None,
) -> TrainingLoadModel:
    """The model as of now in the runner's time zone, from one query of the workouts."""
    now = now or utcnow()
    zone = runner_zone(profile.timezone if profile else None)
    stored = _stored(_read_history(session, runner_id, now), zone)
    workouts = [workout for _, _, workout in stored]
    return _model(workouts, runners.physiology(profile), zone, window_days, days, now)


def _days(now: datetime, zone: tzinfo, window_days: int) -> tuple[date, date]:
    """Today in the runner's zone, and the sync window's first whole day."""
    today = now.astimezone(zone).date()
    # The window's first day is partial (it starts at this hour): its next day is the first whole.
    window_first_day = window_start(now, window_days).astimezone(zone).date() + timedelta(days=1)
    return today, window_first_day


def _model(
    workouts: list[WorkoutSummary],
    physiology: Physiology,
    zone: tzinfo,
    window_days: int,
    days: int,
    now: datetime,
) -> TrainingLoadModel:
    today, window_first_day = _days(now, zone, window_days)
    return training_load_model(
        workouts,
        physiology,
        today=today,
        days=days,
        history_start=history_start(workouts, today=today, window_first_day=window_first_day),
    )


class _FiguresMemo:
    """The profile summary's `load` per runner, with the exact inputs it was computed from: the
    workouts as read (history_json's text, or the query's rows), the physiology, the zone and
    the days. A summary whose inputs are equal to the remembered ones reuses the figures; any
    difference (a workout synced, pushed, changed or deleted, the profile edited, the next day)
    computes them afresh. Never stale: the figures are a pure function of that key
    (training_load_model reads no clock and no database). The app polls the summary, and the
    model was the largest part of its cost. Bounded (the runners seen last); per process."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._entries: OrderedDict[uuid.UUID, tuple[Hashable, LoadFiguresOut]] = OrderedDict()
        self._lock = threading.Lock()  # SQLite's reads run in threads

    def get(self, runner_id: uuid.UUID, key: Hashable) -> LoadFiguresOut | None:
        with self._lock:
            entry = self._entries.get(runner_id)
            if entry is None or entry[0] != key:
                return None
            self._entries.move_to_end(runner_id)
            return entry[1]

    def put(self, runner_id: uuid.UUID, key: Hashable, figures: LoadFiguresOut) -> None:
        with self._lock:
            self._entries[runner_id] = (key, figures)
            self._entries.move_to_end(runner_id)
            while len(self._entries) > self._size:
                self._entries.popitem(last=False)


# A year of workouts is ~60 kB of JSON text: 1,024 runners' keys stay well under 100 MB.
_FIGURES = _FiguresMemo(1024)


def training_load_document(
    session: Session, runner_id: uuid.UUID, *, days: int, window_days: int
) -> TrainingLoadModelOut:
    """GET /api/v1/training/load."""
    model = compute(
        session,
        runner_id,
        runners.get_profile(session, runner_id),
        window_days=window_days,
        days=days,
    )
    return TrainingLoadModelOut.model_validate(
        {
            "window_days": days,
            "history_start": model.current.date - timedelta(days=model.current.history_days - 1),
            "days": model.days,
            "current": model.current,
            "physiology": model.physiology,
        },
        from_attributes=True,
    )


@dataclass(frozen=True, slots=True)
class TrainingSummary:
    """What the profile summary shows of the workouts, all from one query."""

    distance: TrainingLoad  # the summary's `training`: runs and distance of the window
    load: LoadFiguresOut  # the summary's `load`: today's figures
    workouts_in_window: int  # every sport, as the link status counts them


def summary(
    session: Reads,
    runner_id: uuid.UUID,
    profile: Profile | ProfileOut | None,
    *,
    window_days: int,
    now: datetime | None = None,
    history: str | None = None,
) -> TrainingSummary:
    """`history`: the workouts as `history_json` carried them in the caller's statement (read
    with `history_since(now)`); None: one query reads them. Today's figures come from the memo
    when their inputs are exactly those it computed them from (_FiguresMemo)."""
    now = now or utcnow()
    zone = runner_zone(profile.timezone if profile else None)
    rows: list[tuple[Any, ...]]
    if history is None:
        rows = _read_history(session, runner_id, now)
        history_key: Hashable = tuple(tuple(row) for row in rows)
    else:
        rows, history_key = _from_json(json.loads(history)), history
    start = window_start(now, window_days)
    in_window: list[_InWindow] = [
        (started, row[_IS_RUN], row[_DISTANCE_M], row[_MOVING_TIME_S])
        for row in rows
        if (started := as_utc(row[_START_DATE])) >= start
    ]
    physiology = runners.physiology(profile)
    key = (history_key, physiology, str(zone), window_days, *_days(now, zone, window_days))
    load = _FIGURES.get(runner_id, key)
    if load is None:
        # Only now the model's input: a remembered answer needs none of it.
        workouts = [workout for _, _, workout in _stored(rows, zone)]
        model = _model(workouts, physiology, zone, window_days, 1, now)
        load = LoadFiguresOut.model_validate(model.current, from_attributes=True)
        _FIGURES.put(runner_id, key, load)
    return TrainingSummary(
        distance=_distance_load(in_window, now=now, window_days=window_days),
        load=load,
        workouts_in_window=len(in_window),
    )


def _distance_load(in_window: list[_InWindow], *, now: datetime, window_days: int) -> TrainingLoad:
    """Runs and distance of the window in 7-day buckets ending now (docs/contract.md §3.4
    TrainingLoad), the load summary that predates the model."""
    runs = [
        (started, distance_m or 0.0, moving_time_s)
        for started, is_run, distance_m, moving_time_s in in_window
        if is_run
    ]
    # Four 7-day buckets ending now, oldest first (plain counters: the documents are built once).
    week_count = max(1, window_days // 7)
    counts = [0] * week_count
    distances = [0.0] * week_count
    times = [0] * week_count
    for started, distance_m, moving_time_s in runs:
        age_days = (now - started).total_seconds() / 86400
        index = week_count - 1 - min(week_count - 1, int(age_days // 7))
        counts[index] += 1
        distances[index] += distance_m
        times[index] += int(moving_time_s or 0)
    weeks = [
        WeekLoad(
            week_start=now - timedelta(days=7 * (week_count - index)),
            runs=counts[index],
            distance_m=distances[index],
            moving_time_s=times[index],
        )
        for index in range(week_count)
    ]
    total_distance = sum(distances)
    # Acute:chronic = last 7 days against the weekly average of the window (distance as the load).
    chronic = total_distance / week_count
    ratio = round(distances[-1] / chronic, 2) if chronic > 0 else None
    return TrainingLoad(
        window_days=window_days,
        runs=len(runs),
        distance_m=round(total_distance, 1),
        moving_time_s=sum(times),
        longest_run_m=max((distance_m for _, distance_m, _ in runs), default=0.0),
        weeks=weeks,
        acute_chronic_ratio=ratio,
    )
