"""The application's push subscription (docs/strava.md §5): subscribe, status, unsubscribe.

Strava allows one subscription per application. The one we made is recorded in
`strava_push_subscriptions`, and that record is what "links are covered by push" means to
scheduling (`push_active`); `status` also asks Strava and reports any drift between the two.

Strava is called with no transaction open (a create waits up to 2 s on the callback's validation
GET, which our own API answers): each function owns its short transactions, like sync.py.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from enum import StrEnum

import structlog
from sqlalchemy import Exists, delete, exists, select
from sqlalchemy.orm import Session, sessionmaker

from app.clock import as_utc, utcnow
from app.db import session_scope
from app.strava.client import (
    StravaClient,
    StravaError,
    SubscriptionExists,
    SubscriptionNotFound,
)
from app.strava.models import PushSubscriptionRecord
from app.strava.payloads import PushSubscription
from app.strava.runtime import RunRecorder, StravaRuntime

log = structlog.get_logger(__name__)


class Drift(StrEnum):
    """How our record and Strava's list compare."""

    NONE = "none"  # both have the same subscription, or neither has one
    MISSING_AT_STRAVA = "missing_at_strava"  # recorded here, gone at Strava: no events arrive
    NOT_RECORDED = "not_recorded"  # Strava has one we did not record: links still poll hourly
    DIFFERENT = "different"  # both have one, not the same (id or callback URL)


@dataclass(frozen=True)
class SubscriptionStatus:
    recorded: PushSubscription | None
    at_strava: PushSubscription | None
    drift: Drift

    @property
    def live(self) -> bool:
        """Events can arrive and scheduling counts on them."""
        return self.drift == Drift.NONE and self.recorded is not None


class AlreadySubscribed(Exception):
    """The application already has its subscription at Strava (`existing`, when it could be
    listed): unsubscribe first, as Strava cannot edit one (docs/strava.md §5). An operator's
    error from the command line, never an HTTP answer, so not an AppError."""

    def __init__(self, existing: PushSubscription | None) -> None:
        super().__init__("the application already has a push subscription")
        self.existing = existing


def push_active_clause() -> Exists:
    """SQL: an active subscription is recorded (a column of a larger read, e.g. the sync's)."""
    # The table's column, not the ORM attribute: a Core read that embeds it stays plain Core.
    return exists().where(PushSubscriptionRecord.__table__.c.id.is_not(None))


def push_active(session: Session) -> bool:
    """Whether an active subscription is recorded: links are then covered by push."""
    return bool(session.scalar(select(push_active_clause())))


def recorded_subscription(session: Session) -> PushSubscription | None:
    row = session.scalar(select(PushSubscriptionRecord).limit(1))
    if row is None:
        return None
    return PushSubscription(
        id=row.id, callback_url=row.callback_url, created_at=as_utc(row.created_at)
    )


def subscribe(
    sessions: sessionmaker[Session], client: StravaClient, *, callback_url: str, verify_token: str
) -> PushSubscription:
    """Create the subscription at Strava (its validation GET reaches our callback first), then
    record it. Raises AlreadySubscribed, or the client's errors (CallbackNotVerified,
    InvalidClient, SubscriptionRefused, StravaUnreachable)."""
    try:
        created = client.create_subscription(callback_url, verify_token)
    except SubscriptionExists:
        listed = client.list_subscriptions()
        raise AlreadySubscribed(listed[0] if listed else None) from None
    with session_scope(sessions) as session:
        record(session, created)
    log.info("strava.subscribed", subscription_id=created.id)
    return created


def status(sessions: sessionmaker[Session], client: StravaClient) -> SubscriptionStatus:
    """Our record beside Strava's list, and the drift between them."""
    with sessions() as session:
        recorded = recorded_subscription(session)
    listed = client.list_subscriptions()
    at_strava = listed[0] if listed else None
    if recorded is None and at_strava is None:
        drift = Drift.NONE
    elif at_strava is None:
        drift = Drift.MISSING_AT_STRAVA
    elif recorded is None:
        drift = Drift.NOT_RECORDED
    elif (recorded.id, recorded.callback_url) != (at_strava.id, at_strava.callback_url):
        drift = Drift.DIFFERENT
    else:
        drift = Drift.NONE
    return SubscriptionStatus(recorded=recorded, at_strava=at_strava, drift=drift)


def check(runtime: StravaRuntime) -> SubscriptionStatus | None:
    """The beat's hourly look at Strava's list: a recorded subscription that Strava no longer
    has (or has replaced) is forgotten, so the links go back to hourly polling at the next tick.
    None when Strava could not be asked (the record stays: one failed look proves nothing)."""
    client = runtime.client_for(RunRecorder(None))
    try:
        found = status(runtime.sessions, client)
    except StravaError as exc:
        log.warning("strava.subscription_check_failed", error=type(exc).__name__)
        return None
    if found.recorded is not None and found.drift in (Drift.MISSING_AT_STRAVA, Drift.DIFFERENT):
        with session_scope(runtime.sessions) as session:
            session.execute(delete(PushSubscriptionRecord))
        log.warning(
            "strava.subscription_lost", subscription_id=found.recorded.id, drift=found.drift
        )
    elif found.drift != Drift.NONE:
        log.warning("strava.subscription_drift", drift=found.drift)
    return found


def unsubscribe(sessions: sessionmaker[Session], client: StravaClient) -> PushSubscription | None:
    """Delete the subscription at Strava (ours, else whichever Strava lists) and our record;
    returns what was deleted (None: there was nothing). Links go back to hourly polling at the
    next beat tick (scheduling.tick)."""
    with sessions() as session:
        recorded = recorded_subscription(session)
    target = recorded
    if target is None:
        listed = client.list_subscriptions()
        target = listed[0] if listed else None
    if target is not None:
        # Gone at Strava already (SubscriptionNotFound): only our record is left to remove.
        with contextlib.suppress(SubscriptionNotFound):
            client.delete_subscription(target.id)
    with session_scope(sessions) as session:
        session.execute(delete(PushSubscriptionRecord))
    if target is not None:
        log.info("strava.unsubscribed", subscription_id=target.id)
    return target


def record(session: Session, subscription: PushSubscription) -> None:
    # One subscription per application: the new record replaces any stale one.
    session.execute(delete(PushSubscriptionRecord))
    session.add(
        PushSubscriptionRecord(
            id=subscription.id,
            callback_url=subscription.callback_url,
            created_at=as_utc(subscription.created_at),
            recorded_at=utcnow(),
        )
    )
