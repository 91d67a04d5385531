"""Engine, sessions and the transaction boundary.

Request-path services take a Session and never commit: the request (`get_session`) or the
command (`session_scope`) owns the transaction. The worker's code owns short transactions on
purpose, each through `session_scope`: the sync (claim, then write, never holding a lock while
Strava is called), the token refresh (the rotated pair is durable before it is used), the rate
budget (one locked row per call) and the tick (one transaction per runner). Work that must only
happen once the data is durable (sending a Celery task) is registered with `after_commit` and
runs right after the commit.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import JSON, Engine, MetaData, create_engine, event, select, update
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, InstrumentedAttribute, Session, sessionmaker
from starlette.requests import Request

from app.config import get_settings

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


# A JSON column that is JSONB on PostgreSQL.
JSONType = JSON().with_variant(JSONB(), "postgresql")

_Row = TypeVar("_Row", bound=Base)


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        path = url.removeprefix("sqlite:///")
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=10)


@lru_cache
def engine_for(url: str) -> Engine:
    """One engine (one pool) per database URL and process."""
    return make_engine(url)


@lru_cache
def sessionmaker_for(url: str) -> sessionmaker[Session]:
    return sessionmaker(bind=engine_for(url), expire_on_commit=False)


def get_engine() -> Engine:
    """The engine of the process's settings (workers, commands); the API uses its app's own."""
    return engine_for(get_settings().database_url)


def get_sessionmaker() -> sessionmaker[Session]:
    return sessionmaker_for(get_settings().database_url)


_AFTER_COMMIT = "after_commit_callbacks"


def after_commit(session: Session, callback: Callable[[], None]) -> None:
    """Run `callback` once the session's current transaction has committed (dropped on rollback)."""
    session.info.setdefault(_AFTER_COMMIT, []).append(callback)


@event.listens_for(Session, "after_commit")
def _run_after_commit(session: Session) -> None:
    callbacks: list[Callable[[], None]] = session.info.pop(_AFTER_COMMIT, [])
    for callback in callbacks:
        callback()


@event.listens_for(Session, "after_soft_rollback")
def _drop_after_commit(session: Session, _: Any) -> None:
    session.info.pop(_AFTER_COMMIT, None)


@contextmanager
def session_scope(factory: sessionmaker[Session] | None = None) -> Iterator[Session]:
    """The transaction boundary for tasks and commands: commit on success, roll back on error."""
    session = (factory or get_sessionmaker())()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def get_session(request: Request) -> Iterator[Session]:
    """FastAPI dependency: the request owns the transaction (commits before the response), on
    the database of the app's own settings (`create_app(settings)`).

    An AppError marked `persist` commits what was done before it (e.g. a spent link attempt).
    """
    from app.errors import AppError

    sessions: sessionmaker[Session] = request.app.state.sessions
    session = sessions()
    try:
        yield session
        session.commit()
    except AppError as exc:
        if exc.persist:
            session.commit()
        else:
            session.rollback()
        raise
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def lock_row(
    session: Session, model: type[_Row], row_id: object, touch: InstrumentedAttribute[Any]
) -> _Row | None:
    """The row, locked until the transaction ends and re-read from the database.

    SQLite has no row locks (FOR UPDATE is ignored): a no-op write of `touch` (a column of the
    row, set to itself) takes the database's write lock instead, which serialises writers just
    the same."""
    primary_key = model.__mapper__.primary_key[0]
    if session.get_bind().dialect.name == "sqlite":
        session.execute(
            update(model)
            .where(primary_key == row_id)
            .values({touch: touch})
            .execution_options(synchronize_session=False)
        )
    return session.scalar(
        select(model)
        .where(primary_key == row_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
