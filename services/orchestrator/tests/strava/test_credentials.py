"""Encryption at rest: nothing secret in a database dump; `orchestrator rotate-keys`."""

from __future__ import annotations

import base64
import os
import re
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from app.cli import cli
from app.config import get_settings
from app.db import session_scope
from app.main import create_app
from app.security import KeyRing
from app.strava.models import StravaLink
from factories import RecordingClient, link, new_runner
from fastapi.testclient import TestClient
from sqlalchemy import select
from typer.testing import CliRunner


def test_a_database_dump_after_a_link_holds_no_secret_in_clear(
    recording_api: tuple[TestClient, RecordingClient], athlete: dict[str, Any], database_url: str
) -> None:
    api, client = recording_api
    runner = new_runner(api)
    assert link(runner, athlete["id"])[0] == 200
    (tokens,) = client.received
    pg_dump = shutil.which("pg_dump")
    assert pg_dump is not None, "pg_dump (postgresql-client) is needed for this test"
    dump = subprocess.run(
        [pg_dump, "--data-only", database_url.replace("+psycopg", "")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert runner.runner_id in dump  # the dump is real and holds this runner
    assert tokens.access_token.get_secret_value() not in dump
    assert tokens.refresh_token.get_secret_value() not in dump
    assert not re.search(rf"(?<![0-9a-f]){athlete['id']}(?![0-9a-f])", dump)
    assert athlete["lastname"] not in dump


def _new_key() -> str:
    return base64.urlsafe_b64encode(os.urandom(32)).decode()


@pytest.fixture
def key_env() -> Iterator[None]:
    original = os.environ["TOKEN_ENCRYPTION_KEYS"]
    yield
    os.environ["TOKEN_ENCRYPTION_KEYS"] = original
    get_settings.cache_clear()


def _exit_code_for(report: str) -> int:
    """0 when every row was rotated; 1 when rows no key opens remain (another test may have left
    corrupt rows in the shared database)."""
    return 1 if "could not be decrypted" in report else 0


def test_rotate_keys_re_encrypts_every_link_and_is_idempotent(
    api: TestClient, emulator: Any, key_env: None
) -> None:
    runners = [new_runner(api) for _ in range(3)]
    for runner in runners:
        assert link(runner, emulator.admin.create_athlete()["id"])[0] == 200
    old = os.environ["TOKEN_ENCRYPTION_KEYS"]
    new = _new_key()
    os.environ["TOKEN_ENCRYPTION_KEYS"] = f"{new},{old}"
    get_settings.cache_clear()
    new_ring = KeyRing([new])

    first = CliRunner().invoke(cli, ["rotate-keys", "--batch-size", "2"])
    assert first.exit_code == _exit_code_for(first.output), first.output
    second = CliRunner().invoke(cli, ["rotate-keys"])
    assert second.exit_code == _exit_code_for(second.output), second.output
    assert "0 rows" in second.output

    ids = [uuid.UUID(runner.runner_id) for runner in runners]
    with session_scope() as session:
        links = session.scalars(select(StravaLink).where(StravaLink.runner_id.in_(ids))).all()
        assert len(links) == 3
        assert {row.key_id for row in links} == {new_ring.primary_key_id}
    # With the old key gone from the ring, the rotated links still open.
    os.environ["TOKEN_ENCRYPTION_KEYS"] = new
    get_settings.cache_clear()
    with TestClient(create_app(get_settings(), enqueue_sync=lambda _: None)) as fresh:
        for runner in runners:
            response = fresh.get("/api/v1/strava/status", headers=runner.headers)
            assert response.status_code == 200
            assert response.json()["status"] == "linked"


def test_a_ciphertext_copied_onto_another_link_does_not_decrypt(
    api: TestClient, emulator: Any
) -> None:
    alice, bob = new_runner(api), new_runner(api)
    assert link(alice, emulator.admin.create_athlete()["id"])[0] == 200
    assert link(bob, emulator.admin.create_athlete()["id"])[0] == 200
    with session_scope() as session:
        rows = {
            row.runner_id: row
            for row in session.scalars(
                select(StravaLink).where(
                    StravaLink.runner_id.in_([uuid.UUID(alice.runner_id), uuid.UUID(bob.runner_id)])
                )
            )
        }
        rows[uuid.UUID(bob.runner_id)].athlete_ciphertext = rows[
            uuid.UUID(alice.runner_id)
        ].athlete_ciphertext
    response = bob.get("/api/v1/strava/status")
    # A key problem is a state the status shows (issue 9), no longer a 503.
    assert response.status_code == 200
    assert response.json()["error"]["code"] == "key_unavailable"
    assert alice.status()["status"] == "linked"


def test_the_status_shows_the_athlete_without_decrypting_either_token(
    api: TestClient, athlete: dict[str, Any]
) -> None:
    runner = new_runner(api)
    assert link(runner, athlete["id"])[0] == 200
    with session_scope() as session:
        row = session.scalars(
            select(StravaLink).where(StravaLink.runner_id == uuid.UUID(runner.runner_id))
        ).one()
        # Tokens that no key opens: the status must not need them.
        row.access_token_ciphertext = row.refresh_token_ciphertext = b"\x00" * 40

    status = runner.status()

    assert status["status"] == "linked"
    assert status["athlete"]["id"] == athlete["id"]
    assert status["error"] is None


def _rotate_keys_subprocess(keys: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """`orchestrator rotate-keys` as an operator runs it: its own process, only its imports."""
    return subprocess.run(
        [sys.executable, "-m", "app.cli", "rotate-keys", "--batch-size", "2"],
        env={**os.environ, "TOKEN_ENCRYPTION_KEYS": keys, "COLUMNS": "200"},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_rotate_keys_as_a_command_skips_and_reports_unreadable_rows_and_retires_the_old_key(
    api: TestClient, emulator: Any, key_env: None, tmp_path: Path
) -> None:
    runners = [new_runner(api) for _ in range(5)]
    for runner in runners:
        assert link(runner, emulator.admin.create_athlete()["id"])[0] == 200
    good, (short, moved) = runners[:3], runners[3:]
    with session_scope() as session:
        rows = {
            str(row.runner_id): row
            for row in session.scalars(
                select(StravaLink).where(
                    StravaLink.runner_id.in_([uuid.UUID(r.runner_id) for r in runners])
                )
            )
        }
        # Corrupt rows of two kinds: a ciphertext shorter than a nonce, and one bound to
        # another row (associated data mismatch).
        rows[short.runner_id].access_token_ciphertext = b"\x01\x02\x03"
        rows[moved.runner_id].refresh_token_ciphertext = rows[
            good[0].runner_id
        ].refresh_token_ciphertext
        bad_ids = {str(rows[short.runner_id].id), str(rows[moved.runner_id].id)}
    old = os.environ["TOKEN_ENCRYPTION_KEYS"]
    new = _new_key()

    rotated = _rotate_keys_subprocess(f"{new},{old}", tmp_path)

    assert rotated.returncode == 1, rotated.stderr  # not done: the old key cannot be retired yet
    report = rotated.stdout + rotated.stderr
    assert "could not be decrypted" in report
    for bad_id in bad_ids:
        assert bad_id in report  # named, so that an operator can look at the row
    unreadable = int(re.search(r"(\d+) rows? could not be decrypted", report).group(1))  # type: ignore[union-attr]
    assert unreadable >= 2  # other tests' corrupt rows share this database
    with session_scope() as session:
        key_ids = {
            str(row.runner_id): row.key_id
            for row in session.scalars(
                select(StravaLink).where(
                    StravaLink.runner_id.in_([uuid.UUID(r.runner_id) for r in runners])
                )
            )
        }
    assert {key_ids[r.runner_id] for r in good} == {KeyRing([new]).primary_key_id}
    assert {key_ids[r.runner_id] for r in (short, moved)} == {KeyRing([old]).primary_key_id}

    # The old key retired: every readable link still opens with the new key alone.
    os.environ["TOKEN_ENCRYPTION_KEYS"] = new
    get_settings.cache_clear()
    with TestClient(create_app(get_settings(), enqueue_sync=lambda _: None)) as fresh:
        for runner in good:
            response = fresh.get("/api/v1/strava/status", headers=runner.headers)
            assert response.status_code == 200, response.text
            assert response.json()["status"] == "linked"

    # Back under the suite's key for the tests after this one (a second, resumed rotation).
    back = _rotate_keys_subprocess(f"{old},{new}", tmp_path)
    assert back.returncode == 1, back.stderr  # the corrupt rows are still there


def test_a_key_removed_from_the_ring_shows_key_unavailable_not_a_503(
    api: TestClient, athlete: dict[str, Any], key_env: None
) -> None:
    runner = new_runner(api)
    assert link(runner, athlete["id"])[0] == 200
    os.environ["TOKEN_ENCRYPTION_KEYS"] = _new_key()  # the link's key is no longer configured
    get_settings.cache_clear()
    with TestClient(create_app(get_settings(), enqueue_sync=lambda _: None)) as rotated_away:
        response = rotated_away.get("/api/v1/strava/status", headers=runner.headers)
        unlinked = rotated_away.delete("/api/v1/strava/link", headers=runner.headers)
    assert response.status_code == 200, response.text
    assert response.json()["error"]["code"] == "key_unavailable"
    assert response.json()["athlete"] is None
    assert unlinked.status_code == 204, unlinked.text  # the runner can still disconnect
