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

import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, TypeVar

import anyio
from fastapi import Depends
from sqlalchemy import (
    JSON,
    ColumnElement,
    Connection,
    Engine,
    MetaData,
    create_engine,
    event,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.orm import (
    DeclarativeBase,
    InstrumentedAttribute,
    ORMExecuteState,
    Session,
    UOWTransaction,
    sessionmaker,
)
from sqlalchemy.pool import ConnectionPoolEntry
from starlette.requests import Request

from app.config import Settings, get_settings

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


# A pooled PostgreSQL connection that sat idle this long is pinged before it is handed out; one
# back in the pool moments ago (a busy API) is not: a ping per checkout was a round trip per
# request. A connection that dies while busy fails its statement; SQLAlchemy then discards the
# whole pool's connections of that age, so the next checkout connects afresh.
PING_IDLE_AFTER_S = 5.0
# Connections are replaced after this long anyway (server-side memory, proxies' idle limits).
POOL_RECYCLE_S = 1800


def ping_idle_connections(engine: Engine, idle_after_s: float) -> None:
    """Before a checkout, ping the connection if it has been idle `idle_after_s` or longer;
    a dead one is replaced (DisconnectionError makes the pool connect again)."""

    @event.listens_for(engine, "checkin")
    def _note_idle(_: Any, record: ConnectionPoolEntry) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _ping_if_idle(dbapi_connection: Any, record: ConnectionPoolEntry, _: Any) -> None:
        idle_since = record.info.get("idle_since")
        if idle_since is None or time.monotonic() - idle_since < idle_after_s:
            return  # a new connection, or one in use moments ago
        try:
            alive = engine.dialect.do_ping(dbapi_connection)
        except engine.dialect.loaded_dbapi.Error:
            alive = False
        if not alive:
            raise DisconnectionError("an idle pooled connection did not answer a ping")


@dataclass(frozen=True)
class EngineOptions:
    """How the process talks to PostgreSQL: pool size, how long anyone waits for a connection,
    and timeouts so that a database that hangs or refuses makes requests fail fast (503)
    instead of freezing them (docs/architecture.md §1)."""

    pool_size: int = 10
    max_overflow: int = 10
    pool_timeout_s: float = 5.0
    connect_timeout_s: int = 5
    # None: no limit (migrations, whose DDL on a large table may take longer).
    statement_timeout_s: float | None = 30.0

    @classmethod
    def from_settings(cls, settings: Settings) -> EngineOptions:
        return cls(
            pool_size=settings.db_pool_size,
            max_overflow=settings.db_max_overflow,
            pool_timeout_s=settings.db_pool_timeout_seconds,
            connect_timeout_s=settings.db_connect_timeout_seconds,
            statement_timeout_s=settings.db_statement_timeout_seconds,
        )

    @property
    def pool_capacity(self) -> int:
        """The most connections the pool ever opens: also how many requests may hold a session."""
        return self.pool_size + self.max_overflow


# Threads for the API's sync routes beyond one per pooled connection: routes without a session
# (metrics, web pages) must not wait behind database work.
SPARE_API_THREADS = 8


def api_thread_tokens(options: EngineOptions) -> int:
    """The API's threadpool, sized with the pool: every request holding a session can have a
    thread, so threads never pile up waiting for connections (admit_session bounds sessions)."""
    return options.pool_capacity + SPARE_API_THREADS


def postgres_engine_arguments(options: EngineOptions, *, read_only: bool = False) -> dict[str, Any]:
    """create_engine's arguments for PostgreSQL (psycopg 3): the pool and the timeouts; with
    `read_only`, every transaction of the connection is READ ONLY (the server refuses writes)."""
    connect_args: dict[str, Any] = {"connect_timeout": options.connect_timeout_s}
    server_options = []
    if options.statement_timeout_s is not None:
        server_options.append(f"-c statement_timeout={int(options.statement_timeout_s * 1000)}")
    if read_only:
        server_options.append("-c default_transaction_read_only=on")
        # Floats printed in their shortest exact form (PostgreSQL 12+'s default, whatever the
        # server's setting): training.history_json carries workouts' figures as JSON.
        server_options.append("-c extra_float_digits=1")
    if server_options:
        connect_args["options"] = " ".join(server_options)
    return {
        # No pre-ping per checkout (a round trip per request): idle connections only, below.
        "pool_recycle": POOL_RECYCLE_S,
        "pool_size": options.pool_size,
        "max_overflow": options.max_overflow,
        "pool_timeout": options.pool_timeout_s,
        "connect_args": connect_args,
    }


def make_engine(
    url: str, options: EngineOptions | None = None, *, ping_idle_after_s: float = PING_IDLE_AFTER_S
) -> Engine:
    if url.startswith("sqlite"):
        path = url.removeprefix("sqlite:///")
        pool: dict[str, Any] = {}
        if path and path != ":memory:" and url != "sqlite://":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            options = options or EngineOptions()
            # A file's pool has PostgreSQL's bounds: admit_session admits pool_capacity sessions,
            # and each must find a connection, not wait behind SQLAlchemy's default 5 + 10.
            pool = {
                "pool_size": options.pool_size,
                "max_overflow": options.max_overflow,
                "pool_timeout": options.pool_timeout_s,
            }
        engine = create_engine(
            url, connect_args={"check_same_thread": False, "timeout": 30}, **pool
        )

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        return engine
    engine = create_engine(url, **postgres_engine_arguments(options or EngineOptions()))
    ping_idle_connections(engine, ping_idle_after_s)
    return engine


@lru_cache
def engine_for(url: str, options: EngineOptions | None = None) -> Engine:
    """One engine (one pool) per database URL, options and process. Without options, those of
    the process's settings: the same engine as the API's and the workers' under them."""
    if options is None:
        return engine_for(url, EngineOptions.from_settings(get_settings()))
    return make_engine(url, options)


@lru_cache
def sessionmaker_for(url: str, options: EngineOptions | None = None) -> sessionmaker[Session]:
    return sessionmaker(bind=engine_for(url, options), expire_on_commit=False)


# What a read runs its statements on: a session, or a connection (the polled reads).
Reads = Session | Connection


def dialect_name(reads: Reads) -> str:
    """`postgresql` or `sqlite`: where a read must say things differently."""
    if isinstance(reads, Connection):
        return reads.dialect.name
    return reads.get_bind().dialect.name


class ReadOnlyError(RuntimeError):
    """A write was attempted through a ReadOnlySession: a bug, never a runner's doing."""


class ReadOnlySession(Session):
    """A session for reads (the status, the profile summary): each statement runs in autocommit,
    so a read costs no BEGIN and no COMMIT round trip and holds no transaction open. On PostgreSQL's
    READ COMMITTED each statement saw its own snapshot anyway. Any write is refused."""


@event.listens_for(ReadOnlySession, "before_flush")
def _refuse_flush(session: Session, _: UOWTransaction, __: Any) -> None:
    raise ReadOnlyError("a read-only session cannot write (flush)")


@event.listens_for(ReadOnlySession, "do_orm_execute")
def _refuse_dml(state: ORMExecuteState) -> None:
    if state.is_insert or state.is_update or state.is_delete:
        raise ReadOnlyError("a read-only session cannot write (INSERT, UPDATE or DELETE)")


def read_sessionmaker_for(
    url: str, options: EngineOptions | None = None
) -> sessionmaker[ReadOnlySession]:
    """Read-only sessions on the pool of `engine_for(url, options)`: no second pool."""
    return _read_sessionmaker(engine_for(url, options))


@lru_cache
def _read_sessionmaker(engine: Engine) -> sessionmaker[ReadOnlySession]:
    return sessionmaker(
        bind=autocommit_engine_for(engine), class_=ReadOnlySession, expire_on_commit=False
    )


@lru_cache
def autocommit_engine_for(engine: Engine) -> Engine:
    """`engine`'s pool, each statement committing on its own (no BEGIN, no COMMIT round trip):
    for reads, and for a write that is one statement (the webhook intake's INSERT .. SELECT)."""
    return engine.execution_options(isolation_level="AUTOCOMMIT")


def autocommit_engine_of(sessions: Callable[[], Session]) -> Engine:
    """The autocommit engine of what a session factory binds (the app's `state.sessions`)."""
    bind = sessions.kw.get("bind") if isinstance(sessions, sessionmaker) else None
    if not isinstance(bind, Engine):
        with sessions() as session:  # no connection is taken: only the bind is read
            found = session.get_bind()
        bind = found if isinstance(found, Engine) else found.engine
    return autocommit_engine_for(bind)


def make_read_engine(
    url: str, options: EngineOptions | None = None, *, ping_idle_after_s: float = PING_IDLE_AFTER_S
) -> AsyncEngine | None:
    """The API's async engine for the reads the app polls (the status, the profile summary), on
    psycopg's async driver: those routes run on the event loop, with no thread-pool hop (see
    app.deps.Reader). Each statement in autocommit (no BEGIN, no COMMIT, no transaction held)
    and read-only on the server (a write is refused by PostgreSQL); idle connections pinged as
    `make_engine`'s. A pool of its own, as large as the other's capacity: admit_session admits
    no more requests than that, across both. None for SQLite (embedded mode), whose reads take
    the thread pool."""
    if url.startswith("sqlite"):
        return None
    options = options or EngineOptions()
    arguments = postgres_engine_arguments(options, read_only=True)
    # Every connection opened is kept (no overflow): on one event loop, how many reads hold a
    # connection at once swings around the pool size from moment to moment, and SQLAlchemy
    # closes an overflow connection when it comes back to a full pool, so under a steady load
    # the pool kept connecting and disconnecting (a PostgreSQL backend started per connect).
    arguments.update(pool_size=options.pool_capacity, max_overflow=0)
    engine = create_async_engine(url, isolation_level="AUTOCOMMIT", **arguments)
    ping_idle_connections(engine.sync_engine, ping_idle_after_s)
    return engine


def get_engine() -> Engine:
    """The engine of the process's settings (workers, commands); the API uses its app's own."""
    settings = get_settings()
    return engine_for(settings.database_url, EngineOptions.from_settings(settings))


def get_sessionmaker() -> sessionmaker[Session]:
    settings = get_settings()
    return sessionmaker_for(settings.database_url, EngineOptions.from_settings(settings))


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


@contextmanager
def autocommit_connection(factory: Callable[[], Session] | None = None) -> Iterator[Connection]:
    """A pooled connection on which every statement commits by itself, with no Session around
    it: for one Core statement that must be durable alone (a sync's lease renewal, the webhook
    intake's INSERT .. SELECT)."""
    with autocommit_engine_of(factory or get_sessionmaker()).connect() as connection:
        yield connection


@contextmanager
def autocommit_session(factory: sessionmaker[Session] | None = None) -> Iterator[Session]:
    """A session whose every statement commits by itself: no BEGIN and no COMMIT round trip.
    For a statement that must be durable alone (the sync's claim) and for
    reads that need no snapshot of their own; never for writes that belong together."""
    session = (factory or get_sessionmaker())()
    try:
        session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
        yield session
    finally:
        session.close()


async def admit_session(request: Request) -> AsyncIterator[None]:
    """No more requests hold a session than the pool has connections (`app.state.session_slots`,
    set at start-up), so a burst waits here, off the threadpool and without a connection, and
    gets 503 service_unavailable after the pool timeout instead of freezing every thread."""
    from app.errors import ServiceUnavailable

    slots: anyio.Semaphore | None = getattr(request.app.state, "session_slots", None)
    if slots is None:  # the app was not started (a TestClient outside `with`): nothing to bound
        yield
        return
    options: EngineOptions = request.app.state.engine_options
    admitted = False
    with anyio.move_on_after(options.pool_timeout_s):
        await slots.acquire()
        admitted = True
    if not admitted:
        raise ServiceUnavailable("The service is busy. Try again in a moment.", retry_after=1)
    try:
        yield
    finally:
        slots.release()


def get_session(
    request: Request, _: Annotated[None, Depends(admit_session, scope="function")]
) -> Iterator[Session]:
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


def sqlite_write_lock(
    connection: Connection, table: Any, where: ColumnElement[bool], touch: Any
) -> None:
    """On SQLite, the database's write lock, taken by a no-op write (`touch`, a column of
    `table`, set to itself on the rows `where` picks): SQLite has no row locks (FOR UPDATE is
    ignored), and this serialises writers just the same. Nothing on other databases."""
    if connection.dialect.name == "sqlite":
        connection.execute(update(table).where(where).values({touch: touch}))


def lock_row(
    session: Session, model: type[_Row], row_id: object, touch: InstrumentedAttribute[Any]
) -> _Row | None:
    """The row, locked until the transaction ends and re-read from the database.

    SQLite has no row locks: `touch` (a column of the row) takes its write lock instead
    (`sqlite_write_lock`)."""
    primary_key = model.__mapper__.primary_key[0]
    sqlite_write_lock(session.connection(), model.__table__, primary_key == row_id, touch)
    return session.scalar(
        select(model)
        .where(primary_key == row_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
