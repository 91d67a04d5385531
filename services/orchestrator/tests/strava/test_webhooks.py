"""Strava webhooks end to end (issue 11): the emulator delivers events over HTTP to the real API
served by uvicorn on loopback; a real Celery worker on Redis processes the inbox; PostgreSQL.

Synchronisation is polling a condition with a deadline (waiting.wait_until and the emulator's
own `wait_for_webhooks`), never a sleep.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import httpx2
import pytest
from app.clock import utcnow
from app.db import session_scope
from app.inbox.models import EventState, InboxEvent
from app.strava.models import PushSubscriptionRecord, StravaLink, StravaRevocation
from app.workouts.models import Workout
from factories import Runner, link, linked_runner
from prometheus_client import REGISTRY
from sqlalchemy import delete, func, select
from waiting import wait_until
from webhook_support import PATH_SECRET, VERIFY_TOKEN, HookServer, serve_hooks, subscribed

if TYPE_CHECKING:
    from app.config import Settings
    from fastapi.testclient import TestClient
    from strava_emulator.testing import EmulatorHandle

pytestmark = pytest.mark.worker

ACTIVITY_READS = "/api/v3/activities/"


@pytest.fixture(scope="module")
def hook_server(worker_settings: Settings, celery_worker: Any) -> Iterator[HookServer]:
    """The real API on loopback, enqueueing processing on the module's Celery worker."""
    with serve_hooks(worker_settings) as server:
        yield server


@pytest.fixture(scope="module")
def subscription(emulator: EmulatorHandle, hook_server: HookServer) -> Iterator[int]:
    with subscribed(emulator, hook_server) as subscription_id:
        yield subscription_id


@dataclass
class Linked:
    runner: Runner
    athlete_id: int

    @property
    def runner_id(self) -> uuid.UUID:
        return uuid.UUID(self.runner.runner_id)


@pytest.fixture
def linked(
    worker_api: TestClient, hook_server: HookServer, subscription: int, emulator: EmulatorHandle
) -> Linked:
    """A runner linked to a fresh emulator athlete, whose link sync has finished."""
    athlete = emulator.admin.create_athlete(history_days=40)
    runner = linked_runner(worker_api, int(athlete["id"]))
    wait_until(lambda: runner.status()["sync"]["last_result"] == "ok")
    return Linked(runner, int(athlete["id"]))


def _events(runner_id: uuid.UUID) -> list[InboxEvent]:
    with session_scope() as session:
        return list(
            session.scalars(
                select(InboxEvent)
                .where(InboxEvent.runner_id == runner_id)
                .order_by(InboxEvent.received_at)
            )
        )


def _settled(runner_id: uuid.UUID, count: int) -> list[InboxEvent] | None:
    events = _events(runner_id)
    if len(events) == count and all(e.state == EventState.DONE for e in events):
        return events
    return None


def _workout(runner_id: uuid.UUID, activity_id: int) -> Workout | None:
    with session_scope() as session:
        return session.scalar(
            select(Workout).where(Workout.runner_id == runner_id, Workout.source_id == activity_id)
        )


def _workout_count(runner_id: uuid.UUID) -> int:
    with session_scope() as session:
        return int(
            session.scalar(
                select(func.count()).select_from(Workout).where(Workout.runner_id == runner_id)
            )
            or 0
        )


def _reads_of(emulator: EmulatorHandle, activity_id: int) -> int:
    return len(emulator.admin.requests(path=f"{ACTIVITY_READS}{activity_id}", method="GET"))


def _new_activity(emulator: EmulatorHandle, athlete_id: int, **fields: Any) -> dict[str, Any]:
    fields.setdefault("start_date", utcnow() - timedelta(hours=2))
    fields.setdefault("sport_type", "Run")
    return emulator.admin.create_activity(athlete_id, **fields)


def _event_body(
    subscription: int, owner: int, object_id: int, aspect: str = "create", **extra: Any
) -> dict[str, Any]:
    return {
        "aspect_type": aspect,
        "event_time": int(time.time()),
        "object_id": object_id,
        "object_type": "activity",
        "owner_id": owner,
        "subscription_id": subscription,
        "updates": {},
        **extra,
    }


