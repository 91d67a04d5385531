"""API read latency against its floor: status and summary next to an authenticated one-query route.

    uv run python bench/api.py [--connections 16] [--duration 10] [--threads 2] [--no-hello]
                               [--variants] [--profile DIR]

Needs PostgreSQL (TEST_DATABASE_URL, default postgresql+psycopg://postgres@127.0.0.1:5432/test:
a database of its own is created next to it, built by the migrations and dropped at the end) and
Redis (TEST_REDIS_URL, default redis://127.0.0.1:6379/0: a queue and budget of its own, removed
at the end).

1. Set-up (not timed): the Strava emulator as a subprocess; the API as a subprocess, ONE uvicorn
   worker, `uvicorn --factory bench/api_app.py:create_app` (the product app plus the floor route);
   one runner made, profiled, linked and synced through the public HTTP API (session, profile,
   link-token, the emulator's consent auto-approve, callback, then one `orchestrator worker`
   process runs the queued sync and is stopped again before anything is measured).
2. Load: one tool, the same settings for every endpoint, each warmed up briefly then driven for
   --duration seconds with the runner's bearer token:
     floor    GET /bench/floor: sync route, the token hashed, one indexed SELECT on
              runner_sessions via SQLAlchemy Core (no ORM, no pre-ping)
     status   GET /api/v1/strava/status
     summary  GET /api/v1/profile/summary
     hello    a bare FastAPI async hello-world in a uvicorn of its own (reference, no database)
   The tool is `wrk --latency` (Debian's package; installed by this script with apt-get when we
   are root and it is missing), else a small asyncio HTTP/1.1 keep-alive generator in-process.
   Before the load: statements, pool checkouts (a pre-ping each on the product's engine),
   commits and rollbacks per request of each endpoint, from 20 sequential requests.
3. A table: req/s, p50, p99, errors (non-2xx/3xx responses + socket errors), the API process's
   CPU per request, the ratio to the floor, and the targets of issue 13 beside it (≥ 0.5 of the
   floor, p99 ≤ 50 ms, 0 errors). It is a report, not a test: it exits 0 whatever the figures.

--variants adds the floor as async routes (the blocking query inline on the event loop, and
psycopg's async driver): sync or async routes, by measurement.

--profile DIR also runs `py-spy record --gil --format raw` (py-spy must be on PATH, e.g.
`uv tool install py-spy`) on the API process during each measured run, and prints the top frames
of each profile (bench/profile_top.py).

Everything stays on 127.0.0.1 and stops by itself.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import os
import re
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx2

ADMIN_URL = os.environ.get("TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
BENCH_DIR = Path(__file__).resolve().parent
REDIRECT_URI = "coachai://oauth/strava"  # the deep link's host `oauth` is the callback domain
TARGET_RATIO = 0.5
ENDPOINTS = {
    "floor": "/bench/floor",
    "status": "/api/v1/strava/status",
    "summary": "/api/v1/profile/summary",
}
# Sync or async routes, by measurement: the floor's query in an async route (--variants).
VARIANTS = {
    "floor-async-inline": "/bench/floor-async-inline",
    "floor-async": "/bench/floor-async",
}
TARGET_P99_MS = 50.0


# --- processes ---


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _wait(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll a condition with a deadline."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if predicate():
                return
        except httpx2.TransportError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        time.sleep(0.1)


@contextmanager
def _process(
    args: list[str], *, env: dict[str, str], cwd: Path, log: Path
) -> Iterator[subprocess.Popen[bytes]]:
    """A child in a process group of its own, stopped with SIGTERM (then SIGKILL) at the end."""
    with log.open("wb") as output:
        process = subprocess.Popen(
            args, env=env, cwd=cwd, stdout=output, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            yield process
        finally:
            try:
                os.killpg(process.pid, signal.SIGTERM)
                process.wait(timeout=20)
            except ProcessLookupError:
                pass
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def _healthy(url: str) -> Callable[[], bool]:
    return lambda: httpx2.get(url, timeout=1).status_code == 200


@contextmanager
def emulator(env: dict[str, str], workdir: Path) -> Iterator[str]:
    port = _free_port()
    args = [sys.executable, "-m", "strava_emulator.cli", "serve", "--port", str(port)]
    args += ["--athletes", "1", "--history-days", "35", "--callback-domain", "oauth"]
    with _process(args, env=env, cwd=workdir, log=workdir / "emulator.log"):
        base = f"http://127.0.0.1:{port}"
        _wait(_healthy(f"{base}/_emulator/healthz"), 60, "the emulator did not start")
        yield base


@contextmanager
def uvicorn_app(
    factory: str, env: dict[str, str], workdir: Path, health_path: str
) -> Iterator[tuple[str, int]]:
    """One uvicorn worker serving `factory` from bench/; yields (base URL, its pid)."""
    port = _free_port()
    args = [sys.executable, "-m", "uvicorn", "--factory", factory, "--app-dir", str(BENCH_DIR)]
    # As `orchestrator serve`: uvicorn's access log off (the app logs its own), warnings only.
    args += ["--host", "127.0.0.1", "--port", str(port), "--no-access-log"]
    args += ["--log-level", "warning"]
    log = workdir / f"{factory.replace(':', '-')}.log"
    with _process(args, env=env, cwd=workdir, log=log) as process:
        base = f"http://127.0.0.1:{port}"
        _wait(_healthy(base + health_path), 60, f"{factory} did not start (see {log})")
        yield base, process.pid


@contextmanager
def database() -> Iterator[str]:
    from sqlalchemy import create_engine, text

    name = f"bench_api_{os.getpid()}_{secrets.token_hex(3)}"
    admin = create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def forget_redis_keys(tag: str) -> None:
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    for pattern in (f"bench-api-{tag}*", f"bench-api-budget-{tag}*"):
        keys = list(client.scan_iter(match=pattern))
        if keys:
            client.delete(*keys)
    client.close()


def service_env(database_url: str, emulator_url: str, tag: str, workdir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STRAVA_CLIENT_")}
    (workdir / "metrics").mkdir(exist_ok=True)
    env.update(
        {
            "DATABASE_URL": database_url,
            "REDIS_URL": REDIS_URL,
            "SYNC_QUEUE": f"bench-api-{tag}",
            "RATE_BUDGET_PREFIX": f"bench-api-budget-{tag}",
            "SANDBOX_EMULATOR_URL": emulator_url,
            "STRAVA_REDIRECT_URIS": REDIRECT_URI,
            "TOKEN_ENCRYPTION_KEYS": base64.urlsafe_b64encode(os.urandom(32)).decode(),
            "PROMETHEUS_MULTIPROC_DIR": str(workdir / "metrics"),
        }
    )
    return env


# --- a linked, synced runner through the public API ----------------------------------------------


def _pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)[:64]
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def link_runner(api_url: str, emulator_url: str) -> str:
    """A runner with a profile and a Strava link; returns its bearer token."""
    api = httpx2.Client(base_url=api_url, timeout=30)
    session = api.post("/api/v1/auth/sessions", json={})
    session.raise_for_status()
    token: str = session.json()["access_token"]
    api.headers["Authorization"] = f"Bearer {token}"
    profile = {"display_name": "Bench Runner", "timezone": "Europe/Berlin"}
    api.put("/api/v1/profile", json={**profile, "weekly_distance_goal_km": 40}).raise_for_status()
    verifier, challenge = _pkce_pair()
    start = api.post(
        "/api/v1/strava/link-token",
        json={"code_challenge": challenge, "code_challenge_method": "S256"},
    )
    start.raise_for_status()
    athletes = httpx2.get(f"{emulator_url}/_emulator/athletes").json()["items"]
    # The emulator approves the consent screen for the athlete named in the query.
    consent = httpx2.get(
        start.json()["authorize_url"] + "&" + urlencode({"emulator_athlete_id": athletes[0]["id"]}),
        follow_redirects=False,
    )
    if consent.status_code != 302:
        raise RuntimeError(f"emulator consent: {consent.status_code} {consent.text}")
    query = parse_qs(urlsplit(consent.headers["location"]).query, keep_blank_values=True)
    callback = {key: values[0] for key, values in query.items()}
    linked = api.post("/api/v1/strava/callback", json={**callback, "code_verifier": verifier})
    if linked.status_code != 200:
        raise RuntimeError(f"callback: {linked.status_code} {linked.text}")
    api.close()
    return token


def sync_runner(api_url: str, token: str, env: dict[str, str], workdir: Path) -> dict[str, Any]:
    """One worker process runs the sync the callback queued; stopped before any measurement."""
    headers = {"Authorization": f"Bearer {token}"}
    status: dict[str, Any] = {}

    def synced() -> bool:
        nonlocal status
        status = httpx2.get(f"{api_url}/api/v1/strava/status", headers=headers).json()
        return status["sync"]["last_result"] is not None

    args = [sys.executable, "-m", "app.cli", "worker", "--concurrency", "1", "--pool", "solo"]
    with _process(args, env=env, cwd=workdir, log=workdir / "worker.log"):
        _wait(synced, 120, "the first sync did not finish (see worker.log)")
    if status["sync"]["last_result"] != "ok":
        raise RuntimeError(f"the first sync failed: {status}")
    return status


# --- load ---


@dataclass
class Load:
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    errors: int
    requests: int


def ensure_wrk() -> str | None:
    found = shutil.which("wrk")
    if found or os.geteuid() != 0 or not shutil.which("apt-get"):
        return found
    print("wrk is missing: installing Debian's `wrk` package (apt-get install -y wrk)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    quiet = {"env": env, "stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    install = ["apt-get", "install", "-y", "-q", "wrk"]
    if subprocess.run(install, check=False, **quiet).returncode != 0:  # type: ignore[call-overload]
        subprocess.run(["apt-get", "update", "-q"], check=False, **quiet)  # type: ignore[call-overload]
        subprocess.run(install, check=False, **quiet)  # type: ignore[call-overload]
    found = shutil.which("wrk")
    if found is None:
        print("  could not install wrk: falling back to the Python load generator")
    return found


_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def _ms(value: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", value).groups()  # type: ignore[union-attr]
    return float(number) * _UNITS_MS[unit]


def parse_wrk(output: str) -> Load:
    def percentile(label: str) -> float:
        return _ms(re.search(rf"^\s+{label}%\s+(\S+)", output, re.M).group(1))  # type: ignore[union-attr]

    socket_errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    errors = sum(int(n) for n in socket_errors.groups()) if socket_errors else 0
    errors += int(non_2xx.group(1)) if non_2xx else 0
    return Load(
        requests_per_s=float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1)),  # type: ignore[union-attr]
        p50_ms=percentile("50"),
        p99_ms=percentile("99"),
        errors=errors,
        requests=int(re.search(r"(\d+) requests in", output).group(1)),  # type: ignore[union-attr]
    )


def run_wrk(
    wrk: str, url: str, token: str, *, connections: int, threads: int, duration: float
) -> Load:
    args = [wrk, f"-t{threads}", f"-c{connections}", f"-d{duration:g}s", "--latency"]
    args += ["-H", f"Authorization: Bearer {token}", url]
    done = subprocess.run(args, check=True, capture_output=True, text=True)
    return parse_wrk(done.stdout)


async def _python_load(url: str, token: str, connections: int, duration: float) -> Load:
    """HTTP/1.1 keep-alive GETs on `connections` sockets for `duration` s (wrk's fallback)."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    request = (
        f"GET {parts.path} HTTP/1.1\r\nHost: {host}:{port}\r\nAuthorization: Bearer {token}\r\n\r\n"
    ).encode()
    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + duration

    async def connection() -> None:
        nonlocal errors
        while time.perf_counter() < deadline:
            try:
                reader, writer = await asyncio.open_connection(host, port)
            except OSError:
                errors += 1
                continue
            try:
                while time.perf_counter() < deadline:
                    started = time.perf_counter()
                    writer.write(request)
                    head = await reader.readuntil(b"\r\n\r\n")
                    status = int(head.split(b" ", 2)[1])
                    length = re.search(rb"(?i)content-length:\s*(\d+)", head)
                    await reader.readexactly(int(length.group(1)) if length else 0)
                    latencies.append((time.perf_counter() - started) * 1000)
                    errors += status >= 400
            except (OSError, asyncio.IncompleteReadError, ValueError):
                errors += 1
            finally:
                writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(connection() for _ in range(connections)))
    wall = time.perf_counter() - started
    ordered = sorted(latencies) or [0.0]
    return Load(
        requests_per_s=len(latencies) / wall,
        p50_ms=statistics.median(ordered),
        p99_ms=ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))],
        errors=errors,
        requests=len(latencies),
    )


