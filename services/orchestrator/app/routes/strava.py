"""The Strava endpoints of the contract (docs/contract.md §3): the link flow, status, sync
requests, unlink and the sync runs. Parse, call one service, return; domain errors become HTTP
in app/errors.py."""

from __future__ import annotations

from datetime import timedelta
from functools import partial
from typing import Annotated

import anyio.to_thread
from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import JSONResponse
from starlette.background import BackgroundTask

from app.codes import Trigger
from app.deps import KeyRingDep, ReaderDep, RunnerIdDep, SessionDep, SettingsDep, no_store
from app.errors import ErrorBody
from app.strava import oauth, scheduling, service, webhooks
from app.strava.client import StravaClient
from app.strava.schemas import (
    CallbackIn,
    LinkTokenIn,
    LinkTokenOut,
    StravaStatus,
    SyncQueuedOut,
    SyncRequestIn,
    SyncRunOut,
    SyncRunPage,
)

router = APIRouter(prefix="/api/v1", tags=["strava"])


async def get_strava_client(request: Request) -> StravaClient:
    client: StravaClient = request.app.state.strava_client
    return client


StravaClientDep = Annotated[StravaClient, Depends(get_strava_client)]


def _enqueue(request: Request) -> scheduling.Enqueue:
    enqueue: scheduling.Enqueue = request.app.state.enqueue_sync
    return enqueue


@router.post("/strava/link-token", status_code=201, dependencies=[Depends(no_store)])
def create_link_token(
    session: SessionDep, runner_id: RunnerIdDep, settings: SettingsDep, body: LinkTokenIn
) -> LinkTokenOut:
    token = oauth.create_link_token(session, runner_id, body, settings=settings)
    return LinkTokenOut(
        state=token.state,
        authorize_url=token.authorize_url,
        redirect_uri=token.redirect_uri,
        expires_at=token.expires_at,
    )


@router.post("/strava/callback", dependencies=[Depends(no_store)])
def callback(
    request: Request,
    session: SessionDep,
    runner_id: RunnerIdDep,
    settings: SettingsDep,
    keyring: KeyRingDep,
    client: StravaClientDep,
    body: CallbackIn,
) -> StravaStatus:
    oauth.complete_link(
        session, runner_id, body, client=client, keyring=keyring, enqueue=_enqueue(request)
    )
    return service.get_status(session, runner_id, keyring, window_days=settings.sync_window_days)


@router.get("/strava/status")
async def get_status(read: ReaderDep, settings: SettingsDep, keyring: KeyRingDep) -> StravaStatus:
    return await read(
        partial(service.read_status, keyring=keyring, window_days=settings.sync_window_days)
    )


@router.post("/strava/sync", status_code=202, responses={429: {"model": ErrorBody}})
def request_sync(
    request: Request,
    session: SessionDep,
    runner_id: RunnerIdDep,
    settings: SettingsDep,
    _: SyncRequestIn | None = None,
) -> SyncQueuedOut:
    run = scheduling.request_sync(
        session,
        runner_id,
        Trigger.MANUAL,
        enqueue=_enqueue(request),
        lease=timedelta(seconds=settings.sync_lease_seconds),
        cooldown=timedelta(seconds=settings.manual_sync_cooldown_seconds),
    )
    return SyncQueuedOut(sync_run_id=run.id, state=run.state)


@router.delete("/strava/link", status_code=204)
def unlink(
    session: SessionDep, runner_id: RunnerIdDep, keyring: KeyRingDep, client: StravaClientDep
) -> Response:
    service.unlink(session, runner_id, keyring, client)
    return Response(status_code=204)


@router.get("/strava/sync-runs")
def list_sync_runs(
    session: SessionDep, runner_id: RunnerIdDep, limit: Annotated[int, Query(ge=1, le=100)] = 20
) -> SyncRunPage:
    runs = service.list_sync_runs(session, runner_id, limit=limit)
    return SyncRunPage(items=[SyncRunOut.model_validate(run) for run in runs])


# --- webhooks (docs/strava.md §5): no bearer token; the path may end in a secret segment ---------


@router.get("/strava/webhook", include_in_schema=False)
@router.get("/strava/webhook/{path_secret}", include_in_schema=False)
def verify_webhook(
    request: Request, settings: SettingsDep, path_secret: str | None = None
) -> dict[str, str]:
    webhooks.check_callback_path(settings, path_secret)
    return webhooks.verify_subscription(settings, request.query_params)


@router.post("/strava/webhook", include_in_schema=False)
@router.post("/strava/webhook/{path_secret}", include_in_schema=False)
async def receive_webhook(request: Request, path_secret: str | None = None) -> JSONResponse:
    # No dependencies (each costs on every push) and the intake's own threads
    # (app.state.webhook_intake): the ack must not wait behind the API's other sync routes.
    state = request.app.state
    webhooks.check_callback_path(state.settings, path_secret)
    body = await request.body()  # bounded by the app's BodySizeLimit (413 beyond it)
    threads: anyio.CapacityLimiter | None = getattr(state, "webhook_intake", None)
    intake = await anyio.to_thread.run_sync(
        partial(webhooks.receive_event, body, sessions=state.sessions, keyring=state.keyring),
        limiter=threads,
    )
    runner_id = intake.to_process
    if runner_id is None:
        return JSONResponse(intake.body())
    # The event is durable: its processing is asked for once the answer is sent (Redis flag,
    # Celery publish), off the ack's path and its threads. Lost then, the beat re-drives it.
    request_processing = partial(
        webhooks.request_processing, state.webhook_requests.request, runner_id
    )
    return JSONResponse(
        intake.body(),
        background=BackgroundTask(
            anyio.to_thread.run_sync,
            request_processing,
            limiter=getattr(state, "webhook_request_threads", None),
        ),
    )
