"""What clients see when one runner bursts the API, or when the database hangs (issue 10 items 2
and 10).

    uv run python bench/api_burst.py [--requests 50]              # one runner's sync burst
    uv run python bench/api_burst.py --silent-database [--requests 45]

Burst: a PostgreSQL database of its own (TEST_DATABASE_URL's server, default
postgresql+psycopg://postgres@127.0.0.1:5432/test; created, migrated and dropped), one runner
with a sealed link (the sync request never calls Strava, and nothing is enqueued), the API as a
subprocess (one uvicorn worker, default settings) on a free loopback port, then `--requests`
POST /api/v1/strava/sync of that runner released at once, each on its own connection, and one
GET /healthz in the middle of them.

Silent database: DATABASE_URL points at a loopback port that accepts TCP and never answers;
`--requests` GET /api/v1/strava/status at once, then /healthz and /readyz.

Prints the answers by status and content type, the distinct run ids of the 202s, the latency
(p50, max) of the burst and of /healthz and /readyz, and the wall time. A report, not a test.
"""

from __future__ import annotations

import argparse
import os
import secrets
import socket
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

ORCHESTRATOR = Path(__file__).resolve().parent.parent / "services" / "orchestrator"
sys.path.insert(0, str(ORCHESTRATOR))

ADMIN_URL = os.environ.get("TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
os.environ.setdefault("TOKEN_ENCRYPTION_KEYS", "q1pEzX0JcDzLm1sXzUTPlTx2sAfE2F1sAlyo3qNQ_5U")
os.environ.pop("REDIS_URL", None)
os.environ.pop("STRAVA_CLIENT_ID", None)


@contextmanager
def database() -> Iterator[str]:
    from sqlalchemy import create_engine, text

    name = f"bench_burst_{os.getpid()}_{secrets.token_hex(3)}"
    admin = create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@contextmanager
def silent_port() -> Iterator[int]:
    """Accepts TCP connections (the kernel's backlog does) and never answers."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1024)
    try:
        yield listener.getsockname()[1]
    finally:
        listener.close()


def linked_runner(database_url: str) -> str:
    """A runner with a session and a sealed link; returns its bearer token."""
    from app.clock import utcnow
    from app.config import Settings
    from app.db import sessionmaker_for
    from app.runners import service as runners
    from app.security import KeyRing
    from app.strava.credentials import LinkCredentials, seal_link
    from app.strava.models import StravaLink

    keyring = KeyRing(Settings(database_url=database_url).encryption_keys())
    with sessionmaker_for(database_url).begin() as session:
        runner_session, token = runners.create_session(session, ttl=timedelta(hours=1))
        link = StravaLink(
            id=uuid.uuid4(),
            runner_id=runner_session.runner_id,
            linked_at=utcnow(),
            token_version=1,
            scopes="activity:read_all",
        )
        credentials = LinkCredentials(
            athlete={"id": 1, "firstname": "B", "lastname": "Urst"},
            access_token="bench-access",
            refresh_token="bench-refresh",
        )
        seal_link(link, keyring, credentials, access_token_expires_at=utcnow())
        session.add(link)
    return token


SERVE = (
    "import sys, uvicorn; from app.main import create_app; "
    "uvicorn.run(create_app(enqueue_sync=lambda _: None), port=int(sys.argv[1]), "
    "log_level='error', access_log=False)"
)


@contextmanager
def serving(database_url: str) -> Iterator[str]:
    """The API in a process of its own (its GIL is not the clients'), one uvicorn worker."""
    import httpx2

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {**os.environ, "DATABASE_URL": database_url}
    server = subprocess.Popen([sys.executable, "-c", SERVE, str(port)], cwd=ORCHESTRATOR, env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx2.get(f"{base}/healthz", timeout=1)
                break
            except httpx2.HTTPError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise RuntimeError("the API did not start") from None
                time.sleep(0.05)
        yield base
    finally:
        server.terminate()
        server.wait(timeout=10)


def timed(http: Any, method: str, url: str, **kwargs: Any) -> tuple[str, float, Any]:
    import httpx2

    started = time.perf_counter()
    try:
        response = http.request(method, url, **kwargs)
        kind = f"{response.status_code} {response.headers.get('content-type', '-').split(';')[0]}"
        body: Any = response.json() if "json" in kind else None
    except httpx2.HTTPError as exc:
        kind, body = type(exc).__name__, None
    return kind, time.perf_counter() - started, body


def burst(count: int, method: str, url: str, probes: list[str], **kwargs: Any) -> None:
    """`count` requests released together, each on a client (and connection) of its own made
    beforehand, so that the figures are the server's; the probes go out right after them."""
    import httpx2

    barrier = threading.Barrier(count + 1)
    results: list[tuple[str, float, Any]] = []
    lock = threading.Lock()

    def one() -> None:
        with httpx2.Client(timeout=120) as http:
            barrier.wait()
            result = timed(http, method, url, **kwargs)
        with lock:
            results.append(result)

    threads = [threading.Thread(target=one) for _ in range(count)]
    for thread in threads:
        thread.start()
    with httpx2.Client(timeout=120) as http:
        barrier.wait()
        started = time.perf_counter()
        probed = [(probe, timed(http, "GET", probe)) for probe in probes]
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    latencies = sorted(result[1] for result in results)
    print(f"{count} x {method} {url.split('/', 3)[3]}: {dict(Counter(r[0] for r in results))}")
    run_ids = {r[2]["sync_run_id"] for r in results if r[0].startswith("202")}
    if run_ids:
        print(f"  distinct run ids among the 202s: {len(run_ids)}")
    print(f"  latency p50 {statistics.median(latencies):.2f} s, max {latencies[-1]:.2f} s")
    for probe, (kind, elapsed, _) in probed:
        print(f"  during it, GET /{probe.split('/', 3)[3]}: {kind} in {elapsed:.3f} s")
    print(f"  wall time {wall:.2f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=None)
    parser.add_argument("--silent-database", action="store_true")
    args = parser.parse_args()
    if args.silent_database:
        with silent_port() as port:
            url = f"postgresql+psycopg://postgres@127.0.0.1:{port}/silent"
            with serving(url) as base:
                burst(
                    args.requests or 45,
                    "GET",
                    f"{base}/api/v1/strava/status",
                    [f"{base}/healthz", f"{base}/readyz"],
                    headers={"Authorization": "Bearer nobody"},
                )
        return
    from app.migrations import upgrade

    with database() as url:
        upgrade(url)
        token = linked_runner(url)
        with serving(url) as base:
            print("cold (the pool opens its connections), then warm:")
            burst(
                args.requests or 50,
                "POST",
                f"{base}/api/v1/strava/sync",
                [f"{base}/healthz"],
                headers={"Authorization": f"Bearer {token}"},
                json={},
            )
            burst(
                args.requests or 50,
                "POST",
                f"{base}/api/v1/strava/sync",
                [f"{base}/healthz"],
                headers={"Authorization": f"Bearer {token}"},
                json={},
            )


if __name__ == "__main__":
    main()
