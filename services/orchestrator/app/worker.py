"""The Celery app: broker choice, reliability settings and the beat schedule.

Redis when REDIS_URL is set (production, scaled out); otherwise kombu's SQLAlchemy transport on a
SQLite file, so `orchestrator dev` runs a real worker and beat with no server to install.
"""

from __future__ import annotations

from celery import Celery

from app.config import VAR_DIR, Settings, get_settings

# A task may run this long before Celery kills it; kept well below the visibility timeout so a
# task still running is never delivered to a second worker (the Redis transport's trap).
TASK_TIME_LIMIT_S = 600
VISIBILITY_TIMEOUT_S = 3600


def broker_url(settings: Settings) -> str:
    if settings.redis_url:
        return settings.redis_url
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    return f"sqla+sqlite:///{VAR_DIR.resolve()}/broker.db"


def create_celery(settings: Settings) -> Celery:
    celery = Celery("orchestrator", broker=broker_url(settings), include=["app.strava.tasks"])
    celery.conf.update(
        task_serializer="json",
        accept_content=["json"],
        result_backend=None,
        task_ignore_result=True,
        # At-least-once: acknowledge after the work is done, redeliver if the worker dies.
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_time_limit=TASK_TIME_LIMIT_S,
        task_soft_time_limit=TASK_TIME_LIMIT_S - 30,
        broker_transport_options={"visibility_timeout": VISIBILITY_TIMEOUT_S},
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
        timezone="UTC",
    )
    return celery


celery_app = create_celery(get_settings())


def broker_available(timeout_s: float = 1.0) -> bool:
    settings = get_settings()
    if not settings.redis_url:
        return True
    import redis

    try:
        return bool(
            redis.Redis.from_url(
                settings.redis_url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s
            ).ping()
        )
    except redis.RedisError:
        return False


def beat_arguments() -> list[str]:
    """redbeat keeps the schedule (and a lock) in Redis so a second beat can stand by safely."""
    settings = get_settings()
    if settings.redis_url:
        return ["--scheduler", "redbeat.RedBeatScheduler"]
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    return ["--schedule", str(VAR_DIR / "celerybeat-schedule")]
