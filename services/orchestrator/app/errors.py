"""Domain errors: one base class, rendered to JSON by one handler (`install_error_handlers`)."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any, ClassVar

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.codes import StatusCode

log = structlog.get_logger(__name__)

# PostgreSQL's SQLSTATE for a row locked by someone else under NOWAIT (lock_not_available).
LOCK_NOT_AVAILABLE = "55P03"
# Seconds a client waits before trying again after the database failed (Retry-After).
DATABASE_RETRY_AFTER_S = 5


class ErrorBody(BaseModel):
    """Every 4xx/5xx body (docs/contract.md §3): a stable `error` code and a human `message`."""

    error: str
    message: str
    detail: dict[str, Any] | None = None


# The error responses every API route documents in OpenAPI (422 replaces FastAPI's default shape).
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody} for status in (400, 401, 404, 409, 413, 422, 502, 503)
}


class AppError(Exception):
    """An error with a stable `code` from the contract's vocabulary (docs/contract.md §3)."""

    code: ClassVar[str] = "invalid_request"
    status: ClassVar[int] = 400
    default_message: ClassVar[str] = "The request is not valid."

    def __init__(self, message: str | None = None, *, detail: dict[str, Any] | None = None) -> None:
        self.message = message or self.default_message
        self.detail = detail
        # True when the work done before the error must still be committed (a spent link attempt).
        self.persist = False
        super().__init__(self.message)

    def headers(self) -> dict[str, str]:
        return {}


class InvalidRequest(AppError):
    pass


class InvalidProfile(AppError):
    """A profile whose values are each valid but do not fit together (e.g. resting heart rate
    above max); the detail lists the problems as a validation error does."""

    status = 422
    default_message = "The profile's values do not fit together."


class Unauthenticated(AppError):
    code = "unauthenticated"
    status = 401
    default_message = "A valid bearer token is required."

    def headers(self) -> dict[str, str]:
        return {"WWW-Authenticate": "Bearer"}


class NotFound(AppError):
    code = "not_found"
    status = 404
    default_message = "Not found."


class ProfileRequired(AppError):
    code = "profile_required"
    status = 409
    default_message = "Submit your profile before linking Strava."


class RedirectUriNotAllowed(AppError):
    code = "redirect_uri_not_allowed"
    default_message = "This redirect_uri is not on the allow-list."


class InvalidState(AppError):
    code = StatusCode.INVALID_STATE
    default_message = "This link attempt is unknown or was already used. Start again."


class StateExpired(AppError):
    code = StatusCode.STATE_EXPIRED
    default_message = "This link attempt expired. Start again."


class PkceMismatch(AppError):
    code = StatusCode.PKCE_MISMATCH
    default_message = "The code_verifier does not match the code_challenge."


class AccessDenied(AppError):
    code = StatusCode.ACCESS_DENIED
    default_message = "Strava access was not granted."


class InsufficientScope(AppError):
    code = StatusCode.INSUFFICIENT_SCOPE
    default_message = "Coach George needs permission to read your activities."


class AthleteAlreadyLinked(AppError):
    code = StatusCode.ATHLETE_ALREADY_LINKED
    status = 409
    default_message = "This Strava athlete is already linked to another Coach George account."


class NotLinked(AppError):
    code = StatusCode.NOT_LINKED
    status = 409
    default_message = "No Strava account is linked."


class KeyUnavailable(AppError):
    code = StatusCode.KEY_UNAVAILABLE
    status = 503
    default_message = "The stored Strava credentials cannot be decrypted with the configured keys."


class StravaBadGateway(AppError):
    code = StatusCode.STRAVA_UNAVAILABLE
    status = 502
    default_message = "Strava did not answer. Try again in a moment."


class StravaAthleteLimit(AppError):
    """Strava refused the link: the app's connected-athlete capacity is full (an operator must
    ask Strava for more). Not a fault of ours or the runner's, and retrying does not help."""

    code = StatusCode.STRAVA_ATHLETE_LIMIT
    status = 409
    default_message = (
        "Strava is not letting Coach George connect more athletes right now: our app has reached "
        "Strava's limit of connected athletes. Nothing is wrong on your side; we have been told "
        "and are asking Strava for more room."
    )


class ReauthRequired(AppError):
    code = StatusCode.REAUTH_REQUIRED
    status = 400
    default_message = "Strava refused the authorization. Connect again."


