"""The whole mutable state of one emulator instance, resettable to its seeded start."""

from __future__ import annotations

from strava_emulator.clock import Clock
from strava_emulator.config import EmulatorConfig
from strava_emulator.faults import FaultRegistry
from strava_emulator.ratelimit import RateLimiter
from strava_emulator.requestlog import RequestLog
from strava_emulator.store import Store
from strava_emulator.tokens import TokenStore
from strava_emulator.webhooks import WebhookHub


class EmulatorState:
    def __init__(self, config: EmulatorConfig) -> None:
        self.config = config
        self.clock = Clock()
        self.faults = FaultRegistry()
        self.requests = RequestLog()
        self.webhooks = WebhookHub(self)
        self._build()

    def _build(self) -> None:
        self.store = Store(self.config, self.clock)
        self.tokens = TokenStore(self.config.code_ttl_seconds, self.config.access_token_ttl_seconds)
        self.limiter = RateLimiter(self.config.overall_limit, self.config.read_limit)
        self.athlete_capacity = self.config.athlete_capacity

    def reset(self) -> None:
        """Back to the initial seeded state: data, tokens, clock, limits, faults and log;
        no push subscription."""
        self.webhooks.reset()
        self.clock.reset()
        self.faults.clear()
        self.requests.clear()
        self._build()
