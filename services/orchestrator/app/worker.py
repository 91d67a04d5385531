"""The Celery app: broker choice, reliability settings and the beat schedule.

Redis when REDIS_URL is set (production, scaled out; celery-redbeat keeps beat's schedule and a
lock in Redis so a standby beat can take over); otherwise kombu's SQLAlchemy transport on a
SQLite file, so `orchestrator dev` runs a real worker and beat with no server to install.

Reliability: tasks are acknowledged late and rejected back to the queue when their worker dies,
so a sync interrupted mid-way is delivered again and finishes (tasks are idempotent: a run is
claimed atomically, writes are upserts). A task's hard time limit stays below the broker's
visibility timeout, or Redis would hand a still-running task to a second worker. What a broker
can still lose (the embedded transport forgets unacknowledged messages of a killed worker) the
beat tick recovers (scheduling.recover_stale_runs).

Time limits are the worker's own (its TASK_TIME_LIMIT_SECONDS): messages carry none
(`WorkerTimeLimits`, docs/architecture.md §1).
"""

from __future__ import annotations

from datetime import timedelta
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from celery import Celery, Task
from celery.signals import beat_init, worker_init, worker_process_init, worker_process_shutdown
from sqlalchemy import create_engine, text

from app.clock import local_naive_now
from app.config import VAR_DIR, Settings, get_settings
from app.models import import_all_models

if TYPE_CHECKING:
    import redis

# How long a broker probe waits: /readyz and a manual sync must answer quickly.
PROBE_TIMEOUT_S = 1.0


def broker_url(settings: Settings) -> str:
    if settings.redis_url:
        return settings.redis_url
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    return f"sqla+sqlite:///{VAR_DIR.resolve()}/broker.db"


def _transport_options(settings: Settings) -> dict[str, Any]:
    if not settings.redis_url:
        # Handed to SQLAlchemy's create_engine by the transport: wait for SQLite's write lock
        # (the API publishes while the worker polls) instead of failing at once.
        return {"connect_args": {"timeout": 30}}
    visibility = settings.broker_visibility_timeout_seconds
    options: dict[str, Any] = {
        "visibility_timeout": visibility,
        # Fail fast (a publish must not hang the API) and notice a dead connection.
        "socket_timeout": 5.0,
        "socket_connect_timeout": 2.0,
        "health_check_interval": 30,
    }
    if visibility < 300:
        # Short visibility timeouts (tests) only help if unacknowledged messages are swept often.
        options.update(unacked_restore_interval=1, unacked_restore_throttle=1)
    return options


def configure(celery: Celery, settings: Settings) -> None:
    """(Re)apply the settings to a Celery app (tests point the global one at their services)."""
    celery.conf.update(
        broker_url=broker_url(settings),
        task_serializer="json",
        accept_content=["json"],
        result_backend=None,
        task_ignore_result=True,
        task_default_queue=settings.sync_queue,
        # At-least-once: acknowledge after the work is done, redeliver if the worker dies.
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_time_limit=settings.task_time_limit_seconds,
        task_soft_time_limit=settings.task_soft_time_limit_seconds,
        broker_transport_options=_transport_options(settings),
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
        worker_send_task_events=False,
        timezone="UTC",
        beat_schedule={
            # Every tick enqueues the links whose spread-out slot has come (not every athlete at
            # once), re-enqueues lost runs and fails dead ones. `expires`: a tick nobody ran in
            # time is dropped rather than piled up behind a stopped worker.
            "strava-tick": {
                "task": "strava.tick",
                "schedule": settings.sync_tick_seconds,
                "options": {"expires": settings.sync_tick_seconds},
            },
            "strava-deauthorize-pending": {
                "task": "strava.deauthorize_pending",
                "schedule": 60.0,
                "options": {"expires": 60.0},
            },
            # What is no longer kept goes (docs/retention.md); idempotent, so a missed run only
            # delays it to the next.
            "strava-retention": {
                "task": "strava.apply_retention",
                "schedule": float(settings.retention_interval_seconds),
                "options": {"expires": float(settings.retention_interval_seconds)},
            },
            # A push subscription deleted at Strava behind our back must not leave the links
            # reconciled only every SYNC_RECONCILE_SECONDS with no events coming.
            "strava-check-subscription": {
                "task": "strava.check_subscription",
                "schedule": 3600.0,
                "options": {"expires": 3600.0},
            },
        },
        redbeat_redis_url=settings.redis_url,
        redbeat_key_prefix=f"{settings.sync_queue}:redbeat:",
        redbeat_lock_timeout=max(60, int(settings.sync_tick_seconds * 5)),
        beat_max_loop_interval=min(5.0, settings.sync_tick_seconds),
    )
    if "amqp" in celery.__dict__:
        # Reconfigured after use (tests switch brokers and queues): forget what was derived from
        # the old settings, i.e. kombu's pooled broker connections and the declared queues.
        from kombu import pools

        pools.reset()  # type: ignore[no-untyped-call]
        celery._after_fork()
        celery.__dict__.pop("amqp", None)


