"""Strava's error bodies (the swagger ``Fault``), reproduced from recorded responses."""

from __future__ import annotations

import json
from typing import Final


class StravaError(Exception):
    """Raised by handlers; rendered as a Fault body with Strava's JSON content type."""

    def __init__(self, status: int, message: str, resource: str, field: str, code: str) -> None:
        super().__init__(f"{status} {message}: {resource}/{field}/{code}")
        self.status = status
        self.body = fault_body(message, resource, field, code)


def fault_body(message: str, resource: str, field: str, code: str) -> bytes:
    """Byte-for-byte like Strava: compact JSON, keys in this order."""
    error = {"resource": resource, "field": field, "code": code}
    return json.dumps({"message": message, "errors": [error]}, separators=(",", ":")).encode()


JSON_CONTENT_TYPE: Final = "application/json; charset=utf-8"


def bad_request(resource: str, field: str, code: str = "invalid") -> StravaError:
    return StravaError(400, "Bad Request", resource, field, code)


def invalid_access_token() -> StravaError:
    return StravaError(401, "Authorization Error", "Athlete", "access_token", "invalid")


def missing_activity_read() -> StravaError:
    return StravaError(
        401, "Authorization Error", "AccessToken", "activity:read_permission", "missing"
    )


def application_invalid() -> StravaError:
    """Wrong client secret on /oauth/token."""
    return StravaError(401, "Authorization Error", "Application", "", "invalid")


def invalid_client_id() -> StravaError:
    return bad_request("Application", "client_id")


def invalid_redirect_uri() -> StravaError:
    return bad_request("Application", "redirect_uri")


def invalid_code() -> StravaError:
    return bad_request("RequestToken", "code")


def invalid_refresh_token() -> StravaError:
    return bad_request("RefreshToken", "refresh_token")


def future_timestamp(field: str) -> StravaError:
    """Epoch *milliseconds* where seconds are expected."""
    return bad_request("Application", field, "future")


def athlete_capacity_exceeded() -> StravaError:
    """The app's connected-athlete cap is reached. The message is the one Strava's own error page
    shows ("Error 403: Limit of connected athletes exceeded"); the JSON entry is unrecorded."""
    return StravaError(
        403, "Limit of connected athletes exceeded", "Application", "athletes", "limit exceeded"
    )


def activity_not_found() -> StravaError:
    return StravaError(404, "Record Not Found", "Activity", "id", "invalid")


def path_not_found() -> StravaError:
    return StravaError(404, "Record Not Found", "resource", "path", "invalid")


RATE_LIMIT_EXCEEDED: Final = fault_body(
    "Rate Limit Exceeded", "Application", "rate limit", "exceeded"
)
