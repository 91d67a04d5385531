"""Celery tasks: thin (parse, call one service, return). Arguments are ids, never secrets."""

from __future__ import annotations

import uuid

from app.worker import celery_app


@celery_app.task(name="strava.sync_runner", acks_late=True)
def sync_runner(sync_run_id: str) -> None:
    raise NotImplementedError  # filled in by the sync module


def enqueue_sync(sync_run_id: uuid.UUID) -> None:
    sync_runner.apply_async(args=[str(sync_run_id)])
