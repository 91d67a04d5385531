"""Injected failures, set up through the admin API, consumed by matching Strava requests."""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import itertools
from dataclasses import dataclass, field
from typing import Literal

FaultKind = Literal["status", "latency", "timeout", "malformed_json", "non_json", "short_page"]

TIMEOUT_SECONDS = 60.0
"""How long a ``timeout`` fault holds the request: longer than any sane client timeout."""


@dataclass(slots=True)
class FaultRule:
    id: str
    method: str
    path: str
    """Exact path, or a shell-style pattern such as ``/api/v3/activities/*``."""
    kind: FaultKind
    remaining: int
    status: int = 503
    latency_ms: int = 0
    query: dict[str, str] = field(default_factory=dict)

    def matches(self, method: str, path: str, query: dict[str, str]) -> bool:
        if self.method not in ("*", method):
            return False
        if self.path != path and not fnmatch.fnmatchcase(path, self.path):
            return False
        return all(query.get(key) == value for key, value in self.query.items())


class HeldRequests:
    """Requests parked by ``timeout`` faults. Released early when the server stops, so a
    shutdown neither waits for them nor has to cancel them (and log tracebacks)."""

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._release: asyncio.Event | None = None

    async def hold(self, seconds: float) -> None:
        loop = asyncio.get_running_loop()
        if self._release is None or self._loop is not loop:
            self._loop, self._release = loop, asyncio.Event()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._release.wait(), seconds)

    def release_all(self) -> None:
        """Thread-safe: called from outside the server's event loop."""
        loop, release = self._loop, self._release
        if loop is not None and release is not None and not loop.is_closed():
            loop.call_soon_threadsafe(release.set)


class FaultRegistry:
    def __init__(self) -> None:
        self.rules: list[FaultRule] = []
        self.held = HeldRequests()
        self._ids = itertools.count(1)

    def add(
        self,
        *,
        method: str,
        path: str,
        kind: FaultKind,
        count: int = 1,
        status: int = 503,
        latency_ms: int = 0,
        query: dict[str, str] | None = None,
    ) -> FaultRule:
        rule = FaultRule(
            id=f"f{next(self._ids)}",
            method=method.upper(),
            path=path,
            kind=kind,
            remaining=count,
            status=status,
            latency_ms=latency_ms,
            query=dict(query or {}),
        )
        self.rules.append(rule)
        return rule

    def take(self, method: str, path: str, query: dict[str, str]) -> FaultRule | None:
        """The first matching rule, used up by one (oldest rules first)."""
        if not self.rules:
            return None
        for rule in self.rules:
            if rule.matches(method, path, query):
                rule.remaining -= 1
                if rule.remaining <= 0:
                    self.rules.remove(rule)
                return rule
        return None

    def clear(self) -> None:
        self.rules.clear()
