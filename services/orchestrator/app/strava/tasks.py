"""Celery tasks: thin (parse, call one service, return). Arguments are ids, never secrets.

Every task is idempotent and acknowledged late (worker.py): a sync run is claimed atomically
(a duplicate message does nothing, a redelivered one resumes the run of a dead worker), the
tick only enqueues what is due, and deauthorizations settle each pending row once.
"""

from __future__ import annotations

import os
import uuid
from datetime import timedelta
from typing import Any

from celery import Task
from celery.signals import worker_init
from kombu.exceptions import OperationalError

from app.config import get_settings
from app.db import get_engine
from app.errors import ServiceUnavailable
from app.strava import (
    retention,
    scheduling,
    service,
    subscriptions,
    sync,
    webhook_processing,
    webhook_requests,
)
from app.strava.client import create_http_client
from app.strava.runtime import StravaRuntime, build_runtime, close_runtime
from app.strava.webhook_requests import WebhookRequests
from app.worker import broker_available, broker_url, celery_app, prune_embedded_broker


class BrokerUnavailable(ServiceUnavailable):
    default_message = "Syncing is unavailable right now (the queue cannot be reached). Try again."


_runtime: tuple[int, StravaRuntime] | None = None


def runtime() -> StravaRuntime:
    """This process's collaborators (HTTP pool, budget, sessions): built after a fork, once."""
    global _runtime
    if _runtime is None or _runtime[0] != os.getpid():
        _runtime = (os.getpid(), build_runtime(get_settings()))
    return _runtime[1]


def build_before_fork(**_: Any) -> None:
    """In the worker's main process, before the pool forks: what every pool process would
    otherwise build for itself on its first task, at its own cost (the HTTP stack's lazy imports
    and TLS set-up, the database driver's import). Nothing here connects to anything."""
    create_http_client().close()
    get_engine()


worker_init.connect(build_before_fork, weak=False)


def reset_runtime() -> None:
    """Forget the collaborators (tests change settings between sessions of workers)."""
    global _runtime, _webhook_requests
    if _runtime is not None:
        close_runtime(_runtime[1])
    _runtime = None
    _webhook_requests = None


_webhook_requests: tuple[int, WebhookRequests] | None = None


def webhook_requests_of_process() -> WebhookRequests:
    """This process's webhook_requests.WebhookRequests (its Redis client built after a fork)."""
    global _webhook_requests
    if _webhook_requests is None or _webhook_requests[0] != os.getpid():
        built = webhook_requests.from_settings(get_settings(), enqueue_webhook_processing)
        _webhook_requests = (os.getpid(), built)
    return _webhook_requests[1]


@celery_app.task(name="strava.sync_runner", bind=True, acks_late=True)
def sync_runner(self: Task[Any, Any], sync_run_id: str) -> dict[str, Any]:
    redelivered = bool((self.request.delivery_info or {}).get("redelivered"))
    outcome = sync.run_sync(runtime(), uuid.UUID(sync_run_id), redelivered=redelivered)
    return outcome.summary()


@celery_app.task(name="strava.tick", acks_late=True)
def tick() -> dict[str, object]:
    settings = get_settings()
    report = scheduling.tick(
        runtime(),
        enqueue=enqueue_sync,
        stale_queued=timedelta(seconds=settings.stale_queued_seconds),
        reserve=settings.rate_budget_reserve,
        enqueue_webhooks=enqueue_webhook_processing,
        webhook_stale_pending=timedelta(seconds=settings.webhook_stale_pending_seconds),
    )
    if not settings.redis_url:
        prune_embedded_broker(broker_url(settings))
    return report.summary()


@celery_app.task(name="strava.process_webhooks", bind=True, acks_late=True)
def process_webhooks(self: Task[Any, Any], runner_id: str) -> dict[str, Any]:
    redelivered = bool((self.request.delivery_info or {}).get("redelivered"))
    runner = uuid.UUID(runner_id)
    requests = webhook_requests_of_process()
    # Before the claim: an event stored from now on asks for a task of its own.
    requests.clear(runner)
    report = webhook_processing.drain_runner_events(
        runtime(),
        runner,
        enqueue_sync=enqueue_sync,
        burst_threshold=get_settings().webhook_burst_threshold,
        redelivered=redelivered,
        request_more=requests.request,
    )
    return report.summary()


@celery_app.task(name="strava.check_subscription", acks_late=True)
def check_subscription() -> str | None:
    found = subscriptions.check(runtime())
    return found.drift if found is not None else None


@celery_app.task(name="strava.deauthorize_pending", acks_late=True)
def deauthorize_pending() -> int:
    return service.deauthorize_pending(runtime())


@celery_app.task(name="strava.apply_retention", acks_late=True)
def apply_retention() -> dict[str, int]:
    policy = retention.RetentionPolicy.from_settings(get_settings())
    return retention.apply_retention(runtime().sessions, policy).summary()


# Publishing gives up quickly: the API must answer (503) rather than hang on a dead broker.
_PUBLISH_RETRY = {"max_retries": 2, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.5}


class CeleryEnqueue:
    """scheduling.Enqueue for Celery: send a sync run's task; `available()` probes the broker so
    that a manual request can be refused (503) before a run is written."""

    def __call__(self, sync_run_id: uuid.UUID) -> None:
        try:
            sync_runner.apply_async(
                args=[str(sync_run_id)], retry=True, retry_policy=_PUBLISH_RETRY
            )
        except (OperationalError, OSError) as exc:
            raise BrokerUnavailable(retry_after=30) from exc

    def available(self) -> bool:
        return broker_available()


enqueue_sync = CeleryEnqueue()


def enqueue_webhook_processing(runner_id: uuid.UUID) -> None:
    """Send a runner's webhook processing task (ids only). Raises when the broker is down: the
    caller logs it, and the tick re-drives the runner's events."""
    process_webhooks.apply_async(args=[str(runner_id)], retry=True, retry_policy=_PUBLISH_RETRY)
