"""Prometheus metrics (design.md §4). No activity content (names, routes, heart rate) here."""

from __future__ import annotations

from prometheus_client import REGISTRY, generate_latest


def render_metrics() -> bytes:
    return generate_latest(REGISTRY)
