from __future__ import annotations

from fastapi import APIRouter

from app.deps import SessionDep
from app.runners import service
from app.runners.schemas import SessionCreate, SessionOut

router = APIRouter(prefix="/api/v1/auth", tags=["auth"])


@router.post("/sessions", status_code=201)
def create_session(session: SessionDep, _: SessionCreate | None = None) -> SessionOut:
    runner, token = service.create_session(session)
    return SessionOut(runner_id=runner.id, access_token=token)
