"""The Strava API v3 client: HTTP only (no database, settings, Redis); payloads.py models the JSON.

Every call goes through one `httpx2.Client` (shared, pooled: see `create_http_client`). The API is
always called with ``Authorization: Bearer``, never a token in the query. Each response's rate-limit
headers are parsed, logged (``strava.response``) and handed to ``on_response``, which is how the
sync layer feeds the shared rate budget and metrics. Idempotent GETs retry transport errors and
5xx with jittered exponential backoff (stamina); POSTs are never retried (an authorization code is
single use) and neither is 429 (a state, not a failure).

Errors (docs/strava.md §4). Messages, reprs and logs never carry tokens, codes or the client
secret::

    StravaError                 base; .status (int|None), .endpoint (str), .rate_limit, .fault
    ├── StravaAuthError         Strava refused the credentials
    │   ├── InvalidToken        401 Athlete/access_token/invalid: access token bad, expired or
    │   │                       revoked (also any other 401 from the API or /oauth/deauthorize)
    │   ├── ScopeMissing        401 AccessToken/<scope>_permission/missing
    │   ├── InvalidGrant        400 on /oauth/token: code or refresh token invalid, used or expired
    │   └── InvalidClient       400 Application/client_id/invalid, 401 Application//invalid
    │                           (our app credentials; any 401 on /oauth/token or
    │                           /push_subscriptions)
    ├── AthleteCapacityReached  403 "Limit of connected athletes exceeded" on /oauth/token: the
    │                           app's athlete capacity is full (docs/strava.md §1.11)
    ├── RateLimited             429; .retry_at (UTC: the next :00/:15/:30/:45, or the next
    │                           midnight when the daily window is spent), .window ("short"|"daily")
    ├── SubscriptionRefused     push subscriptions (docs/strava.md §5): any other 4xx, e.g. a
    │   │                       callback URL that is not http(s) or longer than 255 characters
    │   ├── CallbackNotVerified 400 PushSubscription/callback url/<why>: the validation GET got
    │   │                       no 200 within 2 s, or not the right hub.challenge echo
    │   ├── SubscriptionExists  400 PushSubscription//already exists: one per application
    │   └── SubscriptionNotFound 404 on DELETE /push_subscriptions/{id}
    ├── StravaUnreachable       5xx, transport errors and timeouts (after the retries for GETs)
    └── BadResponse             body not JSON / wrong shape, or another unexpected status
                                (e.g. 404 on GET /activities/{id}: check .status)
"""

from __future__ import annotations

import re
import ssl
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from importlib import metadata
from typing import Any, Literal, NoReturn, TypeVar

import httpx2
import stamina
import structlog
from celery.exceptions import SoftTimeLimitExceeded
from pydantic import ValidationError

from app.clock import utcnow
from app.strava.payloads import (
    ActivityPage,
    PushSubscription,
    SummaryActivity,
    SummaryAthlete,
    TokenResponse,
)
from app.strava.ratelimit import (
    RateLimitSnapshot,
    Window,
    next_short_window_start,
    parse_headers,
)

log = structlog.get_logger(__name__)

# Strava route templates, the only names endpoints get in errors, logs and metrics.
ATHLETE = "GET /athlete"
ATHLETE_ACTIVITIES = "GET /athlete/activities"
ACTIVITY = "GET /activities/{id}"
OAUTH_TOKEN = "POST /oauth/token"
OAUTH_DEAUTHORIZE = "POST /oauth/deauthorize"
SUBSCRIPTION_CREATE = "POST /push_subscriptions"
SUBSCRIPTION_LIST = "GET /push_subscriptions"
SUBSCRIPTION_DELETE = "DELETE /push_subscriptions/{id}"
_SUBSCRIPTION_ENDPOINTS = frozenset({SUBSCRIPTION_CREATE, SUBSCRIPTION_LIST, SUBSCRIPTION_DELETE})

