"""Key rotation: re-encrypt rows written under an older key with the primary key."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.security import KeyRing
from app.strava.credentials import (
    open_link,
    open_pending_deauthorization,
    seal_link,
    seal_pending_deauthorization,
)
from app.strava.models import PendingDeauthorization, StravaLink


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
