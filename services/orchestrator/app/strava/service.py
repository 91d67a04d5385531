"""The Strava link as the runner sees it: its status, unlinking, and revoking at Strava later.

**What the status can say** (docs/contract.md §3 StravaStatus), rendered by `get_status`:

* `status`: `not_linked` (no link), `action_required` (the link's error is one of
  RECONNECT_CODES), else `linked`;
* `sync.state`: `idle`, or the state of the runner's one `queued`/`running` SyncRun;
* `sync.updates`: `live` while a push subscription is recorded (subscriptions.push_active) and
  the link needs no reconnect, else `polling`; null without a link;
* `error.code` (app.codes.StatusCode) with the `message` and `action` of ERROR_MESSAGES and
  ERROR_ACTIONS below, and `retry_at` when the link retries by itself.

**Who sets it** (the link's `error_code`, `error_retry_at`, `last_*` and `next_sync_at` columns):

* oauth.complete_link: a failed attempt's code (LinkAttempt.failure_code: `access_denied`,
  `insufficient_scope`, ...; shown while there is no link); a successful link clears the error;
* scheduling.run_recorded (a sync run's own write, one Core UPDATE) and record_run (the ORM
  path: runs the tick finds lost, `sync_failed`), one rule: after every sync run, from
  sync.classify's code (`rate_limited`, `reauth_required`, `insufficient_scope`,
  `strava_unavailable`, `key_unavailable`, `sync_failed`) or cleared on success;
* tokens.access_grant: a refused token refresh (`reauth_required`), committed at once;
* webhook_processing.revoke: a confirmed revocation deletes the link and leaves a
  StravaRevocation row: with no link, the status says `revoked` (action `reconnect`) until the
  runner links again (oauth.complete_link removes the row) or a later link attempt failed;
* get_status itself: `insufficient_scope` (private runs missing) when the grant lacks
  `activity:read_all`; `key_unavailable` when the athlete cannot be decrypted.

Services take a Session and never commit (the request or task owns the transaction), except the
deauthorization retries, which run in the worker with transactions of their own.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import (
    ColumnElement,
    DateTime,
    FromClause,
    Row,
    Select,
    Uuid,
    bindparam,
    delete,
    literal,
    select,
)
from sqlalchemy.orm import Session

from app.clock import as_utc, utcnow, window_start
from app.codes import ACTIVE_RUN_STATES, RECONNECT_CODES, Source, StatusCode, Updates
from app.db import Reads, dialect_name, session_scope
from app.errors import AppError, KeyUnavailable, NotLinked, StravaAthleteLimit, Unauthenticated
from app.runners import service as runners
from app.runners.models import Runner
from app.security import KeyRing
from app.strava.budget import BudgetSpent
from app.strava.client import InvalidClient, RateLimited, StravaAuthError, StravaClient, StravaError
from app.strava.credentials import (
    LinkCredentials,
    PendingTokens,
    open_athlete,
    open_link,
    open_pending_deauthorization,
    seal_pending_deauthorization,
)
from app.strava.metrics import DEAUTHORIZATIONS, UNLINKS_WITHOUT_DEAUTHORIZATION, Purpose
from app.strava.models import (
    LinkAttempt,
    PendingDeauthorization,
    StravaLink,
    StravaRevocation,
    SyncRun,
)
from app.strava.runtime import RunRecorder, StravaRuntime
from app.strava.schemas import AthleteOut, StatusErrorOut, StravaStatus, SyncStatusOut
from app.strava.subscriptions import push_active_clause
from app.strava.tokens import REFRESH_MARGIN
from app.training import service as training
from app.workouts import service as workouts

log = structlog.get_logger(__name__)

READ_SCOPES = frozenset({"activity:read", "activity:read_all"})
MAX_DEAUTHORIZE_BACKOFF = timedelta(hours=6)

# What the app can do about each error code (docs/contract.md §3 StravaStatus.error.action).
ERROR_ACTIONS: dict[str, str] = {
    StatusCode.ACCESS_DENIED: "retry",
    StatusCode.INSUFFICIENT_SCOPE: "reconnect",
    StatusCode.REAUTH_REQUIRED: "reconnect",
    StatusCode.REVOKED: "reconnect",
    StatusCode.RATE_LIMITED: "wait",
    StatusCode.STRAVA_UNAVAILABLE: "wait",
    StatusCode.SYNC_FAILED: "retry",
    StatusCode.KEY_UNAVAILABLE: "none",
    StatusCode.INVALID_STATE: "retry",
    StatusCode.STATE_EXPIRED: "retry",
    StatusCode.PKCE_MISMATCH: "retry",
    StatusCode.ATHLETE_ALREADY_LINKED: "none",
    StatusCode.STRAVA_ATHLETE_LIMIT: "none",
}
ERROR_MESSAGES: dict[str, str] = {
    StatusCode.ACCESS_DENIED: "You cancelled the Strava authorization. "
    "Connect again when you are ready.",
    StatusCode.INSUFFICIENT_SCOPE: "Coach George needs permission to read your activities. "
    "Reconnect Strava and keep 'View data about your activities' ticked.",
    StatusCode.REAUTH_REQUIRED: "Strava no longer accepts Coach George's authorization. "
    "Reconnect Strava.",
    StatusCode.REVOKED: "Coach George's access was removed on Strava. "
    "Reconnect Strava to resume syncing.",
    StatusCode.RATE_LIMITED: "Strava is busy; the sync will retry automatically.",
    StatusCode.STRAVA_UNAVAILABLE: "Strava is not answering right now; "
    "the sync will retry automatically.",
    StatusCode.SYNC_FAILED: "The last sync failed. Try again.",
    StatusCode.KEY_UNAVAILABLE: "Your Strava connection cannot be read right now. We are on it.",
    StatusCode.INVALID_STATE: "This link attempt is no longer valid: it was already used or "
    "started elsewhere. Connect Strava again from here.",
    StatusCode.STATE_EXPIRED: "Connecting Strava took longer than allowed. Connect again.",
    StatusCode.PKCE_MISMATCH: "Strava's answer did not match the request this app made. "
    "Connect again.",
    StatusCode.ATHLETE_ALREADY_LINKED: "This Strava account is connected to another Coach George "
    "account. Disconnect it there first, or connect a different Strava account.",
    StatusCode.STRAVA_ATHLETE_LIMIT: StravaAthleteLimit.default_message,
}
# A failed link attempt is shown while there is no link: nothing retries by itself then, so the
# words must not promise it (ERROR_MESSAGES speak of a linked runner's sync) and the action is
# `retry` (connect again), not `wait`.
LINK_FAILURE_MESSAGES: dict[str, str] = {
    StatusCode.STRAVA_UNAVAILABLE: "Strava did not complete the connection. Connect again.",
    StatusCode.RATE_LIMITED: "Strava was busy and did not complete the connection. "
    "Connect again in a few minutes.",
}
PRIVATE_RUNS_MISSING = (
    "Runs you keep private ('Only You') are missing. "
    "Reconnect Strava and allow access to private activities to include them."
)


def parse_scopes(scope: str | None) -> list[str]:
    return [part.strip() for part in (scope or "").split(",") if part.strip()]


def get_link(
    session: Session, runner_id: uuid.UUID, *, for_update: bool = False, nowait: bool = False
) -> StravaLink | None:
    """The runner's link; locked with `for_update`. With `nowait` a link another transaction
    holds is not waited for: the database refuses at once (app.errors maps that to a 503)."""
    query = select(StravaLink).where(StravaLink.runner_id == runner_id)
    if for_update:
        query = query.with_for_update(nowait=nowait)
    return session.scalar(query)


def status_error(
    code: str,
    retry_at: datetime | None = None,
    message: str | None = None,
    action: str | None = None,
) -> StatusErrorOut:
    return StatusErrorOut(
        code=code,
        message=message or ERROR_MESSAGES.get(code, "Something went wrong with Strava."),
        action=action or ERROR_ACTIONS.get(code, "retry"),
        retry_at=retry_at,
    )


def active_sync(session: Session, runner_id: uuid.UUID) -> SyncRun | None:
    """The runner's one queued or running sync run, if any."""
    return session.scalar(
        select(SyncRun)
        .where(SyncRun.runner_id == runner_id, SyncRun.state.in_(ACTIVE_RUN_STATES))
        .limit(1)
    )


