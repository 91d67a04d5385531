"""The orchestrator API: `create_app()` wires settings, collaborators and routes.

A wiring module: it may import app.strava (tests/test_import_rule.py keeps that list short)."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import structlog
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST
from sqlalchemy import text

from app.body_limit import BodySizeLimit
from app.config import Settings, get_settings
from app.db import engine_for, sessionmaker_for
from app.errors import ERROR_RESPONSES, install_error_handlers
from app.logging import configure_logging, redact_query
from app.routes import api_docs, auth, profile, strava, training, web, workouts
from app.security import KeyRing
from app.strava.client import StravaClient, create_http_client
from app.strava.runtime import api_response_hook, build_strava_client
from app.strava.scheduling import Enqueue, as_enqueue
from app.text import escape_controls
from app.throttle import session_creation_throttle

access_log = structlog.get_logger("orchestrator.access")


def create_app(
    settings: Settings | None = None,
    *,
    strava_client: StravaClient | None = None,
    enqueue_sync: Enqueue | Callable[[uuid.UUID], None] | None = None,
) -> FastAPI:
    """The API for `settings` (the process's when None): its routes and its database follow
    them. `strava_client` and `enqueue_sync` replace the real collaborators (tests); a plain
    callable can enqueue, it is then taken to be always available."""
    settings = settings or get_settings()
    configure_logging(json=settings.log_json)
    # One pooled HTTP client for the process's Strava calls, closed with the app.
    http = create_http_client(timeout_s=settings.strava_timeout_seconds)
    client = strava_client or build_strava_client(
        settings, http, on_response=api_response_hook(settings)
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
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
    app.state.sessions = sessionmaker_for(settings.database_url)
    app.state.keyring = KeyRing(settings.encryption_keys())
    app.state.strava_client = client
    app.state.session_throttle = session_creation_throttle(settings)
    if enqueue_sync is None:
        from app.strava.tasks import enqueue_sync as enqueue_with_celery

        enqueue_sync = enqueue_with_celery
    app.state.enqueue_sync = as_enqueue(enqueue_sync)

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

    @app.middleware("http")
    async def _access_log(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        started = time.perf_counter()
        response = await call_next(request)
        # Our own access log: query strings redacted (a callback URL carries `code` and `state`),
        # control characters escaped (an ANSI sequence in a path must not reach a terminal raw).
        access_log.info(
            "http.request",
            method=request.method,
            path=escape_controls(request.url.path),
            query=escape_controls(redact_query(request.url.query)),
            status=response.status_code,
            duration_ms=round((time.perf_counter() - started) * 1000, 1),
        )
        return response

    @app.get("/healthz", tags=["ops"])
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", tags=["ops"])
    def readyz() -> JSONResponse:
        checks: dict[str, str] = {}
        try:
            with engine_for(settings.database_url).connect() as connection:
                connection.execute(text("SELECT 1"))
            checks["database"] = "ok"
        except Exception:
            checks["database"] = "unavailable"
        from app.worker import broker_available

        checks["broker"] = "ok" if broker_available(settings) else "unavailable"
        ready = all(value == "ok" for value in checks.values())
        return JSONResponse(
            {"status": "ready" if ready else "not_ready", "checks": checks}, 200 if ready else 503
        )

    @app.get("/metrics", tags=["ops"], response_class=PlainTextResponse)
    def metrics() -> Response:
        from app.metrics import render_metrics

        return Response(render_metrics(), media_type=CONTENT_TYPE_LATEST)

    return app
