"""Sealing and opening a link's Strava credentials (AES-GCM, row id + field as associated data),
and key rotation: re-encrypting rows written under an older key with the primary key."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

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


def open_athlete(link: StravaLink, keyring: KeyRing) -> dict[str, Any]:
    """The athlete (id and names) alone: the status shows it without decrypting either token."""
    try:
        athlete: dict[str, Any] = json.loads(
            keyring.decrypt(
                link.key_id, link.athlete_ciphertext, _ad("strava_links", link.id, "athlete")
            )
        )
    except KeyRingError as exc:
        raise KeyUnavailable() from exc
    return athlete


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
    access_token_expires_at: datetime | None = None


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
    return PendingTokens(
        access_token=access,
        refresh_token=refresh,
        access_token_expires_at=pending.access_token_expires_at,
    )


# --- key rotation (`orchestrator rotate-keys`) ---


def count_stale_rows(session: Session, keyring: KeyRing) -> int:
    primary = keyring.primary_key_id
    links = session.scalar(select(func.count()).where(StravaLink.key_id != primary)) or 0
    pending = (
        session.scalar(select(func.count()).where(PendingDeauthorization.key_id != primary)) or 0
    )
    return links + pending


def rotate_batch(session: Session, keyring: KeyRing, *, batch_size: int) -> int:
    """Re-encrypt up to `batch_size` stale rows; returns how many (0 when done)."""
    primary = keyring.primary_key_id
    links = session.scalars(
        select(StravaLink)
        .where(StravaLink.key_id != primary)
        .limit(batch_size)
        .with_for_update(skip_locked=True)
    ).all()
    for link in links:
        seal_link(
            link,
            keyring,
            open_link(link, keyring),
            access_token_expires_at=link.access_token_expires_at,
        )
    remaining = batch_size - len(links)
    pending_rows = (
        session.scalars(
            select(PendingDeauthorization)
            .where(PendingDeauthorization.key_id != primary)
            .limit(remaining)
            .with_for_update(skip_locked=True)
        ).all()
        if remaining > 0
        else []
    )
    for pending in pending_rows:
        tokens = open_pending_deauthorization(pending, keyring)
        seal_pending_deauthorization(
            pending,
            keyring,
            tokens.access_token,
            refresh_token=tokens.refresh_token,
            access_token_expires_at=pending.access_token_expires_at,
        )
    return len(links) + len(pending_rows)