def _status_query(
    runner_id: ColumnElement[Any],
    from_clause: FromClause,
    where: ColumnElement[bool],
    *,
    count_window: bool,
    extra: Sequence[ColumnElement[Any]] = (),
) -> Select[*tuple[Any, ...]]:
    """Everything the status shows, in one statement (the app polls it): the runner's id, the
    link's columns (all None when there is none), the active run's state, the window's workout
    count, the last used link attempt's failure code and time, a revocation at Strava, and
    `extra` columns of `from_clause` (the summary's profile). `runner_id` is the column of
    `from_clause` the subqueries correlate with; `where` picks the runner (their id, or a live
    bearer token: the token check is then this same statement). Core columns and bound
    parameters, built once: no ORM objects, and SQLAlchemy's cache key is computed once, not
    per request."""
    links = StravaLink.__table__.c
    runs, attempts = SyncRun.__table__.c, LinkAttempt.__table__.c
    since = bindparam("since", type_=DateTime(timezone=True))
    active_state = (
        select(runs.state)
        .where(runs.runner_id == runner_id, runs.state.in_(ACTIVE_RUN_STATES))
        .limit(1)
        .scalar_subquery()
    )
    last_used = (
        select(attempts.failure_code, attempts.used_at)
        .where(attempts.runner_id == runner_id, attempts.used_at.is_not(None))
        .order_by(attempts.used_at.desc())
        .limit(1)
    )
    last_failure = last_used.with_only_columns(attempts.failure_code).scalar_subquery()
    last_used_at = last_used.with_only_columns(attempts.used_at).scalar_subquery()
    revocations = StravaRevocation.__table__.c
    revoked_at = (
        select(revocations.revoked_at).where(revocations.runner_id == runner_id).scalar_subquery()
    )
    return (
        select(
            runner_id.label("runner_id"),
            links.id,
            links.key_id,
            links.athlete_ciphertext,
            links.scopes,
            links.linked_at,
            links.error_code,
            links.error_message,
            links.error_retry_at,
            links.last_sync_at,
            links.last_success_at,
            links.last_result,
            links.next_sync_at,
            active_state.label("active_state"),
            (
                workouts.count_since_query(runner_id, since).scalar_subquery()
                if count_window
                else literal(None)
            ).label("in_window"),
            last_failure.label("last_failure"),
            last_used_at.label("last_used_at"),
            revoked_at.label("revoked_at"),
            push_active_clause().label("push_active"),
            *extra,
        )
        .select_from(from_clause.outerjoin(StravaLink.__table__, links.runner_id == runner_id))
        .where(where)
    )


