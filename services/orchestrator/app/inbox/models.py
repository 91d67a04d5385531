"""The inbox table: one row per distinct pushed event (duplicates collapse on `dedupe_key`)."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import BigInteger, DateTime, ForeignKey, Index, Integer, String, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, JSONType


class EventState(StrEnum):
    """InboxEvent.state. `processing` is a claim; a row left in it by a dead worker is re-driven."""

    PENDING = "pending"
    PROCESSING = "processing"
    DEFERRED = "deferred"
    DONE = "done"
    IGNORED = "ignored"
    FAILED = "failed"


class StoreOutcome(StrEnum):
    """What storing a pushed event did (inbox.service.store_owned)."""

    STORED = "stored"
    DUPLICATE = "duplicate"  # an equal event is stored already
    NO_OWNER = "no_owner"  # the owner lookup found no runner
    NOT_ADMITTED = "not_admitted"  # the caller's admission condition was false


# States whose events still have to be processed (and count in the inbox depth).
OPEN_STATES = (EventState.PENDING, EventState.PROCESSING, EventState.DEFERRED)


class InboxEvent(Base):
    """A pushed event as received: the owner is our runner (resolved at intake), never the
    provider's account id; `dedupe_key` is a keyed hash of the event's content (events carry no
    id of their own), so the same delivery stored twice is one row."""

    __tablename__ = "inbox_events"
    __table_args__ = (
        Index("ix_inbox_events_runner_id_state", "runner_id", "state"),
        Index("ix_inbox_events_state_next_attempt_at", "state", "next_attempt_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    source: Mapped[str] = mapped_column(String(20))
    dedupe_key: Mapped[str] = mapped_column(String(64), unique=True)
    runner_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("runners.id", ondelete="CASCADE"))
    object_type: Mapped[str] = mapped_column(String(20))
    object_id: Mapped[int] = mapped_column(BigInteger)
    aspect_type: Mapped[str] = mapped_column(String(20))
    updates: Mapped[dict[str, Any]] = mapped_column(JSONType)
    event_time: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    state: Mapped[str] = mapped_column(String(12), default=EventState.PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # When the current `processing` claim was taken (a stale one means the worker died).
    claimed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    processed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # What processing did (e.g. upserted, deleted, not_found, coalesced, forged): for operators.
    outcome: Mapped[str | None] = mapped_column(String(40))
