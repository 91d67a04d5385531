"""Sealing and opening a link's Strava credentials (AES-GCM, row id + field as associated data),
and key rotation: re-encrypting rows written under an older key with the primary key."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, TypeVar

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

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


class SealedAthlete(Protocol):
    """What opening the athlete needs: a StravaLink, or a row of its columns."""

    @property
    def id(self) -> uuid.UUID: ...
    @property
    def key_id(self) -> str: ...
    @property
    def athlete_ciphertext(self) -> bytes: ...


def open_athlete(link: SealedAthlete, keyring: KeyRing) -> dict[str, Any]:
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
# A row that no configured key opens (its key removed, a corrupt or moved ciphertext) is skipped,
# left as it is and reported, so one bad row never stops the others from being rotated.

SealedRow = StravaLink | PendingDeauthorization
SealedRowT = TypeVar("SealedRowT", StravaLink, PendingDeauthorization)


@dataclass(frozen=True)
class UnreadableRow:
    table: str
    row_id: uuid.UUID
    key_id: str


@dataclass
class RotationReport:
    rotated: int = 0
    unreadable: list[UnreadableRow] = field(default_factory=list)
    # Locked by a sync or an unlink meanwhile (SKIP LOCKED): a second run gets them.
    busy: int = 0


@dataclass
class BatchResult:
    rotated: int = 0
    unreadable: list[UnreadableRow] = field(default_factory=list)
    # The last row id seen: the next batch starts after it (None: nothing left in the table).
    last_id: uuid.UUID | None = None


def count_stale_rows(session: Session, keyring: KeyRing) -> int:
    primary = keyring.primary_key_id
    links = session.scalar(select(func.count()).where(StravaLink.key_id != primary)) or 0
    pending = (
        session.scalar(select(func.count()).where(PendingDeauthorization.key_id != primary)) or 0
    )
    return links + pending


def rotate_all(
    sessions: sessionmaker[Session],
    keyring: KeyRing,
    *,
    batch_size: int,
    progress: Callable[[int], None] = lambda _: None,
) -> RotationReport:
    """Every stale row of every sealed table, one committed batch at a time; `progress` gets
    the number of rows each batch went through."""
    report = RotationReport()
    _rotate_table(sessions, keyring, StravaLink, report, batch_size, progress)
    _rotate_table(sessions, keyring, PendingDeauthorization, report, batch_size, progress)
    with sessions() as session:
        report.busy = count_stale_rows(session, keyring) - len(report.unreadable)
    return report


def _rotate_table(
    sessions: sessionmaker[Session],
    keyring: KeyRing,
    table: type[SealedRowT],
    report: RotationReport,
    batch_size: int,
    progress: Callable[[int], None],
) -> None:
    after: uuid.UUID | None = None
    while True:
        with sessions.begin() as session:
            batch = rotate_batch(session, keyring, table, after=after, batch_size=batch_size)
        if batch.last_id is None:
            return
        after = batch.last_id
        report.rotated += batch.rotated
        report.unreadable.extend(batch.unreadable)
        progress(batch.rotated + len(batch.unreadable))


def rotate_batch(
    session: Session,
    keyring: KeyRing,
    table: type[SealedRowT],
    *,
    after: uuid.UUID | None,
    batch_size: int,
) -> BatchResult:
    """Re-encrypt up to `batch_size` rows of `table` not under the primary key, in id order
    after `after` (so skipped rows are not met again)."""
    query = select(table).where(table.key_id != keyring.primary_key_id)
    if after is not None:
        query = query.where(table.id > after)
    rows = session.scalars(
        query.order_by(table.id).limit(batch_size).with_for_update(skip_locked=True)
    ).all()
    result = BatchResult(last_id=rows[-1].id if rows else None)
    for row in rows:
        try:
            _reseal(row, keyring)
        except KeyUnavailable:
            result.unreadable.append(UnreadableRow(table.__tablename__, row.id, row.key_id))
        else:
            result.rotated += 1
    return result


def _reseal(row: SealedRow, keyring: KeyRing) -> None:
    """Open with whichever key sealed it, seal with the primary (nothing changes if it fails)."""
    if isinstance(row, StravaLink):
        seal_link(
            row,
            keyring,
            open_link(row, keyring),
            access_token_expires_at=row.access_token_expires_at,
        )
        return
    tokens = open_pending_deauthorization(row, keyring)
    seal_pending_deauthorization(
        row,
        keyring,
        tokens.access_token,
        refresh_token=tokens.refresh_token,
        access_token_expires_at=row.access_token_expires_at,
    )
