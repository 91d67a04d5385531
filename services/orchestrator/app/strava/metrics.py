"""The Strava counters and their observe_* helpers (docs/contract.md §4). No activity content
(names, routes, heart rate) here. Registry and multiprocess mode: app/metrics.py."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from prometheus_client import Counter, Gauge, Histogram

from app.strava.client import ResponseInfo
from app.strava.ratelimit import RateLimitSnapshot

SYNC_DURATION = Histogram(
    "strava_sync_duration_seconds",
    "Wall time of one sync attempt of a runner's window, by trigger and result.",
    ["trigger", "result"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600),
)
SYNC_RUNS = Counter(
    "strava_sync_runs_total",
    "Finished sync runs by trigger, result and error code ('none' when none).",
    ["trigger", "result", "error_code"],
)
SYNC_ACTIVITIES = Counter(
    "strava_sync_activities_total",
    "Workouts changed by syncs: inserted, updated or deleted.",
    ["change"],
)
INGESTION_LAG = Histogram(
    "strava_ingestion_lag_seconds",
    "Commit time minus the end of the activity (start_date + elapsed_time), for activities a "
    "sync inserted; the first sync of a link (its 28-day backfill) is not counted.",
    buckets=(60, 300, 900, 1800, 3600, 2 * 3600, 4 * 3600, 8 * 3600, 86400, 3 * 86400, 7 * 86400),
)
STRAVA_REQUESTS = Counter(
    "strava_requests_total",
    "HTTP exchanges with Strava by endpoint (route template), status ('error' when none) and "
    "purpose (webhook, reconcile, poll, manual, link, deauthorize, api).",
    ["endpoint", "status", "purpose"],
)


class Purpose(StrEnum):
    """Why Strava was called (the `purpose` label of strava_requests_total)."""

    WEBHOOK = "webhook"  # reading what an event announced (or a burst's one listing)
    RECONCILE = "reconcile"  # the periodic listing of links covered by a subscription
    POLL = "poll"  # the scheduled listing of links without one
    MANUAL = "manual"
    LINK = "link"  # the first listing after a link
    DEAUTHORIZE = "deauthorize"  # retries of deferred deauthorizations
    API = "api"  # the API's own calls: code exchange, unlink


# A sync run's purpose by its trigger (app.codes.Trigger values).
PURPOSE_OF_TRIGGER: dict[str, Purpose] = {
    "manual": Purpose.MANUAL,
    "schedule": Purpose.POLL,
    "link": Purpose.LINK,
    "webhook": Purpose.WEBHOOK,
}
RATE_LIMIT_USAGE = Gauge(
    "strava_rate_limit_usage",
    "Strava's last reported usage, by limit (overall or read) and window (short or daily).",
    ["limit", "window"],
    multiprocess_mode="mostrecent",
)
RATE_LIMIT_LIMIT = Gauge(
    "strava_rate_limit_limit",
    "Strava's last reported limit, by limit (overall or read) and window (short or daily).",
    ["limit", "window"],
    multiprocess_mode="mostrecent",
)
TOKEN_REFRESHES = Counter(
    "strava_token_refreshes_total",
    "Access token refreshes by outcome: ok, raced (another worker had refreshed; reused), "
    "invalid_grant (reconnect needed), unavailable, rate_limited, error.",
    ["outcome"],
)
LINKS_KEY_UNAVAILABLE = Gauge(
    "strava_links_key_unavailable",
    "Links whose stored credentials no configured key opens (set by the beat tick): not "
    "scheduled until the key is back (TOKEN_ENCRYPTION_KEYS) or the runner reconnects.",
    multiprocess_mode="mostrecent",
)
UNLINKS_WITHOUT_DEAUTHORIZATION = Counter(
    "strava_unlinks_without_deauthorization_total",
    "Unlinks that could not revoke the grant at Strava, by reason (key_unavailable: the stored "
    "tokens cannot be decrypted).",
    ["reason"],
)
DEAUTHORIZATIONS = Counter(
    "strava_deferred_deauthorizations_total",
    "Retries of deferred deauthorizations by outcome: done, retry, expired (given up on by the "
    "retention policy).",
    ["outcome"],
)
RETENTION_DELETED = Counter(
    "retention_deleted_total",
    "Rows deleted by the retention policy (docs/retention.md §2), by kind.",
    ["kind"],
)


def observe_strava_response(info: ResponseInfo, purpose: str = Purpose.API) -> None:
    """The client's `on_response` hook, as far as metrics go."""
    status = str(info.status) if info.status is not None else "error"
    STRAVA_REQUESTS.labels(info.endpoint, status, purpose).inc()
    if info.rate_limit is not None:
        observe_rate_limit(info.rate_limit)


