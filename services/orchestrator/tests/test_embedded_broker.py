"""The embedded broker (kombu's SQLAlchemy transport on SQLite) does not grow without bound."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from app.worker import prune_embedded_broker
from kombu.connection import Connection
from sqlalchemy import create_engine, text


def _messages(url: str) -> list[tuple[bool]]:
    engine = create_engine(url.removeprefix("sqla+"))
    with engine.connect() as connection:
        rows = connection.execute(text("SELECT visible FROM kombu_message ORDER BY id")).all()
    engine.dispose()
    return [(bool(row[0]),) for row in rows]


def test_delivered_messages_are_pruned_and_pending_ones_kept(tmp_path: Path) -> None:
    url = f"sqla+sqlite:///{tmp_path}/broker.db"
    with Connection(url) as connection:  # type: ignore[no-untyped-call]
        queue = connection.SimpleQueue("sync")
        for number in range(3):
            queue.put({"n": number})
        delivered = queue.get(timeout=1)
        delivered.ack()
        queue.close()
    assert _messages(url) == [(False,), (True,), (True,)]

    # Just delivered: younger than the cut-off, so kept (a slow worker may still hold it).
    assert prune_embedded_broker(url) == 0
    assert prune_embedded_broker(url, older_than=timedelta(seconds=-1)) == 1
    assert _messages(url) == [(True,), (True,)]