def _cpu_seconds(pid: int) -> float:
    """utime + stime of a process (and its reaped children) from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(value) for value in fields[11:15]) / os.sysconf("SC_CLK_TCK")


@dataclass
class Row:
    name: str
    path: str
    load: Load
    cpu_ms_per_request: float


class Driver:
    """One tool, one set of settings, for every endpoint."""

    def __init__(self, args: argparse.Namespace, wrk: str | None, token: str) -> None:
        self.args, self.wrk, self.token = args, wrk, token

    @property
    def tool(self) -> str:
        a = self.args
        if self.wrk:
            return f"wrk -t{a.threads} -c{a.connections} -d{a.duration:g}s --latency"
        return f"Python asyncio keep-alive generator, {a.connections} connections, {a.duration:g} s"

    def load(self, url: str, duration: float) -> Load:
        a = self.args
        if self.wrk:
            return run_wrk(
                self.wrk,
                url,
                self.token,
                connections=a.connections,
                threads=a.threads,
                duration=duration,
            )
        return asyncio.run(_python_load(url, self.token, a.connections, duration))

    def measure(self, name: str, base: str, path: str, pid: int) -> Row:
        if self.args.warmup > 0:
            self.load(base + path, self.args.warmup)
        profiler = self._profile(name, pid)
        cpu_before = _cpu_seconds(pid)
        load = self.load(base + path, self.args.duration)
        cpu = _cpu_seconds(pid) - cpu_before
        if profiler is not None:
            profiler.wait(timeout=self.args.duration + 60)
        return Row(name, path, load, cpu * 1000 / max(load.requests, 1))

    def _profile(self, name: str, pid: int) -> subprocess.Popen[bytes] | None:
        if self.args.profile is None:
            return None
        out = Path(self.args.profile) / f"api-{name}.txt"
        args = ["py-spy", "record", "--pid", str(pid), "--format", "raw", "--output", str(out)]
        # --gil: only the thread holding the GIL, i.e. where this GIL-bound process spends CPU;
        # waits on PostgreSQL, the event loop's epoll and idle pool threads drop out.
        args += ["--duration", str(int(self.args.duration)), "--gil", "--nonblocking"]
        args += ["--rate", "200"]
        return subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def database_work(api_url: str, token: str, paths: Iterable[str], requests: int = 20) -> None:
    """Statements, pool checkouts (a pre-ping each on the product's engine) and commits per
    request, from sequential requests and the counters of bench/api_app.py."""
    headers = {"Authorization": f"Bearer {token}"}
    kinds = ("checkouts", "statements", "commits", "rollbacks")
    print(f"\ndatabase work per request ({requests} sequential requests each)")
    print(f"{'endpoint':<34}" + "".join(f"{kind:>11}" for kind in kinds))
    with httpx2.Client(base_url=api_url, headers=headers, timeout=30) as client:
        for path in paths:
            before = client.get("/bench/counters").json()
            for _ in range(requests):
                client.get(path).raise_for_status()
            after = client.get("/bench/counters").json()
            figures = [(after.get(k, 0) - before.get(k, 0)) / requests for k in kinds]
            print(f"{path:<34}" + "".join(f"{value:>11.1f}" for value in figures))


def print_table(rows: list[Row]) -> None:
    floor = next((row for row in rows if row.name == "floor"), None)
    print(
        f"\n{'endpoint':<34}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}"
        f"{'CPU ms/req':>11}{'÷ floor':>9}   targets (≥{TARGET_RATIO} floor, "
        f"p99 ≤ {TARGET_P99_MS:g} ms, 0 errors)"
    )
    for row in rows:
        load = row.load
        ratio = load.requests_per_s / floor.load.requests_per_s if floor else float("nan")
        if row.name in ("status", "summary"):
            verdicts = [
                f"ratio {'ok' if ratio >= TARGET_RATIO else 'MISS'}",
                f"p99 {'ok' if load.p99_ms <= TARGET_P99_MS else 'MISS'}",
                f"errors {'ok' if load.errors == 0 else 'MISS'}",
            ]
            targets = ", ".join(verdicts)
        else:
            targets = "(reference)"
        print(
            f"{row.path:<34}{load.requests_per_s:>9.0f}{load.p50_ms:>9.1f}"
            f"{load.p99_ms:>9.1f}{load.errors:>8}{row.cpu_ms_per_request:>11.2f}{ratio:>9.2f}"
            f"   {targets}"
        )


def print_profiles(directory: str, names: list[str]) -> None:
    files = [str(Path(directory) / f"api-{name}.txt") for name in names]
    present = [path for path in files if Path(path).exists()]
    if present:
        subprocess.run([sys.executable, str(BENCH_DIR / "profile_top.py"), *present], check=False)


# --- main ---


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per endpoint")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds, not measured")
    parser.add_argument(
        "--tool", choices=("auto", "python"), default="auto", help="python: skip wrk"
    )
    parser.add_argument("--no-hello", action="store_true", help="skip the hello-world reference")
    parser.add_argument(
        "--variants", action="store_true", help="also the floor as async routes (api_app.py)"
    )
    parser.add_argument("--profile", metavar="DIR", help="py-spy raw profiles of the API here")
    args = parser.parse_args()
    if args.profile is not None:
        if not shutil.which("py-spy"):
            parser.error("--profile needs py-spy on PATH (e.g. `uv tool install py-spy`)")
        Path(args.profile).mkdir(parents=True, exist_ok=True)

    wrk = ensure_wrk() if args.tool == "auto" else None
    tag = secrets.token_hex(4)
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="bench-api-") as tmp, database() as db_url:
        workdir = Path(tmp)
        try:
            base_env = {k: v for k, v in os.environ.items() if not k.startswith("STRAVA_CLIENT_")}
            with emulator(base_env, workdir) as emulator_url:
                env = service_env(db_url, emulator_url, tag, workdir)
                subprocess.run(
                    [sys.executable, "-m", "app.cli", "migrate"],
                    env=env,
                    cwd=workdir,
                    check=True,
                    capture_output=True,
                )
                with uvicorn_app("api_app:create_app", env, workdir, "/healthz") as (api, pid):
                    token = link_runner(api, emulator_url)
                    status = sync_runner(api, token, env, workdir)
                    print(
                        f"set-up: one runner linked and synced through the API "
                        f"({status['sync']['workouts_in_window']} workouts in the window); "
                        f"API pid {pid}, 1 uvicorn worker"
                    )
                    endpoints = dict(ENDPOINTS)
                    if args.variants:
                        endpoints.update(VARIANTS)
                    database_work(api, token, endpoints.values())
                    driver = Driver(args, wrk, token)
                    print(f"load: {driver.tool}; warm-up {args.warmup:g} s per endpoint")
                    print(f"load average before: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
                    for name, path in endpoints.items():
                        rows.append(driver.measure(name, api, path, pid))
            if not args.no_hello:
                hello = "api_app:create_hello_app"
                with uvicorn_app(hello, base_env, workdir, "/hello") as (base, pid):
                    rows.append(driver.measure("hello", base, "/hello", pid))
        finally:
            forget_redis_keys(tag)
    print_table(rows)
    print(f"load average after: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    if args.profile is not None:
        print_profiles(args.profile, [row.name for row in rows])


if __name__ == "__main__":
    main()
