"""Strava's push events arriving (docs/strava.md §5): the subscription handshake and the intake.

* **Handshake** (`verify_subscription`): `hub.mode=subscribe` and our `hub.verify_token`
  (compared in constant time) → `{"hub.challenge": ...}`; anything else → 403
  `invalid_verify_token`.
* **Intake** (`receive_event`): the body is parsed strictly (`WebhookEventIn`); bodies over
  MAX_REQUEST_BODY_BYTES are refused (413) unread by the app's BodySizeLimit. The athlete is
  resolved to our runner by the link's blind index (the athlete id is never stored in clear).
  An event for another subscription than the recorded one (subscriptions.py; none recorded →
  any is taken) or an athlete we do not know is acknowledged and ignored
  (200: Strava would only retry it), a malformed one is a 400 `invalid_request`; all are
  counted. A valid event is written to the inbox (app/inbox) by ONE autocommit statement that
  also resolves the owner and checks the subscription (`inbox.store_owned`), and only once it is
  durable is the runner's processing requested (webhook_requests.py: one task per runner per
  burst; webhook_processing.py does the Strava work, never this request). If the database
  cannot take the event the answer is 503, so that Strava retries: an acknowledged event is
  never lost.
"""

from __future__ import annotations

import hmac
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from functools import lru_cache

import structlog
from celery.exceptions import SoftTimeLimitExceeded
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from sqlalchemy import ColumnElement, bindparam, or_, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from app.clock import utcnow
from app.codes import Source
from app.config import Settings
from app.db import autocommit_connection
from app.errors import (
    InvalidRequest,
    NotFound,
    ServiceUnavailable,
    WebhookVerificationFailed,
)
from app.inbox import service as inbox
from app.inbox.models import StoreOutcome
from app.security import KeyRing
from app.strava import metrics
from app.strava.models import PushSubscriptionRecord, StravaLink

log = structlog.get_logger(__name__)

# An event's epoch seconds must fall in this range (2009, when Strava began, to 2100).
EARLIEST_EVENT_TIME = 1_230_768_000
LATEST_EVENT_TIME = 4_102_444_800
# What of `updates` is kept: the keys that decide processing. Titles are activity content we
# re-read from Strava anyway, so only that they changed is stored.
KEPT_UPDATE_KEYS = frozenset({"type", "sport_type", "private", "authorized"})
MAX_UPDATE_KEYS = 20
MAX_UPDATE_VALUE = 255
BOOLEAN_UPDATE_KEYS = ("private", "authorized")


class ObjectType(StrEnum):
    ACTIVITY = "activity"
    ATHLETE = "athlete"


class AspectType(StrEnum):
    CREATE = "create"
    UPDATE = "update"
    DELETE = "delete"


class IntakeOutcome(StrEnum):
    """What the intake did with a delivery (the `outcome` label of strava_webhook_events_total)."""

    STORED = "stored"
    DUPLICATE = "duplicate"
    UNKNOWN_SUBSCRIPTION = "unknown_subscription"
    UNKNOWN_ATHLETE = "unknown_athlete"
    INVALID = "invalid"
    UNAVAILABLE = "unavailable"


