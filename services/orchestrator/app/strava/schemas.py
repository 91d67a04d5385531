"""The Strava documents of the HTTP contract (docs/contract.md §3): field names are fixed,
fields may be added."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.config import JsonDict

from app.runners.schemas import ProfileOut
from app.text import PLAIN_TEXT_PATTERN
from app.training.schemas import LoadFiguresOut, TrainingLoad

# What the link flow accepts, declared in OpenAPI. The checks themselves are in oauth.py and
# answer with the contract's codes (400 invalid_request / invalid_state / pkce_mismatch, not 422).
# The lengths are in the patterns: `maxLength` keeps its generous v1 value (the refusal of a
# longer value is then the clear 400 above, not a 422).
S256_CHALLENGE_SCHEMA: JsonDict = {"minLength": 43, "pattern": "^[A-Za-z0-9_-]{43}$"}
STATE_SCHEMA: JsonDict = {"minLength": 1, "pattern": "^[A-Za-z0-9_-]{1,256}$"}
VERIFIER_SCHEMA: JsonDict = {"minLength": 43, "pattern": "^[A-Za-z0-9._~-]{43,128}$"}


class LinkTokenIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code_challenge: str = Field(
        max_length=256,
        description="BASE64URL(SHA-256(code_verifier)), unpadded; otherwise 400 invalid_request.",
        json_schema_extra=S256_CHALLENGE_SCHEMA,
    )
    code_challenge_method: str = Field(
        max_length=16,
        description="Only S256; otherwise 400 invalid_request.",
        json_schema_extra={"enum": ["S256"]},
    )
    redirect_uri: str | None = Field(default=None, max_length=2048)


class LinkTokenOut(BaseModel):
    state: str
    authorize_url: str
    redirect_uri: str
    expires_at: datetime


class CallbackIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # Generous limits: an oversized state or verifier is a clear invalid_state / pkce_mismatch.
    state: str = Field(
        max_length=65536,
        description="The link-token's state; empty, unknown or used: 400 invalid_state.",
        json_schema_extra=STATE_SCHEMA,
    )
    code_verifier: str = Field(
        max_length=65536,
        description="RFC 7636 verifier of the link-token's challenge; otherwise 400 pkce_mismatch.",
        json_schema_extra=VERIFIER_SCHEMA,
    )
    # Control characters are refused (422) before anything is spent or exchanged: a NUL in
    # `scope` would otherwise reach the link row after Strava had issued tokens.
    code: str | None = Field(default=None, max_length=512, pattern=PLAIN_TEXT_PATTERN)
    scope: str | None = Field(default=None, max_length=512, pattern=PLAIN_TEXT_PATTERN)
    error: str | None = Field(default=None, max_length=128, pattern=PLAIN_TEXT_PATTERN)


class AthleteOut(BaseModel):
    id: int
    firstname: str | None = None
    lastname: str | None = None


class SyncStatusOut(BaseModel):
    state: Literal["idle", "queued", "running"]
    last_sync_at: datetime | None
    last_success_at: datetime | None
    last_result: Literal["ok", "partial", "failed"] | None
    next_sync_at: datetime | None
    workouts_in_window: int
    updates: Literal["live", "polling"] | None = Field(
        default=None,
        description="How new activities arrive: `live` (Strava pushes them within seconds; a "
        "28-day reconciliation runs every SYNC_RECONCILE_SECONDS) or `polling` (the hourly "
        "sync); null when not linked.",
    )


class StatusErrorOut(BaseModel):
    code: str
    message: str
    action: Literal["reconnect", "wait", "retry", "none"]
    retry_at: datetime | None = None


class StravaStatus(BaseModel):
    status: Literal["not_linked", "linked", "action_required"]
    athlete: AthleteOut | None
    scopes: list[str]
    linked_at: datetime | None
    sync: SyncStatusOut
    error: StatusErrorOut | None


class SyncRequestIn(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SyncQueuedOut(BaseModel):
    sync_run_id: uuid.UUID
    state: Literal["queued", "running"]


class SyncRunOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    trigger: Literal["manual", "schedule", "link", "webhook"]
    state: str
    started_at: datetime | None
    finished_at: datetime | None
    duration_ms: int | None
    window_start: datetime | None
    window_end: datetime | None
    strava_requests: int
    fetched: int
    inserted: int
    updated: int
    deleted: int
    result: str | None
    error_code: str | None
    rate_limit: dict[str, list[int]] | None


class SyncRunPage(BaseModel):
    items: list[SyncRunOut]


class ProfileSummary(BaseModel):
    profile: ProfileOut | None
    strava: StravaStatus
    training: TrainingLoad
    load: LoadFiguresOut = Field(
        description="Today's training-load figures, flags with their thresholds, and sentences "
        "(the series: GET /api/v1/training/load)."
    )
