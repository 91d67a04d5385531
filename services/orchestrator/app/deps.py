"""`Annotated` dependency aliases shared by the routes.

Dependencies that only look at the request are `async def`: FastAPI runs a plain `def`
dependency in its thread pool, a hop off the event loop per dependency per request."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, TypeVar

from fastapi import Depends, Request, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool

from app.config import Settings
from app.db import ReadOnlySession, admit_session, get_session
from app.errors import RateLimited, Unauthenticated
from app.runners import service as runners
from app.security import KeyRing
from app.throttle import Throttle

SessionDep = Annotated[Session, Depends(get_session, scope="function")]

_T = TypeVar("_T")


async def get_app_settings(request: Request) -> Settings:
    """The settings `create_app` was given (not the process's globals)."""
    settings: Settings = request.app.state.settings
    return settings


SettingsDep = Annotated[Settings, Depends(get_app_settings)]

_bearer = HTTPBearer(auto_error=False)
BearerDep = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


def bearer_token(credentials: HTTPAuthorizationCredentials | None) -> str:
    """The runner's bearer token as sent, checked for shape only (no database)."""
    if credentials is None or credentials.scheme.lower() != "bearer" or not credentials.credentials:
        raise Unauthenticated()
    if len(credentials.credentials) > 256:
        raise Unauthenticated()
    return credentials.credentials


def current_runner_id(session: SessionDep, credentials: BearerDep) -> uuid.UUID:
    return runners.authenticate(session, bearer_token(credentials))


RunnerIdDep = Annotated[uuid.UUID, Depends(current_runner_id)]


@dataclass(frozen=True)
class Reader:
    """An authenticated read, for the routes the app polls (status, profile summary).

    `await reader(work)` checks the bearer token and runs `work(session, runner_id)` on a
    read-only session (app.db.ReadOnlySession: autocommit, nothing to commit), both in ONE
    thread-pool hop. The same route on SessionDep + RunnerIdDep takes five hops (the session's
    set-up and tear-down, the token, the route, its response) and a BEGIN/COMMIT pair."""

    sessions: sessionmaker[ReadOnlySession]
    token: str

    async def __call__(self, work: Callable[[Session, uuid.UUID], _T]) -> _T:
        return await run_in_threadpool(self._run, work)

    def _run(self, work: Callable[[Session, uuid.UUID], _T]) -> _T:
        with self.sessions() as session:
            return work(session, runners.authenticate(session, self.token))


async def get_reader(
    request: Request,
    credentials: BearerDep,
    _: Annotated[None, Depends(admit_session, scope="function")],
) -> Reader:
    """A read is admitted like any session (app.db.admit_session: no more sessions than the
    pool has connections)."""
    sessions: sessionmaker[ReadOnlySession] = request.app.state.read_sessions
    return Reader(sessions, bearer_token(credentials))


ReaderDep = Annotated[Reader, Depends(get_reader)]


async def get_keyring(request: Request) -> KeyRing:
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