MAX_PER_PAGE = 200
# Epoch seconds stay below 10**10 until the year 2286; epoch milliseconds passed it in 1970.
# Strava answers milliseconds with a confusing 400 "after: future" (docs/strava.md §3.1).
_MAX_EPOCH_SECONDS = 10**10
_MAX_FAULT_TEXT = 200
_REDACTED = "[redacted]"
# Fault entries that name the grant on /oauth/token (docs/strava.md §1.7, §1.11).
_GRANT_RESOURCES = frozenset({"RequestToken", "AuthorizationCode", "RefreshToken"})
_GRANT_FIELDS = frozenset({"code", "refresh_token"})
# The 403 Strava sends when the app's athlete capacity is full; its message is the only stable
# part (docs/strava.md §1.11).
_ATHLETE_CAPACITY_MESSAGE = "limit of connected athletes"
# RFC 6750 b64token: also keeps CR/LF (header injection) out of the Authorization header.
_BEARER_TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]+=*", re.ASCII)


# --- errors -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FaultEntry:
    """One entry of a Strava Fault's ``errors``: which ``resource``/``field`` and why (``code``)."""

    resource: str
    field: str
    code: str


@dataclass(frozen=True)
class Fault:
    """Strava's error body: ``{"message": ..., "errors": [{"resource","field","code"}]}``."""

    message: str
    errors: tuple[FaultEntry, ...]

    def has(
        self, *, resource: str | None = None, field: str | None = None, code: str | None = None
    ) -> bool:
        return any(
            (resource is None or error.resource == resource)
            and (field is None or error.field == field)
            and (code is None or error.code == code)
            for error in self.errors
        )

    def describe(self) -> str:
        parts = [f"{e.resource}/{e.field}/{e.code}" for e in self.errors]
        return f"{self.message} ({', '.join(parts)})" if parts else self.message


class StravaError(Exception):
    """Base of every error the client raises. The message is safe to log and show to operators."""

    def __init__(
        self,
        message: str,
        *,
        endpoint: str,
        status: int | None = None,
        rate_limit: RateLimitSnapshot | None = None,
        fault: Fault | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.endpoint = endpoint
        self.status = status
        self.rate_limit = rate_limit
        self.fault = fault

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.message!r}, endpoint={self.endpoint!r}, "
            f"status={self.status!r})"
        )


class StravaAuthError(StravaError):
    """Strava refused the credentials: the athlete's tokens, the grant, or our app's."""


class InvalidToken(StravaAuthError):
    """The access token is bad, expired or revoked (refresh it, or the athlete must reconnect)."""


class ScopeMissing(StravaAuthError):
    """The token lacks a scope the endpoint needs (activity:read): the athlete must reconnect."""


class InvalidGrant(StravaAuthError):
    """/oauth/token refused the authorization code or refresh token: invalid, used or expired."""


class InvalidClient(StravaAuthError):
    """Strava refused our application's credentials (client id or secret): an operator problem."""


class AthleteCapacityReached(StravaError):
    """Strava refused a new athlete: the app's connected-athlete capacity is full. Nothing the
    athlete can do; an operator must ask Strava for more capacity (or athletes must leave)."""


class RateLimited(StravaError):
    """429: the application's budget for a window is spent. Try again at `retry_at`, not before."""

    def __init__(
        self,
        message: str,
        *,
        endpoint: str,
        retry_at: datetime,
        window: Window,
        status: int | None = 429,
        rate_limit: RateLimitSnapshot | None = None,
        fault: Fault | None = None,
    ) -> None:
        super().__init__(
            message, endpoint=endpoint, status=status, rate_limit=rate_limit, fault=fault
        )
        self.retry_at = retry_at
        self.window = window


class SubscriptionRefused(StravaError):
    """Strava refused a push subscription call (create, delete) for a reason of its own."""


class CallbackNotVerified(SubscriptionRefused):
    """The create's validation GET to the callback got no 200 within 2 s, or a wrong echo."""


class SubscriptionExists(SubscriptionRefused):
    """The application already has its one push subscription: delete it first."""


class SubscriptionNotFound(SubscriptionRefused):
    """No push subscription with this id (it was deleted already)."""


class StravaUnreachable(StravaError):
    """Strava could not be reached or failed (5xx, transport error, timeout)."""


class BadResponse(StravaError):
    """Strava's answer was not what the API promises: unexpected status, not JSON, wrong shape."""


