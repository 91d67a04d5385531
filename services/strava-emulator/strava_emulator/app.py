"""FastAPI application factory."""

from __future__ import annotations

from fastapi import FastAPI, Request, Response

from strava_emulator import admin, oauth, push
from strava_emulator.config import EmulatorConfig
from strava_emulator.errors import JSON_CONTENT_TYPE, StravaError
from strava_emulator.gateway import StravaGateway
from strava_emulator.state import EmulatorState


def create_app(config: EmulatorConfig | None = None) -> FastAPI:
    """A fresh emulator with its own in-memory state (one per server or test)."""
    config = config or EmulatorConfig()
    state = EmulatorState(config)
    app = FastAPI(
        title="Strava API v3 emulator",
        version="0.1.0",
        docs_url="/_emulator/docs",
        redoc_url=None,
        openapi_url="/_emulator/openapi.json",
    )
    app.state.emulator = state

    async def strava_error(_request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StravaError)
        return Response(exc.body, status_code=exc.status, media_type=JSON_CONTENT_TYPE)

    app.add_exception_handler(StravaError, strava_error)
    # /api/v3 itself is answered by the gateway (strava_emulator.api), not by routes.
    app.include_router(oauth.router)
    app.include_router(push.router)
    app.include_router(admin.router)
    app.include_router(push.admin_router)
    app.add_middleware(StravaGateway, state=state)
    return app