_RUNNERS = Runner.__table__
_SESSIONS = runners.RUNNER_SESSIONS
# By the runner's id (after a write that authenticated already: the callback).
_STATUS = _status_query(
    _RUNNERS.c.id,
    _RUNNERS,
    _RUNNERS.c.id == bindparam("runner_id", type_=Uuid()),
    count_window=True,
)
# By a live bearer token (GET /strava/status): the token check and the status, one statement.
_STATUS_OF_TOKEN = _status_query(
    _SESSIONS.c.runner_id, _SESSIONS, runners.LIVE_SESSION, count_window=True
)


# The profile summary's statement: the token, the status and the profile, without the window's
# count (the summary counts the workouts it reads anyway), and on PostgreSQL the training load's
# workouts too (training.history_json): one round trip. SQLite's JSON prints floats to 15
# digits, not exactly: there the summary reads the workouts in a second statement.
def _summary_query(history: ColumnElement[Any]) -> Select[*tuple[Any, ...]]:
    profiles = runners.PROFILES
    return _status_query(
        _SESSIONS.c.runner_id,
        _SESSIONS.outerjoin(profiles, profiles.c.runner_id == _SESSIONS.c.runner_id),
        runners.LIVE_SESSION,
        count_window=False,
        extra=(*runners.PROFILE_COLUMNS, history.label("history")),
    )


_SUMMARY_OF_TOKEN = _summary_query(training.history_json(_SESSIONS.c.runner_id))
_SUMMARY_OF_TOKEN_SQLITE = _summary_query(literal(None))


def _utc(value: datetime | None) -> datetime | None:
    return as_utc(value) if value is not None else None