# --- the response hook --------------------------------------------------------------------------


@dataclass(frozen=True)
class ResponseInfo:
    """What `on_response` learns about each HTTP exchange (one per attempt, retries included)."""

    endpoint: str  # a route template such as "GET /athlete/activities": never ids or tokens
    status: int | None  # None when no response came back (transport error, timeout)
    rate_limit: RateLimitSnapshot | None
    elapsed_s: float


# --- the client ---------------------------------------------------------------------------------

_T = TypeVar("_T")


@dataclass(frozen=True)
class _Call:
    """One request as the client means it; `secrets` are scrubbed from anything we report."""

    method: Literal["GET", "POST", "DELETE"]
    endpoint: str
    url: str
    headers: dict[str, str] = field(repr=False)
    params: Mapping[str, int | str] | None = field(default=None, repr=False)
    form: dict[str, str] | None = field(default=None, repr=False)
    secrets: tuple[str, ...] = field(default=(), repr=False)


class StravaClient:
    """Strava API v3 and OAuth calls over a shared `httpx2.Client`. Keeps no per-call state."""

    def __init__(
        self,
        http: httpx2.Client,
        *,
        api_base_url: str,
        oauth_base_url: str,
        client_id: str,
        client_secret: str,
        on_response: Callable[[ResponseInfo], None] | None = None,
        get_attempts: int = 3,
    ) -> None:
        if get_attempts < 1:
            raise ValueError("get_attempts must be at least 1")
        self._http = http
        self._api_base_url = api_base_url.rstrip("/")
        self._oauth_base_url = oauth_base_url.rstrip("/")
        self._client_id = client_id
        self._client_secret = client_secret
        self._on_response = on_response
        self._get_attempts = get_attempts

    def __repr__(self) -> str:
        return f"StravaClient(api_base_url={self._api_base_url!r}, client_id={self._client_id!r})"

    # --- API ----------------------------------------------------------------------------------

    def get_athlete(self, access_token: str) -> SummaryAthlete:
        """GET /athlete: the athlete who owns `access_token`."""
        call = self._api_call(ATHLETE, "/athlete", access_token)
        response = self._get(call)
        body = self._json(call, response)
        return self._validate(call, response, SummaryAthlete.model_validate, body)

    def list_activities(
        self,
        access_token: str,
        *,
        after: int,
        before: int | None = None,
        page: int = 1,
        per_page: int = MAX_PER_PAGE,
    ) -> ActivityPage:
        """GET /athlete/activities for activities started after `after` (and before `before`).

        `after` and `before` are epoch seconds. Strava may return short pages before the last one
        and does not promise an order: read pages until one is empty and dedupe by id.
        """
        _check_epoch_seconds("after", after)
        params = {"after": after}
        if before is not None:
            _check_epoch_seconds("before", before)
            if before <= after:
                raise ValueError("`before` must be later than `after`")
            params["before"] = before
        if not _is_int(page) or page < 1:
            raise ValueError("`page` must be an integer >= 1")
        if not _is_int(per_page) or not 1 <= per_page <= MAX_PER_PAGE:
            raise ValueError(f"`per_page` must be an integer between 1 and {MAX_PER_PAGE}")
        params.update(page=page, per_page=per_page)

        call = self._api_call(ATHLETE_ACTIVITIES, "/athlete/activities", access_token, params)
        response = self._get(call)
        body = self._json(call, response)
        if not isinstance(body, list):
            self._bad_shape(call, response, "expected a JSON array of activities")
        activities = [
            self._validate(call, response, SummaryActivity.model_validate, item) for item in body
        ]
        return ActivityPage(activities=activities, rate_limit=parse_headers(response.headers))

    def get_activity(self, access_token: str, activity_id: int) -> dict[str, Any]:
        """GET /activities/{id}: the detailed activity, as Strava's JSON object."""
        if not _is_int(activity_id) or activity_id < 1:
            raise ValueError("`activity_id` must be a positive integer")
        call = self._api_call(ACTIVITY, f"/activities/{activity_id}", access_token)
        response = self._get(call)
        body = self._json(call, response)
        if not isinstance(body, dict) or not _is_int(body.get("id")):
            self._bad_shape(call, response, "expected a JSON object with an integer id")
        return body

    # --- OAuth --------------------------------------------------------------------------------

    def exchange_code(self, code: str) -> TokenResponse:
        """Trade the authorization code from the callback for the athlete's tokens. Not retried:
        a code is single use, and a retry after a lost answer would only get InvalidGrant."""
        if not code:
            raise ValueError("`code` is empty")
        return self._token({"grant_type": "authorization_code", "code": code}, secret=code)

    def refresh(self, refresh_token: str) -> TokenResponse:
        """New tokens for a refresh token. Strava may rotate the refresh token: persist the one
        returned before using it; the old one stops working at once (docs/strava.md §1.7)."""
        if not refresh_token:
            raise ValueError("`refresh_token` is empty")
        form = {"grant_type": "refresh_token", "refresh_token": refresh_token}
        return self._token(form, secret=refresh_token)

    def deauthorize(self, access_token: str) -> None:
        """Revoke every token our app holds for the athlete; a dead token raises InvalidToken."""
        call = _Call(
            method="POST",
            endpoint=OAUTH_DEAUTHORIZE,
            url=f"{self._oauth_base_url}/deauthorize",
            headers=_bearer(access_token),
            secrets=(access_token, self._client_secret),
        )
        response = self._send(call)
        if not response.is_success:
            self._raise_for_status(call, response)

    # --- push subscriptions (docs/strava.md §5) -------------------------------------------------

    def create_subscription(self, callback_url: str, verify_token: str) -> PushSubscription:
        """POST /push_subscriptions. Strava first sends the validation GET to `callback_url`, which
        must echo `hub.challenge` within 2 s (CallbackNotVerified otherwise). Not retried: the
        application has one subscription, and a retry after a lost answer would only meet it."""
        if not callback_url:
            raise ValueError("`callback_url` is empty")
        if not verify_token:
            raise ValueError("`verify_token` is empty")
        call = _Call(
            method="POST",
            endpoint=SUBSCRIPTION_CREATE,
            url=f"{self._api_base_url}/push_subscriptions",
            headers={"Accept": "application/json"},
            form={
                "client_id": self._client_id,
                "client_secret": self._client_secret,
                "callback_url": callback_url,
                "verify_token": verify_token,
            },
            secrets=(self._client_secret, verify_token),
        )
        response = self._send(call)
        if not response.is_success:
            self._raise_for_status(call, response)
        body = self._json(call, response)
        return self._validate(call, response, PushSubscription.model_validate, body)

    def list_subscriptions(self) -> list[PushSubscription]:
        """GET /push_subscriptions: the application's subscription, if it has one (0 or 1)."""
        call = self._app_call("GET", SUBSCRIPTION_LIST, "/push_subscriptions")
        response = self._get(call)
        body = self._json(call, response)
        if not isinstance(body, list):
            self._bad_shape(call, response, "expected a JSON array of subscriptions")
        return [self._validate(call, response, PushSubscription.model_validate, i) for i in body]

    def delete_subscription(self, subscription_id: int) -> None:
        """DELETE /push_subscriptions/{id} (204); an unknown id raises SubscriptionNotFound."""
        if not _is_int(subscription_id) or subscription_id < 1:
            raise ValueError("`subscription_id` must be a positive integer")
        call = self._app_call(
            "DELETE", SUBSCRIPTION_DELETE, f"/push_subscriptions/{subscription_id}"
        )
        response = self._send(call)
        if not response.is_success:
            self._raise_for_status(call, response)

    # --- plumbing -----------------------------------------------------------------------------

    def _app_call(self, method: Literal["GET", "DELETE"], endpoint: str, path: str) -> _Call:
        """A call authenticated by our application's credentials, which Strava takes in the
        query for the list and the delete (docs/strava.md §5)."""
        return _Call(
            method=method,
            endpoint=endpoint,
            url=f"{self._api_base_url}{path}",
            headers={"Accept": "application/json"},
            params={"client_id": self._client_id, "client_secret": self._client_secret},
            secrets=(self._client_secret,),
        )

    def _api_call(
        self, endpoint: str, path: str, access_token: str, params: dict[str, int] | None = None
    ) -> _Call:
        return _Call(
            method="GET",
            endpoint=endpoint,
            url=f"{self._api_base_url}{path}",
            headers=_bearer(access_token),
            params=params,
            secrets=(access_token, self._client_secret),
        )

    def _token(self, grant: dict[str, str], *, secret: str) -> TokenResponse:
        call = _Call(
            method="POST",
            endpoint=OAUTH_TOKEN,
            url=f"{self._oauth_base_url}/token",
            headers={"Accept": "application/json"},
            form={"client_id": self._client_id, "client_secret": self._client_secret, **grant},
            secrets=(secret, self._client_secret),
        )
        response = self._send(call)
        if not response.is_success:
            self._raise_for_status(call, response)
        body = self._json(call, response)
        return self._validate(call, response, TokenResponse.model_validate, body)

    def _get(self, call: _Call) -> httpx2.Response:
        """Send an idempotent GET, retrying StravaUnreachable; map any other failure status."""
        for attempt in stamina.retry_context(
            on=StravaUnreachable,
            attempts=self._get_attempts,
            timeout=None,  # the attempts and the HTTP timeouts bound the total already
            wait_initial=0.5,
            wait_max=8.0,
            wait_jitter=1.0,
        ):
            with attempt:
                response = self._send(call)
                if response.is_server_error:
                    self._raise_for_status(call, response)
        if not response.is_success:
            self._raise_for_status(call, response)
        return response

    def _send(self, call: _Call) -> httpx2.Response:
        """One HTTP exchange: logged and reported to `on_response` whatever happens."""
        started = time.perf_counter()
        try:
            response = self._http.request(
                call.method,
                call.url,
                params=call.params,
                data=call.form,
                headers=call.headers,
                follow_redirects=False,  # never carry the Bearer token anywhere else
            )
        except httpx2.TransportError as exc:
            self._report(call, None, None, time.perf_counter() - started, error=exc)
            kind = "timed out" if isinstance(exc, httpx2.TimeoutException) else "failed"
            raise StravaUnreachable(
                f"{call.endpoint} {kind} ({type(exc).__name__})", endpoint=call.endpoint
            ) from exc
        except httpx2.RequestError as exc:  # e.g. an undecodable Content-Encoding
            self._report(call, None, None, time.perf_counter() - started, error=exc)
            raise BadResponse(
                f"{call.endpoint}: unreadable response ({type(exc).__name__})",
                endpoint=call.endpoint,
            ) from exc
        rate_limit = parse_headers(response.headers)
        self._report(call, response.status_code, rate_limit, time.perf_counter() - started)
        return response

    def _report(
        self,
        call: _Call,
        status: int | None,
        rate_limit: RateLimitSnapshot | None,
        elapsed_s: float,
        *,
        error: Exception | None = None,
    ) -> None:
        fields: dict[str, Any] = {
            "endpoint": call.endpoint,
            "status": status,
            "elapsed_ms": round(elapsed_s * 1000, 1),
        }
        if rate_limit is not None:
            fields.update(
                overall_usage=list(rate_limit.overall_usage),
                overall_limit=list(rate_limit.overall_limit),
                read_usage=list(rate_limit.read_usage),
                read_limit=list(rate_limit.read_limit),
            )
        if error is not None:
            log.warning("strava.response", error=type(error).__name__, **fields)
        else:
            log.info("strava.response", **fields)
        if self._on_response is None:
            return
        info = ResponseInfo(
            endpoint=call.endpoint, status=status, rate_limit=rate_limit, elapsed_s=elapsed_s
        )
        try:
            self._on_response(info)
        except SoftTimeLimitExceeded:
            raise  # the worker's time limit struck here: the task must stop (docs/architecture.md)
        except Exception:
            # The hook feeds budgets and metrics. Losing a response to it would be worse: a token
            # exchange that succeeded at Strava has already spent its single-use code.
            log.exception("strava.on_response_failed", endpoint=call.endpoint)

    def _json(self, call: _Call, response: httpx2.Response) -> Any:
        try:
            return response.json()
        except ValueError:  # JSONDecodeError and UnicodeDecodeError alike
            raise BadResponse(
                f"{call.endpoint} answered {response.status_code} with a body that is not JSON",
                endpoint=call.endpoint,
                status=response.status_code,
                rate_limit=parse_headers(response.headers),
            ) from None  # the decode error keeps the whole body, secrets included

    def _validate(
        self, call: _Call, response: httpx2.Response, validate: Callable[[Any], _T], body: Any
    ) -> _T:
        try:
            return validate(body)
        except ValidationError as exc:
            # Only locations and messages: pydantic's own text quotes the input, tokens included.
            problems = "; ".join(
                f"{'.'.join(str(part) for part in error['loc']) or '<root>'}: {error['msg']}"
                for error in exc.errors(include_url=False, include_input=False)[:5]
            )
            raise BadResponse(
                _scrub(f"{call.endpoint}: unexpected payload: {problems}", call.secrets),
                endpoint=call.endpoint,
                status=response.status_code,
                rate_limit=parse_headers(response.headers),
            ) from None

    def _bad_shape(self, call: _Call, response: httpx2.Response, expected: str) -> NoReturn:
        raise BadResponse(
            f"{call.endpoint}: unexpected payload: {expected}",
            endpoint=call.endpoint,
            status=response.status_code,
            rate_limit=parse_headers(response.headers),
        )

    def _raise_for_status(self, call: _Call, response: httpx2.Response) -> NoReturn:
        """Map a non-2xx answer to the error tree (module docstring)."""
        status = response.status_code
        rate_limit = parse_headers(response.headers)
        fault = _parse_fault(response, call.secrets)
        said = f": {fault.describe()}" if fault is not None else ""
        common: dict[str, Any] = {
            "endpoint": call.endpoint,
            "status": status,
            "rate_limit": rate_limit,
            "fault": fault,
        }
        is_token = call.endpoint == OAUTH_TOKEN
        app_fault = fault is not None and fault.has(resource="Application")
        grant_fault = fault is not None and any(
            error.resource in _GRANT_RESOURCES or error.field in _GRANT_FIELDS
            for error in fault.errors
        )

        if status == 429:
            window: Window = (rate_limit.exhausted_window() if rate_limit else None) or "short"
            now = utcnow()
            retry_at = rate_limit.retry_at(now) if rate_limit else next_short_window_start(now)
            raise RateLimited(
                f"{call.endpoint} rate limited ({window} window) until {retry_at.isoformat()}",
                retry_at=retry_at,
                window=window,
                **common,
            )
        if status >= 500:
            raise StravaUnreachable(f"{call.endpoint} answered {status}{said}", **common)
        if (
            is_token
            and status == 403
            and fault is not None
            and _ATHLETE_CAPACITY_MESSAGE in fault.message.lower()
        ):
            raise AthleteCapacityReached(f"Strava refused a new athlete{said}", **common)
        if call.endpoint in _SUBSCRIPTION_ENDPOINTS:
            _raise_for_subscription(call, status, fault, said, common)
        if is_token and status in (400, 401):
            # /oauth/token authenticates our app and checks one grant; a fault naming neither
            # is a grant problem on 400 (Strava's usual answer) and an app problem on 401.
            if app_fault or (status == 401 and not grant_fault):
                raise InvalidClient(f"Strava refused our application{said}", **common)
            raise InvalidGrant(f"Strava refused the grant{said}", **common)
        if status == 401:
            if app_fault:
                raise InvalidClient(f"Strava refused our application{said}", **common)
            if fault is not None and fault.has(resource="AccessToken", code="missing"):
                raise ScopeMissing(f"The access token lacks a scope{said}", **common)
            raise InvalidToken(f"Strava refused the access token{said}", **common)
        raise BadResponse(f"{call.endpoint} answered {status}{said}", **common)


