"""Runner sessions and profiles."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any

import structlog
from sqlalchemy import and_, bindparam, delete, select
from sqlalchemy.orm import Session

from app.clock import utcnow
from app.errors import InvalidProfile, Unauthenticated
from app.runners.models import Profile, Runner, RunnerSession
from app.runners.schemas import PHYSIOLOGY_FIELDS, ProfileIn, ProfileOut
from app.security import new_token, token_hash
from app.training.physiology import Physiology, Sex

log = structlog.get_logger(__name__)

# A linked provider's part of erasure: revoke its grant (or schedule that) and drop its data.
ForgetRunner = Callable[[Session, uuid.UUID], None]


def create_session(session: Session, *, ttl: timedelta) -> tuple[RunnerSession, str]:
    """An anonymous onboarding runner and its bearer token (returned once, stored hashed),
    valid for `ttl`."""
    now = utcnow()
    runner = Runner(id=uuid.uuid4(), created_at=now)
    token = new_token()
    session.add(runner)
    session.flush()
    runner_session = RunnerSession(
        token_hash=token_hash(token), runner_id=runner.id, created_at=now, expires_at=now + ttl
    )
    session.add(runner_session)
    return runner_session, token


# The runner_sessions table for reads that fold the token check into their first statement:
# select from it, filtered by LIVE_SESSION (bound parameters `token_hash` and `now`, filled by
# `live_session_parameters`), and join the runner's rows on its `runner_id`.
RUNNER_SESSIONS = RunnerSession.__table__
LIVE_SESSION = and_(
    RUNNER_SESSIONS.c.token_hash == bindparam("token_hash"),
    RUNNER_SESSIONS.c.expires_at > bindparam("now"),
)

# Built once (Core, bound parameters): every authenticated request runs it.
_RUNNER_OF_TOKEN = select(RUNNER_SESSIONS.c.runner_id).where(LIVE_SESSION)


def live_session_parameters(token: str) -> dict[str, Any]:
    """LIVE_SESSION's parameters for a bearer token: its hash, and now (expired ones are out)."""
    return {"token_hash": token_hash(token), "now": utcnow()}


def authenticate(session: Session, token: str) -> uuid.UUID:
    """The runner of a live token; an unknown or expired one is Unauthenticated."""
    runner_id: uuid.UUID | None = session.scalar(_RUNNER_OF_TOKEN, live_session_parameters(token))
    if runner_id is None:
        raise Unauthenticated()
    return runner_id


# Built once: the profile summary, which the app polls, reads it on every request.
_PROFILE_OF_RUNNER = select(Profile).where(Profile.runner_id == bindparam("runner_id"))


def get_profile(session: Session, runner_id: uuid.UUID) -> Profile | None:
    return session.scalar(_PROFILE_OF_RUNNER, {"runner_id": runner_id})


# The profile's columns for a read that joins `profiles` (outer: a runner may have none yet),
# labelled `profile_<column>` so that they never clash with the read's own columns.
PROFILES = Profile.__table__
PROFILE_COLUMNS = tuple(column.label(f"profile_{column.key}") for column in PROFILES.c)


def profile_from_row(row: Any) -> ProfileOut | None:
    """The profile a row of PROFILE_COLUMNS carries, as the API shows it (no ORM object: a read
    has nothing to write back); None when the outer join found none."""
    if row.profile_runner_id is None:
        return None
    return ProfileOut(
        **{column.key: getattr(row, f"profile_{column.key}") for column in PROFILES.c}
    )


def put_profile(session: Session, runner_id: uuid.UUID, data: ProfileIn) -> Profile:
    profile = session.get(Profile, runner_id)
    if profile is None:
        profile = Profile(runner_id=runner_id)
        session.add(profile)
    profile.display_name = data.display_name
    profile.timezone = data.timezone
    profile.weekly_distance_goal_km = data.weekly_distance_goal_km
    # Physiology: only the fields sent are changed (ProfileIn's docstring).
    for name in PHYSIOLOGY_FIELDS:
        if name in data.model_fields_set:
            setattr(profile, name, getattr(data, name))
    _check_heart_rates(profile)
    profile.updated_at = utcnow()
    session.flush()
    return profile


def _check_heart_rates(profile: Profile) -> None:
    """Resting < threshold < max, among the heart rates the profile holds after this change."""
    rates = [
        (name, value)
        for name in ("resting_hr", "threshold_hr", "max_hr")
        if (value := getattr(profile, name)) is not None
    ]
    problems = [
        {"loc": ["body", higher], "msg": f"{higher} must be above {lower} ({low})"}
        for (lower, low), (higher, high) in itertools.pairwise(rates)
        if high <= low
    ]
    if problems:
        raise InvalidProfile(
            "Heart rates must rise from resting to threshold to max.",
            detail={"problems": problems},
        )


def physiology(profile: Profile | ProfileOut | None) -> Physiology:
    """What the runner told us, as the training-load model reads it."""
    if profile is None:
        return Physiology()
    return Physiology(
        sex=Sex(profile.sex) if profile.sex else None,
        max_hr=profile.max_hr,
        resting_hr=profile.resting_hr,
        threshold_hr=profile.threshold_hr,
        threshold_pace_s_per_km=profile.threshold_pace_s_per_km,
        ftp_w=profile.ftp_w,
    )


def erase_runner(
    session: Session, runner_id: uuid.UUID, *, forget: Sequence[ForgetRunner] = ()
) -> None:
    """Erase the runner and everything derived from them (docs/retention.md §3).

    Each linked provider first revokes its grant and drops its data (`forget`); then the runner
    row goes, and ON DELETE CASCADE takes every row that names them: sessions (their token is
    401 at once), profile, link attempts, sync runs, workouts of any source."""
    for forget_runner in forget:
        forget_runner(session, runner_id)
    session.execute(delete(Runner).where(Runner.id == runner_id))
    session.flush()
    log.info("runner.erased", runner_id=str(runner_id))
