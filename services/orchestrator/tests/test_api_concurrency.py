"""One runner must not freeze the API (issue 10 item 2): simultaneous requests of one runner
coalesce without queueing behind a row lock, and every answer is JSON from the contract (202, or
a 409/429/503 error body), never a text/plain 500. Against a live uvicorn on real PostgreSQL."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx2
import pytest
from app.config import Settings
from app.main import create_app
from app.strava.client import StravaClient
from app.strava.payloads import TokenResponse
from app.strava.runtime import StravaRuntime
from factories import Runner, consent, linked_runner, start_link, synced_runner
from fastapi.testclient import TestClient
from live import serving
from waiting import wait_until

CONTRACT_ERRORS = {"not_linked", "rate_limited", "service_unavailable", "invalid_state"}


class GatedClient(StravaClient):
    """The real client over real HTTP, whose code exchange and deauthorization wait for the test
    to open the gate: the request that reached Strava is held there, mid-transaction."""

    gate: threading.Event
    entered: threading.Event

    def exchange_code(self, code: str) -> TokenResponse:
        self.entered.set()
        self.gate.wait(timeout=60)
        return super().exchange_code(code)

    def deauthorize(self, access_token: str) -> None:
        self.entered.set()
        self.gate.wait(timeout=60)
        super().deauthorize(access_token)


@pytest.fixture
def gated(settings: Settings) -> Iterator[GatedClient]:
    with httpx2.Client() as http:
        client = GatedClient(
            http,
            api_base_url=settings.api_base_url,
            oauth_base_url=settings.oauth_base_url,
            client_id=settings.client_id,
            client_secret=settings.client_secret,
        )
        client.gate, client.entered = threading.Event(), threading.Event()
        yield client
        client.gate.set()


def _all_at_once(count: int, call: Callable[[httpx2.Client], httpx2.Response]) -> list[Any]:
    """`count` requests released together, each from its own thread and connection."""
    barrier = threading.Barrier(count)
    answers: list[Any] = []
    lock = threading.Lock()

    def one() -> None:
        with httpx2.Client(timeout=120) as http:
            barrier.wait()
            try:
                answer: Any = call(http)
            except httpx2.HTTPError as exc:
                answer = exc
        with lock:
            answers.append(answer)

    threads = [threading.Thread(target=one) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return answers


def _assert_contract_json(response: Any, statuses: set[int]) -> None:
    assert isinstance(response, httpx2.Response), response
    assert response.status_code in statuses, (response.status_code, response.text[:200])
    assert response.headers["content-type"].startswith("application/json"), response.text[:200]
    if response.status_code >= 400:
        assert response.json()["error"] in CONTRACT_ERRORS, response.text
    if response.status_code in (429, 503):
        assert int(response.headers["retry-after"]) >= 1


def test_fifty_simultaneous_syncs_of_one_runner_get_json_and_one_run(
    settings: Settings,
    api: TestClient,
    athlete: dict[str, Any],
    enqueued: list[uuid.UUID],
    strava_runtime: StravaRuntime,
) -> None:
    runner = synced_runner(api, athlete, enqueued, strava_runtime)
    live_app = create_app(settings, enqueue_sync=enqueued.append)
    with serving(live_app) as base_url:
        answers = _all_at_once(
            50,
            lambda http: http.post(
                f"{base_url}/api/v1/strava/sync", json={}, headers=runner.headers
            ),
        )
    for answer in answers:
        # In flight, a run coalesces: never refused by the cooldown (429), whatever the race.
        _assert_contract_json(answer, {202, 503})
    run_ids = {answer.json()["sync_run_id"] for answer in answers if answer.status_code == 202}
    assert len(run_ids) == 1, run_ids
    assert uuid.UUID(run_ids.pop()) == enqueued[-1]


def _held_then_released(
    gated: GatedClient,
    settings: Settings,
    first: Callable[[httpx2.Client, str], httpx2.Response],
    others: Callable[[httpx2.Client, str], httpx2.Response],
    count: int,
) -> tuple[httpx2.Response, list[Any]]:
    """`first` is held at Strava (its transaction open); `count` concurrent `others` must all be
    answered while it is still held; then it is released."""
    live_app = create_app(settings, strava_client=gated, enqueue_sync=lambda _: None)
    with serving(live_app) as base_url:
        held: list[httpx2.Response] = []

        def hold() -> None:
            with httpx2.Client(timeout=120) as http:
                held.append(first(http, base_url))

        holder = threading.Thread(target=hold)
        holder.start()
        wait_until(gated.entered.is_set)
        answers: list[Any] = []
        racing = threading.Thread(
            target=lambda: answers.extend(_all_at_once(count, lambda http: others(http, base_url))),
            daemon=True,
        )
        racing.start()
        # Every other request is answered while the first one still holds its transaction.
        wait_until(lambda: len(answers) == count)
        assert not held
        gated.gate.set()
        holder.join(timeout=60)
    assert held
    return held[0], answers


def test_simultaneous_unlinks_of_one_runner_do_not_wait_behind_the_first(
    settings: Settings, api: TestClient, athlete: dict[str, Any], gated: GatedClient
) -> None:
    runner = linked_runner(api, athlete["id"])
    first, answers = _held_then_released(
        gated,
        settings,
        lambda http, base: http.delete(f"{base}/api/v1/strava/link", headers=runner.headers),
        lambda http, base: http.delete(f"{base}/api/v1/strava/link", headers=runner.headers),
        count=30,
    )
    assert first.status_code == 204, first.text
    for answer in answers:
        _assert_contract_json(answer, {409, 503})
    assert runner.status()["status"] == "not_linked"


def test_a_replayed_callback_does_not_wait_behind_the_first(
    settings: Settings, api: TestClient, athlete: dict[str, Any], gated: GatedClient
) -> None:
    runner: Runner = linked_runner(api, athlete["id"], name="Replay")
    start = start_link(runner)
    body = {**consent(start.authorize_url, athlete["id"]), "code_verifier": start.verifier}

    def callback(http: httpx2.Client, base: str) -> httpx2.Response:
        return http.post(f"{base}/api/v1/strava/callback", json=body, headers=runner.headers)

    first, answers = _held_then_released(gated, settings, callback, callback, count=20)
    assert first.status_code == 200, first.text
    for answer in answers:
        _assert_contract_json(answer, {400})
        assert answer.json()["error"] == "invalid_state"
