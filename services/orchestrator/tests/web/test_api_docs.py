"""The interactive API docs (issue 10 item 14): in sandbox mode every script comes from this
origin under a CSP, in a real browser; in production the pages are off; ReDoc is not served."""

from __future__ import annotations

import pytest
from app.config import Settings
from app.main import create_app
from fastapi.testclient import TestClient
from playwright.sync_api import expect
from pydantic import SecretStr
from web.browser_support import Visitor

DOC_PAGES = ["/docs", "/redoc"]


@pytest.mark.browser
def test_swagger_ui_renders_from_this_origin_under_the_csp(visitor: Visitor) -> None:
    response = visitor.goto("/docs")
    assert response is not None
    assert response.status == 200
    csp = response.headers["content-security-policy"]
    assert "script-src 'self' 'sha256-" in csp
    assert "unsafe-inline" not in csp.split("script-src", 1)[1].split(";", 1)[0]
    expect(visitor.page.get_by_text("/api/v1/auth/sessions").first).to_be_visible()
    # The visitor fixture fails the test on any request off loopback or any CSP refusal.


def test_redoc_is_not_served(visitor: Visitor) -> None:
    response = visitor.page.request.get(visitor.server.url("/redoc"))
    assert response.status == 404


def test_production_serves_no_doc_pages(settings: Settings) -> None:
    production = settings.model_copy(
        update={"strava_client_id": "4242", "strava_client_secret": SecretStr("prod-secret")}
    )
    assert not production.sandbox
    with TestClient(create_app(production, enqueue_sync=lambda _: None)) as api:
        for path in DOC_PAGES:
            response = api.get(path)
            assert response.status_code == 404, path
            assert response.json()["error"] == "not_found"
        assert api.get("/openapi.json").status_code == 200