def _counter(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


# --- the handshake -------------------------------------------------------------------------------


def test_validation_with_a_wrong_verify_token_is_refused(hook_server: HookServer) -> None:
    query = {"hub.mode": "subscribe", "hub.challenge": "abc123"}
    wrong = httpx2.get(hook_server.callback_url, params={**query, "hub.verify_token": "nope"})
    assert wrong.status_code == 403
    assert wrong.json()["error"] == "invalid_verify_token"
    right = httpx2.get(hook_server.callback_url, params={**query, "hub.verify_token": VERIFY_TOKEN})
    assert right.status_code == 200
    assert right.json() == {"hub.challenge": "abc123"}
    # Without the secret path segment the callback does not exist.
    bare = httpx2.get(
        f"{hook_server.base_url}/api/v1/strava/webhook",
        params={**query, "hub.verify_token": VERIFY_TOKEN},
    )
    assert bare.status_code == 404


def test_the_callback_secrets_never_reach_the_logs(
    hook_server: HookServer, capfd: pytest.CaptureFixture[str]
) -> None:
    query = {"hub.mode": "subscribe", "hub.challenge": "c", "hub.verify_token": VERIFY_TOKEN}
    assert httpx2.get(hook_server.callback_url, params=query).status_code == 200
    assert httpx2.get(hook_server.callback_url, params={**query, "hub.verify_token": "x"}).is_error
    assert hook_server.post({"not": "an event"}).status_code == 400
    logged = "".join(capfd.readouterr())
    assert "/strava/webhook/[redacted]" in logged
    assert PATH_SECRET not in logged
    assert VERIFY_TOKEN not in logged


def test_a_sandbox_api_answers_the_handshake_with_the_sandbox_token(settings: Settings) -> None:
    """Sandbox mode (no STRAVA_CLIENT_ID) without STRAVA_WEBHOOK_VERIFY_TOKEN: the API started on
    its own (not by `dev`) still answers the emulator's validation GET (docs/contract.md §7)."""
    from app.config import SANDBOX_WEBHOOK_VERIFY_TOKEN
    from app.main import create_app
    from fastapi.testclient import TestClient

    assert settings.sandbox
    assert settings.strava_webhook_verify_token is None
    query = {"hub.mode": "subscribe", "hub.challenge": "abc"}
    with TestClient(create_app(settings)) as client:
        answer = client.get(
            "/api/v1/strava/webhook",
            params={**query, "hub.verify_token": SANDBOX_WEBHOOK_VERIFY_TOKEN},
        )
        assert answer.status_code == 200
        assert answer.json() == {"hub.challenge": "abc"}
        wrong = client.get("/api/v1/strava/webhook", params={**query, "hub.verify_token": "x"})
        assert wrong.status_code == 403


def test_outside_sandbox_a_missing_verify_token_refuses_the_handshake(settings: Settings) -> None:
    from app.config import SANDBOX_WEBHOOK_VERIFY_TOKEN
    from app.errors import WebhookVerificationFailed
    from app.strava.webhooks import verify_subscription

    production = settings.model_copy(update={"strava_client_id": "12345"})
    assert not production.sandbox
    assert production.webhook_verify_token is None
    query = {"hub.mode": "subscribe", "hub.challenge": "abc"}
    with pytest.raises(WebhookVerificationFailed):
        verify_subscription(production, {**query, "hub.verify_token": SANDBOX_WEBHOOK_VERIFY_TOKEN})
    with pytest.raises(WebhookVerificationFailed):
        verify_subscription(production, {**query, "hub.verify_token": ""})


# --- intake and processing -----------------------------------------------------------------------


def test_a_new_activity_arrives_with_one_read(linked: Linked, emulator: EmulatorHandle) -> None:
    reads = {"endpoint": "GET /activities/{id}", "status": "200", "purpose": "webhook"}
    reads_before = _counter("strava_requests_total", **reads)
    fresh_before = _counter("strava_webhook_freshness_seconds_count")
    stored_before = _counter(
        "strava_webhook_events_total",
        object_type="activity",
        aspect_type="create",
        outcome="stored",
    )
    activity = _new_activity(emulator, linked.athlete_id, name="Lunch run")
    emulator.admin.wait_for_webhooks()
    events = wait_until(lambda: _settled(linked.runner_id, 1))
    assert events[0].outcome == "upserted"
    workout = _workout(linked.runner_id, activity["id"])
    assert workout is not None
    assert workout.name == "Lunch run"
    assert _reads_of(emulator, activity["id"]) == 1
    # Telemetry: the event counted at intake, one read by purpose, one freshness sample.
    assert _counter("strava_requests_total", **reads) == reads_before + 1
    assert _counter("strava_webhook_freshness_seconds_count") == fresh_before + 1
    assert (
        _counter(
            "strava_webhook_events_total",
            object_type="activity",
            aspect_type="create",
            outcome="stored",
        )
        == stored_before + 1
    )


def test_the_same_event_three_times_is_stored_and_read_once(
    linked: Linked, emulator: EmulatorHandle, hook_server: HookServer
) -> None:
    emulator.admin.add_webhook_fault("duplicate", object_type="activity", aspect_type="create")
    activity = _new_activity(emulator, linked.athlete_id)
    deliveries = [
        d for d in emulator.admin.wait_for_webhooks() if d["event"]["object_id"] == activity["id"]
    ]
    assert len(deliveries) == 2
    assert all(d["state"] == "delivered" for d in deliveries)
    # A replay of the same body (a third delivery) is acknowledged and recognised.
    replay = hook_server.post(deliveries[0]["event"])
    assert replay.status_code == 200
    assert replay.json() == {"status": "duplicate"}
    wait_until(lambda: _settled(linked.runner_id, 1))
    assert _reads_of(emulator, activity["id"]) == 1


def test_create_for_an_activity_already_deleted_at_strava_stores_nothing(
    linked: Linked, emulator: EmulatorHandle, hook_server: HookServer
) -> None:
    emulator.admin.add_webhook_fault("drop", count=2, object_type="activity")
    activity = _new_activity(emulator, linked.athlete_id)
    emulator.admin.delete_activity(activity["id"])
    dropped = [
        d for d in emulator.admin.wait_for_webhooks() if d["event"]["object_id"] == activity["id"]
    ]
    create = next(d["event"] for d in dropped if d["event"]["aspect_type"] == "create")
    # Strava delivers the create late, after the activity is gone.
    assert hook_server.post(create).json() == {"status": "stored"}
    events = wait_until(lambda: _settled(linked.runner_id, 1))
    assert events[0].outcome == "not_found"
    assert _workout(linked.runner_id, activity["id"]) is None


def test_update_before_create_ends_with_the_updated_activity(
    linked: Linked, emulator: EmulatorHandle
) -> None:
    emulator.admin.add_webhook_fault("out_of_order", object_type="activity", aspect_type="create")
    activity = _new_activity(emulator, linked.athlete_id, name="Before")
    emulator.admin.update_activity(activity["id"], name="After")
    deliveries = [
        d for d in emulator.admin.wait_for_webhooks() if d["event"]["object_id"] == activity["id"]
    ]
    assert [d["event"]["aspect_type"] for d in deliveries] == ["create", "update"]
    wait_until(lambda: _settled(linked.runner_id, 2))
    workout = _workout(linked.runner_id, activity["id"])
    assert workout is not None
    assert workout.name == "After"


def test_an_update_outside_the_window_is_not_kept(linked: Linked, emulator: EmulatorHandle) -> None:
    old = next(
        act
        for act in emulator.admin.list_activities(linked.athlete_id)
        if act["start_date"] < (utcnow() - timedelta(days=30)).isoformat()
    )
    emulator.admin.update_activity(old["id"], name="Renamed long ago")
    emulator.admin.wait_for_webhooks()
    events = wait_until(lambda: _settled(linked.runner_id, 1))
    assert events[0].outcome == "not_kept"
    assert _workout(linked.runner_id, old["id"]) is None


def test_private_true_as_a_string_is_taken_and_kept_with_read_all(
    linked: Linked, emulator: EmulatorHandle
) -> None:
    activity = _new_activity(emulator, linked.athlete_id)
    wait_until(lambda: _settled(linked.runner_id, 1))
    emulator.admin.update_activity(activity["id"], visibility="only_me", private=True)
    delivered = emulator.admin.wait_for_webhooks()[-1]
    assert delivered["event"]["updates"].get("private") == "true"
    events = wait_until(lambda: _settled(linked.runner_id, 2))
    assert events[1].updates == {"private": "true"}
    workout = _workout(linked.runner_id, activity["id"])
    assert workout is not None
    assert workout.visibility == "only_me"


def test_a_delete_removes_the_workout_without_a_read(
    linked: Linked, emulator: EmulatorHandle
) -> None:
    activity = _new_activity(emulator, linked.athlete_id)
    wait_until(lambda: _settled(linked.runner_id, 1))
    assert _workout(linked.runner_id, activity["id"]) is not None
    emulator.admin.delete_activity(activity["id"])
    events = wait_until(lambda: _settled(linked.runner_id, 2))
    assert events[1].outcome == "deleted"
    assert _workout(linked.runner_id, activity["id"]) is None
    assert _reads_of(emulator, activity["id"]) == 1  # the create's read only


# --- what is refused or ignored ------------------------------------------------------------------


def test_an_event_for_an_unknown_athlete_is_ignored_and_counted(
    hook_server: HookServer, subscription: int
) -> None:
    labels = {"object_type": "activity", "aspect_type": "create", "outcome": "unknown_athlete"}
    before = _counter("strava_webhook_events_total", **labels)
    with session_scope() as session:
        stored_before = session.scalar(select(func.count()).select_from(InboxEvent))
    response = hook_server.post(_event_body(subscription, owner=987_654_321, object_id=42))
    assert response.status_code == 200
    assert response.json() == {"status": "unknown_athlete"}
    assert _counter("strava_webhook_events_total", **labels) == before + 1
    with session_scope() as session:
        assert session.scalar(select(func.count()).select_from(InboxEvent)) == stored_before


def test_an_event_of_another_subscription_is_ignored(
    linked: Linked, hook_server: HookServer, subscription: int
) -> None:
    body = _event_body(subscription + 1, owner=linked.athlete_id, object_id=42)
    assert hook_server.post(body).json() == {"status": "unknown_subscription"}
    assert _events(linked.runner_id) == []


def test_with_no_subscription_recorded_events_of_any_subscription_are_taken(
    linked: Linked, hook_server: HookServer, subscription: int
) -> None:
    """Only Strava knows the callback URL's secret segment, and it may deliver before
    `subscribe` has recorded its answer (docs/contract.md §3.2)."""
    from app.strava.subscriptions import record, recorded_subscription

    with session_scope() as session:
        ours = recorded_subscription(session)
        assert ours is not None
        assert ours.id == subscription
        session.execute(delete(PushSubscriptionRecord))
    try:
        body = _event_body(subscription + 7, owner=linked.athlete_id, object_id=42, aspect="delete")
        assert hook_server.post(body).json() == {"status": "stored"}
        assert len(_events(linked.runner_id)) == 1
    finally:
        with session_scope() as session:
            record(session, ours)


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"object_id": "123"}, "object_id"),
        ({"object_type": "segment"}, "object_type"),
        ({"updates": {"private": True}}, "updates"),
        ({"updates": {"private": "yes"}}, "updates"),
        ({"event_time": "1700000000"}, "event_time"),
    ],
)
def test_malformed_events_are_400(
    linked: Linked,
    hook_server: HookServer,
    subscription: int,
    change: dict[str, Any],
    problem: str,
) -> None:
    body = {**_event_body(subscription, owner=linked.athlete_id, object_id=42), **change}
    response = hook_server.post(body)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"
    assert problem in str(response.json()["detail"]["problems"])
    assert _events(linked.runner_id) == []


