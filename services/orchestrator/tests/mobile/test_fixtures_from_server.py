"""The iOS fixtures (mobile/ios/Tests/Fixtures/*.json) against the server's real responses.

One test drives the real API (PostgreSQL, the Strava emulator over HTTP, the sync run in-process
as the Celery task runs it) through what the app sees: an error, not linked, a link token, linked
after the first sync, a manual sync queued, and action required after Strava revoked the app.
Every response is written to test-output/ios-fixtures/ on every run. The committed fixtures must
have exactly the structure of those fresh responses: the same keys, the same JSON types per
key (`date-time` strings told apart from other strings, null from a value) and the same enum and
error-code values. Ids, tokens and timestamps differ from run to run and are not compared, so
the committed files only change when someone refreshes them:

    REFRESH_IOS_FIXTURES=1 ./scripts/test services/orchestrator/tests/mobile -k fixtures

which writes the fresh responses over the committed fixtures (then review the diff and run the
Swift tests on a Mac: DecodingTests read the fixtures).
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterable, Mapping
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from app.strava.runtime import StravaRuntime
from app.strava.sync import run_sync
from fastapi import FastAPI
from fastapi.testclient import TestClient
from strava_emulator.testing import EmulatorHandle

from .contract import CONTRACT_ERROR_CODES, server_error_codes
from .swift_source import FIXTURE_TYPES, FIXTURES_DIR, IOS_ROOT, SwiftSources

if TYPE_CHECKING:
    # The same module pytest imports as `factories` (its pythonpath); mypy knows it by package.
    from factories import Runner, add_workout, consent, new_runner, pkce_pair
else:
    from factories import Runner, add_workout, consent, new_runner, pkce_pair

FRESH_DIR = IOS_ROOT.parents[1] / "test-output" / "ios-fixtures"
REFRESH = os.environ.get("REFRESH_IOS_FIXTURES") == "1"
REFRESH_COMMAND = (
    "REFRESH_IOS_FIXTURES=1 ./scripts/test services/orchestrator/tests/mobile -k fixtures"
)
# What the app sends as its redirect URI (StravaLinkFlow.redirectURI); on the test allow-list.
APP_REDIRECT_URI = "coachai://oauth/strava"


def _json(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    return body


def real_responses(
    api: TestClient, emulator: EmulatorHandle, enqueued: list[uuid.UUID], deps: StravaRuntime
) -> dict[str, dict[str, Any]]:
    """Fixture name → the server's real response body, in the order the app meets them."""
    found: dict[str, dict[str, Any]] = {}
    verifier, challenge = pkce_pair()
    link_token_body = {
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        "redirect_uri": APP_REDIRECT_URI,
    }

    # Linking before the profile exists: the contract's error body.
    no_profile = new_runner(api, profile=False)
    found["error"] = _json(no_profile.post("/api/v1/strava/link-token", link_token_body), 409)

    runner: Runner = new_runner(api)
    found["status_not_linked"] = runner.status()

    # The link flow as the app runs it: link token, Strava's consent page, the callback.
    athlete = emulator.admin.create_athlete(firstname="Jane", lastname="Doe")
    found["link_token"] = _json(runner.post("/api/v1/strava/link-token", link_token_body), 201)
    callback = consent(found["link_token"]["authorize_url"], athlete["id"])
    linked = _json(
        runner.post("/api/v1/strava/callback", {**callback, "code_verifier": verifier}), 200
    )
    assert linked["status"] == "linked", linked
    # The first sync, as the worker runs it: then the status is linked and synced.
    first = run_sync(deps, enqueued[-1])
    assert first.result == "ok", first
    found["status_linked"] = runner.status()

    # The runner removes the app on Strava, then asks for a sync: queued, then failed.
    emulator.admin.revoke(athlete["id"])
    found["sync_queued"] = _json(runner.post("/api/v1/strava/sync", {}), 202)
    assert found["sync_queued"]["sync_run_id"] == str(enqueued[-1])
    failed = run_sync(deps, enqueued[-1])
    assert failed.result == "failed", failed
    found["status_action_required"] = runner.status()

    found["training_load"] = _json(_trained_runner(api).get("/api/v1/training/load"), 200)
    return found


def _trained_runner(api: TestClient) -> Runner:
    """A runner whose stored workouts give every load method, a note and a null, so that the
    training-load document's structure does not depend on the emulator's generated history."""
    runner = new_runner(api)
    physiology = {"sex": "female", "max_hr": 190, "resting_hr": 50, "threshold_hr": 170}
    assert runner.put("/api/v1/profile", {"display_name": "Jane", **physiology}).is_success
    yesterday = date.today() - timedelta(days=1)
    heart = {"average_heartrate": 150.0, "max_heartrate": 180.0}
    add_workout(runner.runner_id, yesterday, moving_time_s=3600, distance_m=10000.0, **heart)
    add_workout(runner.runner_id, yesterday, moving_time_s=1800, distance_m=6000.0)
    ride = {"sport_type": "Ride", "is_run": False, "device_watts": True}
    add_workout(runner.runner_id, date.today(), moving_time_s=3600, weighted_average_watts=200, **ride)
    add_workout(runner.runner_id, date.today(), sport_type="Yoga", is_run=False, moving_time_s=1800)
    return runner


# --- structure ------------------------------------------------------------------------------------


