"""Sealing and opening a link's Strava credentials (AES-GCM, row id + field as associated data)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from app.errors import KeyUnavailable
from app.security import KeyRing, KeyRingError
from app.strava.models import PendingDeauthorization, StravaLink


@dataclass(frozen=True)
class LinkCredentials:
    athlete: dict[str, Any] = field(repr=False)
    access_token: str = field(repr=False)
    refresh_token: str = field(repr=False)

    @property
    def athlete_id(self) -> int:
        return int(self.athlete["id"])


def _ad(table: str, row_id: object, column: str) -> str:
    return f"{table}:{row_id}:{column}"


def seal_link(
    link: StravaLink,
    keyring: KeyRing,
    credentials: LinkCredentials,
    *,
    access_token_expires_at: datetime,
) -> None:
    """(Re)encrypt every secret of `link` with the primary key; `link.id` must be set."""
    assert link.id is not None
    key_id, link.athlete_ciphertext = keyring.encrypt(
        json.dumps(credentials.athlete), _ad("strava_links", link.id, "athlete")
    )
    _, link.access_token_ciphertext = keyring.encrypt(
        credentials.access_token, _ad("strava_links", link.id, "access_token")
    )
    _, link.refresh_token_ciphertext = keyring.encrypt(
        credentials.refresh_token, _ad("strava_links", link.id, "refresh_token")
    )
    link.key_id = key_id
    link.athlete_index = keyring.blind_indexes(str(credentials.athlete_id))[0]
    link.access_token_expires_at = access_token_expires_at


def open_link(link: StravaLink, keyring: KeyRing) -> LinkCredentials:
    try:
        athlete = json.loads(
            keyring.decrypt(
                link.key_id, link.athlete_ciphertext, _ad("strava_links", link.id, "athlete")
            )
        )
        access = keyring.decrypt(
            link.key_id, link.access_token_ciphertext, _ad("strava_links", link.id, "access_token")
        )
        refresh = keyring.decrypt(
            link.key_id,
            link.refresh_token_ciphertext,
            _ad("strava_links", link.id, "refresh_token"),
        )
    except KeyRingError as exc:
        raise KeyUnavailable() from exc
    return LinkCredentials(athlete=athlete, access_token=access, refresh_token=refresh)


@dataclass(frozen=True)
class PendingTokens:
    access_token: str = field(repr=False)
    refresh_token: str | None = field(repr=False)


def seal_pending_deauthorization(
    pending: PendingDeauthorization,
    keyring: KeyRing,
    access_token: str,
    *,
    refresh_token: str | None = None,
    access_token_expires_at: datetime | None = None,
) -> None:
    assert pending.id is not None
    table = "strava_pending_deauthorizations"
    pending.key_id, pending.access_token_ciphertext = keyring.encrypt(
        access_token, _ad(table, pending.id, "access_token")
    )
    pending.refresh_token_ciphertext = (
        keyring.encrypt(refresh_token, _ad(table, pending.id, "refresh_token"))[1]
        if refresh_token is not None
        else None
    )
    pending.access_token_expires_at = access_token_expires_at


def open_pending_deauthorization(
    pending: PendingDeauthorization, keyring: KeyRing
) -> PendingTokens:
    table = "strava_pending_deauthorizations"
    try:
        access = keyring.decrypt(
            pending.key_id, pending.access_token_ciphertext, _ad(table, pending.id, "access_token")
        )
        refresh = (
            keyring.decrypt(
                pending.key_id,
                pending.refresh_token_ciphertext,
                _ad(table, pending.id, "refresh_token"),
            )
            if pending.refresh_token_ciphertext is not None
            else None
        )
    except KeyRingError as exc:
        raise KeyUnavailable() from exc
    return PendingTokens(access_token=access, refresh_token=refresh)
