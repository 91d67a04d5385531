"""The Strava link as the runner sees it: status, sync requests, unlink.

Services take a Session and collaborators, never commit, and raise AppError subclasses.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta

import httpx2
import structlog
from sqlalchemy import and_, delete, func, or_, select
from sqlalchemy.orm import Session

from app.clock import as_utc, utcnow
from app.config import Settings
from app.db import after_commit
from app.errors import InvalidRequest, NotLinked, ServiceUnavailable
from app.security import KeyRing
from app.strava.client import ResponseInfo, StravaAuthError, StravaClient, StravaError
from app.strava.credentials import open_link, seal_pending_deauthorization
from app.strava.models import LinkAttempt, PendingDeauthorization, StravaLink, SyncRun, Workout
from app.strava.schemas import AthleteOut, StatusErrorOut, StravaStatus, SyncStatusOut
from app.strava.tokens import REFRESH_MARGIN

log = structlog.get_logger(__name__)

READ_SCOPES = frozenset({"activity:read", "activity:read_all"})
ACTIVE_SYNC_STATES = ("queued", "running")

# What the app can do about each error code (design.md §3 StravaStatus.error.action).
ERROR_ACTIONS: dict[str, str] = {
    "access_denied": "retry",
    "insufficient_scope": "reconnect",
    "reauth_required": "reconnect",
    "revoked": "reconnect",
    "rate_limited": "wait",
    "strava_unavailable": "wait",
    "sync_failed": "retry",
    "key_unavailable": "none",
}
ERROR_MESSAGES: dict[str, str] = {
    "access_denied": "You cancelled the Strava authorization. Connect again when you are ready.",
    "insufficient_scope": "Coach George needs permission to read your activities. "
    "Reconnect Strava and keep 'View data about your activities' ticked.",
    "reauth_required": "Strava no longer accepts Coach George's authorization. Reconnect Strava.",
    "revoked": "Coach George's access was removed on Strava. Reconnect Strava to resume syncing.",
    "rate_limited": "Strava is busy; the sync will retry automatically.",
    "strava_unavailable": "Strava is not answering right now; the sync will retry automatically.",
    "sync_failed": "The last sync failed. Try again.",
    "key_unavailable": "Your Strava connection cannot be read right now. We are on it.",
}
PRIVATE_RUNS_MISSING = (
    "Runs you keep private ('Only You') are missing. "
    "Reconnect Strava and allow access to private activities to include them."
)
# Codes after which nothing works until the runner reconnects.
RECONNECT_CODES = frozenset({"reauth_required", "revoked", "insufficient_scope"})

Enqueue = Callable[[uuid.UUID], None]


def build_strava_client(
    settings: Settings,
    http: httpx2.Client,
    *,
    on_response: Callable[[ResponseInfo], None] | None = None,
) -> StravaClient:
    """The one place settings meet the client (which itself knows no settings)."""
    return StravaClient(
        http,
        api_base_url=settings.api_base_url,
        oauth_base_url=settings.oauth_base_url,
        client_id=settings.client_id,
        client_secret=settings.client_secret,
        on_response=on_response,
    )


def parse_scopes(scope: str | None) -> list[str]:
    return [part.strip() for part in (scope or "").split(",") if part.strip()]


def get_link(
    session: Session, runner_id: uuid.UUID, *, for_update: bool = False
) -> StravaLink | None:
    query = select(StravaLink).where(StravaLink.runner_id == runner_id)
    if for_update:
        query = query.with_for_update()
    return session.scalar(query)


def status_error(
    code: str, retry_at: datetime | None = None, message: str | None = None
) -> StatusErrorOut:
    return StatusErrorOut(
        code=code,
        message=message or ERROR_MESSAGES.get(code, "Something went wrong with Strava."),
        action=ERROR_ACTIONS.get(code, "retry"),
        retry_at=retry_at,
    )


def _active_sync(session: Session, runner_id: uuid.UUID) -> SyncRun | None:
    return session.scalar(
        select(SyncRun)
        .where(SyncRun.runner_id == runner_id, SyncRun.state.in_(ACTIVE_SYNC_STATES))
        .limit(1)
    )


def window_start(now: datetime, window_days: int) -> datetime:
    return now - timedelta(days=window_days)


def get_status(
    session: Session, runner_id: uuid.UUID, keyring: KeyRing, *, window_days: int
) -> StravaStatus:
    now = utcnow()
    link = get_link(session, runner_id)
    active = _active_sync(session, runner_id)
    sync_state = active.state if active is not None else "idle"
    if link is None:
        last_attempt = session.scalar(
            select(LinkAttempt)
            .where(LinkAttempt.runner_id == runner_id, LinkAttempt.used_at.is_not(None))
            .order_by(LinkAttempt.used_at.desc())
            .limit(1)
        )
        error = None
        if last_attempt is not None and last_attempt.failure_code is not None:
            error = status_error(last_attempt.failure_code)
        return StravaStatus(
            status="not_linked",
            athlete=None,
            scopes=[],
            linked_at=None,
            sync=SyncStatusOut(
                state="idle",
                last_sync_at=None,
                last_success_at=None,
                last_result=None,
                next_sync_at=None,
                workouts_in_window=0,
            ),
            error=error,
        )

    credentials = open_link(link, keyring)
    scopes = parse_scopes(link.scopes)
    error = None
    if link.error_code is not None:
        retry_at = as_utc(link.error_retry_at) if link.error_retry_at else None
        error = status_error(link.error_code, retry_at, link.error_message)
    elif "activity:read_all" not in scopes:
        error = status_error("insufficient_scope", message=PRIVATE_RUNS_MISSING)
    in_window = session.scalar(
        select(func.count())
        .select_from(Workout)
        .where(Workout.runner_id == runner_id, Workout.start_date >= window_start(now, window_days))
    )
    athlete = credentials.athlete
    return StravaStatus(
        status="action_required" if link.error_code in RECONNECT_CODES else "linked",
        athlete=AthleteOut(
            id=int(athlete["id"]),
            firstname=athlete.get("firstname"),
            lastname=athlete.get("lastname"),
        ),
        scopes=scopes,
        linked_at=as_utc(link.linked_at),
        sync=SyncStatusOut(
            state=sync_state,
            last_sync_at=as_utc(link.last_sync_at) if link.last_sync_at else None,
            last_success_at=as_utc(link.last_success_at) if link.last_success_at else None,
            last_result=link.last_result,
            next_sync_at=as_utc(link.next_sync_at) if link.next_sync_at else None,
            workouts_in_window=in_window or 0,
        ),
        error=error,
    )


def request_sync(
    session: Session, runner_id: uuid.UUID, trigger: str, *, enqueue: Enqueue
) -> SyncRun:
    """Queue a sync of the runner's window, or return the one already queued or running.

    A manual request with the broker down is refused (ServiceUnavailable: 503 + Retry-After)
    before anything is written, when `enqueue` can tell (an `available()` probe)."""
    link = get_link(session, runner_id, for_update=True)
    if link is None:
        raise NotLinked()
    active = _active_sync(session, runner_id)
    if active is not None:
        return active
    available = getattr(enqueue, "available", None)
    if trigger == "manual" and available is not None and not available():
        raise ServiceUnavailable("Syncing is unavailable right now. Try again in a minute.")
    run = SyncRun(
        id=uuid.uuid4(), runner_id=runner_id, trigger=trigger, state="queued", created_at=utcnow()
    )
    session.add(run)
    session.flush()
    run_id = run.id
    after_commit(session, lambda: _dispatch(run_id, trigger, enqueue))
    return run


def _dispatch(run_id: uuid.UUID, trigger: str, enqueue: Enqueue) -> None:
    """Send the task once the run is committed. Never raises: if the broker went away since, the
    run stays queued and the beat tick's recovery sends it again (scheduling.py)."""
    try:
        enqueue(run_id)
    except Exception as exc:
        log.warning(
            "strava.sync_enqueue_failed",
            sync_run_id=str(run_id),
            trigger=trigger,
            error=type(exc).__name__,
            detail=str(exc)[:200],
        )


