"""`Annotated` dependency aliases shared by the routes."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import Depends, Request, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from app.config import Settings
from app.db import get_session
from app.errors import RateLimited, Unauthenticated
from app.runners import service as runners
from app.security import KeyRing
from app.throttle import Throttle

SessionDep = Annotated[Session, Depends(get_session, scope="function")]


def get_app_settings(request: Request) -> Settings:
    """The settings `create_app` was given (not the process's globals)."""
    settings: Settings = request.app.state.settings
    return settings


SettingsDep = Annotated[Settings, Depends(get_app_settings)]

_bearer = HTTPBearer(auto_error=False)


def current_runner_id(
    session: SessionDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> uuid.UUID:
    if credentials is None or credentials.scheme.lower() != "bearer" or not credentials.credentials:
        raise Unauthenticated()
    if len(credentials.credentials) > 256:
        raise Unauthenticated()
    return runners.authenticate(session, credentials.credentials)


RunnerIdDep = Annotated[uuid.UUID, Depends(current_runner_id)]


def get_keyring(request: Request) -> KeyRing:
    keyring: KeyRing = request.app.state.keyring
    return keyring


KeyRingDep = Annotated[KeyRing, Depends(get_keyring)]


def no_store(response: Response) -> None:
    """For responses that carry a secret (a bearer token, an OAuth `state`): no cache keeps them."""
    response.headers["Cache-Control"] = "no-store"


def limit_session_creation(request: Request) -> None:
    """Anonymous session creation, counted per client address (429 with Retry-After)."""
    throttle: Throttle = request.app.state.session_throttle
    client = request.client.host if request.client else "unknown"
    retry_after = throttle.hit(client)
    if retry_after is not None:
        raise RateLimited(
            "Too many new sessions from this address. Try again later.", retry_after=retry_after
        )
