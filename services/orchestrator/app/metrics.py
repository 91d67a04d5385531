"""Prometheus metrics, the generic part: the registry and multiprocess mode (docs/contract.md §4).

The API and the workers are separate processes, so metrics use prometheus_client's multiprocess
mode whenever PROMETHEUS_MULTIPROC_DIR is set (the `serve`, `worker`, `beat` and `dev` commands
set it, default var/prometheus): every process writes its samples to files there and /metrics on
the API aggregates them, so the API shows the workers' sync metrics. Without the variable (tests,
a single process) the default registry is used. The Strava counters are in app/strava/metrics.py.
"""

from __future__ import annotations

import os

from prometheus_client import REGISTRY, CollectorRegistry, generate_latest

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def render_metrics() -> bytes:
    if os.environ.get(MULTIPROC_ENV):
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry)
    return generate_latest(REGISTRY)


def mark_process_dead(pid: int) -> None:
    """Drop a finished worker process's live gauges (multiprocess mode only)."""
    if os.environ.get(MULTIPROC_ENV):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]
