"""Alembic environment: the URL comes from the caller (`app.migrations.upgrade`) or Settings."""

from __future__ import annotations

from alembic import context
from app.config import get_settings
from app.db import Base, EngineOptions, make_engine
from app.models import import_all_models
from sqlalchemy import Connection

import_all_models()
target_metadata = Base.metadata


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


connection = context.config.attributes.get("connection")
if connection is not None:
    _run(connection)
else:
    url = context.config.get_main_option("sqlalchemy.url") or get_settings().database_url
    # No statement timeout: DDL on a large table may take longer than a request may.
    engine = make_engine(url, EngineOptions(statement_timeout_s=None))
    with engine.connect() as conn:
        _run(conn)
    engine.dispose()
