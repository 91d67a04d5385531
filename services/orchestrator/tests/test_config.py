"""Settings refuse to start production without its secrets (rather than fail every task later)."""

from __future__ import annotations

import pytest
from app.config import Settings
from pydantic import ValidationError

KEY = "q1pEzX0JcDzLm1sXzUTPlTx2sAfE2F1sAlyo3qNQ_5U"


def test_production_without_the_encryption_keys_is_refused_at_start_up() -> None:
    with pytest.raises(ValidationError, match="TOKEN_ENCRYPTION_KEYS must be set"):
        Settings(strava_client_id="42", strava_client_secret="s", token_encryption_keys="")


def test_production_without_the_client_secret_is_refused_at_start_up() -> None:
    with pytest.raises(ValidationError, match="STRAVA_CLIENT_SECRET must be set"):
        Settings(strava_client_id="42", strava_client_secret=None, token_encryption_keys=KEY)


def test_production_with_both_secrets_starts() -> None:
    settings = Settings(strava_client_id="42", strava_client_secret="s", token_encryption_keys=KEY)

    assert settings.encryption_keys() == [KEY]


def test_sandbox_mode_needs_neither_secret() -> None:
    assert Settings(strava_client_id=None, strava_client_secret=None).sandbox