def get_status(
    session: Session, runner_id: uuid.UUID, keyring: KeyRing, *, window_days: int
) -> StravaStatus:
    """The link as the runner sees it, in one statement."""
    since = window_start(utcnow(), window_days)
    row = session.execute(_STATUS, {"runner_id": runner_id, "since": since}).first()
    return render_status(row, keyring)


def read_status(session: Reads, token: str, keyring: KeyRing, *, window_days: int) -> StravaStatus:
    """GET /strava/status: the runner of a live bearer token and their status, in one statement
    (an unknown or expired token is Unauthenticated)."""
    parameters = runners.live_session_parameters(token)
    since = window_start(parameters["now"], window_days)
    row = session.execute(_STATUS_OF_TOKEN, {**parameters, "since": since}).first()
    if row is None:
        raise Unauthenticated()
    return render_status(row, keyring)


def read_status_and_profile(session: Reads, token: str, *, now: datetime) -> Row[Any]:
    """The profile summary's first statement: the runner of a live bearer token, their status
    (render it with `render_status`, given the window's count), their profile
    (runners.profile_from_row) and, on PostgreSQL, their workouts for the training load
    (`history`, for training.summary; None on SQLite). An unknown or expired token is
    Unauthenticated."""
    parameters = runners.live_session_parameters(token)
    query = _SUMMARY_OF_TOKEN if dialect_name(session) == "postgresql" else _SUMMARY_OF_TOKEN_SQLITE
    row = session.execute(
        query, {**parameters, "history_since": training.history_since(now)}
    ).first()
    if row is None:
        raise Unauthenticated()
    return row


def render_status(
    row: Row[Any] | None, keyring: KeyRing, *, workouts_in_window: int | None = None
) -> StravaStatus:
    """The status from a row of a status statement (None: no runner). `workouts_in_window`: the
    count when the caller read the window's workouts itself (the profile summary)."""
    if row is None or row.id is None:
        error = None
        if row is not None and row.last_failure is not None:
            # Nothing retries a failed link by itself: the runner connects again.
            message = LINK_FAILURE_MESSAGES.get(row.last_failure)
            error = status_error(
                row.last_failure, message=message, action="retry" if message else None
            )
        if (
            row is not None
            and row.revoked_at is not None
            and (row.last_used_at is None or as_utc(row.last_used_at) <= as_utc(row.revoked_at))
        ):
            # Revoked at Strava (confirmed) and not linked again since: reconnect.
            error = status_error(StatusCode.REVOKED)
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

    try:
        # The athlete alone (id and names): neither token is decrypted to show a name.
        athlete: dict[str, Any] | None = open_athlete(row, keyring)
    except KeyUnavailable:
        athlete = None  # a key problem is a state the app can show, not an outage
    scopes = parse_scopes(row.scopes)
    error = None
    if athlete is None:
        error = status_error(StatusCode.KEY_UNAVAILABLE)
    elif row.error_code is not None:
        error = status_error(row.error_code, _utc(row.error_retry_at), row.error_message)
    elif "activity:read_all" not in scopes:
        error = status_error(StatusCode.INSUFFICIENT_SCOPE, message=PRIVATE_RUNS_MISSING)
    in_window = workouts_in_window if workouts_in_window is not None else row.in_window or 0
    # Live: Strava pushes this athlete's changes, which needs an active subscription (the same
    # test as subscriptions.push_active, inside the status statement) and a link Strava still
    # honours.
    live = bool(row.push_active) and row.error_code not in RECONNECT_CODES
    return StravaStatus(
        status="action_required" if row.error_code in RECONNECT_CODES else "linked",
        athlete=AthleteOut(
            id=int(athlete["id"]),
            firstname=athlete.get("firstname"),
            lastname=athlete.get("lastname"),
        )
        if athlete is not None
        else None,
        scopes=scopes,
        linked_at=as_utc(row.linked_at),
        sync=SyncStatusOut(
            state=row.active_state or "idle",
            last_sync_at=_utc(row.last_sync_at),
            last_success_at=_utc(row.last_success_at),
            last_result=row.last_result,
            next_sync_at=_utc(row.next_sync_at),
            workouts_in_window=in_window,
            updates=Updates.LIVE if live else Updates.POLLING,
        ),
        error=error,
    )