class WebhookEventIn(BaseModel):
    """One event as Strava posts it; types are not coerced (an id sent as a string is refused)."""

    model_config = ConfigDict(strict=True, extra="ignore")

    object_type: ObjectType
    object_id: int = Field(gt=0)
    aspect_type: AspectType
    owner_id: int = Field(gt=0)
    subscription_id: int = Field(gt=0)
    event_time: int = Field(ge=EARLIEST_EVENT_TIME, le=LATEST_EVENT_TIME)
    updates: dict[str, str] = Field(default_factory=dict, max_length=MAX_UPDATE_KEYS)

    @field_validator("object_type", "aspect_type", mode="before")
    @classmethod
    def _enum_from_json_string(cls, value: object) -> object:
        # Strict mode wants enum members; JSON can only send their string values.
        if isinstance(value, str):
            for enum in (ObjectType, AspectType):
                if value in enum.__members__.values():
                    return enum(value)
        return value

    @field_validator("updates")
    @classmethod
    def _updates(cls, updates: dict[str, str]) -> dict[str, str]:
        for key, value in updates.items():
            if len(key) > 64 or len(value) > MAX_UPDATE_VALUE:
                raise ValueError("updates has an oversized key or value")
        for key in BOOLEAN_UPDATE_KEYS:
            if key in updates and updates[key] not in ("true", "false"):
                raise ValueError(f'updates.{key} must be "true" or "false"')
        return updates

    def sanitised_updates(self) -> dict[str, str]:
        kept = {key: value for key, value in self.updates.items() if key in KEPT_UPDATE_KEYS}
        if "title" in self.updates:
            kept["title"] = ""  # changed; the new title is read from Strava with the activity
        return kept

    @property
    def is_deauthorization(self) -> bool:
        return (
            self.object_type == ObjectType.ATHLETE
            and self.aspect_type == AspectType.UPDATE
            and self.updates.get("authorized") == "false"
        )


# --- the callback path and the handshake ---------------------------------------------------------


def check_callback_path(settings: Settings, segment: str | None) -> None:
    """With STRAVA_WEBHOOK_PATH_SECRET set, only /webhook/<secret> exists (404 otherwise)."""
    secret = settings.strava_webhook_path_secret
    if secret is None or not secret.get_secret_value():
        if segment is not None:
            raise NotFound()
        return
    if segment is None or not hmac.compare_digest(
        segment.encode(), secret.get_secret_value().encode()
    ):
        raise NotFound()


def verify_subscription(settings: Settings, query: Mapping[str, str]) -> dict[str, str]:
    """The validation GET: echo `hub.challenge` when the mode and our verify token match."""
    expected = settings.webhook_verify_token
    given = query.get("hub.verify_token", "")
    challenge = query.get("hub.challenge")
    if (
        expected is None
        or query.get("hub.mode") != "subscribe"
        or not challenge
        or len(challenge) > 255
        or not hmac.compare_digest(given.encode(), expected.encode())
    ):
        metrics.WEBHOOK_VALIDATIONS.labels("refused").inc()
        log.warning("strava.webhook_validation_refused", mode=query.get("hub.mode"))
        raise WebhookVerificationFailed()
    metrics.WEBHOOK_VALIDATIONS.labels("ok").inc()
    return {"hub.challenge": challenge}


# --- intake --------------------------------------------------------------------------------------


def parse_event(body: bytes) -> WebhookEventIn:
    try:
        return WebhookEventIn.model_validate_json(body)
    except ValidationError as exc:
        # Field locations and messages only, never the values sent.
        problems = [
            {"loc": [str(part) for part in error["loc"]], "msg": str(error["msg"])}
            for error in exc.errors(include_input=False, include_url=False)
        ]
        metrics.observe_webhook_event(None, None, IntakeOutcome.INVALID)
        raise InvalidRequest(
            "The webhook event is not valid.", detail={"problems": problems}
        ) from None


@dataclass(frozen=True)
class Intake:
    outcome: IntakeOutcome
    runner_id: uuid.UUID | None = None

    @property
    def to_process(self) -> uuid.UUID | None:
        """The runner whose processing to ask for: a new event was stored for it."""
        return self.runner_id if self.outcome == IntakeOutcome.STORED else None

    def body(self) -> dict[str, str]:
        return {"status": self.outcome}


@lru_cache
def _intake_statements(dialect: str, keys: int) -> inbox.OwnedStore:
    """The intake's statements for a dialect and a key ring of `keys` keys, built once: the
    runner linked to the athlete, found by the link's blind index under every key
    (`athlete_index_<n>`), and the subscription check (`subscription_id`)."""
    owner = select(StravaLink.runner_id).where(
        or_(*(StravaLink.athlete_index == bindparam(f"athlete_index_{n}") for n in range(keys)))
    )
    return inbox.owned_store(dialect, owner, _of_our_subscription())


