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
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
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

    `await reader(work)` runs `work(session, token)` on a read-only session
    (app.db.ReadOnlySession: autocommit, nothing to commit, writes refused). The work checks the
    bearer token in its first statement (app.runners.service.LIVE_SESSION joined into the read),
    not in a round trip of its own. On PostgreSQL the session runs on psycopg's async driver
    (`AsyncSession.run_sync`: the sync work on the event loop, each statement awaited), with no
    thread-pool hop; on SQLite, or before the app started, one thread-pool hop."""

    sessions: async_sessionmaker[AsyncSession] | sessionmaker[ReadOnlySession]
    token: str

    async def __call__(self, work: Callable[[Session, str], _T]) -> _T:
        if isinstance(self.sessions, async_sessionmaker):
            async with self.sessions() as session:
                return await session.run_sync(work, self.token)
        return await run_in_threadpool(self._run, self.sessions, work)

    def _run(
        self, sessions: sessionmaker[ReadOnlySession], work: Callable[[Session, str], _T]
    ) -> _T:
        with sessions() as session:
            return work(session, self.token)


async def get_reader(
    request: Request,
    credentials: BearerDep,
    _: Annotated[None, Depends(admit_session, scope="function")],
) -> Reader:
    """A read is admitted like any session (app.db.admit_session: no more sessions than the
    pool has connections). The async sessions exist once the app started (its lifespan)."""
    state = request.app.state
    sessions: async_sessionmaker[AsyncSession] | sessionmaker[ReadOnlySession] = (
        getattr(state, "async_read_sessions", None) or state.read_sessions
    )
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
