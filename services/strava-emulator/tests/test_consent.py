"""The consent page: its stable selectors, self-containment and the decision redirects."""

from __future__ import annotations

from html.parser import HTMLParser
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx2
import pytest
from strava_emulator.testing import EmulatorHandle


class PageParser(HTMLParser):
    """Collects the elements the browser tests rely on."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: list[dict[str, str | None]] = []
        self.selects: list[dict[str, str | None]] = []
        self.options: list[tuple[str | None, str]] = []
        self.inputs: list[dict[str, str | None]] = []
        self.buttons: list[dict[str, str | None]] = []
        self.external: list[str] = []
        self._option: str | None = None
        self._option_text = ""
        self._in_select = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag == "form":
            self.forms.append(attributes)
        elif tag == "select":
            self.selects.append(attributes)
            self._in_select = True
        elif tag == "option" and self._in_select:
            self._option = attributes.get("value")
            self._option_text = ""
        elif tag == "input":
            self.inputs.append(attributes)
        elif tag == "button":
            self.buttons.append(attributes)
        if tag in ("script", "link", "img", "iframe") or attributes.get("src"):
            self.external.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag == "option" and self._option is not None:
            self.options.append((self._option, self._option_text.strip()))
            self._option = None
        elif tag == "select":
            self._in_select = False

    def handle_data(self, data: str) -> None:
        if self._option is not None:
            self._option_text += data


def consent_page(emu: EmulatorHandle, **overrides: Any) -> tuple[httpx2.Response, PageParser]:
    params = {
        "client_id": emu.config.client_id,
        "redirect_uri": "coachai://localhost/oauth/strava",
        "response_type": "code",
        "scope": "read,activity:read_all,profile:read_all",
        "state": 'abc<&>"',
        "approval_prompt": "force",
        **overrides,
    }
    response = httpx2.get(f"{emu.oauth_base_url}/authorize", params=params)
    parser = PageParser()
    parser.feed(response.text)
    return response, parser


def decide(emu: EmulatorHandle, fields: list[tuple[str, str]]) -> httpx2.Response:
    """Posts the form as a browser does (repeated ``scope`` keys, urlencoded)."""
    return httpx2.post(
        f"{emu.oauth_base_url}/authorize/decision",
        content=urlencode(fields),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )


def form_fields(
    parser: PageParser, athlete_id: int, scopes: list[str], decision: str
) -> list[tuple[str, str]]:
    """What a browser submits: hidden fields, the selected athlete, ticked boxes, the button."""
    fields = [(str(i["name"]), str(i["value"])) for i in parser.inputs if i.get("type") == "hidden"]
    fields.append(("athlete_id", str(athlete_id)))
    fields.extend(("scope", scope) for scope in scopes)
    fields.append(("decision", decision))
    return fields


def test_page_has_the_stable_selectors(emu: EmulatorHandle, athlete: dict[str, Any]) -> None:
    response, page = consent_page(emu)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert page.forms == [{"method": "post", "action": "/oauth/authorize/decision"}]
    assert page.selects == [{"id": "athlete", "name": "athlete_id"}]
    expected_name = f"{athlete['firstname']} {athlete['lastname']}"
    assert (str(athlete["id"]), expected_name) in page.options
    boxes = [i for i in page.inputs if i.get("type") == "checkbox"]
    assert [(b["name"], b["value"]) for b in boxes] == [
        ("scope", "read"),
        ("scope", "activity:read_all"),
        ("scope", "profile:read_all"),
    ]
    assert all("checked" in b for b in boxes)
    assert {(b["id"], b["name"], b["value"]) for b in page.buttons} == {
        ("authorize", "decision", "authorize"),
        ("cancel", "decision", "cancel"),
    }
    hidden = {i["name"]: i["value"] for i in page.inputs if i.get("type") == "hidden"}
    assert hidden == {
        "client_id": str(emu.config.client_id),
        "redirect_uri": "coachai://localhost/oauth/strava",
        "state": 'abc<&>"',
        "requested_scope": "read,activity:read_all,profile:read_all",
    }


def test_page_is_self_contained_and_strava_orange(emu: EmulatorHandle) -> None:
    response, page = consent_page(emu)
    assert page.external == []
    assert "http://" not in response.text
    assert "https://" not in response.text
    assert "#fc4c02" in response.text.lower()


def test_authorize_grants_exactly_the_ticked_scopes(
    emu: EmulatorHandle, athlete: dict[str, Any]
) -> None:
    _, page = consent_page(emu)
    response = decide(
        emu, form_fields(page, athlete["id"], ["activity:read_all", "read"], "authorize")
    )
    assert response.status_code == 302
    location = response.headers["location"]
    assert location.startswith("coachai://localhost/oauth/strava?")
    params = {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}
    assert params["state"] == 'abc<&>"'
    assert params["scope"] == "read,activity:read_all"
    exchanged = httpx2.post(
        f"{emu.oauth_base_url}/token",
        data={
            "client_id": emu.config.client_id,
            "client_secret": emu.config.client_secret,
            "code": params["code"],
            "grant_type": "authorization_code",
        },
    )
    assert exchanged.json()["athlete"]["id"] == athlete["id"]
    token = exchanged.json()["access_token"]
    me = httpx2.get(f"{emu.api_base_url}/athlete", headers={"Authorization": f"Bearer {token}"})
    assert me.json()["resource_state"] == 2  # profile:read_all was unticked


def test_scopes_that_were_not_requested_cannot_be_smuggled_in(
    emu: EmulatorHandle, athlete: dict[str, Any]
) -> None:
    _, page = consent_page(emu, scope="read")
    response = decide(
        emu, form_fields(page, athlete["id"], ["read", "activity:write"], "authorize")
    )
    assert "scope=read" in response.headers["location"]
    assert "activity" not in response.headers["location"]


def test_cancel_redirects_with_access_denied(emu: EmulatorHandle, athlete: dict[str, Any]) -> None:
    _, page = consent_page(emu)
    response = decide(emu, form_fields(page, athlete["id"], ["read"], "cancel"))
    assert response.status_code == 302
    params = parse_qs(urlsplit(response.headers["location"]).query)
    assert params == {"state": ['abc<&>"'], "error": ["access_denied"]}


@pytest.mark.parametrize(
    ("name", "value", "field"),
    [
        ("redirect_uri", "https://evil.example.com/", "redirect_uri"),
        ("client_id", "1", "client_id"),
    ],
)
def test_tampered_hidden_fields_are_rejected(
    emu: EmulatorHandle, athlete: dict[str, Any], name: str, value: str, field: str
) -> None:
    _, page = consent_page(emu)
    fields = [
        (k, value if k == name else v)
        for k, v in form_fields(page, athlete["id"], ["read"], "authorize")
    ]
    response = decide(emu, fields)
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == field


def test_page_validates_like_the_auto_approve_path(emu: EmulatorHandle) -> None:
    response, _ = consent_page(emu, redirect_uri="https://elsewhere.example/cb")
    assert response.status_code == 400
    response, _ = consent_page(emu, client_id="42")
    assert response.status_code == 400