# --- helpers ------------------------------------------------------------------------------------


def _raise_for_subscription(
    call: _Call, status: int, fault: Fault | None, said: str, common: dict[str, Any]
) -> NoReturn:
    """A 4xx from /push_subscriptions (docs/strava.md §5): our credentials, the one
    subscription already there, the callback failing its validation GET, or an unknown id."""
    if status == 401 or (fault is not None and fault.has(resource="Application")):
        raise InvalidClient(f"Strava refused our application{said}", **common)
    if fault is not None and fault.has(resource="PushSubscription", code="already exists"):
        raise SubscriptionExists(f"The application already has a push subscription{said}", **common)
    if fault is not None and any(
        error.resource == "PushSubscription"
        and error.field == "callback url"
        and error.code != "invalid"
        for error in fault.errors
    ):
        raise CallbackNotVerified(
            "The callback did not answer Strava's validation GET with a 200 echo of "
            f"hub.challenge within 2 s{said}",
            **common,
        )
    if status == 404 and call.method == "DELETE":
        raise SubscriptionNotFound(f"No such push subscription{said}", **common)
    raise SubscriptionRefused(f"{call.endpoint} answered {status}{said}", **common)


@lru_cache(maxsize=1)
def tls_context() -> ssl.SSLContext:
    """The TLS set-up of every client of the process, CA bundle loaded once. A worker builds it
    before forking its pool (tasks.py), so pool processes inherit it instead of each loading the
    bundle again. Only configuration is shared across a fork, never a connection."""
    return httpx2.create_ssl_context()


