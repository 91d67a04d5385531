"""Strava's push subscription API: the validation handshake, one per app, list and delete."""

from __future__ import annotations

from collections.abc import Iterator

import httpx2
import pytest
from strava_emulator.callback_receiver import CallbackReceiver
from strava_emulator.config import EmulatorConfig
from strava_emulator.testing import EmulatorHandle, run_emulator

SUBSCRIPTION_KEYS = ["id", "resource_state", "application_id", "callback_url", "created_at"]
SUBSCRIPTION_KEYS.append("updated_at")
NOT_200 = {
    "message": "Bad Request",
    "errors": [
        {
            "resource": "PushSubscription",
            "field": "callback url",
            "code": "GET to callback URL does not return 200",
        }
    ],
}


@pytest.fixture(scope="module")
def emu() -> Iterator[EmulatorHandle]:
    config = EmulatorConfig(athletes=1, history_days=3, webhook_timeout_seconds=0.5)
    with run_emulator(config) as handle:
        yield handle


def _credentials(emu: EmulatorHandle) -> dict[str, str]:
    return {"client_id": str(emu.config.client_id), "client_secret": emu.config.client_secret}


def _list(emu: EmulatorHandle) -> httpx2.Response:
    return httpx2.get(
        f"{emu.api_base_url}/push_subscriptions", params=_credentials(emu), timeout=10
    )


def test_create_validates_the_callback_then_answers_201_with_the_recorded_shape(
    emu: EmulatorHandle, callback: CallbackReceiver
) -> None:
    created = emu.subscribe(callback.url, verify_token="our-token")
    assert created.status_code == 201
    body = created.json()
    assert list(body) == SUBSCRIPTION_KEYS
    assert body["resource_state"] == 2
    assert body["application_id"] == emu.config.client_id
    assert body["callback_url"] == callback.url
    assert body["created_at"].endswith("000Z")  # nanoseconds, as recorded
    assert "." in body["created_at"]
    [validation] = callback.validations
    assert validation["hub.mode"] == "subscribe"
    assert validation["hub.verify_token"] == "our-token"
    assert len(validation["hub.challenge"]) == 32

    listed = _list(emu)
    assert listed.status_code == 200
    [item] = listed.json()
    assert list(item) == SUBSCRIPTION_KEYS
    assert item["id"] == body["id"]
    assert item["created_at"] == body["created_at"][:19] + "Z"  # seconds, as recorded


def test_delete_answers_204_and_the_list_empties(
    emu: EmulatorHandle, callback: CallbackReceiver
) -> None:
    sub_id = emu.subscribe(callback.url, "vt").json()["id"]
    deleted = httpx2.delete(
        f"{emu.api_base_url}/push_subscriptions/{sub_id}", params=_credentials(emu), timeout=10
    )
    assert deleted.status_code == 204
    assert deleted.content == b""
    assert _list(emu).json() == []
    again = httpx2.delete(
        f"{emu.api_base_url}/push_subscriptions/{sub_id}", params=_credentials(emu), timeout=10
    )
    assert again.status_code == 404
    assert again.json()["errors"][0]["resource"] == "PushSubscription"


def test_a_second_subscription_is_refused(emu: EmulatorHandle, callback: CallbackReceiver) -> None:
    first = emu.subscribe(callback.url, "vt")
    assert first.status_code == 201
    second = emu.subscribe(callback.url + "/other", "vt")
    assert second.status_code == 400
    assert second.json() == {
        "message": "Bad Request",
        "errors": [{"resource": "PushSubscription", "field": "", "code": "already exists"}],
    }
    assert [s["id"] for s in _list(emu).json()] == [first.json()["id"]]


def test_a_wrong_echo_is_refused(emu: EmulatorHandle, callback: CallbackReceiver) -> None:
    callback.get_mode = "wrong"
    refused = emu.subscribe(callback.url, "vt")
    assert refused.status_code == 400
    assert refused.json()["errors"] == [
        {"resource": "PushSubscription", "field": "callback url", "code": "not verifiable"}
    ]
    assert _list(emu).json() == []


