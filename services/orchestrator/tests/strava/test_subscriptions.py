"""The application's push subscription (issue 11): the client's calls and errors, the recorded
subscription and its drift, and `orchestrator strava-webhook` as an operator runs it, all against
the Strava emulator over HTTP. The callback is the emulator's loopback CallbackReceiver, which
answers the validation GET as scripted."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from app.cli import ExitCode, cli
from app.config import SANDBOX_WEBHOOK_VERIFY_TOKEN, Settings, get_settings
from app.db import session_scope
from app.strava import subscriptions
from app.strava.client import (
    CallbackNotVerified,
    InvalidClient,
    StravaClient,
    SubscriptionExists,
    SubscriptionNotFound,
    SubscriptionRefused,
    create_http_client,
)
from app.strava.models import PushSubscriptionRecord
from app.strava.runtime import StravaRuntime, build_strava_client
from sqlalchemy import delete, select
from strava_emulator.callback_receiver import CallbackReceiver
from strava_emulator.testing import EmulatorHandle
from typer.testing import CliRunner


@pytest.fixture
def client(settings: Settings) -> Iterator[StravaClient]:
    """A client for the emulator; the application is left without a subscription afterwards,
    at the emulator and in our record, so no other test finds its links covered by push."""
    with create_http_client(timeout_s=10) as http:
        strava = build_strava_client(settings, http)
        yield strava
        for found in strava.list_subscriptions():
            strava.delete_subscription(found.id)
    with session_scope() as session:
        session.execute(delete(PushSubscriptionRecord))


@pytest.fixture
def receiver() -> Iterator[CallbackReceiver]:
    with CallbackReceiver() as callback:
        yield callback


def _recorded() -> list[tuple[int, str]]:
    with session_scope() as session:
        rows = session.scalars(select(PushSubscriptionRecord))
        return [(row.id, row.callback_url) for row in rows]


def _cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["strava-webhook", *args])
    return result.exit_code, result.output + (result.stderr or "")


# --- the client ---------------------------------------------------------------------------------


def test_client_creates_lists_and_deletes_the_subscription(
    client: StravaClient, receiver: CallbackReceiver
) -> None:
    created = client.create_subscription(receiver.url, "my-verify-token")

    assert created.callback_url == receiver.url
    assert [validation["hub.verify_token"] for validation in receiver.validations] == [
        "my-verify-token"
    ]
    assert [found.id for found in client.list_subscriptions()] == [created.id]
    client.delete_subscription(created.id)
    assert client.list_subscriptions() == []
    with pytest.raises(SubscriptionNotFound):
        client.delete_subscription(created.id)


def test_client_maps_a_failed_validation_get(
    client: StravaClient, receiver: CallbackReceiver
) -> None:
    receiver.get_mode = "wrong"  # echoes another challenge
    with pytest.raises(CallbackNotVerified):
        client.create_subscription(receiver.url, "token")
    receiver.get_mode, receiver.get_status = "status", 404
    with pytest.raises(CallbackNotVerified):
        client.create_subscription(receiver.url, "token")
    assert client.list_subscriptions() == []


def test_client_maps_a_second_subscription_and_a_bad_callback_url(
    client: StravaClient, receiver: CallbackReceiver
) -> None:
    client.create_subscription(receiver.url, "token")
    with pytest.raises(SubscriptionExists):
        client.create_subscription(receiver.url, "token")
    with pytest.raises(SubscriptionRefused) as refused:
        client.create_subscription("ftp://example.com/hook", "token")
    assert type(refused.value) is SubscriptionRefused


def test_client_maps_bad_application_credentials_without_quoting_the_secret(
    settings: Settings, emulator: EmulatorHandle, receiver: CallbackReceiver
) -> None:
    with create_http_client() as http:
        for client_id, secret in (("999", settings.client_secret), (settings.client_id, "wrong!")):
            strava = StravaClient(
                http,
                api_base_url=emulator.api_base_url,
                oauth_base_url=emulator.oauth_base_url,
                client_id=client_id,
                client_secret=secret,
            )
            refusals = []
            with pytest.raises(InvalidClient) as refused:
                strava.create_subscription(receiver.url, "token")
            refusals.append(refused.value)
            with pytest.raises(InvalidClient) as refused:
                strava.list_subscriptions()
            refusals.append(refused.value)
            with pytest.raises(InvalidClient) as refused:
                strava.delete_subscription(1)
            refusals.append(refused.value)
            for error in refusals:
                assert secret not in f"{error} {error!r}"
    assert receiver.validations == []  # refused before any validation GET


# --- the service --------------------------------------------------------------------------------


def test_subscribe_records_the_subscription_and_unsubscribe_removes_both(
    client: StravaClient, receiver: CallbackReceiver
) -> None:
    from app.db import get_sessionmaker

    sessions = get_sessionmaker()
    created = subscriptions.subscribe(
        sessions, client, callback_url=receiver.url, verify_token="token"
    )
    assert _recorded() == [(created.id, receiver.url)]
    with session_scope() as session:
        assert subscriptions.push_active(session)
    found = subscriptions.status(sessions, client)
    assert (found.drift, found.live) == (subscriptions.Drift.NONE, True)

    deleted = subscriptions.unsubscribe(sessions, client)
    assert deleted is not None
    assert deleted.id == created.id
    assert _recorded() == []
    assert client.list_subscriptions() == []
    with session_scope() as session:
        assert not subscriptions.push_active(session)


def test_status_reports_drift_both_ways(client: StravaClient, receiver: CallbackReceiver) -> None:
    from app.db import get_sessionmaker

    sessions = get_sessionmaker()
    made_elsewhere = client.create_subscription(receiver.url, "token")  # not recorded here
    found = subscriptions.status(sessions, client)
    assert found.drift == subscriptions.Drift.NOT_RECORDED
    assert found.at_strava is not None
    assert found.at_strava.id == made_elsewhere.id
    assert not found.live

    client.delete_subscription(made_elsewhere.id)
    subscriptions.subscribe(sessions, client, callback_url=receiver.url, verify_token="token")
    for listed in client.list_subscriptions():
        client.delete_subscription(listed.id)  # deleted at Strava behind our back
    found = subscriptions.status(sessions, client)
    assert (found.drift, found.live) == (subscriptions.Drift.MISSING_AT_STRAVA, False)

    # unsubscribe still clears our record when Strava has nothing left
    assert subscriptions.unsubscribe(sessions, client) is not None
    assert _recorded() == []


def test_the_hourly_check_forgets_a_subscription_gone_at_strava(
    client: StravaClient, receiver: CallbackReceiver, strava_runtime: StravaRuntime
) -> None:
    subscriptions.subscribe(
        strava_runtime.sessions, client, callback_url=receiver.url, verify_token="token"
    )
    found = subscriptions.check(strava_runtime)
    assert found is not None
    assert found.live
    assert len(_recorded()) == 1  # in agreement: kept

    for listed in client.list_subscriptions():
        client.delete_subscription(listed.id)  # deleted at Strava behind our back
    found = subscriptions.check(strava_runtime)
    assert found is not None
    assert found.drift == subscriptions.Drift.MISSING_AT_STRAVA
    assert _recorded() == []  # links go back to hourly polling at the next tick


def test_the_hourly_check_keeps_the_record_when_strava_cannot_be_asked(
    client: StravaClient,
    receiver: CallbackReceiver,
    strava_runtime: StravaRuntime,
    emulator: EmulatorHandle,
) -> None:
    subscriptions.subscribe(
        strava_runtime.sessions, client, callback_url=receiver.url, verify_token="token"
    )
    emulator.admin.add_fault("/api/v3/push_subscriptions", status=503, count=10)
    assert subscriptions.check(strava_runtime) is None
    emulator.admin.clear_faults()
    assert len(_recorded()) == 1


# --- the command --------------------------------------------------------------------------------


def test_cli_subscribe_status_unsubscribe(client: StravaClient, receiver: CallbackReceiver) -> None:
    code, output = _cli("subscribe", "--callback-url", receiver.url)
    assert code == ExitCode.OK, output
    assert "subscribed" in output
    (recorded,) = _recorded()
    assert receiver.validations[-1]["hub.verify_token"] == SANDBOX_WEBHOOK_VERIFY_TOKEN

    code, output = _cli("status")
    assert code == ExitCode.OK, output
    assert f"id {recorded[0]}" in output
    assert "live" in output

    code, output = _cli("unsubscribe")
    assert code == ExitCode.OK, output
    assert _recorded() == []
    assert client.list_subscriptions() == []
    code, output = _cli("unsubscribe")
    assert (code, "nothing to delete" in output) == (ExitCode.OK, True)


def test_cli_already_subscribed_is_refused_with_the_existing_subscription(
    client: StravaClient, receiver: CallbackReceiver
) -> None:
    assert _cli("subscribe", "--callback-url", receiver.url)[0] == ExitCode.OK
    code, output = _cli("subscribe", "--callback-url", receiver.url + "/other")
    assert code == ExitCode.REFUSED
    assert "already subscribed" in output
    assert receiver.url in output
    assert [url for _, url in _recorded()] == [receiver.url]


@pytest.mark.parametrize("mode", ["wrong", "hang"])
def test_cli_failed_validation_says_why_and_records_nothing(
    client: StravaClient, receiver: CallbackReceiver, mode: str
) -> None:
    receiver.get_mode = mode  # a wrong echo, or no answer within Strava's 2 s
    code, output = _cli("subscribe", "--callback-url", receiver.url)
    receiver.release()
    assert code == ExitCode.REFUSED
    assert "validation failed" in output
    assert "hub.challenge" in output
    assert _recorded() == []
    assert client.list_subscriptions() == []


def test_cli_bad_credentials(
    client: StravaClient, receiver: CallbackReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STRAVA_CLIENT_SECRET", "not-the-secret")
    get_settings.cache_clear()
    try:
        code, output = _cli("subscribe", "--callback-url", receiver.url)
    finally:
        monkeypatch.delenv("STRAVA_CLIENT_SECRET")
        get_settings.cache_clear()
    assert code == ExitCode.BAD_CREDENTIALS
    assert "bad credentials" in output
    assert "STRAVA_CLIENT_SECRET" in output
    assert "not-the-secret" not in output
    assert _recorded() == []


def test_cli_strava_down_and_drift_exit_codes(
    client: StravaClient, receiver: CallbackReceiver, emulator: EmulatorHandle
) -> None:
    emulator.admin.add_fault("/api/v3/push_subscriptions", method="POST", status=503)
    code, output = _cli("subscribe", "--callback-url", receiver.url)
    assert code == ExitCode.UNREACHABLE
    assert "Strava unavailable" in output

    client.create_subscription(receiver.url, "token")  # made outside the command
    code, output = _cli("status")
    assert code == ExitCode.DRIFT
    assert "not_recorded" in output