def _is_timestamp(text: str) -> bool:
    if len(text) < 19 or text[10] != "T":
        return False
    try:
        datetime.fromisoformat(text)
    except ValueError:
        return False
    return True


def structure(document: Any, literals: Iterable[str]) -> dict[str, str]:
    """Path → JSON type of every value in `document` ("sync.last_sync_at": "date-time",
    "scopes[]": "string"); strings in `literals` (enum values, error codes) keep their value."""
    keep = frozenset(literals)
    found: dict[str, set[str]] = {}

    def walk(value: Any, path: str) -> None:
        kind: str
        if isinstance(value, dict):
            kind = "object"
            for key, item in value.items():
                walk(item, f"{path}.{key}" if path else key)
        elif isinstance(value, list):
            kind = "array"
            for item in value:
                walk(item, f"{path}[]")
        elif value is None:
            kind = "null"
        elif isinstance(value, bool):
            kind = "boolean"
        elif isinstance(value, int):
            kind = "integer"
        elif isinstance(value, float):
            kind = "number"
        elif value in keep:
            kind = f"string {value!r}"
        else:
            kind = "date-time" if _is_timestamp(value) else "string"
        found.setdefault(path or "(document)", set()).add(kind)

    walk(document, "")
    return {path: " | ".join(sorted(kinds)) for path, kinds in sorted(found.items())}


def structure_differences(committed: Mapping[str, str], fresh: Mapping[str, str]) -> list[str]:
    return [
        f"{path}: committed {committed.get(path, 'absent')}, server {fresh.get(path, 'absent')}"
        for path in sorted(set(committed) | set(fresh))
        if committed.get(path) != fresh.get(path)
    ]


def _enum_values(node: Any) -> Iterable[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "enum" and isinstance(value, list):
                yield from (str(item) for item in value)
            else:
                yield from _enum_values(value)
    elif isinstance(node, list):
        for item in node:
            yield from _enum_values(item)


def _write(directory: Path, name: str, document: Mapping[str, Any]) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    text = json.dumps(document, indent=2, ensure_ascii=False) + "\n"
    (directory / f"{name}.json").write_text(text, encoding="utf-8")


# --- the tests ------------------------------------------------------------------------------------


def test_ios_fixtures_have_the_structure_of_real_responses(
    api: TestClient,
    emulator: EmulatorHandle,
    enqueued: list[uuid.UUID],
    strava_runtime: StravaRuntime,
) -> None:
    fresh = real_responses(api, emulator, enqueued, strava_runtime)
    assert set(fresh) == set(FIXTURE_TYPES)
    for name, document in fresh.items():
        _write(FRESH_DIR, name, document)
        if REFRESH:
            _write(FIXTURES_DIR, name, document)

    # The fresh responses are what the Swift types decode.
    sources = SwiftSources.app()
    for name, document in fresh.items():
        missing = sources.json_keys(FIXTURE_TYPES[name]) - set(document)
        assert not missing, f"{name}: the server's response lacks {sorted(missing)}"
    assert fresh["status_action_required"]["error"]["code"] == "reauth_required"

    assert isinstance(api.app, FastAPI)
    literals = {*_enum_values(api.app.openapi()), *CONTRACT_ERROR_CODES, *server_error_codes()}
    drifted = []
    for name in sorted(fresh):
        path = FIXTURES_DIR / f"{name}.json"
        committed = json.loads(path.read_text()) if path.exists() else None
        differences = structure_differences(
            structure(committed, literals) if committed is not None else {},
            structure(fresh[name], literals),
        )
        if differences:
            drifted.append(f"{name}.json:\n    " + "\n    ".join(differences))
    assert not drifted, (
        "The committed iOS fixtures no longer have the structure of the server's real responses "
        f"(fresh ones are in {FRESH_DIR.relative_to(IOS_ROOT.parents[1])}/):\n  "
        + "\n  ".join(drifted)
        + f"\nRefresh them with: {REFRESH_COMMAND}\n"
        "then review the diff and run the Swift tests on a Mac."
    )


def test_structure_keeps_types_and_vocabulary_not_values() -> None:
    literals = {"linked", "idle", "reauth_required"}
    one = {
        "status": "linked",
        "athlete": {"id": 1, "firstname": "Jane"},
        "scopes": ["read"],
        "linked_at": "2026-11-24T10:00:00.123456Z",
        "sync": {"state": "idle", "next_sync_at": None, "ratio": 1.5},
        "error": None,
    }
    other = json.loads(json.dumps(one))
    other["athlete"] = {"id": 99, "firstname": "Ann"}
    other["linked_at"] = "2027-01-01T00:00:00Z"
    assert structure(one, literals) == structure(other, literals)
    assert structure(one, literals)["linked_at"] == "date-time"
    assert structure(one, literals)["status"] == "string 'linked'"

    changed = json.loads(json.dumps(one))
    changed["status"] = "action_required"
    changed["sync"]["next_sync_at"] = "2026-11-24T11:00:00Z"
    del changed["sync"]["ratio"]
    changed["scopes"] = []
    assert structure_differences(structure(one, literals), structure(changed, literals)) == [
        "scopes[]: committed string, server absent",
        "status: committed string 'linked', server string",
        "sync.next_sync_at: committed null, server date-time",
        "sync.ratio: committed number, server absent",
    ]