def create_http_client(
    *, timeout_s: float = 10.0, connect_timeout_s: float = 5.0, max_connections: int = 20
) -> httpx2.Client:
    """The pooled HTTP client a StravaClient runs on; build one per process and share it."""
    return httpx2.Client(
        verify=tls_context(),
        timeout=httpx2.Timeout(timeout_s, connect=connect_timeout_s),
        limits=httpx2.Limits(
            max_connections=max_connections, max_keepalive_connections=max_connections
        ),
        headers={"User-Agent": _user_agent(), "Accept": "application/json"},
        follow_redirects=False,
    )


@lru_cache(maxsize=1)
def _user_agent() -> str:
    try:
        version = metadata.version("orchestrator")
    except metadata.PackageNotFoundError:
        version = "dev"
    return f"CoachGeorge-orchestrator/{version} httpx2/{httpx2.__version__}"


def _bearer(access_token: str) -> dict[str, str]:
    # Checked here so that a malformed token fails with a message that does not quote it.
    if not isinstance(access_token, str) or not _BEARER_TOKEN.fullmatch(access_token):
        raise ValueError("the access token is empty or not a bearer token")
    return {"Authorization": f"Bearer {access_token}", "Accept": "application/json"}


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_epoch_seconds(name: str, value: int) -> None:
    if not _is_int(value):
        raise ValueError(f"`{name}` must be an integer epoch in seconds")
    if not 0 <= value < _MAX_EPOCH_SECONDS:
        raise ValueError(f"`{name}` must be an epoch in seconds, not milliseconds: {value}")


def _parse_fault(response: httpx2.Response, secrets: Iterable[str]) -> Fault | None:
    """The Strava Fault in an error body, or None (CloudFront HTML, empty, another shape)."""
    try:
        body = response.json()
    except ValueError:
        return None
    if not isinstance(body, dict):
        return None
    message = body.get("message")
    errors = body.get("errors")
    if not isinstance(message, str) and not isinstance(errors, list):
        return None
    entries = []
    for entry in errors if isinstance(errors, list) else []:
        if isinstance(entry, Mapping):
            entries.append(
                FaultEntry(
                    resource=_fault_text(entry.get("resource"), secrets),
                    field=_fault_text(entry.get("field"), secrets),
                    code=_fault_text(entry.get("code"), secrets),
                )
            )
    return Fault(message=_fault_text(message, secrets), errors=tuple(entries[:10]))


def _fault_text(value: object, secrets: Iterable[str]) -> str:
    # Whatever the server wrote ends up in our messages: keep it short and free of our secrets.
    text = value if isinstance(value, str) else ""
    return _scrub(text, secrets)[:_MAX_FAULT_TEXT]


def _scrub(text: str, secrets: Iterable[str]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, _REDACTED)
    return text