def test_missing_fields_and_non_json_are_400(hook_server: HookServer, subscription: int) -> None:
    labels = {"object_type": "unknown", "aspect_type": "unknown", "outcome": "invalid"}
    before = _counter("strava_webhook_events_total", **labels)
    missing = hook_server.post({"object_type": "activity", "subscription_id": subscription})
    assert missing.status_code == 400
    assert missing.json()["error"] == "invalid_request"
    garbage = httpx2.post(
        hook_server.callback_url, content=b"not json{", headers={"content-type": "text/plain"}
    )
    assert garbage.status_code == 400
    assert garbage.json()["error"] == "invalid_request"
    assert _counter("strava_webhook_events_total", **labels) == before + 2


def test_a_one_megabyte_body_is_413(hook_server: HookServer) -> None:
    response = httpx2.post(
        hook_server.callback_url,
        content=b"{" + b" " * (1024 * 1024) + b"}",
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 413
    assert response.json()["error"] == "payload_too_large"


def test_a_body_streamed_without_length_is_cut_at_the_limit(hook_server: HookServer) -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(64):
            yield b" " * 16_384

    response = httpx2.post(
        hook_server.callback_url, content=chunks(), headers={"content-type": "application/json"}
    )
    assert response.status_code == 413


# --- the database down ---------------------------------------------------------------------------


class _DownFor:
    """A session factory whose first `failures` sessions talk to a closed port."""

    def __init__(self, real: Any, failures: int) -> None:
        from sqlalchemy import create_engine
        from sqlalchemy.orm import sessionmaker

        self.real = real
        self.failures = failures
        self.dead = sessionmaker(
            bind=create_engine(
                "postgresql+psycopg://postgres@127.0.0.1:1/none",
                connect_args={"connect_timeout": 2},
            )
        )

    def __call__(self) -> Any:
        if self.failures > 0:
            self.failures -= 1
            return self.dead()
        return self.real()


def test_database_down_answers_503_and_stravas_retry_lands_the_event(
    linked: Linked, emulator: EmulatorHandle, hook_server: HookServer
) -> None:
    real = hook_server.app.state.sessions
    hook_server.app.state.sessions = _DownFor(real, failures=1)
    try:
        activity = _new_activity(emulator, linked.athlete_id)
        delivery = next(
            d
            for d in emulator.admin.wait_for_webhooks()
            if d["event"]["object_id"] == activity["id"]
        )
    finally:
        hook_server.app.state.sessions = real
    assert [a["status_code"] for a in delivery["attempts"]] == [503, 200]
    wait_until(lambda: _settled(linked.runner_id, 1))
    assert _workout(linked.runner_id, activity["id"]) is not None


# --- deauthorization -----------------------------------------------------------------------------


def test_a_forged_deauthorization_deletes_nothing(
    linked: Linked, hook_server: HookServer, subscription: int
) -> None:
    before = _workout_count(linked.runner_id)
    assert before > 0
    forged = _event_body(
        subscription,
        owner=linked.athlete_id,
        object_id=linked.athlete_id,
        aspect="update",
        object_type="athlete",
        updates={"authorized": "false"},
    )
    assert hook_server.post(forged).json() == {"status": "stored"}
    events = wait_until(lambda: _settled(linked.runner_id, 1))
    assert events[0].outcome == "forged_deauthorization"
    assert _workout_count(linked.runner_id) == before
    status = linked.runner.status()
    assert status["status"] == "linked"
    assert status["error"] is None or status["error"]["code"] != "revoked"


def test_a_genuine_revocation_removes_every_strava_trace(
    linked: Linked, emulator: EmulatorHandle
) -> None:
    assert _workout_count(linked.runner_id) > 0
    emulator.admin.revoke(linked.athlete_id)
    events = wait_until(lambda: _settled(linked.runner_id, 1))
    assert events[0].outcome == "revoked"
    assert _workout_count(linked.runner_id) == 0
    with session_scope() as session:
        assert (
            session.scalar(select(StravaLink).where(StravaLink.runner_id == linked.runner_id))
            is None
        )
        assert session.get(StravaRevocation, linked.runner_id) is not None
    status = linked.runner.status()
    assert status["status"] == "not_linked"
    assert status["error"]["code"] == "revoked"
    assert status["error"]["action"] == "reconnect"
    # Linking again ends the revoked state.
    code, body = link(linked.runner, linked.athlete_id)
    assert code == 200, body
    assert linked.runner.status()["error"] is None


# --- the rate budget -----------------------------------------------------------------------------


def _states(runner_id: uuid.UUID) -> dict[str, int]:
    with session_scope() as session:
        rows = session.execute(
            select(InboxEvent.state, func.count())
            .where(InboxEvent.runner_id == runner_id)
            .group_by(InboxEvent.state)
        ).all()
    return {state: int(count) for state, count in rows}


def test_a_spent_budget_defers_500_events_until_the_window_resets(
    linked: Linked, emulator: EmulatorHandle
) -> None:
    import time_machine
    from app.strava import scheduling, tasks

    runtime = tasks.runtime()
    reset_at = utcnow() + timedelta(minutes=15)
    runtime.budget.block(reset_at, "short")  # as after a spent window: nobody reads until reset
    emulator.admin.clear_requests()
    now = utcnow()
    created = [
        _new_activity(
            emulator, linked.athlete_id, start_date=now - timedelta(days=1 + i % 20, minutes=i)
        )["id"]
        for i in range(500)
    ]
    emulator.admin.wait_for_webhooks(timeout=300)
    wait_until(lambda: _states(linked.runner_id) == {"deferred": 500}, timeout=300)
    with session_scope() as session:
        waits = set(
            session.scalars(
                select(InboxEvent.next_attempt_at).where(InboxEvent.runner_id == linked.runner_id)
            )
        )
    assert waits == {reset_at.replace(microsecond=(reset_at.microsecond // 1000) * 1000)}
    reads = {f"{ACTIVITY_READS}{activity_id}" for activity_id in created}
    # Not one read while the budget is spent (nor a listing).
    assert [r for r in emulator.admin.requests(method="GET") if r["path"] in reads] == []
    assert emulator.admin.requests(path="/api/v3/athlete/activities") == []
    # The tick's gauges see them waiting.
    scheduling.redrive_webhooks(
        runtime,
        now=utcnow(),
        enqueue_webhooks=tasks.enqueue_webhook_processing,
        stale_pending=timedelta(minutes=2),
    )
    assert _counter("strava_webhook_inbox_depth") >= 500
    assert _counter("strava_webhook_inbox_oldest_age_seconds") > 0

    # The window resets; the beat tick re-drives the deferred events.
    with time_machine.travel(reset_at + timedelta(seconds=1), tick=True):

        def redriven_and_done() -> bool:
            scheduling.redrive_webhooks(
                runtime,
                now=utcnow(),
                enqueue_webhooks=tasks.enqueue_webhook_processing,
                stale_pending=timedelta(minutes=2),
            )
            return _states(linked.runner_id) == {"done": 500}

        wait_until(redriven_and_done, timeout=300, interval=0.5)
        stored = wait_until(
            lambda: (count := _workout_count(linked.runner_id)) >= len(created) and count,
            timeout=120,
        )
    assert all(_workout(linked.runner_id, activity_id) for activity_id in created)
    assert stored >= 500
    requests = emulator.admin.requests()
    assert [r for r in requests if r["status"] == 429] == []
    # A burst: one listing of the window, not 500 reads.
    assert [r for r in requests if r["path"] in reads] == []
    with session_scope() as session:
        outcomes = set(
            session.scalars(
                select(InboxEvent.outcome).where(InboxEvent.runner_id == linked.runner_id)
            )
        )
    assert outcomes == {"coalesced"}
