"""Emulator settings. Defaults mirror a fresh Strava API application."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class EmulatorConfig(BaseModel):
    """Everything that shapes an emulator instance; the same config gives the same data."""

    model_config = ConfigDict(frozen=True)

    seed: int = 42
    athletes: int = Field(default=25, ge=0, le=99_999)
    """Sandbox athletes created at start-up (their activity history is generated lazily)."""
    client_id: int = 1000
    client_secret: str = "sandbox-secret"
    callback_domain: str = "localhost"
    history_days: int = Field(default=120, ge=0)
    overall_limit: tuple[int, int] = (200, 2000)
    """(15-minute, daily) limit for all requests, like Strava's default app tier."""
    read_limit: tuple[int, int] = (100, 1000)
    """(15-minute, daily) limit for "non-upload" requests; every emulated endpoint is one."""
    code_ttl_seconds: int = 600
    access_token_ttl_seconds: int = 21600
    webhook_timeout_seconds: float = Field(default=2.0, gt=0)
    """Strava's limit for the callback's answer, to the validation GET and to each event POST."""
    webhook_retry_delay_seconds: float = Field(default=120.0, ge=0)
    """Wait before re-sending an unacknowledged event (Strava's spacing is undocumented; about
    2 minutes was observed). Tests make it small."""
    webhook_scan_seconds: float = Field(default=1.0, ge=0)
    """How often (real seconds) generated activities that have "appeared" since the last check
    become create events; 0 turns the periodic check off (clock moves still trigger one)."""
    athlete_capacity: int | None = Field(default=None, ge=0)
    """How many athletes may hold a grant at once (Strava's "athlete capacity"; the 2026 Standard
    tier allows 10). None: unlimited. A code exchange for one more athlete gets a 403."""
