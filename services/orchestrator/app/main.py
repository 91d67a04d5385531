"""The orchestrator API: `create_app()` wires settings, collaborators and routes.

A wiring module: it may import app.strava (tests/test_import_rule.py keeps that list short)."""

from __future__ import annotations

import asyncio
import gc
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from functools import cache

import anyio
import anyio.to_thread
import structlog
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.body_limit import BodySizeLimit
from app.config import Settings, get_settings
from app.db import (
    EngineOptions,
    api_thread_tokens,
    engine_for,
    make_read_engine,
    read_sessionmaker_for,
    sessionmaker_for,
)
from app.errors import ERROR_RESPONSES, install_error_handlers
from app.logging import configure_logging, redact_path, redact_query
from app.routes import api_docs, auth, profile, strava, training, web, workouts
from app.security import KeyRing
from app.strava import webhook_requests
from app.strava.client import StravaClient, create_http_client
from app.strava.runtime import api_response_hook, build_strava_client
from app.strava.scheduling import Enqueue, as_enqueue
from app.text import escape_controls
from app.throttle import session_creation_throttle

access_log = structlog.get_logger("orchestrator.access")

# Threads /readyz may use at once for its checks (each abandoned when the bound expires).
READYZ_PROBE_THREADS = 4
# Threads of the webhook intake (one autocommit statement each): its own, so that Strava's
# pushes never queue behind the API's other sync routes in the default threadpool.
WEBHOOK_INTAKE_THREADS = 4
# Threads asking for the stored events' processing (Redis flag, Celery publish) after the 200:
# apart from the intake's, so a slow broker never holds back the next acks.
WEBHOOK_REQUEST_THREADS = 2