@pytest.mark.parametrize("status", [404, 500])
def test_a_non_200_validation_answer_is_refused(
    emu: EmulatorHandle, callback: CallbackReceiver, status: int
) -> None:
    callback.get_mode, callback.get_status = "status", status
    refused = emu.subscribe(callback.url, "vt")
    assert refused.status_code == 400
    assert refused.json() == NOT_200
    assert _list(emu).json() == []


def test_a_validation_timeout_is_refused(emu: EmulatorHandle, callback: CallbackReceiver) -> None:
    callback.get_mode = "hang"
    refused = emu.subscribe(callback.url, "vt")
    assert refused.status_code == 400
    assert refused.json() == NOT_200
    assert _list(emu).json() == []


def test_an_unreachable_callback_is_refused(emu: EmulatorHandle) -> None:
    with CallbackReceiver() as gone:
        url = gone.url
    refused = emu.subscribe(url, "vt")
    assert refused.status_code == 400
    assert refused.json() == NOT_200


def test_bad_client_credentials_are_refused_everywhere(
    emu: EmulatorHandle, callback: CallbackReceiver
) -> None:
    url = f"{emu.api_base_url}/push_subscriptions"
    bad_secret = {"client_id": str(emu.config.client_id), "client_secret": "wrong"}
    bad_id = {"client_id": "999", "client_secret": emu.config.client_secret}
    form = {"callback_url": callback.url, "verify_token": "vt"}
    secret_refused = httpx2.post(url, data={**bad_secret, **form}, timeout=10)
    assert secret_refused.status_code == 401
    assert secret_refused.json()["errors"] == [
        {"resource": "Application", "field": "", "code": "invalid"}
    ]
    id_refused = httpx2.post(url, data={**bad_id, **form}, timeout=10)
    assert id_refused.status_code == 400
    assert id_refused.json()["errors"][0]["field"] == "client_id"
    assert callback.validations == []  # refused before any callback GET

    sub_id = emu.subscribe(callback.url, "vt").json()["id"]
    assert httpx2.get(url, params=bad_secret, timeout=10).status_code == 401
    assert httpx2.delete(f"{url}/{sub_id}", params=bad_secret, timeout=10).status_code == 401
    assert len(_list(emu).json()) == 1


@pytest.mark.parametrize(
    ("callback_url", "verify_token", "field"),
    [("", "vt", "callback url"), ("ftp://x/", "vt", "callback url"), (None, "", "verify token")],
)
def test_missing_or_bad_fields_are_a_400(
    emu: EmulatorHandle,
    callback: CallbackReceiver,
    callback_url: str | None,
    verify_token: str,
    field: str,
) -> None:
    refused = emu.subscribe(callback.url if callback_url is None else callback_url, verify_token)
    assert refused.status_code == 400
    assert refused.json()["errors"][0] == {
        "resource": "PushSubscription",
        "field": field,
        "code": "invalid",
    }


def test_subscription_calls_are_not_rate_limited(
    emu: EmulatorHandle, callback: CallbackReceiver
) -> None:
    emu.subscribe(callback.url, "vt")
    listed = _list(emu)
    assert "x-ratelimit-usage" not in listed.headers
    assert emu.admin.get_rate_limits()["overall_usage"] == [0, 0]


def test_injected_faults_apply_to_subscription_calls(
    emu: EmulatorHandle, callback: CallbackReceiver
) -> None:
    emu.admin.add_fault("/api/v3/push_subscriptions", method="POST", status=503)
    failed = emu.subscribe(callback.url, "vt")
    assert failed.status_code == 503
    assert failed.headers["content-type"].startswith("text/html")  # Strava's CDN page
    assert callback.validations == []
    assert emu.subscribe(callback.url, "vt").status_code == 201
    logged = emu.admin.requests(path="/api/v3/push_subscriptions", method="POST")
    assert [r["status"] for r in logged] == [503, 201]
