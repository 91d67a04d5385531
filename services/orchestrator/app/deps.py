"""`Annotated` dependency aliases shared by the routes.

Dependencies that only look at the request are `async def`: FastAPI runs a plain `def`
dependency in its thread pool, a hop off the event loop per dependency per request."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, TypeVar

from fastapi import Depends, Request, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool

from app.config import Settings
from app.db import ReadOnlySession, Reads, admit_session, get_session
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

    `await reader(work)` runs `work(reads, token)`, where the work checks the bearer token in
    its first statement (app.runners.service.LIVE_SESSION joined into the read), not in a round
    trip of its own. On PostgreSQL, `reads` is a connection of the async read engine
    (app.db.make_read_engine: autocommit, read-only on the server) and the work runs on the
    event loop (`AsyncConnection.run_sync`: sync code, each statement awaited on psycopg's async
    driver), with no thread-pool hop. On SQLite, or before the app started, it is a
    ReadOnlySession (autocommit, writes refused) in one thread-pool hop."""

    engine: AsyncEngine | None
    sessions: sessionmaker[ReadOnlySession]
    token: str

    async def __call__(self, work: Callable[[Reads, str], _T]) -> _T:
        if self.engine is not None:
            async with self.engine.connect() as connection:
                return await connection.run_sync(work, self.token)
        return await run_in_threadpool(self._run, work)

    def _run(self, work: Callable[[Reads, str], _T]) -> _T:
        with self.sessions() as session:
            return work(session, self.token)


async def get_reader(
    request: Request,
    credentials: BearerDep,
    _: Annotated[None, Depends(admit_session, scope="function")],
) -> Reader:
    """A read is admitted like any session (app.db.admit_session: no more sessions than the
    pool has connections). The async engine is the one of this event loop's lifespan (none
    before the app started)."""
    state = request.app.state
    engines: dict[asyncio.AbstractEventLoop, AsyncEngine] = state.read_engines
    engine = engines.get(asyncio.get_running_loop())
    return Reader(engine, state.read_sessions, bearer_token(credentials))


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