def _of_our_subscription() -> ColumnElement[bool]:
    """Whether the event belongs to the subscription recorded by `orchestrator strava-webhook
    subscribe` (a one-row table, read inside the intake's statement). With none recorded the
    event is taken: only Strava knows the callback URL (its secret segment), and Strava may
    deliver before the subscription is recorded (docs/contract.md §3.2)."""
    recorded = select(PushSubscriptionRecord.id)
    return or_(
        ~recorded.exists(),
        recorded.where(PushSubscriptionRecord.id == bindparam("subscription_id")).exists(),
    )


_OUTCOMES = {
    StoreOutcome.STORED: IntakeOutcome.STORED,
    StoreOutcome.DUPLICATE: IntakeOutcome.DUPLICATE,
    StoreOutcome.NO_OWNER: IntakeOutcome.UNKNOWN_ATHLETE,
    StoreOutcome.NOT_ADMITTED: IntakeOutcome.UNKNOWN_SUBSCRIPTION,
}


def receive_event(
    body: bytes,
    *,
    sessions: Callable[[], Session],
    keyring: KeyRing,
) -> Intake:
    """Parse, resolve and store one event in one autocommit statement (inbox.store_owned: the
    owner and the subscription are checked inside it). The answer must say whether the event is
    durable, and only a committed event is acknowledged; the caller then asks for its
    processing (`request_processing`, after the answer: not on the ack's path)."""
    started = time.perf_counter()
    event = parse_event(body)
    content = event.model_dump(mode="json")
    pushed = inbox.PushedEvent(
        source=Source.STRAVA,
        dedupe_key=inbox.dedupe_key(keyring, Source.STRAVA, content),
        object_type=event.object_type,
        object_id=event.object_id,
        aspect_type=event.aspect_type,
        updates=event.sanitised_updates(),
        event_time=datetime.fromtimestamp(event.event_time, UTC),
    )
    indexes = keyring.blind_indexes(str(event.owner_id))
    params: dict[str, object] = {"subscription_id": event.subscription_id}
    params.update({f"athlete_index_{n}": index for n, index in enumerate(indexes)})
    try:
        with autocommit_connection(sessions) as connection:
            stored = inbox.store_owned(
                connection,
                _intake_statements(connection.dialect.name, len(indexes)),
                pushed,
                params=params,
                now=utcnow(),
            )
    except SQLAlchemyError as exc:
        metrics.observe_webhook_event(event.object_type, event.aspect_type, "unavailable")
        log.warning("strava.webhook_unavailable", error=type(exc).__name__)
        raise ServiceUnavailable(
            "The event cannot be stored right now; retry it.", retry_after=5
        ) from exc
    return _counted(event, Intake(_OUTCOMES[stored.outcome], stored.runner_id), started)


def _counted(event: WebhookEventIn, intake: Intake, started: float) -> Intake:
    metrics.observe_webhook_event(
        event.object_type, event.aspect_type, intake.outcome, time.perf_counter() - started
    )
    if intake.outcome not in (IntakeOutcome.STORED, IntakeOutcome.DUPLICATE):
        log.info(
            "strava.webhook_ignored",
            outcome=intake.outcome,
            object_type=event.object_type,
            aspect_type=event.aspect_type,
        )
    return intake


def request_processing(request: Callable[[uuid.UUID], object], runner_id: uuid.UUID) -> None:
    """Ask for the runner's processing task once its event is stored (webhook_requests.py).
    Never raises (but a worker's soft time limit): the event is durable, and the tick re-drives
    a runner whose task was lost."""
    try:
        request(runner_id)
    except SoftTimeLimitExceeded:
        raise
    except Exception as exc:
        log.warning(
            "strava.webhook_enqueue_failed", runner_id=str(runner_id), error=type(exc).__name__
        )
