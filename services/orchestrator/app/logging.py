"""structlog set-up: key/value or JSON lines, with secrets redacted by key wherever they appear.

Tracebacks are plain text, never with frame locals: a Strava call's frames hold the access token,
the Authorization header, the refresh token and the client secret (issue 10 item 1). Every
process configures this: the API in create_app, workers and beat by Celery's init signals
(worker.py); structlog's own default would render rich tracebacks *with* locals.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

SECRET_KEYS = frozenset(
    {
        "access_token",
        "refresh_token",
        "code",
        "state",
        "code_verifier",
        "client_secret",
        "authorization",
        "token",
        "password",
    }
)
# Query strings in logged URLs/paths: keep the parameter, drop the value.
_SECRET_QUERY = re.compile(
    r"(?P<key>(?:access_token|refresh_token|code|state|code_verifier|client_secret"
    r"|hub\.verify_token)=)[^&\s]*"
)
# The webhook callback's last path segment is a shared secret (STRAVA_WEBHOOK_PATH_SECRET).
_SECRET_PATH = re.compile(r"(?P<prefix>/strava/webhook/)[^/?\s]+")


def redact_query(text: str) -> str:
    return _SECRET_QUERY.sub(r"\g<key>[redacted]", text)


def redact_path(path: str) -> str:
    return _SECRET_PATH.sub(r"\g<prefix>[redacted]", path)


def _redact(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for key in list(event):
        if key.lower() in SECRET_KEYS:
            event[key] = "[redacted]"
        elif isinstance(event[key], str) and "=" in event[key]:
            event[key] = redact_query(event[key])
    return event


def configure_logging(*, json: bool = False, level: int = logging.INFO) -> None:
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if json
        else structlog.dev.ConsoleRenderer(
            colors=False, exception_formatter=structlog.dev.plain_traceback
        )
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            # The traceback as plain text (no locals) first, so that _redact sees it too.
            structlog.processors.format_exc_info,
            _redact,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        # sys.stderr looked up per logger, not once: whoever redirects it (tests) gets the logs.
        logger_factory=lambda *_: structlog.PrintLogger(file=sys.stderr),
        cache_logger_on_first_use=False,
    )
