"""A live access token for a link: refreshed when it expires within 5 minutes, one refresh per
link at a time across every worker (docs/contract.md §4; docs/strava.md §1.7).

Strava rotates the refresh token on refresh and the old one dies at once, so two workers that
refresh the same link concurrently would leave one of them (and perhaps the stored pair) with a
dead token. Hence:

* the refresh happens with the link row locked (`SELECT ... FOR UPDATE`), re-read after locking;
* `token_version` tells whether another worker refreshed while we waited: then its tokens are
  used and Strava is not called again (a lost race is never mistaken for a dead link);
* the rotated pair is committed before the new access token is used (its own transaction: the
  refresh is durable even if the sync that needed it fails later).

Outcomes: a refused refresh (400/401 on /oauth/token: `InvalidGrant`) marks the link
`reauth_required` (committed) and raises `ReauthRequired`; Strava unreachable raises the
client's `StravaUnreachable` with nothing changed (the sync is retried later); a missing link
raises `NotLinked`.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import structlog
from sqlalchemy.orm import Session, sessionmaker

from app.clock import as_utc, utcnow
from app.codes import StatusCode
from app.db import lock_row, session_scope
from app.errors import KeyUnavailable, NotLinked, ReauthRequired
from app.security import KeyRing
from app.strava.budget import BudgetSpent, RateBudget
from app.strava.client import InvalidGrant, RateLimited, StravaClient, StravaError
from app.strava.credentials import LinkCredentials, open_link, seal_link
from app.strava.metrics import TOKEN_REFRESHES
from app.strava.models import StravaLink

log = structlog.get_logger(__name__)

REFRESH_MARGIN = timedelta(minutes=5)


@dataclass(frozen=True)
class AccessGrant:
    """An access token of a link, and the `token_version` it belongs to."""

    link_id: uuid.UUID
    access_token: str = field(repr=False)
    token_version: int
    expires_at: datetime

    def fresh(self, now: datetime) -> bool:
        return self.expires_at > now + REFRESH_MARGIN


def lock_link(session: Session, link_id: uuid.UUID) -> StravaLink | None:
    """The link row, locked until the transaction ends and re-read from the database."""
    return lock_row(session, StravaLink, link_id, StravaLink.token_version)


def _grant(link: StravaLink, keyring: KeyRing) -> AccessGrant:
    return AccessGrant(
        link_id=link.id,
        access_token=open_link(link, keyring).access_token,
        token_version=link.token_version,
        expires_at=as_utc(link.access_token_expires_at),
    )


def fresh_grant(link: StravaLink, keyring: KeyRing, now: datetime) -> AccessGrant | None:
    """The access token of a link row the caller has just read (the sync's claim), when it
    needs no refresh: that spares `access_grant` a read of its own. None when the token must go
    through `access_grant` (it expires soon, or a key problem, which `access_grant` reports)."""
    try:
        grant = _grant(link, keyring)
    except KeyUnavailable:
        return None
    return grant if grant.fresh(now) else None


def access_grant(
    sessions: sessionmaker[Session],
    link_id: uuid.UUID,
    *,
    client: StravaClient,
    keyring: KeyRing,
    budget: RateBudget,
    stale_version: int | None = None,
) -> AccessGrant:
    """A usable access token for the link, refreshing it if needed.

    `stale_version`: Strava refused the token of that version (401) although it looked valid;
    refresh it unless another worker has replaced it since.
    """
    now = utcnow()
    if stale_version is None:
        with sessions() as session:
            link = session.get(StravaLink, link_id)
            if link is None:
                raise NotLinked()
            grant = _grant(link, keyring)
        if grant.fresh(now):
            return grant
        stale_version = grant.token_version
    return _refresh_locked(
        sessions, link_id, stale_version, client=client, keyring=keyring, budget=budget
    )


def _refresh_locked(
    sessions: sessionmaker[Session],
    link_id: uuid.UUID,
    stale_version: int,
    *,
    client: StravaClient,
    keyring: KeyRing,
    budget: RateBudget,
) -> AccessGrant:
    refused: InvalidGrant | None = None
    # Counted before the lock: the embedded budget writes to the database, which on SQLite
    # would wait for the write lock the refresh below holds.
    try:
        budget.acquire(utcnow())
    except BudgetSpent:
        TOKEN_REFRESHES.labels("rate_limited").inc()
        raise
    with session_scope(sessions) as session:
        link = lock_link(session, link_id)
        if link is None:
            raise NotLinked()
        now = utcnow()
        if link.token_version != stale_version:
            # Another worker refreshed while we waited for the lock: use its tokens.
            grant = _grant(link, keyring)
            if grant.expires_at > now:
                TOKEN_REFRESHES.labels("raced").inc()
                log.info("strava.token_refresh_raced", link_id=str(link_id))
                return grant
        credentials = open_link(link, keyring)
        try:
            tokens = client.refresh(credentials.refresh_token)
        except InvalidGrant as exc:
            refused = exc
            link.error_code = StatusCode.REAUTH_REQUIRED
            link.error_message = None
            link.error_retry_at = None
            link.next_sync_at = None
        except RateLimited:
            TOKEN_REFRESHES.labels("rate_limited").inc()
            raise
        except StravaError as exc:
            outcome = "unavailable" if exc.status is None or exc.status >= 500 else "error"
            TOKEN_REFRESHES.labels(outcome).inc()
            log.warning(
                "strava.token_refresh_failed",
                link_id=str(link_id),
                error=type(exc).__name__,
                status=exc.status,
            )
            raise
        else:
            seal_link(
                link,
                keyring,
                LinkCredentials(
                    athlete=credentials.athlete,
                    access_token=tokens.access_token.get_secret_value(),
                    refresh_token=tokens.refresh_token.get_secret_value(),
                ),
                access_token_expires_at=tokens.expires_at,
            )
            link.token_version += 1
            session.flush()
            grant = _grant(link, keyring)
    # Committed (the rotated refresh token is durable) before anyone uses the new access token.
    if refused is not None:
        TOKEN_REFRESHES.labels("invalid_grant").inc()
        log.warning("strava.token_refresh_refused", link_id=str(link_id), status=refused.status)
        raise ReauthRequired() from refused
    TOKEN_REFRESHES.labels("ok").inc()
    log.info("strava.token_refreshed", link_id=str(link_id), token_version=grant.token_version)
    return grant
