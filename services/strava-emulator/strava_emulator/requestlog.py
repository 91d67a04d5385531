"""A bounded log of the Strava-facing requests the emulator answered (for test assertions)."""

from __future__ import annotations

from collections import deque
from typing import Any, Final

SECRET_PARAMS: Final = frozenset({"client_secret", "code", "refresh_token", "access_token"})
"""Never logged: the log is readable by anyone who can reach the admin API."""


class RequestLog:
    def __init__(self, maxlen: int = 10_000) -> None:
        self.entries: deque[dict[str, Any]] = deque(maxlen=maxlen)
        # Bumped by `clear`: a request is logged when it ends, and one that began before a clear
        # (held by a latency fault, its client long gone) must not show up after it.
        self.generation = 0

    def record(
        self,
        *,
        method: str,
        path: str,
        query: dict[str, str],
        status: int,
        athlete_id: int | None,
        at: str,
        generation: int | None = None,
    ) -> None:
        """Log a request that ended; `generation`: the log's when it began (None: now)."""
        if generation is not None and generation != self.generation:
            return
        self.entries.append(
            {
                "method": method,
                "path": path,
                "query": {k: v for k, v in query.items() if k not in SECRET_PARAMS},
                "status": status,
                "athlete_id": athlete_id,
                "at": at,
            }
        )

    def find(self, path: str | None = None, method: str | None = None) -> list[dict[str, Any]]:
        return [
            entry
            for entry in self.entries
            if (path is None or entry["path"] == path)
            and (method is None or entry["method"] == method.upper())
        ]

    def clear(self) -> None:
        self.entries.clear()
        self.generation += 1
