"""Pointing this process (API, in-thread worker, the global Celery app) at other settings, and a
Redis namespace of the test session's own."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Protocol

from app.config import Settings
from waiting import wait_until


@contextmanager
def worker_environment(**env: str) -> Iterator[Settings]:
    """Settings from `env` for this process (API, in-thread worker, the global Celery app), and
    the previous ones back afterwards."""
    from app.config import get_settings
    from app.strava import tasks
    from app.worker import reconfigure

    saved = {key: os.environ.get(key) for key in env}
    os.environ.update(env)
    get_settings.cache_clear()
    tasks.reset_runtime()
    settings = get_settings()
    reconfigure(settings)
    try:
        yield settings
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        get_settings.cache_clear()
        tasks.reset_runtime()
        reconfigure(get_settings())


def worker_env_vars(redis_url: str, **extra: str) -> dict[str, str]:
    """A queue, a beat key prefix and a rate budget of this test session's own on the shared
    Redis, so that concurrent test runs never take each other's messages."""
    tag = uuid.uuid4().hex[:10]
    return {
        "REDIS_URL": redis_url,
        "SYNC_QUEUE": f"test-sync-{tag}",
        "RATE_BUDGET_PREFIX": f"test-budget-{tag}",
        "STRAVA_TIMEOUT_SECONDS": "1",
        **extra,
    }


def forget_redis_keys(redis_url: str, settings: Settings) -> None:
    import redis

    client = redis.Redis.from_url(redis_url)
    for pattern in (f"{settings.rate_budget_prefix}:*", f"{settings.sync_queue}*"):
        keys = list(client.scan_iter(match=pattern))
        if keys:
            client.delete(*keys)
    client.close()


ORCHESTRATOR = (sys.executable, "-m", "app.cli")


class Spawn(Protocol):
    def __call__(
        self, *args: str, ready: str | None = None, command: Sequence[str] = ORCHESTRATOR
    ) -> subprocess.Popen[bytes]: ...


@contextmanager
def orchestrator_processes(tmp_path: Path) -> Iterator[Spawn]:
    """Start `orchestrator <args>` (or another `command`) with this process's environment, each
    logging to a file under `tmp_path`, optionally waiting for a `ready` line; all are stopped
    (SIGTERM, then SIGKILL) at the end."""
    started: list[subprocess.Popen[bytes]] = []
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics")}

    def start(
        *args: str, ready: str | None = None, command: Sequence[str] = ORCHESTRATOR
    ) -> subprocess.Popen[bytes]:
        log = tmp_path / f"{args[0]}-{len(started)}.log"
        process = subprocess.Popen(
            [*command, *args],
            env=env,
            cwd=tmp_path,
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
        )
        started.append(process)
        if ready is not None:
            wait_until(lambda: ready in log.read_text(errors="replace"), timeout=60)
        return process

    try:
        yield start
    finally:
        for process in started:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in started:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