def list_sync_runs(session: Session, runner_id: uuid.UUID, *, limit: int) -> list[SyncRun]:
    return list(
        session.scalars(
            select(SyncRun)
            .where(SyncRun.runner_id == runner_id)
            .order_by(SyncRun.created_at.desc())
            .limit(limit)
        )
    )


# --- unlinking and revoking at Strava -----------------------------------------------------------


def delete_strava_data(session: Session, runner_id: uuid.UUID) -> int:
    """Hard-delete every workout that came from Strava for this runner."""
    return workouts.delete_by_source(session, runner_id, Source.STRAVA)


def purge_strava_data(session: Session, runner_id: uuid.UUID) -> int:
    """Everything we hold from Strava about a runner goes: the link (the athlete and the tokens)
    and every Strava workout; returns the workouts deleted. The one purge behind unlink, account
    erasure, retention of dead grants and a confirmed deauthorization."""
    session.execute(delete(StravaLink).where(StravaLink.runner_id == runner_id))
    return delete_strava_data(session, runner_id)


def record_revocation(session: Session, runner_id: uuid.UUID, revoked_at: datetime) -> None:
    """Remember that Strava no longer honours the runner's grant (their data is purged), so the
    status says `revoked` with action `reconnect` rather than a bare `not_linked`."""
    revocation = session.get(StravaRevocation, runner_id)
    if revocation is None:
        session.add(StravaRevocation(runner_id=runner_id, revoked_at=revoked_at))
    else:
        revocation.revoked_at = revoked_at


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


def refresh_and_deauthorize(
    client: StravaClient,
    tokens: PendingTokens,
    *,
    before_request: Callable[[], None] = lambda: None,
    on_refreshed: Callable[[PendingTokens], None] = lambda _: None,
) -> None:
    """Revoke the grant at Strava. Deauthorizing needs a live access token (an expired one just
    gets a 401), so an expiring one is refreshed first; Strava rotates the refresh token then, so
    `on_refreshed` gets the new pair to keep in case the deauthorization itself fails."""
    expires_at = tokens.access_token_expires_at
    if tokens.refresh_token is not None and (
        expires_at is None or as_utc(expires_at) <= utcnow() + REFRESH_MARGIN
    ):
        before_request()
        fresh = client.refresh(tokens.refresh_token)
        tokens = PendingTokens(
            access_token=fresh.access_token.get_secret_value(),
            refresh_token=fresh.refresh_token.get_secret_value(),
            access_token_expires_at=fresh.expires_at,
        )
        on_refreshed(tokens)
    before_request()
    client.deauthorize(tokens.access_token)


def revoke_grant(
    session: Session, keyring: KeyRing, client: StravaClient, tokens: PendingTokens
) -> None:
    """Deauthorize at Strava now (refreshing first if need be), or leave a pending
    deauthorization for the worker when Strava cannot be reached."""
    latest = tokens

    def keep(refreshed: PendingTokens) -> None:
        nonlocal latest
        latest = refreshed

    try:
        refresh_and_deauthorize(client, latest, on_refreshed=keep)
    except StravaAuthError:
        pass  # Strava no longer honours these tokens: nothing left to revoke.
    except StravaError as exc:
        # Strava unreachable: local data is gone either way; the worker retries the
        # deauthorization (refreshing first if need be) until Strava confirms or refuses.
        log.warning("strava.deauthorize_deferred", error=type(exc).__name__)
        schedule_deauthorization(
            session,
            keyring,
            latest.access_token,
            refresh_token=latest.refresh_token,
            access_token_expires_at=latest.access_token_expires_at,
        )


