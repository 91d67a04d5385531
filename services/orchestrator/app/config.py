"""Settings: one class, read from the environment (names: docs/contract.md §7)."""

from __future__ import annotations

import math
from functools import lru_cache
from pathlib import Path
from typing import Annotated

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

# The embedded defaults keep their files here (SQLite database, broker, sandbox key).
VAR_DIR = Path("var")
# The bundled emulator's application credentials (strava_emulator.config defaults).
SANDBOX_CLIENT_ID = "1000"
SANDBOX_CLIENT_SECRET = "sandbox-secret"
# A task's soft time limit (SoftTimeLimitExceeded: the sync records its run, then stops) is this
# share of the hard limit (the pool process is killed): the rest is left for the recording.
SOFT_TIME_LIMIT_SHARE = 0.85
# Tries of one Strava GET (StravaClient's get_attempts): the soft limit must outlast a page whose
# every try times out, or a slow Strava turns into crashed syncs instead of retried ones.
STRAVA_GET_ATTEMPTS = 3
# The sandbox's webhook verify token: the sandbox needs no settings (production sets its own).
SANDBOX_WEBHOOK_VERIFY_TOKEN = "sandbox-verify-token"


def _split_commas(value: object) -> object:
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    database_url: str = f"sqlite:///{VAR_DIR}/orchestrator.db"
    # None → the embedded broker (kombu's SQLAlchemy transport on SQLite) and an embedded budget.
    redis_url: str | None = None

    # No client id → sandbox mode: the bundled Strava emulator stands in for Strava.
    strava_client_id: str | None = None
    strava_client_secret: SecretStr | None = None
    strava_api_base_url: str = "https://www.strava.com/api/v3"
    strava_oauth_base_url: str = "https://www.strava.com/oauth"
    strava_redirect_uris: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["coachai://oauth/strava"]
    )
    strava_scopes: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["read", "activity:read_all"]
    )
    strava_timeout_seconds: float = Field(default=10.0, gt=0)

    # Comma list of base64url 32-byte AES keys; the first encrypts, all decrypt.
    token_encryption_keys: SecretStr | None = None

    sync_window_days: int = Field(default=28, ge=1, le=365)
    sync_interval_seconds: int = Field(default=3600, ge=60)
    # Links covered by an active push subscription are reconciled by the 28-day listing this
    # often instead of polled every SYNC_INTERVAL_SECONDS (default: docs/architecture.md §4).
    sync_reconcile_seconds: int = Field(default=3 * 86400, ge=60)
    # How often beat looks for due syncs (each link's slot is spread over the interval).
    sync_tick_seconds: float = Field(default=60.0, gt=0)
    # The Celery queue of sync tasks (tests use one of their own per session).
    sync_queue: str = "strava"
    # Key prefix of the shared rate budget in Redis.
    rate_budget_prefix: str = "strava:budget"
    # Share of each Strava window that syncs leave for the link flow (code exchange, unlink).
    rate_budget_reserve: float = Field(default=0.05, ge=0, lt=1)
    # A task runs at most this long; the broker redelivers an unacknowledged one after the
    # visibility timeout, which must be longer or a running sync would be delivered twice.
    task_time_limit_seconds: int = Field(default=600, ge=1)
    broker_visibility_timeout_seconds: int = Field(default=3600, ge=1)
    # Deliveries of one sync run: a run whose every attempt died with its process (a poison task,
    # e.g. one that crashes the interpreter) is failed instead of being redelivered forever.
    sync_max_attempts: int = Field(default=3, ge=1)
    # A running sync renews its lease before every Strava request; one not renewed for this long
    # has lost its worker and is failed (a manual sync then starts a new one) (strava/lease.py).
    sync_lease_seconds: int = Field(default=120, ge=1)
    # A queued sync whose message has not been picked up for this long is enqueued again.
    stale_queued_seconds: int = Field(default=600, ge=1)
    link_attempt_ttl_seconds: int = 600
    # A runner's manual syncs: at most one per cooldown (a request inside it gets 429
    # rate_limited with retry_at), and at most this share of each 15-minute Strava window
    # for any one runner, so that nobody can spend everyone's budget (docs/architecture.md §5).
    manual_sync_cooldown_seconds: int = Field(default=300, ge=0)
    rate_budget_runner_share: float = Field(default=0.1, gt=0, le=1)

    # The database under load or down (docs/architecture.md §1): the pool and the API's threads
    # are sized together (app.db.api_thread_tokens), nobody waits long for either, and a
    # database that hangs or refuses answers 503 service_unavailable instead of hanging.
    db_pool_size: int = Field(default=10, ge=1)
    db_max_overflow: int = Field(default=10, ge=0)
    db_pool_timeout_seconds: float = Field(default=5.0, gt=0)
    db_connect_timeout_seconds: int = Field(default=5, ge=1)
    db_statement_timeout_seconds: float = Field(default=30.0, gt=0)
    # The longest /readyz waits for its checks before it answers not_ready.
    readyz_timeout_seconds: float = Field(default=3.0, gt=0)

    # Request bodies above this are refused unread (413); the largest body of the API is < 4 KB.
    max_request_body_bytes: int = Field(default=64 * 1024, ge=1024)
    # Anonymous POST /auth/sessions: at most this many per client address and window (429).
    session_create_limit: int = Field(default=10, ge=1)
    session_create_window_seconds: int = Field(default=60, ge=1)
    # Key prefix of the per-client request counters in Redis.
    rate_limit_prefix: str = "orchestrator:ratelimit"
    # A runner's bearer token stops working this long after it was issued (401).
    session_ttl_seconds: int = Field(default=30 * 24 * 3600, ge=60)
    # Webhooks (docs/strava.md §5, docs/contract.md §7). The handshake is answered only for this
    # token; unset → SANDBOX_WEBHOOK_VERIFY_TOKEN in sandbox mode, else no handshake succeeds.
    strava_webhook_verify_token: SecretStr | None = None
    # An unguessable last segment of the callback path (/api/v1/strava/webhook/<secret>), so the
    # URL itself is a shared secret: Strava does not sign its events.
    strava_webhook_path_secret: SecretStr | None = None
    # More open events than this for one runner → one window listing instead of N reads.
    webhook_burst_threshold: int = Field(default=10, ge=1)
    # A pending event whose processing task has not run for this long is sent again by the tick.
    webhook_stale_pending_seconds: int = Field(default=120, ge=1)

    # Retention (docs/retention.md): how often the beat applies it, and what it keeps.
    retention_interval_seconds: int = Field(default=3600, ge=1)
    # Strava workouts that started before the sync window and this many days more are deleted.
    retention_workout_grace_days: int = Field(default=1, ge=0, le=365)
    # A link whose grant is dead (reauth_required, revoked) this long loses tokens and workouts.
    retention_dead_link_days: int = Field(default=7, ge=0, le=365)
    # A deauthorization Strava has not confirmed after this many days is dropped (logged).
    retention_pending_deauthorization_days: int = Field(default=30, ge=1, le=3650)
    # Finished sync runs and link attempts older than this are deleted.
    retention_history_days: int = Field(default=30, ge=1, le=3650)

    # Where the API is reachable from a browser (printed by `orchestrator dev`, web redirect URI).
    public_base_url: str = "http://127.0.0.1:8000"
    # Sandbox mode only: where the bundled Strava emulator listens.
    sandbox_emulator_url: str = "http://127.0.0.1:8001"
    log_json: bool = False

    @field_validator("strava_redirect_uris", "strava_scopes", mode="before")
    @classmethod
    def _comma_list(cls, value: object) -> object:
        return _split_commas(value)

    @field_validator("database_url")
    @classmethod
    def _psycopg_driver(cls, value: str) -> str:
        # One driver for PostgreSQL: psycopg 3, whatever spelling the operator used.
        for prefix in ("postgres://", "postgresql://"):
            if value.startswith(prefix):
                return "postgresql+psycopg://" + value.removeprefix(prefix)
        return value

    @model_validator(mode="after")
    def _time_limit_below_visibility(self) -> Settings:
        if self.task_time_limit_seconds >= self.broker_visibility_timeout_seconds:
            raise ValueError(
                "TASK_TIME_LIMIT_SECONDS must be below BROKER_VISIBILITY_TIMEOUT_SECONDS"
            )
        return self

    @model_validator(mode="after")
    def _secrets_outside_sandbox(self) -> Settings:
        """Refuse to start, rather than fail every task later, when production lacks a secret."""
        if self.sandbox:
            return self
        missing = []
        if self.strava_client_secret is None or not self.strava_client_secret.get_secret_value():
            missing.append("STRAVA_CLIENT_SECRET")
        if not _split_commas(
            self.token_encryption_keys.get_secret_value() if self.token_encryption_keys else ""
        ):
            missing.append("TOKEN_ENCRYPTION_KEYS")
        if missing:
            raise ValueError(
                f"{' and '.join(missing)} must be set with STRAVA_CLIENT_ID (outside sandbox mode)"
            )
        return self

    @model_validator(mode="after")
    def _time_limit_outlasts_a_slow_page(self) -> Settings:
        minimum = self.min_task_time_limit_seconds
        if self.task_time_limit_seconds < minimum:
            raise ValueError(
                f"TASK_TIME_LIMIT_SECONDS={self.task_time_limit_seconds} is too short: with "
                f"STRAVA_TIMEOUT_SECONDS={self.strava_timeout_seconds:g} it must be at least "
                f"{minimum}, so that the soft limit ({SOFT_TIME_LIMIT_SHARE:.0%} of it) outlasts "
                f"one Strava request timing out {STRAVA_GET_ATTEMPTS} times"
            )
        return self

    @model_validator(mode="after")
    def _lease_outlasts_a_slow_page(self) -> Settings:
        minimum = self.min_task_time_limit_seconds
        if self.sync_lease_seconds < minimum:
            raise ValueError(
                f"SYNC_LEASE_SECONDS={self.sync_lease_seconds} is too short: with "
                f"STRAVA_TIMEOUT_SECONDS={self.strava_timeout_seconds:g} it must be at least "
                f"{minimum}, or a live sync waiting on a slow Strava would be declared lost"
            )
        return self

    @property
    def min_task_time_limit_seconds(self) -> int:
        return math.ceil(STRAVA_GET_ATTEMPTS * self.strava_timeout_seconds / SOFT_TIME_LIMIT_SHARE)

    @property
    def task_soft_time_limit_seconds(self) -> int:
        return math.floor(self.task_time_limit_seconds * SOFT_TIME_LIMIT_SHARE)

    @property
    def sandbox(self) -> bool:
        return self.strava_client_id is None

    # --- what the service actually uses: Strava, or in sandbox mode the bundled emulator ---

    @property
    def client_id(self) -> str:
        return self.strava_client_id or SANDBOX_CLIENT_ID

    @property
    def client_secret(self) -> str:
        if self.strava_client_secret is not None:
            return self.strava_client_secret.get_secret_value()
        if not self.sandbox:
            raise RuntimeError("STRAVA_CLIENT_SECRET must be set with STRAVA_CLIENT_ID")
        return SANDBOX_CLIENT_SECRET

    @property
    def webhook_verify_token(self) -> str | None:
        """Our `verify_token`; None outside sandbox mode when unset (webhooks are optional: the
        service starts and polls, and the validation GET is refused)."""
        if self.strava_webhook_verify_token is not None:
            token = self.strava_webhook_verify_token.get_secret_value()
            return token or None
        return SANDBOX_WEBHOOK_VERIFY_TOKEN if self.sandbox else None

    @property
    def api_base_url(self) -> str:
        if self.sandbox and "strava_api_base_url" not in self.model_fields_set:
            return f"{self.sandbox_emulator_url}/api/v3"
        return self.strava_api_base_url.rstrip("/")

    @property
    def oauth_base_url(self) -> str:
        if self.sandbox and "strava_oauth_base_url" not in self.model_fields_set:
            return f"{self.sandbox_emulator_url}/oauth"
        return self.strava_oauth_base_url.rstrip("/")

    @property
    def redirect_uris(self) -> list[str]:
        """The allow-list; in sandbox mode the web onboarding's own callback is on it too."""
        uris = list(self.strava_redirect_uris)
        if self.sandbox:
            web = f"{self.public_base_url.rstrip('/')}/onboarding/strava/callback"
            if web not in uris:
                uris.append(web)
        return uris

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def strava_authorize_url(self) -> str:
        return f"{self.oauth_base_url}/mobile/authorize"

    def encryption_keys(self) -> list[str]:
        """The key ring, refusing to run production without keys of its own."""
        if self.token_encryption_keys is not None:
            keys = _split_commas(self.token_encryption_keys.get_secret_value())
            assert isinstance(keys, list)
            if keys:
                return [str(key) for key in keys]
        if not self.sandbox:
            raise RuntimeError("TOKEN_ENCRYPTION_KEYS must be set outside sandbox mode")
        return [_sandbox_key()]


def _sandbox_key() -> str:
    """A key made once per checkout, so sandbox data survives restarts without configuration."""
    import base64
    import os

    path = VAR_DIR / "sandbox-token-key"
    if not path.exists():
        VAR_DIR.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(base64.urlsafe_b64encode(os.urandom(32)).decode())
    return path.read_text().strip()


@lru_cache
def get_settings() -> Settings:
    return Settings()
