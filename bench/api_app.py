"""The apps bench/api.py serves with uvicorn --factory; never mounted in the product.

- `create_app`: the product API (app.main.create_app, settings from the environment) plus
  `GET /bench/floor`, the floor the product's authenticated reads are compared with, and two
  async variants of it (bench/api.py --variants): the same blocking query inline on the event
  loop, and the same query on psycopg's async driver.
- `GET /bench/counters`: what the process sent to the database so far (statements, pool
  checkouts, commits, rollbacks), so that bench/api.py can print round trips per request.
- `create_hello_app`: a bare FastAPI async hello-world, what this machine's uvicorn + FastAPI
  serve with no database at all.

The only imports of the orchestrator's internals in bench/api*.py are here: create_app and
Settings.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from typing import Annotated, Any

from app.config import Settings
from app.main import create_app as create_product_app
from fastapi import FastAPI, Header, HTTPException
from sqlalchemy import Engine, bindparam, column, create_engine, event, select, table
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import Pool

# Core only: no ORM model, no Session, no unit of work. The primary key is the token's hash.
runner_sessions = table("runner_sessions", column("token_hash"), column("runner_id"))


# Counted for every engine of the process (the product's and the floor's): a dict increment each.
counters: Counter[str] = Counter()


def _count(name: str) -> Any:
    def listener(*_: Any, **__: Any) -> None:
        counters[name] += 1

    return listener


event.listen(Engine, "before_cursor_execute", _count("statements"))
event.listen(Engine, "commit", _count("commits"))
event.listen(Engine, "rollback", _count("rollbacks"))
# With pool_pre_ping (the product's engine) every checkout is one extra round trip.
event.listen(Pool, "checkout", _count("checkouts"))


def _floor_engine(settings: Settings) -> Engine:
    # The product's pool size, without pre-ping: the floor is the one query and nothing else.
    return create_engine(settings.database_url, pool_size=10, max_overflow=10)


def _bearer_digest(authorization: str) -> str:
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise HTTPException(401)
    return hashlib.sha256(token.encode()).hexdigest()


def _found(runner_id: object) -> dict[str, str]:
    if runner_id is None:
        raise HTTPException(401)
    return {"runner_id": str(runner_id)}


def create_app() -> FastAPI:
    settings = Settings()
    app = create_product_app(settings)
    engine = _floor_engine(settings)
    query = select(runner_sessions.c.runner_id).where(
        runner_sessions.c.token_hash == bindparam("token_hash")
    )

    @app.get("/bench/floor", tags=["bench"])
    def floor(authorization: Annotated[str, Header()] = "") -> dict[str, str]:
        """A sync route: hash the bearer token, one indexed SELECT on runner_sessions."""
        digest = _bearer_digest(authorization)
        with engine.connect() as connection:
            runner_id = connection.execute(query, {"token_hash": digest}).scalar()
        return _found(runner_id)

    async_engine = create_async_engine(settings.database_url, pool_size=10, max_overflow=10)

    @app.get("/bench/floor-async-inline", tags=["bench"])
    async def floor_async_inline(authorization: Annotated[str, Header()] = "") -> dict[str, str]:
        """The floor as an async route, the blocking query run on the event loop itself."""
        digest = _bearer_digest(authorization)
        with engine.connect() as connection:
            runner_id = connection.execute(query, {"token_hash": digest}).scalar()
        return _found(runner_id)

    @app.get("/bench/floor-async", tags=["bench"])
    async def floor_async(authorization: Annotated[str, Header()] = "") -> dict[str, str]:
        """The floor as an async route on psycopg's async driver (SQLAlchemy asyncio)."""
        digest = _bearer_digest(authorization)
        async with async_engine.connect() as connection:
            runner_id = (await connection.execute(query, {"token_hash": digest})).scalar()
        return _found(runner_id)

    @app.get("/bench/counters", tags=["bench"])
    def database_counters() -> dict[str, int]:
        return dict(counters)

    return app


def create_hello_app() -> FastAPI:
    app = FastAPI()

    @app.get("/hello")
    async def hello() -> dict[str, str]:
        return {"hello": "world"}

    return app