def observe_rate_limit(snapshot: RateLimitSnapshot) -> None:
    for limit, usage, limits in (
        ("overall", snapshot.overall_usage, snapshot.overall_limit),
        ("read", snapshot.read_usage, snapshot.read_limit),
    ):
        for index, window in enumerate(("short", "daily")):
            RATE_LIMIT_USAGE.labels(limit, window).set(usage[index])
            RATE_LIMIT_LIMIT.labels(limit, window).set(limits[index])


def observe_ingestion_lag(committed_at: datetime, activity_ends: list[datetime]) -> None:
    for ended in activity_ends:
        INGESTION_LAG.observe(max(0.0, (committed_at - ended).total_seconds()))


def observe_sync(
    trigger: str,
    result: str,
    error_code: str | None,
    seconds: float,
    *,
    inserted: int,
    updated: int,
    deleted: int,
) -> None:
    SYNC_DURATION.labels(trigger, result).observe(seconds)
    SYNC_RUNS.labels(trigger, result, error_code or "none").inc()
    for change, count in (("inserted", inserted), ("updated", updated), ("deleted", deleted)):
        if count:
            SYNC_ACTIVITIES.labels(change).inc(count)


# --- webhooks (issue 11) -------------------------------------------------------------------------

WEBHOOK_EVENTS = Counter(
    "strava_webhook_events_total",
    "Webhook deliveries by object type, aspect and intake outcome (stored, duplicate, "
    "unknown_subscription, unknown_athlete, invalid, unavailable); 'unknown' labels when the "
    "body could not be parsed.",
    ["object_type", "aspect_type", "outcome"],
)
WEBHOOK_VALIDATIONS = Counter(
    "strava_webhook_validations_total",
    "Subscription validation handshakes by outcome: ok, refused.",
    ["outcome"],
)
WEBHOOK_ACK_SECONDS = Histogram(
    "strava_webhook_ack_seconds",
    "Time from a parsed webhook body to its answer (store and commit included).",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2),
)
WEBHOOK_PROCESSED = Counter(
    "strava_webhook_processed_total",
    "Inbox events settled by the worker, by object type, aspect and outcome.",
    ["object_type", "aspect_type", "outcome"],
)
WEBHOOK_FRESHNESS = Histogram(
    "strava_webhook_freshness_seconds",
    "Workout committed minus the webhook event's event_time, for events that wrote a workout.",
    buckets=(0.5, 1, 2, 5, 10, 30, 60, 120, 300, 900, 3600, 4 * 3600, 86400),
)
INBOX_DEPTH = Gauge(
    "strava_webhook_inbox_depth",
    "Webhook events not yet processed (pending, processing or deferred), as of the last tick.",
    multiprocess_mode="mostrecent",
)
INBOX_OLDEST_AGE = Gauge(
    "strava_webhook_inbox_oldest_age_seconds",
    "Age of the oldest unprocessed webhook event, as of the last tick (0 when none).",
    multiprocess_mode="mostrecent",
)


def observe_webhook_event(
    object_type: str | None, aspect_type: str | None, outcome: str, seconds: float | None = None
) -> None:
    WEBHOOK_EVENTS.labels(object_type or "unknown", aspect_type or "unknown", outcome).inc()
    if seconds is not None:
        WEBHOOK_ACK_SECONDS.observe(seconds)


def observe_webhook_processed(
    object_type: str, aspect_type: str, outcome: str, freshness_seconds: float | None = None
) -> None:
    WEBHOOK_PROCESSED.labels(object_type, aspect_type, outcome).inc()
    if freshness_seconds is not None:
        WEBHOOK_FRESHNESS.observe(max(0.0, freshness_seconds))


def observe_inbox_depth(open_events: int, oldest_age_seconds: float) -> None:
    INBOX_DEPTH.set(open_events)
    INBOX_OLDEST_AGE.set(oldest_age_seconds)