def _disconnect(session: Session, link: StravaLink, keyring: KeyRing, client: StravaClient) -> int:
    """Purge the link and its data here first; then revoke at Strava, or retry that later.
    Returns the workouts deleted."""
    runner_id = link.runner_id
    try:
        credentials: LinkCredentials | None = open_link(link, keyring)
    except KeyUnavailable:
        credentials = None
    expires_at = as_utc(link.access_token_expires_at)
    deleted = purge_strava_data(session, runner_id)
    session.flush()
    if credentials is None:
        # The runner can always disconnect and have their data deleted; the grant at Strava
        # cannot be revoked without its tokens (the athlete can still revoke it on Strava).
        UNLINKS_WITHOUT_DEAUTHORIZATION.labels(StatusCode.KEY_UNAVAILABLE).inc()
        log.warning(
            "strava.deauthorize_skipped",
            runner_id=str(runner_id),
            reason=StatusCode.KEY_UNAVAILABLE,
        )
        return deleted
    tokens = PendingTokens(
        access_token=credentials.access_token,
        refresh_token=credentials.refresh_token,
        access_token_expires_at=expires_at,
    )
    revoke_grant(session, keyring, client, tokens)
    return deleted


def unlink(session: Session, runner_id: uuid.UUID, keyring: KeyRing, client: StravaClient) -> None:
    """Delete the link and its data here first; revoke at Strava, or retry that later.

    The link stays locked while Strava is called, so a concurrent unlink of the same runner is
    refused at once (NOWAIT) instead of holding a thread and a connection behind the lock."""
    link = get_link(session, runner_id, for_update=True, nowait=True)
    if link is None:
        raise NotLinked()
    deleted = _disconnect(session, link, keyring, client)
    log.info("strava.unlinked", runner_id=str(runner_id), workouts_deleted=deleted)


def forget_runner(
    session: Session, runner_id: uuid.UUID, *, keyring: KeyRing, client: StravaClient
) -> None:
    """Account erasure's Strava part: what unlink does, and nothing without a link."""
    link = get_link(session, runner_id, for_update=True)
    if link is None:
        return
    deleted = _disconnect(session, link, keyring, client)
    log.info("strava.forgotten", runner_id=str(runner_id), workouts_deleted=deleted)


def deauthorize_pending(runtime: StravaRuntime, *, batch_size: int = 50) -> int:
    """Retry deferred deauthorizations that are due; returns how many are settled."""
    now = utcnow()
    settled = 0
    recorder = RunRecorder(runtime.budget, purpose=Purpose.DEAUTHORIZE)
    client = runtime.client_for(recorder)

    def before_request() -> None:
        recorder.flush()
        runtime.budget.acquire(utcnow())

    with session_scope(runtime.sessions) as session:
        due = list(
            session.scalars(
                select(PendingDeauthorization)
                .where(PendingDeauthorization.next_attempt_at <= now)
                .order_by(PendingDeauthorization.next_attempt_at)
                .limit(batch_size)
                .with_for_update(skip_locked=True)
            )
        )
        for pending in due:

            def reseal(tokens: PendingTokens, pending: PendingDeauthorization = pending) -> None:
                # Hours may have passed: the rotated pair is kept in case Strava fails again
                # (the old refresh token is dead now).
                seal_pending_deauthorization(
                    pending,
                    runtime.keyring,
                    tokens.access_token,
                    refresh_token=tokens.refresh_token,
                    access_token_expires_at=tokens.access_token_expires_at,
                )

            try:
                tokens = open_pending_deauthorization(pending, runtime.keyring)
                refresh_and_deauthorize(
                    client, tokens, before_request=before_request, on_refreshed=reseal
                )
            except (BudgetSpent, RateLimited) as exc:
                # Everyone waits for the window; so do the remaining rows.
                for waiting in due[due.index(pending) :]:
                    waiting.next_attempt_at = max(as_utc(waiting.next_attempt_at), exc.retry_at)
                break
            except (InvalidClient, KeyUnavailable):
                _retry_later(pending, now)
            except StravaAuthError:
                # 401: Strava no longer honours the token, so there is nothing left to revoke.
                session.delete(pending)
                settled += 1
            except (StravaError, AppError):
                _retry_later(pending, now)
            else:
                session.delete(pending)
                settled += 1
    recorder.flush()
    if settled:
        DEAUTHORIZATIONS.labels("done").inc(settled)
    return settled


def _retry_later(pending: PendingDeauthorization, now: datetime) -> None:
    pending.attempts += 1
    delay = min(timedelta(minutes=2**pending.attempts), MAX_DEAUTHORIZE_BACKOFF)
    pending.next_attempt_at = now + delay
    DEAUTHORIZATIONS.labels("retry").inc()
    log.info("strava.deauthorize_retry", attempts=pending.attempts)