def delete_strava_data(session: Session, runner_id: uuid.UUID) -> int:
    """Hard-delete every workout that came from Strava for this runner."""
    result = session.execute(
        delete(Workout).where(Workout.runner_id == runner_id, Workout.source == "strava")
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def schedule_deauthorization(
    session: Session,
    keyring: KeyRing,
    access_token: str,
    *,
    refresh_token: str | None = None,
    access_token_expires_at: datetime | None = None,
) -> None:
    """Revoke at Strava later (the worker retries): the tokens are kept, encrypted, until then."""
    pending = PendingDeauthorization(id=uuid.uuid4(), attempts=0, next_attempt_at=utcnow())
    seal_pending_deauthorization(
        pending,
        keyring,
        access_token,
        refresh_token=refresh_token,
        access_token_expires_at=access_token_expires_at,
    )
    session.add(pending)


def unlink(session: Session, runner_id: uuid.UUID, keyring: KeyRing, client: StravaClient) -> None:
    """Delete the link and its data here first; revoke at Strava, or retry that later."""
    link = get_link(session, runner_id, for_update=True)
    if link is None:
        raise NotLinked()
    credentials = open_link(link, keyring)
    access_token, refresh_token = credentials.access_token, credentials.refresh_token
    expires_at = as_utc(link.access_token_expires_at)
    session.delete(link)
    deleted = delete_strava_data(session, runner_id)
    session.flush()
    try:
        if expires_at <= utcnow() + REFRESH_MARGIN:
            # Deauthorizing needs a live access token; an expired one would just get a 401.
            tokens = client.refresh(refresh_token)
            access_token = tokens.access_token.get_secret_value()
            refresh_token = tokens.refresh_token.get_secret_value()
            expires_at = tokens.expires_at
        client.deauthorize(access_token)
    except StravaAuthError:
        pass  # Strava no longer honours these tokens: nothing left to revoke.
    except StravaError as exc:
        # Strava unreachable: local data is gone either way; the worker retries the
        # deauthorization (refreshing first if need be) until Strava confirms or refuses.
        log.warning("strava.deauthorize_deferred", error=type(exc).__name__)
        schedule_deauthorization(
            session,
            keyring,
            access_token,
            refresh_token=refresh_token,
            access_token_expires_at=expires_at,
        )
    log.info("strava.unlinked", runner_id=str(runner_id), workouts_deleted=deleted)


# --- reading workouts and sync runs ---


def _encode_cursor(workout: Workout) -> str:
    raw = f"{as_utc(workout.start_date).isoformat()}|{workout.id}"
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        started, workout_id = raw.split("|")
        return as_utc(datetime.fromisoformat(started)), uuid.UUID(workout_id)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidRequest("cursor is not valid.") from exc


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
        query = query.where(Workout.start_date >= as_utc(since))
    if until is not None:
        query = query.where(Workout.start_date < as_utc(until))
    if sport_type is not None:
        query = query.where(Workout.sport_type == sport_type)
    if cursor is not None:
        started, workout_id = _decode_cursor(cursor)
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
    next_cursor = _encode_cursor(rows[limit - 1]) if len(rows) > limit else None
    return rows[:limit], next_cursor


def list_sync_runs(session: Session, runner_id: uuid.UUID, *, limit: int) -> list[SyncRun]:
    return list(
        session.scalars(
            select(SyncRun)
            .where(SyncRun.runner_id == runner_id)
            .order_by(SyncRun.created_at.desc())
            .limit(limit)
        )
    )