class WebhookVerificationFailed(AppError):
    code = "invalid_verify_token"
    status = 403
    default_message = "The subscription cannot be validated with this verify token."


class ServiceUnavailable(AppError):
    """A dependency of ours (broker, database) is down; `retry_after` in seconds."""

    code = "service_unavailable"
    status = 503
    default_message = "The service is temporarily unavailable. Try again shortly."

    def __init__(self, message: str | None = None, *, retry_after: int = 30) -> None:
        super().__init__(message)
        self.retry_after = retry_after

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)}


class InternalError(AppError):
    """A defect of ours: the same JSON shape as every other error, never the exception's text."""

    code = "internal_error"
    status = 500
    default_message = "Something went wrong on our side. Try again in a moment."


class PayloadTooLarge(AppError):
    code = "payload_too_large"
    status = 413
    default_message = "The request body is too large."


class RateLimited(AppError):
    """Too many requests from one client; `retry_after` in seconds."""

    code = StatusCode.RATE_LIMITED
    status = 429
    default_message = "Too many requests. Try again later."

    def __init__(self, message: str | None = None, *, retry_after: int) -> None:
        super().__init__(message, detail={"retry_after": retry_after})
        self.retry_after = retry_after

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)}


class SyncTooSoon(RateLimited):
    """A manual sync inside the runner's cooldown (MANUAL_SYNC_COOLDOWN_SECONDS): 429 with the
    time the next one is accepted, in `detail.retry_at` (and `retry_after`, `Retry-After`)."""

    default_message = "You synced a moment ago. Try again later."

    def __init__(self, retry_at: datetime, *, now: datetime) -> None:
        super().__init__(retry_after=max(1, math.ceil((retry_at - now).total_seconds())))
        self.detail = {"retry_at": retry_at.isoformat(), "retry_after": self.retry_after}


def error_body(code: str, message: str, detail: dict[str, Any] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"error": code, "message": message}
    if detail is not None:
        body["detail"] = detail
    return body


def _json_safe(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def app_error_response(exc: AppError) -> JSONResponse:
    """The one rendering of a domain error (the handler below, and pure ASGI middleware)."""
    return JSONResponse(
        error_body(exc.code, exc.message, exc.detail), exc.status, headers=exc.headers()
    )


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(AppError)
    async def _app_error(_: Request, exc: AppError) -> JSONResponse:
        return app_error_response(exc)

    @app.exception_handler(OperationalError)
    @app.exception_handler(InterfaceError)
    @app.exception_handler(PoolTimeout)
    async def _database_unavailable(_: Request, exc: Exception) -> JSONResponse:
        # The database refused, hung or ran out of connections: a dependency is down (503).
        return app_error_response(database_unavailable(exc))

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        # Field locations and messages only: never echo the submitted values (they may be secrets).
        problems = [
            {"loc": [str(part) for part in error["loc"]], "msg": str(error["msg"])}
            for error in exc.errors()
        ]
        return JSONResponse(
            error_body(
                "invalid_request",
                "The request body or parameters are not valid.",
                {"problems": problems},
            ),
            422,
        )

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        # A bug, not bad input. The type only: an exception's text can carry values (secrets).
        log.error("http.internal_error", error=type(exc).__name__)
        return app_error_response(InternalError())

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {401: "unauthenticated", 404: "not_found", 413: "payload_too_large"}.get(
            exc.status_code, "invalid_request"
        )
        return JSONResponse(error_body(code, str(exc.detail)), exc.status_code, headers=exc.headers)


def database_unavailable(exc: Exception) -> ServiceUnavailable:
    """What the client is told when the database refused, hung (connect or statement timeout),
    ran out of pooled connections, or a row it needs is locked by a concurrent request: 503
    service_unavailable with Retry-After. The log names the error's type only: a driver's
    message can carry the statement and its parameters."""
    driver_error = getattr(exc, "orig", None)
    if getattr(driver_error, "sqlstate", None) == LOCK_NOT_AVAILABLE:
        return ServiceUnavailable(
            "Another request is changing the same data. Try again in a moment.", retry_after=1
        )
    log.warning(
        "db.unavailable",
        error=type(exc).__name__,
        driver_error=type(driver_error).__name__ if driver_error is not None else None,
    )
    if isinstance(exc, PoolTimeout):
        return ServiceUnavailable("The service is busy. Try again in a moment.", retry_after=1)
    return ServiceUnavailable(
        "The database is unavailable. Try again shortly.", retry_after=DATABASE_RETRY_AFTER_S
    )
