"""The workouts table: activities from every source, one row per (source, source_id)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    Uuid,
    func,
)
from sqlalchemy.orm import Mapped, mapped_column

from app.codes import Source
from app.db import Base, JSONType


class Workout(Base):
    """A normalised activity from a source (Strava today); `raw` keeps its JSON as received."""

    __tablename__ = "workouts"
    __table_args__ = (
        UniqueConstraint("source", "source_id", name="uq_workouts_source_source_id"),
        Index("ix_workouts_runner_id_start_date", "runner_id", "start_date"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    runner_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("runners.id", ondelete="CASCADE"))
    source: Mapped[str] = mapped_column(String(20), default=Source.STRAVA)
    source_id: Mapped[int] = mapped_column(BigInteger)
    name: Mapped[str | None] = mapped_column(Text)
    sport_type: Mapped[str] = mapped_column(String(60))
    is_run: Mapped[bool] = mapped_column(Boolean)
    start_date: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    start_date_local: Mapped[datetime | None] = mapped_column(DateTime(timezone=False))
    timezone: Mapped[str | None] = mapped_column(String(100))
    distance_m: Mapped[float | None] = mapped_column(Float)
    moving_time_s: Mapped[int | None] = mapped_column(Integer)
    elapsed_time_s: Mapped[int | None] = mapped_column(Integer)
    elevation_gain_m: Mapped[float | None] = mapped_column(Float)
    average_speed_mps: Mapped[float | None] = mapped_column(Float)
    max_speed_mps: Mapped[float | None] = mapped_column(Float)
    average_heartrate: Mapped[float | None] = mapped_column(Float)
    max_heartrate: Mapped[float | None] = mapped_column(Float)
    average_cadence: Mapped[float | None] = mapped_column(Float)
    # Rides: the normalised-power-like average, and whether a power meter measured it (the
    # training load's power method, docs/training-load.md §1.3).
    weighted_average_watts: Mapped[float | None] = mapped_column(Float)
    device_watts: Mapped[bool | None] = mapped_column(Boolean)
    workout_type: Mapped[int | None] = mapped_column(Integer)
    manual: Mapped[bool] = mapped_column(Boolean, default=False)
    trainer: Mapped[bool] = mapped_column(Boolean, default=False)
    visibility: Mapped[str | None] = mapped_column(String(20))
    summary_polyline: Mapped[str | None] = mapped_column(Text)
    raw: Mapped[dict[str, Any]] = mapped_column(JSONType)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
