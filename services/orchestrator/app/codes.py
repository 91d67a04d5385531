"""The shared vocabulary of sync runs and link status, as StrEnums (stored and sent as strings).

Provider-agnostic: workouts/, training/ and the core use these as much as app/strava/ does, so they
live in the core and name no provider's internals. What each status code means for the runner
(message, action) and who sets it is in app/strava/service.py.
"""

from __future__ import annotations

from enum import StrEnum


class Source(StrEnum):
    """Where a workout came from (Workout.source; docs/contract.md §3 Workout.source)."""

    STRAVA = "strava"


class Trigger(StrEnum):
    """Why a sync run exists (SyncRun.trigger)."""

    MANUAL = "manual"
    SCHEDULE = "schedule"
    LINK = "link"
    WEBHOOK = "webhook"


class RunState(StrEnum):
    """SyncRun.state; a runner has at most one queued or running run (a unique index)."""

    QUEUED = "queued"
    RUNNING = "running"
    FINISHED = "finished"


ACTIVE_RUN_STATES = (RunState.QUEUED, RunState.RUNNING)


class RunResult(StrEnum):
    """SyncRun.result and StravaStatus.sync.last_result (`skipped` is never stored)."""

    OK = "ok"
    PARTIAL = "partial"
    FAILED = "failed"
    DEFERRED = "deferred"
    SKIPPED = "skipped"


class Updates(StrEnum):
    """StravaStatus.sync.updates: how new activities reach us. `live`: pushed by the provider
    (webhooks) within seconds, with a periodic reconciliation; `polling`: the hourly listing."""

    LIVE = "live"
    POLLING = "polling"


class StatusCode(StrEnum):
    """StravaStatus.error.code, LinkAttempt.failure_code and SyncRun.error_code."""

    ACCESS_DENIED = "access_denied"
    INSUFFICIENT_SCOPE = "insufficient_scope"
    REAUTH_REQUIRED = "reauth_required"
    REVOKED = "revoked"
    RATE_LIMITED = "rate_limited"
    STRAVA_UNAVAILABLE = "strava_unavailable"
    SYNC_FAILED = "sync_failed"
    KEY_UNAVAILABLE = "key_unavailable"
    NOT_LINKED = "not_linked"
    # Why a link attempt failed (shown in a not_linked status).
    INVALID_STATE = "invalid_state"
    STATE_EXPIRED = "state_expired"
    PKCE_MISMATCH = "pkce_mismatch"
    ATHLETE_ALREADY_LINKED = "athlete_already_linked"
    STRAVA_ATHLETE_LIMIT = "strava_athlete_limit"


# Codes after which nothing works until the runner reconnects.
RECONNECT_CODES = frozenset(
    {StatusCode.REAUTH_REQUIRED, StatusCode.REVOKED, StatusCode.INSUFFICIENT_SCOPE}
)
# Codes after which the beat stops scheduling the link: nothing works until the runner reconnects
# or (key_unavailable) an operator restores the key; a manual sync may still try.
UNSCHEDULED_CODES = RECONNECT_CODES | {StatusCode.KEY_UNAVAILABLE}
