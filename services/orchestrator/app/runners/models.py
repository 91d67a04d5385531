"""Runners, their sessions and profiles (Story 1.1 territory, as far as linking needs it)."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import DateTime, ForeignKey, String, Uuid, func
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base


class Runner(Base):
    __tablename__ = "runners"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class RunnerSession(Base):
    """A bearer token of the app, stored as its SHA-256."""

    __tablename__ = "runner_sessions"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    runner_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("runners.id", ondelete="CASCADE"), index=True
    )
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    # The token is refused from then on (Settings.session_ttl_seconds after it was issued).
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Profile(Base):
    __tablename__ = "profiles"

    runner_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("runners.id", ondelete="CASCADE"), primary_key=True
    )
    display_name: Mapped[str] = mapped_column(String(80))
    timezone: Mapped[str | None] = mapped_column(String(64))
    weekly_distance_goal_km: Mapped[float | None]
    # The runner's physiology for the training load (docs/training-load.md §2); all optional.
    sex: Mapped[str | None] = mapped_column(String(10))
    max_hr: Mapped[int | None]
    resting_hr: Mapped[int | None]
    threshold_hr: Mapped[int | None]
    threshold_pace_s_per_km: Mapped[float | None]
    ftp_w: Mapped[int | None]
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )
