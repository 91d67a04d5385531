"""The link flow (docs/contract.md §2): PKCE between app and backend; `state` + client secret
to Strava."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import structlog
from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from app.clock import as_utc, utcnow
from app.codes import RunState, StatusCode, Trigger
from app.config import Settings
from app.errors import (
    AccessDenied,
    AppError,
    AthleteAlreadyLinked,
    InsufficientScope,
    InvalidRequest,
    InvalidState,
    KeyUnavailable,
    PkceMismatch,
    ProfileRequired,
    ReauthRequired,
    RedirectUriNotAllowed,
    StateExpired,
    StravaAthleteLimit,
    StravaBadGateway,
)
from app.runners.models import Profile
from app.security import (
    KeyRing,
    is_valid_s256_challenge,
    new_token,
    token_hash,
    verifier_matches,
)
from app.strava import service
from app.strava.client import AthleteCapacityReached, InvalidGrant, StravaClient, StravaError
from app.strava.credentials import LinkCredentials, open_athlete, open_link, seal_link
from app.strava.models import LinkAttempt, StravaLink, StravaRevocation, SyncRun
from app.strava.payloads import TokenResponse
from app.strava.scheduling import Enqueue, request_sync
from app.strava.schemas import CallbackIn, LinkTokenIn

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class LinkToken:
    state: str
    authorize_url: str
    redirect_uri: str
    expires_at: datetime


def create_link_token(
    session: Session, runner_id: uuid.UUID, data: LinkTokenIn, *, settings: Settings
) -> LinkToken:
    if session.get(Profile, runner_id) is None:
        raise ProfileRequired()
    if data.code_challenge_method != "S256":
        raise InvalidRequest("code_challenge_method must be S256.")
    if not is_valid_s256_challenge(data.code_challenge):
        raise InvalidRequest("code_challenge must be 43 base64url characters (S256).")
    redirect_uri = data.redirect_uri or settings.redirect_uris[0]
    if redirect_uri not in settings.redirect_uris:
        raise RedirectUriNotAllowed()

    now = utcnow()
    state = new_token()
    attempt = LinkAttempt(
        id=uuid.uuid4(),
        runner_id=runner_id,
        state_hash=token_hash(state),
        code_challenge=data.code_challenge,
        redirect_uri=redirect_uri,
        created_at=now,
        expires_at=now + timedelta(seconds=settings.link_attempt_ttl_seconds),
    )
    session.add(attempt)
    query = urlencode(
        {
            "client_id": settings.client_id,
            "redirect_uri": redirect_uri,
            "response_type": "code",
            "approval_prompt": "auto",
            "scope": ",".join(settings.strava_scopes),
            "state": state,
        }
    )
    return LinkToken(
        state=state,
        authorize_url=f"{settings.strava_authorize_url}?{query}",
        redirect_uri=redirect_uri,
        expires_at=attempt.expires_at,
    )


def _spend_attempt(session: Session, runner_id: uuid.UUID, state: str) -> LinkAttempt:
    """Mark the attempt used, atomically: of two concurrent callbacks exactly one gets it."""
    attempt = session.scalar(select(LinkAttempt).where(LinkAttempt.state_hash == token_hash(state)))
    # Another runner's state looks exactly like an unknown one: nothing leaks across runners.
    if attempt is None or attempt.runner_id != runner_id or attempt.used_at is not None:
        raise InvalidState()
    now = utcnow()
    # SKIP LOCKED: a concurrent callback that spent this attempt holds its row while it calls
    # Strava; this one gives up at once (invalid_state) instead of waiting behind it.
    unspent = (
        select(LinkAttempt.id)
        .where(LinkAttempt.id == attempt.id, LinkAttempt.used_at.is_(None))
        .with_for_update(skip_locked=True)
        .scalar_subquery()
    )
    spent = session.execute(
        update(LinkAttempt)
        .where(LinkAttempt.id == unspent, LinkAttempt.used_at.is_(None))
        .values(used_at=now)
        .execution_options(synchronize_session=False)
    )
    if spent.rowcount != 1:  # type: ignore[attr-defined]
        raise InvalidState()
    session.refresh(attempt)
    return attempt


def _fail(attempt: LinkAttempt, error: AppError) -> AppError:
    """Record why the attempt failed and keep the spent attempt when the error propagates."""
    attempt.failure_code = error.code
    error.persist = True
    return error


def complete_link(
    session: Session,
    runner_id: uuid.UUID,
    data: CallbackIn,
    *,
    client: StravaClient,
    keyring: KeyRing,
    enqueue: Enqueue,
) -> StravaLink:
    if not data.state or len(data.state) > 256 or not data.state.isascii():
        raise InvalidState()
    if data.code is None and data.error is None:
        raise InvalidRequest("The callback needs either `code` or `error`.")
    attempt = _spend_attempt(session, runner_id, data.state)
    if as_utc(attempt.expires_at) <= utcnow():
        raise _fail(attempt, StateExpired())
    if not verifier_matches(data.code_verifier, attempt.code_challenge):
        raise _fail(attempt, PkceMismatch())
    if data.error == StatusCode.ACCESS_DENIED:  # the runner pressed Cancel (docs/strava.md §1.4)
        raise _fail(attempt, AccessDenied())
    if data.error is not None:
        # Anything else is Strava failing, not the runner cancelling; the value is not echoed.
        raise _fail(
            attempt,
            StravaBadGateway("Strava could not complete the authorization. Try again."),
        )

    scopes = service.parse_scopes(data.scope)
    if not service.READ_SCOPES & set(scopes):
        # Without activity:read nothing can be synced; keep no tokens at all.
        raise _fail(attempt, InsufficientScope())
    assert data.code is not None
    try:
        tokens = client.exchange_code(data.code)
    except AthleteCapacityReached as exc:
        # The runner can do nothing about it; an operator must ask Strava for more capacity.
        log.error(
            "strava.athlete_capacity_reached",
            runner_id=str(runner_id),
            endpoint=exc.endpoint,
            status=exc.status,
            detail=exc.message,
        )
        raise _fail(attempt, StravaAthleteLimit()) from exc
    except InvalidGrant as exc:
        raise _fail(
            attempt, ReauthRequired("Strava did not accept this authorization. Connect again.")
        ) from exc
    except StravaError as exc:
        raise _fail(attempt, StravaBadGateway()) from exc
    if tokens.athlete is None:
        raise _fail(attempt, StravaBadGateway("Strava's answer did not name the athlete."))

    try:
        link = _store_link(session, runner_id, tokens, scopes, keyring=keyring)
    except AthleteAlreadyLinked as exc:
        # The attempt stays spent: a replay of this state is invalid_state, never a new exchange.
        raise _fail(attempt, exc) from None
    request_sync(session, runner_id, Trigger.LINK, enqueue=enqueue)
    log.info("strava.linked", runner_id=str(runner_id), scopes=scopes)
    return link


def _athlete_if_readable(link: StravaLink, keyring: KeyRing) -> dict[str, Any] | None:
    try:
        return open_athlete(link, keyring)
    except KeyUnavailable:
        return None


def _store_link(
    session: Session,
    runner_id: uuid.UUID,
    tokens: TokenResponse,
    scopes: list[str],
    *,
    keyring: KeyRing,
) -> StravaLink:
    assert tokens.athlete is not None
    athlete = tokens.athlete.model_dump(include={"id", "firstname", "lastname"})
    credentials = LinkCredentials(
        athlete=athlete,
        access_token=tokens.access_token.get_secret_value(),
        refresh_token=tokens.refresh_token.get_secret_value(),
    )
    indexes = keyring.blind_indexes(str(credentials.athlete_id))
    holder = session.scalar(select(StravaLink).where(StravaLink.athlete_index.in_(indexes)))
    if holder is not None and holder.runner_id != runner_id:
        # Not deauthorized: Strava revokes every token of the athlete at once (docs/strava.md
        # §1.9), which would cut the holder's link. These tokens are never stored or logged.
        raise AthleteAlreadyLinked()

    now = utcnow()
    link = service.get_link(session, runner_id, for_update=True)
    old: LinkCredentials | None = None
    previous: dict[str, Any] | None = None
    if link is not None:
        try:
            old = open_link(link, keyring)
            previous = old.athlete
        except KeyUnavailable:
            # Unreadable (key removed, corrupt row): the fresh tokens replace it. Its athlete may
            # still open; when it does not, the row is taken for the same athlete (the sync that
            # follows reconciles the window either way).
            log.warning("strava.unreadable_link_replaced", runner_id=str(runner_id))
            previous = _athlete_if_readable(link, keyring)
    if link is not None and previous is not None and int(previous["id"]) != credentials.athlete_id:
        # A different athlete replaces the old link cleanly: its data goes, its grant is revoked
        # (when its tokens can still be read).
        service.delete_strava_data(session, runner_id)
        if old is not None:
            service.schedule_deauthorization(
                session,
                keyring,
                old.access_token,
                refresh_token=old.refresh_token,
                access_token_expires_at=as_utc(link.access_token_expires_at),
            )
        session.execute(
            delete(SyncRun).where(SyncRun.runner_id == runner_id, SyncRun.state == RunState.QUEUED)
        )
        session.delete(link)
        session.flush()
        link = None
    if link is None:
        link = StravaLink(id=uuid.uuid4(), runner_id=runner_id, linked_at=now, token_version=1)
        session.add(link)
    else:
        link.token_version += 1  # reconnect: fresh tokens for the same athlete
    seal_link(link, keyring, credentials, access_token_expires_at=tokens.expires_at)
    link.scopes = ",".join(scopes)
    # Linked again after a revocation: the status stops saying `revoked`.
    session.execute(delete(StravaRevocation).where(StravaRevocation.runner_id == runner_id))
    link.error_code = None
    link.error_message = None
    link.error_retry_at = None
    session.flush()
    return link
