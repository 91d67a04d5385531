from __future__ import annotations

from functools import partial

from fastapi import APIRouter, Response

from app.clock import utcnow
from app.db import Reads
from app.deps import KeyRingDep, ReaderDep, RunnerIdDep, SessionDep, SettingsDep
from app.routes.strava import StravaClientDep
from app.runners import service as runners
from app.runners.schemas import ProfileIn, ProfileOut
from app.strava import service as strava
from app.strava.schemas import ProfileSummary
from app.training import service as training

router = APIRouter(prefix="/api/v1/profile", tags=["profile"])


@router.put("")
def put_profile(session: SessionDep, runner_id: RunnerIdDep, body: ProfileIn) -> ProfileOut:
    profile = runners.put_profile(session, runner_id, body)
    return ProfileOut.model_validate(profile, from_attributes=True)


@router.delete("", status_code=204)
def delete_profile(
    session: SessionDep, runner_id: RunnerIdDep, keyring: KeyRingDep, client: StravaClientDep
) -> Response:
    """Erase the runner and everything derived from them; Strava is deauthorized first."""
    forget_strava = partial(strava.forget_runner, keyring=keyring, client=client)
    runners.erase_runner(session, runner_id, forget=[forget_strava])
    return Response(status_code=204)


@router.get("/summary")
async def get_summary(
    read: ReaderDep, keyring: KeyRingDep, settings: SettingsDep
) -> ProfileSummary:
    def summary(session: Reads, token: str) -> ProfileSummary:
        # One statement on PostgreSQL: the token, the status, the profile and the workouts,
        # whose rows serve the training figures and the status's window count alike.
        now = utcnow()
        row = strava.read_status_and_profile(session, token, now=now)
        profile = runners.profile_from_row(row)
        workouts = training.summary(
            session,
            row.runner_id,
            profile,
            window_days=settings.sync_window_days,
            now=now,
            history=row.history,
        )
        return ProfileSummary(
            profile=profile,
            strava=strava.render_status(
                row, keyring, workouts_in_window=workouts.workouts_in_window
            ),
            training=workouts.distance,
            load=workouts.load,
        )

    return await read(summary)