class AccessLog:
    """Our access log (`http.request`), query strings redacted (a callback URL carries `code`
    and `state`) and control characters escaped. Plain ASGI: Starlette's BaseHTTPMiddleware
    (`@app.middleware("http")`) runs every request in a task group with memory streams, a cost
    the cheapest route pays too."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the client gets if the app fails before answering

        async def send_noting_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_noting_status)
        finally:
            # Control characters escaped: an ANSI sequence in a path must not reach a terminal raw.
            access_log.info(
                "http.request",
                method=scope["method"],
                path=escape_controls(redact_path(scope["path"])),
                query=escape_controls(redact_query(scope["query_string"].decode("latin-1"))),
                status=status,
                duration_ms=round((time.perf_counter() - started) * 1000, 1),
            )


@cache
def freeze_start_up_objects() -> None:
    """Once per process, after the first start-up: what exists now (modules, the app, the
    engines' compiled statements) lives as long as the process, so the garbage collector stops
    walking it (gc.freeze); a full collection then scans only what requests made, which keeps
    its pauses out of the API's latency tail."""
    gc.collect()
    gc.freeze()


def create_app(
    settings: Settings | None = None,
    *,
    strava_client: StravaClient | None = None,
    enqueue_sync: Enqueue | Callable[[uuid.UUID], None] | None = None,
    enqueue_webhooks: Callable[[uuid.UUID], None] | None = None,
) -> FastAPI:
    """The API for `settings` (the process's when None): its routes and its database follow
    them. `strava_client` and `enqueue_sync` replace the real collaborators (tests); a plain
    callable can enqueue, it is then taken to be always available. `enqueue_webhooks` sends a
    runner's webhook processing task (default: Celery)."""
    settings = settings or get_settings()
    configure_logging(json=settings.log_json)
    # One pooled HTTP client for the process's Strava calls, closed with the app.
    http = create_http_client(timeout_s=settings.strava_timeout_seconds)
    client = strava_client or build_strava_client(
        settings, http, on_response=api_response_hook(settings)
    )

    engine_options = EngineOptions.from_settings(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Pool and threads sized together (app.db.admit_session): sessions ≤ connections ≤
        # threads, so a burst queues off the threadpool rather than deadlocking it.
        limiter = anyio.to_thread.current_default_thread_limiter()
        limiter.total_tokens = api_thread_tokens(engine_options)
        app.state.session_slots = anyio.Semaphore(engine_options.pool_capacity)
        # /readyz's checks run on threads of their own: a hanging database never takes the API's.
        app.state.probe_threads = anyio.CapacityLimiter(READYZ_PROBE_THREADS)
        app.state.webhook_intake = anyio.CapacityLimiter(WEBHOOK_INTAKE_THREADS)
        app.state.webhook_request_threads = anyio.CapacityLimiter(WEBHOOK_REQUEST_THREADS)
        # (Limiters hold no threads of their own: nothing to close. One app may run under two
        # lifespans at once, e.g. two TestClients.)
        # The polled reads' async engine belongs to this lifespan's event loop (two lifespans
        # run on two loops): made here, found by loop (app.deps.get_reader), disposed below.
        loop = asyncio.get_running_loop()
        read_engine = make_read_engine(settings.database_url, engine_options)
        if read_engine is not None:
            read_engines[loop] = read_engine
        freeze_start_up_objects()
        yield
        if read_engine is not None:
            read_engines.pop(loop, None)
            await read_engine.dispose()
        http.close()

    app = FastAPI(
        title="Coach George orchestrator",
        version="1.0.0",
        description="Runners, the Strava link flow, activity sync and status.",
        lifespan=lifespan,
        # FastAPI's pages load scripts from a CDN: routes/api_docs.py serves local ones instead.
        docs_url=None,
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.engine_options = engine_options
    app.state.sessions = sessionmaker_for(settings.database_url, engine_options)
    app.state.read_sessions = read_sessionmaker_for(settings.database_url, engine_options)
    read_engines: dict[asyncio.AbstractEventLoop, AsyncEngine] = {}
    app.state.read_engines = read_engines
    app.state.keyring = KeyRing(settings.encryption_keys())
    app.state.strava_client = client
    app.state.session_throttle = session_creation_throttle(settings)
    if enqueue_sync is None:
        from app.strava.tasks import enqueue_sync as enqueue_with_celery

        enqueue_sync = enqueue_with_celery
    app.state.enqueue_sync = as_enqueue(enqueue_sync)
    if enqueue_webhooks is None:
        from app.strava.tasks import enqueue_webhook_processing

        enqueue_webhooks = enqueue_webhook_processing
    app.state.enqueue_webhooks = enqueue_webhooks
    # One processing task per runner per burst (Redis flags; every event without Redis).
    app.state.webhook_requests = webhook_requests.from_settings(settings, enqueue_webhooks)

    install_error_handlers(app)
    app.include_router(auth.router, responses=ERROR_RESPONSES)
    app.include_router(profile.router, responses=ERROR_RESPONSES)
    app.include_router(strava.router, responses=ERROR_RESPONSES)
    app.include_router(workouts.router, responses=ERROR_RESPONSES)
    app.include_router(training.router, responses=ERROR_RESPONSES)
    app.include_router(web.router)
    if settings.sandbox:
        app.include_router(api_docs.router)
    # Inside the access log (added after it, so the log sees the 413s).
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_request_body_bytes)

    app.add_middleware(AccessLog)

    @app.get("/healthz", tags=["ops"])
    async def healthz() -> dict[str, str]:
        # Liveness: on the event loop, touching nothing, so a stuck database cannot fail it.
        return {"status": "ok"}

    def database_ready() -> bool:
        try:
            with engine_for(settings.database_url, engine_options).connect() as connection:
                connection.execute(text("SELECT 1"))
        except Exception:
            return False
        return True

    def broker_ready() -> bool:
        from app.worker import broker_available

        return broker_available(settings)

    @app.get("/readyz", tags=["ops"])
    async def readyz(request: Request) -> JSONResponse:
        # Bounded: a check that has not answered within READYZ_TIMEOUT_SECONDS is unavailable.
        checks = {"database": "unavailable", "broker": "unavailable"}
        probe_threads: anyio.CapacityLimiter | None = getattr(
            request.app.state, "probe_threads", None
        )

        async def check(name: str, probe: Callable[[], bool]) -> None:
            ok = await anyio.to_thread.run_sync(
                probe, limiter=probe_threads, abandon_on_cancel=True
            )
            checks[name] = "ok" if ok else "unavailable"

        with anyio.move_on_after(settings.readyz_timeout_seconds):
            async with anyio.create_task_group() as checking:
                checking.start_soon(check, "database", database_ready)
                checking.start_soon(check, "broker", broker_ready)
        ready = all(value == "ok" for value in checks.values())
        return JSONResponse(
            {"status": "ready" if ready else "not_ready", "checks": checks}, 200 if ready else 503
        )

    @app.get("/metrics", tags=["ops"], response_class=PlainTextResponse)
    def metrics() -> Response:
        from app.metrics import render_metrics

        return Response(render_metrics(), media_type=CONTENT_TYPE_LATEST)

    return app
