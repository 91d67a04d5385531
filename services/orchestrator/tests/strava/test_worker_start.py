"""What a worker builds once in its main process before the pool forks (issue 13)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from app.config import Settings

_PROBE = """
import json, sys
import app.strava.tasks
from celery.signals import worker_init
from app.strava.client import tls_context
before = {name: name in sys.modules for name in ("httpcore2", "psycopg")}
worker_init.send(sender=None)
after = {name: name in sys.modules for name in ("httpcore2", "psycopg")}
print(json.dumps({"before": before, "after": after, "tls": tls_context.cache_info().currsize}))
"""


def test_the_worker_builds_the_http_stack_and_database_driver_before_forking_its_pool(
    settings: Settings,
) -> None:
    # A fresh interpreter: what a worker's main process has imported when Celery starts it.
    env = {**os.environ, "DATABASE_URL": settings.database_url}
    done = subprocess.run(
        [sys.executable, "-c", _PROBE], env=env, capture_output=True, text=True, check=True
    )
    seen = json.loads(done.stdout.strip().splitlines()[-1])

    # Lazily imported by each pool process on its first task, unless built here first.
    assert seen["before"] == {"httpcore2": False, "psycopg": False}
    assert seen["after"] == {"httpcore2": True, "psycopg": True}
    assert seen["tls"] == 1  # the CA bundle loaded once, inherited by every pool process
