"""Webhook events: what each change to an athlete's data pushes, and how delivery behaves
(retries, faults, log). A real receiver on loopback; waits poll the emulator's pending count."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx2
import pytest
from strava_emulator.callback_receiver import CallbackReceiver
from strava_emulator.config import EmulatorConfig
from strava_emulator.testing import EmulatorHandle, run_emulator

EVENT_KEYS = [
    "aspect_type",
    "event_time",
    "object_id",
    "object_type",
    "owner_id",
    "subscription_id",
    "updates",
]


@pytest.fixture(scope="module")
def emu() -> Iterator[EmulatorHandle]:
    config = EmulatorConfig(
        athletes=2,
        history_days=3,
        webhook_timeout_seconds=0.5,
        webhook_retry_delay_seconds=0.05,
        webhook_scan_seconds=0,  # only clock moves and explicit scans: deterministic
    )
    with run_emulator(config) as handle:
        yield handle


@pytest.fixture
def subscription_id(emu: EmulatorHandle, callback: CallbackReceiver) -> int:
    created = emu.subscribe(callback.url, "vt")
    assert created.status_code == 201
    return int(created.json()["id"])


@pytest.fixture
def runner(emu: EmulatorHandle, subscription_id: int) -> int:
    """An athlete who authorized the app with every activity scope."""
    athlete_id = int(emu.admin.create_athlete(history_days=1)["id"])
    emu.admin.issue_tokens(athlete_id, scope="read,activity:read_all")
    return athlete_id


def _event(
    aspect: str, object_id: int, owner: int, sub: int, event_time: int, **updates: str
) -> dict[str, Any]:
    return {
        "aspect_type": aspect,
        "event_time": event_time,
        "object_id": object_id,
        "object_type": "activity",
        "owner_id": owner,
        "subscription_id": sub,
        "updates": updates,
    }


def _delivered(emu: EmulatorHandle, callback: CallbackReceiver) -> list[dict[str, Any]]:
    emu.admin.wait_for_webhooks()
    return callback.received()


def _times(events: list[dict[str, Any]]) -> list[int]:
    return [event["event_time"] for event in events]


def test_activity_create_update_and_delete_events_have_strava_shape(
    emu: EmulatorHandle, callback: CallbackReceiver, runner: int, subscription_id: int
) -> None:
    start = int(emu.admin.clock_now().timestamp())
    act = emu.admin.create_activity(runner, name="Morning Run", sport_type="Run")
    emu.admin.update_activity(act["id"], name="Tempo", sport_type="Ride")
    emu.admin.update_activity(act["id"], private=True)
    emu.admin.update_activity(act["id"], distance=5000.0)  # not title/type/privacy: no event
    emu.admin.delete_activity(act["id"])
    events = _delivered(emu, callback)
    assert all(list(event) == EVENT_KEYS for event in events)
    sub, aid = subscription_id, act["id"]
    assert events == [
        _event("create", aid, runner, sub, events[0]["event_time"]),
        _event("update", aid, runner, sub, events[1]["event_time"], title="Tempo", type="Ride"),
        _event("update", aid, runner, sub, events[2]["event_time"], private="true"),
        _event("delete", aid, runner, sub, events[3]["event_time"]),
    ]
    end = int(emu.admin.clock_now().timestamp())
    assert all(start <= t <= end for t in _times(events))  # the emulator's clock


def test_going_private_is_a_delete_without_read_all_and_public_again_a_create(
    emu: EmulatorHandle, callback: CallbackReceiver, subscription_id: int
) -> None:
    athlete_id = int(emu.admin.create_athlete(history_days=1)["id"])
    emu.admin.issue_tokens(athlete_id, scope="read,activity:read")
    act = emu.admin.create_activity(athlete_id)
    emu.admin.update_activity(act["id"], private=True)
    emu.admin.update_activity(act["id"], name="Unseen while private")
    emu.admin.update_activity(act["id"], private=False)
    events = _delivered(emu, callback)
    assert [(e["aspect_type"], e["updates"]) for e in events] == [
        ("create", {}),
        ("delete", {}),
        ("create", {}),
    ]
    assert {e["object_id"] for e in events} == {act["id"]}


def test_private_activities_have_no_events_without_read_all(
    emu: EmulatorHandle, callback: CallbackReceiver, subscription_id: int
) -> None:
    athlete_id = int(emu.admin.create_athlete(history_days=1)["id"])
    emu.admin.issue_tokens(athlete_id, scope="read,activity:read")
    hidden = emu.admin.create_activity(athlete_id, visibility="only_me")
    emu.admin.delete_activity(hidden["id"])
    shown = emu.admin.create_activity(athlete_id)
    events = _delivered(emu, callback)
    assert [(e["aspect_type"], e["object_id"]) for e in events] == [("create", shown["id"])]


def test_events_only_for_athletes_who_authorized_the_app(
    emu: EmulatorHandle, callback: CallbackReceiver, runner: int
) -> None:
    stranger = int(emu.admin.create_athlete(history_days=1)["id"])
    emu.admin.create_activity(stranger)
    emu.admin.revoke(stranger)  # never authorized: no deauthorization event either
    mine = emu.admin.create_activity(runner)
    events = _delivered(emu, callback)
    assert [(e["owner_id"], e["object_id"]) for e in events] == [(runner, mine["id"])]


def test_admin_revoke_is_an_athlete_deauthorization_event(
    emu: EmulatorHandle, callback: CallbackReceiver, runner: int, subscription_id: int
) -> None:
    emu.admin.revoke(runner)
    emu.admin.create_activity(runner)  # no longer authorized: no event
    [event] = _delivered(emu, callback)
    assert event == {
        "aspect_type": "update",
        "event_time": event["event_time"],
        "object_id": runner,
        "object_type": "athlete",
        "owner_id": runner,
        "subscription_id": subscription_id,
        "updates": {"authorized": "false"},
    }


def test_oauth_deauthorize_is_an_athlete_deauthorization_event(
    emu: EmulatorHandle, callback: CallbackReceiver, subscription_id: int
) -> None:
    athlete_id = int(emu.admin.create_athlete(history_days=1)["id"])
    tokens = emu.admin.issue_tokens(athlete_id, scope="read")
    answer = httpx2.post(
        f"{emu.oauth_base_url}/deauthorize",
        data={"access_token": tokens["access_token"]},
        timeout=10,
    )
    assert answer.status_code == 200
    [event] = _delivered(emu, callback)
    assert (event["object_type"], event["aspect_type"]) == ("athlete", "update")
    assert (event["object_id"], event["owner_id"]) == (athlete_id, athlete_id)
    assert event["updates"] == {"authorized": "false"}


def test_generated_activities_appearing_as_the_clock_moves_are_create_events(
    emu: EmulatorHandle, callback: CallbackReceiver, runner: int, subscription_id: int
) -> None:
    emu.admin.list_activities(runner)  # history scheduled from here on, as for a live athlete
    before = emu.admin.clock_now().timestamp()
    # Two weeks: any generated athlete trains at least twice in them, whatever today's date
    # (four days held a single run on some dates).
    after = emu.admin.advance_clock(14 * 86_400).timestamp()
    appeared = sorted(
        (
            a
            for a in emu.admin.list_activities(runner)
            if before < _ts(a["available_at"]) <= after and a["id"] < 90_000_000_000
        ),
        key=lambda a: (_ts(a["available_at"]), a["id"]),
    )
    assert len(appeared) >= 2  # two weeks of training
    events = _delivered(emu, callback)
    assert events == [
        _event("create", a["id"], runner, subscription_id, int(_ts(a["available_at"])))
        for a in appeared
    ]
    assert emu.admin.scan_webhooks() == 0  # each appearance is announced once


def test_no_events_after_the_subscription_is_deleted(
    emu: EmulatorHandle, callback: CallbackReceiver, runner: int, subscription_id: int
) -> None:
    deleted = httpx2.delete(
        f"{emu.api_base_url}/push_subscriptions/{subscription_id}",
        params={"client_id": emu.config.client_id, "client_secret": emu.config.client_secret},
        timeout=10,
    )
    assert deleted.status_code == 204
    emu.admin.create_activity(runner)
    assert emu.admin.wait_for_webhooks() == []
    assert callback.received() == []


def test_events_are_delivered_in_order(
    emu: EmulatorHandle, callback: CallbackReceiver, runner: int
) -> None:
    act = emu.admin.create_activity(runner)
    names = [f"Run {n}" for n in range(8)]
    for name in names:
        emu.admin.update_activity(act["id"], name=name)
    events = _delivered(emu, callback)
    assert [e["updates"].get("title") for e in events[1:]] == names


def test_a_5xx_answer_is_retried_up_to_three_attempts(
    emu: EmulatorHandle, callback: CallbackReceiver, runner: int
) -> None:
    callback.post_script = [500, 503]
    act = emu.admin.create_activity(runner)
    [delivery] = emu.admin.wait_for_webhooks()
    assert delivery["state"] == "delivered"
    assert [a["status_code"] for a in delivery["attempts"]] == [500, 503, 200]
    assert [e["object_id"] for e in callback.received()] == [act["id"]] * 3


def test_delivery_gives_up_after_three_attempts(
    emu: EmulatorHandle, callback: CallbackReceiver, runner: int
) -> None:
    callback.post_script = [500, 502, 500, 500]
    emu.admin.create_activity(runner)
    [delivery] = emu.admin.wait_for_webhooks()
    assert delivery["state"] == "failed"
    assert [a["status_code"] for a in delivery["attempts"]] == [500, 502, 500]
    assert len(callback.received()) == 3


def test_a_timed_out_delivery_is_retried(
    emu: EmulatorHandle, callback: CallbackReceiver, runner: int
) -> None:
    callback.post_script = ["hang"]
    emu.admin.create_activity(runner)
    [delivery] = emu.admin.wait_for_webhooks()
    first, second = delivery["attempts"]
    assert (first["status_code"], first["error"]) == (None, "timeout")
    assert (second["status_code"], second["error"]) == (200, None)
    assert delivery["state"] == "delivered"


def test_the_delivery_log_records_each_event_and_attempt(
    emu: EmulatorHandle, callback: CallbackReceiver, runner: int
) -> None:
    callback.post_script = [503]
    act = emu.admin.create_activity(runner)
    [delivery] = emu.admin.wait_for_webhooks()
    assert delivery["event"]["object_id"] == act["id"]
    assert delivery["callback_url"] == callback.url
    assert delivery["fault"] is None
    for attempt in delivery["attempts"]:
        assert set(attempt) == {"at", "status_code", "error", "duration_ms", "wall_ts"}
        assert attempt["duration_ms"] >= 0
        assert _ts(attempt["at"]) >= _ts(delivery["queued_at"])
        assert attempt["wall_ts"] >= delivery["queued_wall_ts"]
    first, second = delivery["attempts"]
    assert second["wall_ts"] > first["wall_ts"]
    assert emu.admin.webhook_deliveries("failed") == []
    emu.admin.clear_webhook_deliveries()
    assert emu.admin.webhook_deliveries() == []


def test_drop_fault_loses_one_event(
    emu: EmulatorHandle, callback: CallbackReceiver, runner: int
) -> None:
    emu.admin.add_webhook_fault("drop")
    lost = emu.admin.create_activity(runner)
    kept = emu.admin.create_activity(runner)
    deliveries = emu.admin.wait_for_webhooks()
    assert [(d["event"]["object_id"], d["state"]) for d in deliveries] == [
        (lost["id"], "dropped"),
        (kept["id"], "delivered"),
    ]
    assert [e["object_id"] for e in callback.received()] == [kept["id"]]


def test_duplicate_fault_delivers_an_event_twice(
    emu: EmulatorHandle, callback: CallbackReceiver, runner: int
) -> None:
    emu.admin.add_webhook_fault("duplicate", aspect_type="create")
    act = emu.admin.create_activity(runner)
    emu.admin.delete_activity(act["id"])
    events = _delivered(emu, callback)
    assert [(e["aspect_type"], e["object_id"]) for e in events] == [
        ("create", act["id"]),
        ("create", act["id"]),
        ("delete", act["id"]),
    ]
    assert events[0] == events[1]


def test_out_of_order_fault_delivers_an_event_after_the_next_one(
    emu: EmulatorHandle, callback: CallbackReceiver, runner: int
) -> None:
    emu.admin.add_webhook_fault("out_of_order")
    act = emu.admin.create_activity(runner)
    emu.admin.update_activity(act["id"], name="Renamed")
    events = _delivered(emu, callback)
    assert [e["aspect_type"] for e in events] == ["update", "create"]


def test_delay_fault_lets_later_events_overtake(
    emu: EmulatorHandle, callback: CallbackReceiver, runner: int
) -> None:
    # Held far longer than the test runs (reset drops it): whatever the machine's speed, the
    # delete is delivered while the create is still waiting.
    emu.admin.add_webhook_fault("delay", delay_ms=600_000)
    act = emu.admin.create_activity(runner)
    emu.admin.delete_activity(act["id"])
    deadline = time.monotonic() + 10
    while not emu.admin.webhook_deliveries("delivered"):
        assert time.monotonic() < deadline, "the undelayed delete was not delivered"
        time.sleep(0.01)
    assert [e["aspect_type"] for e in callback.received()] == ["delete"]
    [delayed] = emu.admin.webhook_deliveries("pending")
    assert (delayed["fault"], delayed["event"]["aspect_type"]) == ("delay", "create")


def test_delivery_faults_are_listed_and_cleared(emu: EmulatorHandle) -> None:
    fault_id = emu.admin.add_webhook_fault("drop", count=2, object_type="athlete")
    listed = httpx2.get(f"{emu.base_url}/_emulator/webhooks/faults", timeout=10).json()["items"]
    assert [(f["id"], f["kind"], f["remaining"]) for f in listed] == [(fault_id, "drop", 2)]
    emu.admin.clear_webhook_faults()
    assert httpx2.get(f"{emu.base_url}/_emulator/webhooks/faults", timeout=10).json() == {
        "items": []
    }
    bad = httpx2.post(
        f"{emu.base_url}/_emulator/webhooks/faults", json={"kind": "explode"}, timeout=10
    )
    assert bad.status_code == 422


def test_reset_forgets_the_subscription_and_the_log(
    emu: EmulatorHandle, callback: CallbackReceiver, runner: int
) -> None:
    emu.admin.create_activity(runner)
    emu.admin.wait_for_webhooks()
    emu.admin.reset()
    assert emu.admin.webhook_deliveries() == []
    listed = httpx2.get(
        f"{emu.api_base_url}/push_subscriptions",
        params={"client_id": emu.config.client_id, "client_secret": emu.config.client_secret},
        timeout=10,
    )
    assert listed.json() == []


def test_the_admin_openapi_documents_the_webhook_admin_api(emu: EmulatorHandle) -> None:
    paths = httpx2.get(f"{emu.base_url}/_emulator/openapi.json", timeout=10).json()["paths"]
    for path in ("deliveries", "pending", "scan", "faults"):
        assert f"/_emulator/webhooks/{path}" in paths
    assert "/api/v3/push_subscriptions" in paths


def _ts(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC).timestamp()
