"""The broker probe (a manual sync and /readyz ask it) reuses one connection per broker URL."""

from __future__ import annotations

from app.config import Settings
from app.worker import _probe_client, broker_available


def test_repeated_probes_reuse_one_redis_connection(settings: Settings, redis_url: str) -> None:
    on_redis = settings.model_copy(update={"redis_url": redis_url})
    _probe_client.cache_clear()

    assert all(broker_available(on_redis) for _ in range(5))

    pool = _probe_client(redis_url).connection_pool
    assert pool._created_connections == 1  # redis-py keeps no public count
