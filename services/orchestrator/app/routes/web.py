"""The web onboarding client: static pages and assets from `app/web/`, no build step.

Pages (the runner's token lives in the browser, so routing between them happens in JS):
  /                             picks the step: profile → Connect Strava → summary
  /onboarding/profile           step 1: display name, time zone, weekly goal
  /onboarding/strava            step 2: "Connect with Strava"
  /onboarding/strava/callback   Strava redirects here; finishes the link (never cached)
  /onboarding/summary           the profile summary: connection, sync, 28-day load, workouts
  /onboarding/assets/{name}     CSS, JS modules and the icon

Every response carries a self-only Content-Security-Policy and `Referrer-Policy: no-referrer`
(the callback URL holds `code` and `state` until the page strips them).
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse, RedirectResponse

from app.errors import NotFound

WEB_DIR = Path(__file__).resolve().parent.parent / "web"

CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self'",
        "connect-src 'self'",
        "font-src 'none'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), payment=()",
}
# Pages are tiny and change with deploys: revalidate every time. The callback page is never stored.
PAGE_CACHE = "no-cache"
NO_STORE = "no-store"

ASSET_TYPES = {
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".svg": "image/svg+xml",
}
ASSETS = frozenset(
    path.name
    for path in (WEB_DIR / "assets").glob("*")
    if path.is_file() and path.suffix in ASSET_TYPES
)

router = APIRouter(include_in_schema=False)


def _page(name: str, *, cache: str = PAGE_CACHE) -> FileResponse:
    return FileResponse(
        WEB_DIR / name,
        media_type="text/html; charset=utf-8",
        headers={**SECURITY_HEADERS, "Cache-Control": cache},
    )


@router.get("/")
def index() -> FileResponse:
    return _page("index.html")


@router.get("/onboarding")
def onboarding() -> RedirectResponse:
    return RedirectResponse("/", status_code=307, headers=SECURITY_HEADERS)


@router.get("/onboarding/profile")
def profile_step() -> FileResponse:
    return _page("profile.html")


@router.get("/onboarding/strava")
def connect_step() -> FileResponse:
    return _page("connect.html")


@router.get("/onboarding/strava/callback")
def strava_callback() -> FileResponse:
    # The URL carries `code` and `state`: never cache it, never send it on as a Referer.
    return _page("callback.html", cache=NO_STORE)


@router.get("/onboarding/summary")
def summary() -> FileResponse:
    return _page("summary.html")


@router.get("/onboarding/assets/{name}")
def asset(name: str) -> FileResponse:
    if name not in ASSETS:  # an allow-list: no path ever reaches the filesystem unchecked
        raise NotFound()
    path = WEB_DIR / "assets" / name
    return FileResponse(
        path,
        media_type=ASSET_TYPES[path.suffix],
        headers={**SECURITY_HEADERS, "Cache-Control": PAGE_CACHE},
    )
