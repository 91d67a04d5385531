"""Runner sessions and profiles."""

from __future__ import annotations

import uuid
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.clock import utcnow
from app.errors import Unauthenticated
from app.runners.models import Profile, Runner, RunnerSession
from app.runners.schemas import ProfileIn
from app.security import new_token, token_hash


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


def authenticate(session: Session, token: str) -> uuid.UUID:
    """The runner of a live token; an unknown or expired one is Unauthenticated."""
    runner_id = session.scalar(
        select(RunnerSession.runner_id).where(
            RunnerSession.token_hash == token_hash(token), RunnerSession.expires_at > utcnow()
        )
    )
    if runner_id is None:
        raise Unauthenticated()
    return runner_id


def get_profile(session: Session, runner_id: uuid.UUID) -> Profile | None:
    return session.get(Profile, runner_id)


def put_profile(session: Session, runner_id: uuid.UUID, data: ProfileIn) -> Profile:
    profile = session.get(Profile, runner_id)
    if profile is None:
        profile = Profile(runner_id=runner_id)
        session.add(profile)
    profile.display_name = data.display_name
    profile.timezone = data.timezone
    profile.weekly_distance_goal_km = data.weekly_distance_goal_km
    profile.updated_at = utcnow()
    session.flush()
    return profile
