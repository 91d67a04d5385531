from __future__ import annotations

from datetime import timedelta

from fastapi import APIRouter, Depends

from app.deps import SessionDep, SettingsDep, limit_session_creation, no_store
from app.errors import ErrorBody
from app.runners import service
from app.runners.schemas import SessionCreate, SessionOut

router = APIRouter(prefix="/api/v1/auth", tags=["auth"])


@router.post(
    "/sessions",
    status_code=201,
    dependencies=[Depends(limit_session_creation), Depends(no_store)],
    responses={429: {"model": ErrorBody, "description": "Too many sessions from this client"}},
)
def create_session(
    session: SessionDep, settings: SettingsDep, _: SessionCreate | None = None
) -> SessionOut:
    runner_session, token = service.create_session(
        session, ttl=timedelta(seconds=settings.session_ttl_seconds)
    )
    return SessionOut(
        runner_id=runner_session.runner_id,
        access_token=token,
        expires_at=runner_session.expires_at,
    )