class WorkerTimeLimits(Task):  # type: ignore[misc]  # Celery ships no type information
    """Every task of the app: its messages carry no time limits, so the worker that runs it
    applies its own (task_time_limit / task_soft_time_limit from its settings).

    Celery puts the sending process's task limits in each message (the `timelimit` header,
    bound from that process's settings when its tasks were first used), and a worker prefers
    the message's limits to its own: the API's 600 s would bound a worker configured for
    60 s. The limits must be the worker's, which are checked against its broker visibility
    timeout, Strava timeout and lease (config.py). An explicit None clears them.
    """

    def apply_async(self, args: Any = None, kwargs: Any = None, *rest: Any, **options: Any) -> Any:
        options.setdefault("time_limit", None)
        options.setdefault("soft_time_limit", None)
        return super().apply_async(args, kwargs, *rest, **options)


def create_celery(settings: Settings) -> Celery:
    celery = Celery("orchestrator", include=["app.strava.tasks"], task_cls=WorkerTimeLimits)
    configure(celery, settings)
    return celery


# Every mapped table, so relationships and foreign keys resolve in a worker that imports only
# the tasks' own modules.
import_all_models()
celery_app = create_celery(get_settings())


def reconfigure(settings: Settings) -> None:
    """Point this process's Celery app at other settings (tests switch brokers): pooled broker
    connections of the old settings are closed, so the next publish uses the new ones."""
    configure(celery_app, settings)


def _fresh_connections(**_: Any) -> None:
    """A forked pool process must not share the parent's database connections."""
    from app.db import get_engine

    get_engine().dispose(close=False)


def _forget_process_metrics(pid: int | None = None, **_: Any) -> None:
    import os

    from app.metrics import mark_process_dead

    mark_process_dead(pid or os.getpid())


def _configure_logging(**_: Any) -> None:
    """Our structlog set-up in the worker and beat too: without it structlog's default renders
    rich tracebacks with every frame's locals, tokens included (app/logging.py)."""
    from app.logging import configure_logging

    configure_logging(json=get_settings().log_json)


worker_init.connect(_configure_logging, weak=False)
beat_init.connect(_configure_logging, weak=False)
worker_process_init.connect(_fresh_connections, weak=False)
worker_process_shutdown.connect(_forget_process_metrics, weak=False)


@lru_cache(maxsize=4)
def _probe_client(redis_url: str) -> redis.Redis[bytes]:
    """One client (one small pool) per broker URL, reused by every probe of this process."""
    import redis

    return redis.Redis.from_url(
        redis_url, socket_timeout=PROBE_TIMEOUT_S, socket_connect_timeout=PROBE_TIMEOUT_S
    )


def broker_available(settings: Settings | None = None) -> bool:
    """Whether the broker answers now (a manual sync and /readyz ask; the embedded one always
    does). The connection is kept for the next probe."""
    settings = settings or get_settings()
    if not settings.redis_url:
        return True
    import redis

    try:
        return bool(_probe_client(settings.redis_url).ping())
    except redis.RedisError:
        return False


def prepare_embedded_broker(settings: Settings) -> None:
    """Create the embedded broker's tables and queue once, before its processes start.

    kombu's SQLAlchemy transport creates a queue row on first use; a worker, beat and the API
    starting together race on it (UNIQUE constraint failed: kombu_queue.name) and the worker dies.
    """
    if settings.redis_url:
        return
    with celery_app.connection_for_write() as connection:
        connection.default_channel.queue_declare(queue=settings.sync_queue)


def prune_embedded_broker(url: str, *, older_than: timedelta = timedelta(hours=1)) -> int:
    """Delete delivered messages from the embedded broker; returns how many.

    kombu's SQLAlchemy transport keeps every delivered message (visible = false) forever, so
    without this a long sandbox run grows var/broker.db by one row per task. Its timestamps are
    naive local time (kombu writes datetime.now()).
    """
    engine = create_engine(url.removeprefix("sqla+"), connect_args={"timeout": 30})
    try:
        with engine.begin() as connection:
            result = connection.execute(
                text("DELETE FROM kombu_message WHERE visible = :no AND timestamp < :cutoff"),
                {"no": False, "cutoff": local_naive_now() - older_than},
            )
            return int(result.rowcount or 0)
    finally:
        engine.dispose()


def beat_arguments() -> list[str]:
    """redbeat keeps the schedule (and a lock) in Redis so a second beat can stand by safely."""
    settings = get_settings()
    if settings.redis_url:
        return ["--scheduler", "redbeat.RedBeatScheduler"]
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    return ["--schedule", str(VAR_DIR / "celerybeat-schedule")]
