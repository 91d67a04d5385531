"""The interactive API docs (/docs), in sandbox mode only, with every asset served from here.

FastAPI's own /docs and /redoc load Swagger UI and ReDoc from a CDN onto the origin that also
holds the runner's token and the web callback, with no CSP. Here /docs uses the Swagger UI
bundled in `fastapi-offline` and carries a CSP that allows this origin plus the page's one
inline script (by hash). There is no /redoc: ReDoc fetches its logo from its own CDN. In
production /docs is off too; the schema stays at /openapi.json.
"""

from __future__ import annotations

import base64
import hashlib
import re
from pathlib import Path

import fastapi_offline
from fastapi import APIRouter
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse

from app.errors import NotFound
from app.routes.web import SECURITY_HEADERS

TITLE = "Coach George orchestrator"
OPENAPI_URL = "/openapi.json"
ASSETS_URL = "/api-docs/assets"
ASSETS_DIR = Path(fastapi_offline.__file__).resolve().parent / "static"
ASSET_TYPES = {
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "swagger-ui.css": "text/css; charset=utf-8",
    "favicon.png": "image/png",
}
_INLINE_SCRIPT = re.compile(r"<script>(.*?)</script>", re.DOTALL)

router = APIRouter(include_in_schema=False)


def content_security_policy(html: str) -> str:
    """Self only, plus the page's own inline scripts by hash. Swagger UI sets inline styles and
    draws icons from data: URIs."""
    hashes = [
        "'sha256-" + base64.b64encode(hashlib.sha256(script.encode()).digest()).decode() + "'"
        for script in _INLINE_SCRIPT.findall(html)
    ]
    return "; ".join(
        [
            "default-src 'self'",
            " ".join(["script-src 'self'", *hashes]),
            "style-src 'self' 'unsafe-inline'",
            "img-src 'self' data:",
            "font-src 'self'",
            "connect-src 'self'",
            "object-src 'none'",
            "base-uri 'none'",
            "form-action 'self'",
            "frame-ancestors 'none'",
        ]
    )


def _page(page: HTMLResponse) -> HTMLResponse:
    html = bytes(page.body).decode()
    headers = {
        **SECURITY_HEADERS,
        "Content-Security-Policy": content_security_policy(html),
        "Cache-Control": "no-cache",
    }
    return HTMLResponse(html, headers=headers)


@router.get("/docs")
def swagger_ui() -> HTMLResponse:
    return _page(
        get_swagger_ui_html(
            openapi_url=OPENAPI_URL,
            title=f"{TITLE} - Swagger UI",
            swagger_js_url=f"{ASSETS_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS_URL}/swagger-ui.css",
            swagger_favicon_url=f"{ASSETS_URL}/favicon.png",
        )
    )


@router.get(f"{ASSETS_URL}/{{name}}")
def asset(name: str) -> FileResponse:
    if name not in ASSET_TYPES:  # an allow-list: no path reaches the filesystem unchecked
        raise NotFound()
    return FileResponse(
        ASSETS_DIR / name,
        media_type=ASSET_TYPES[name],
        headers={**SECURITY_HEADERS, "Cache-Control": "no-cache"},
    )
