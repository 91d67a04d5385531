"""Sync throughput: N athletes x 28 days through real Celery workers, against the emulator.

    uv run python bench/sync.py [--athletes 1000] [--concurrency 4] [--latency-ms 50]

Needs PostgreSQL (TEST_DATABASE_URL, default postgresql+psycopg://postgres@127.0.0.1:5432/test:
a database of its own is created next to it and dropped at the end) and Redis (TEST_REDIS_URL,
default redis://127.0.0.1:6379/0: a queue and budget of its own, removed at the end).

1. Set-up (not timed): the emulator as a subprocess on a free loopback port with N generated
   athletes, its rate limits lifted; a fresh database built by the migrations; one runner and one
   link per athlete, with tokens from the emulator's admin API sealed through the credentials
   layer (what the link flow stores, without N browser dances); each athlete's window page
   fetched once (the floor's input; it also has the emulator render every activity's JSON, which
   it then keeps, as Strava serves stored activities rather than generating them on a read).
2. Fan-out: one `orchestrator worker` process (prefork, --concurrency children) on Redis; N sync
   runs queued through the service and published to Celery at once; timed from the first publish
   to the last run finished. Reported: athletes/s, activities/s, Strava requests per athlete-sync,
   p50/p99 of the runs' own duration, peak RSS of a worker process (VmHWM), and the CPU
   seconds the emulator, the worker's processes and the bench itself burnt in that window
   (the emulator shares the machine's cores with the worker: its share says how honest the
   figure is).
3. The same with 50 ms of emulator latency on every activities request (a slow Strava).
4. The floor: the pages fetched in the set-up, then only parsed (SummaryActivity) and bulk
   upserted in one process: what this machine does with no HTTP, broker or task overhead.
5. The ratio of the first fan-out's athletes/s to the floor's, with the load average (the
   machine may be shared: compare ratios of one run, not figures of different runs), and the
   machine's parallel capacity: how much work `cores` CPU-bound processes get done at once,
   against one alone (2.00 on two real cores). The floor uses about one core and the fan-out
   all of them, so on a virtual machine whose cores do not scale (shared physical cores, steal)
   the ratio falls with this figure: it says which kind of machine the ratio was measured on.

Each fan-out starts from an empty workouts table, so every sync is a first, inserting sync.
Everything stays on 127.0.0.1 and stops by itself.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx2

ADMIN_URL = os.environ.get("TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
ACTIVITIES = "/api/v3/athlete/activities"
HUGE = (10_000_000, 100_000_000)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _wait(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        time.sleep(0.1)


# The emulator's pid (set by `emulator`): the fan-out reports the CPU it burns on the same cores.
EMULATOR_PID: int | None = None


def _cpu_seconds(pid: int) -> float:
    """user + system CPU seconds of one process (its own, not its children's); 0 once gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextmanager
def emulator(athletes: int, workdir: Path) -> Iterator[str]:
    global EMULATOR_PID
    port = _free_port()
    log = (workdir / "emulator.log").open("wb")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "strava_emulator.cli",
            "serve",
            "--port",
            str(port),
            "--athletes",
            str(athletes),
            "--history-days",
            "35",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    EMULATOR_PID = process.pid

    def up() -> bool:
        try:
            return httpx2.get(f"{base}/_emulator/healthz", timeout=1).status_code == 200
        except httpx2.HTTPError:
            return False

    try:
        _wait(up, 60, "the emulator did not start")
        yield base
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=20)
        log.close()


@contextmanager
def database() -> Iterator[str]:
    from sqlalchemy import create_engine, text

    name = f"bench_sync_{os.getpid()}_{secrets.token_hex(3)}"
    admin = create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    finally:
        from app.db import get_engine

        get_engine().dispose()
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def configure_environment(database_url: str, emulator_url: str, tag: str) -> None:
    os.environ.update(
        {
            "DATABASE_URL": database_url,
            "REDIS_URL": REDIS_URL,
            "SYNC_QUEUE": f"bench-sync-{tag}",
            "RATE_BUDGET_PREFIX": f"bench-budget-{tag}",
            "SANDBOX_EMULATOR_URL": emulator_url,
            "TOKEN_ENCRYPTION_KEYS": base64.urlsafe_b64encode(os.urandom(32)).decode(),
            "STRAVA_TIMEOUT_SECONDS": "30",
        }
    )
    os.environ.pop("STRAVA_CLIENT_ID", None)


def link_athletes(admin: Any, count: int) -> list[uuid.UUID]:
    """One runner + link per emulator athlete, sealed as the link flow would store it."""
    from app.clock import utcnow
    from app.config import get_settings
    from app.db import get_sessionmaker
    from app.runners.models import Runner
    from app.security import KeyRing
    from app.strava.credentials import LinkCredentials, seal_link
    from app.strava.models import StravaLink

    keyring = KeyRing(get_settings().encryption_keys())
    athletes: list[dict[str, Any]] = []
    while len(athletes) < count:
        page = admin.list_athletes(offset=len(athletes), limit=100)
        if not page:
            break
        athletes.extend(page)
    runner_ids: list[uuid.UUID] = []
    now = utcnow()
    factory = get_sessionmaker()
    for start in range(0, len(athletes), 200):
        with factory.begin() as session:
            for athlete in athletes[start : start + 200]:
                tokens = admin.issue_tokens(athlete["id"])
                runner = Runner(id=uuid.uuid4())
                session.add(runner)
                link = StravaLink(
                    id=uuid.uuid4(),
                    runner_id=runner.id,
                    linked_at=now,
                    token_version=1,
                    scopes="read,activity:read_all",
                    sync_failures=0,
                )
                seal_link(
                    link,
                    keyring,
                    LinkCredentials(
                        athlete={"id": athlete["id"], "firstname": athlete.get("firstname")},
                        access_token=tokens["access_token"],
                        refresh_token=tokens["refresh_token"],
                    ),
                    access_token_expires_at=datetime.fromtimestamp(tokens["expires_at"], UTC),
                )
                session.add(link)
                runner_ids.append(runner.id)
    return runner_ids


@dataclass
class Figures:
    label: str
    athletes: int
    wall_s: float
    activities: int
    requests: int
    durations_ms: list[int]
    results: dict[str, int]
    peak_rss_mb: float | None = None
    # CPU seconds of each process group over the timed window (fan-outs only).
    cpu_s: dict[str, float] | None = None

    def print(self) -> None:
        ordered = sorted(self.durations_ms) or [0]
        p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
        print(f"\n{self.label}")
        print(f"  athletes synced        {self.athletes:,} in {self.wall_s:.1f} s  {self.results}")
        print(f"  athletes/s             {self.athletes / self.wall_s:8.1f}")
        print(
            f"  activities/s           {self.activities / self.wall_s:8.1f}  "
            f"({self.activities:,} activities)"
        )
        print(f"  requests/athlete-sync  {self.requests / max(self.athletes, 1):8.2f}")
        print(f"  sync duration p50      {statistics.median(ordered):8.0f} ms")
        print(f"  sync duration p99      {p99:8.0f} ms")
        if self.peak_rss_mb is not None:
            print(f"  peak RSS of a worker   {self.peak_rss_mb:8.1f} MiB (VmHWM)")
        cores = os.cpu_count() or 1
        for name, seconds in (self.cpu_s or {}).items():
            print(
                f"  CPU {name:<18} {seconds:8.1f} s = {seconds / self.wall_s:4.2f} of a core "
                f"({100 * seconds / (self.wall_s * cores):4.1f}% of {cores} cores)"
            )

    @property
    def rate(self) -> float:
        return self.athletes / self.wall_s


def _vm_hwm_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def _process_tree(pid: int) -> list[int]:
    found = [pid]
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        children = []
    for child in children:
        found.extend(_process_tree(int(child)))
    return found


def _loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


def _reset_data() -> None:
    from app.db import get_sessionmaker
    from sqlalchemy import text

    with get_sessionmaker().begin() as session:
        session.execute(text("TRUNCATE workouts, sync_runs"))
        session.execute(text("UPDATE strava_links SET last_success_at = NULL"))


def fan_out(label: str, runner_ids: list[uuid.UUID], concurrency: int, workdir: Path) -> Figures:
    from app.codes import Trigger
    from app.db import get_sessionmaker
    from app.strava import scheduling, tasks
    from app.strava.models import SyncRun
    from sqlalchemy import func, select

    _reset_data()
    tasks.runtime().budget.reset()
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(workdir / "metrics")}
    log_path = workdir / f"worker-{label[:8].strip().replace(' ', '_')}.log"
    with log_path.open("wb") as log:
        worker = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "worker", "--concurrency", str(concurrency)],
            env=env,
            cwd=workdir,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            _wait(lambda: "ready." in log_path.read_text(errors="replace"), 60, "worker start")
            run_ids: list[uuid.UUID] = []
            factory = get_sessionmaker()
            with factory.begin() as session:
                for runner_id in runner_ids:
                    # enqueue later, all at once: the timing starts with the first message
                    scheduling.request_sync(
                        session, runner_id, Trigger.SCHEDULE, enqueue=lambda _: None
                    )
                session.flush()
                run_ids = list(session.scalars(select(SyncRun.id).where(SyncRun.state == "queued")))
            tree = _process_tree(worker.pid)
            emulator_cpu = _cpu_seconds(EMULATOR_PID) if EMULATOR_PID else 0.0
            worker_cpu = sum(_cpu_seconds(pid) for pid in tree)
            bench_cpu = time.process_time()
            started = time.perf_counter()
            for run_id in run_ids:
                tasks.enqueue_sync(run_id)

            def done() -> bool:
                with factory() as session:
                    finished = session.scalar(
                        select(func.count()).where(SyncRun.state == "finished")
                    )
                return finished == len(run_ids)

            _wait(done, 3600, "the syncs did not finish")
            wall = time.perf_counter() - started
            cpu = {
                "emulator": (_cpu_seconds(EMULATOR_PID) if EMULATOR_PID else 0.0) - emulator_cpu,
                "worker (all procs)": sum(_cpu_seconds(pid) for pid in tree) - worker_cpu,
                "bench (publish+poll)": time.process_time() - bench_cpu,
            }
            peak = max(_vm_hwm_mb(pid) for pid in _process_tree(worker.pid))
        finally:
            worker.send_signal(signal.SIGTERM)
            try:
                worker.wait(timeout=30)
            except subprocess.TimeoutExpired:
                worker.kill()
    with get_sessionmaker()() as session:
        rows = session.execute(
            select(SyncRun.duration_ms, SyncRun.fetched, SyncRun.strava_requests, SyncRun.result)
        ).all()
    results: dict[str, int] = {}
    for row in rows:
        results[str(row.result)] = results.get(str(row.result), 0) + 1
    return Figures(
        label=label,
        athletes=len(rows),
        wall_s=wall,
        activities=sum(row.fetched for row in rows),
        requests=sum(row.strava_requests for row in rows),
        durations_ms=[row.duration_ms or 0 for row in rows],
        results=results,
        peak_rss_mb=peak,
        cpu_s=cpu,
    )


def fetch_pages(runner_ids: list[uuid.UUID], emulator_url: str) -> list[tuple[uuid.UUID, bytes]]:
    """Each athlete's window page, fetched once before anything is timed: the floor's input,
    and the emulator's warm-up. The emulator renders an activity's JSON on its first read and
    keeps it (Strava serves stored activities; it does not generate them on a read), so
    without this the first fan-out would also time the emulator making up 28 days of data."""
    from app.clock import utcnow, window_start
    from app.config import get_settings
    from app.db import get_sessionmaker
    from app.security import KeyRing
    from app.strava.credentials import open_link
    from app.strava.models import StravaLink
    from sqlalchemy import select

    keyring = KeyRing(get_settings().encryption_keys())
    after = int(window_start(utcnow(), 28).timestamp())
    bodies: list[tuple[uuid.UUID, bytes]] = []
    with get_sessionmaker()() as session, httpx2.Client(base_url=emulator_url) as http:
        links = session.scalars(select(StravaLink).where(StravaLink.runner_id.in_(runner_ids)))
        for link in links:
            token = open_link(link, keyring).access_token
            response = http.get(
                ACTIVITIES,
                params={"after": after, "per_page": 200, "page": 1},
                headers={"Authorization": f"Bearer {token}"},
            )
            bodies.append((link.runner_id, response.content))
    return bodies


def floor(bodies: list[tuple[uuid.UUID, bytes]]) -> Figures:
    """Parse + bulk upsert only, from the pages fetched beforehand (not timed)."""
    from app.clock import utcnow
    from app.db import get_sessionmaker
    from app.strava.ingest import upsert_workouts
    from app.strava.payloads import SummaryActivity

    _reset_data()
    factory = get_sessionmaker()
    durations: list[int] = []
    activities = 0
    started = time.perf_counter()
    for runner_id, body in bodies:
        one = time.perf_counter()
        parsed = [SummaryActivity.model_validate(item) for item in json.loads(body)]
        with factory.begin() as session:
            upsert_workouts(session, runner_id, parsed, utcnow())
        activities += len(parsed)
        durations.append(int((time.perf_counter() - one) * 1000))
    wall = time.perf_counter() - started
    return Figures(
        label="floor: parse pages + bulk upsert only (one process, no HTTP, no broker)",
        athletes=len(bodies),
        wall_s=wall,
        activities=activities,
        requests=0,
        durations_ms=durations,
        results={"ok": len(bodies)},
    )


# A fixed, CPU-bound, pure-Python piece of work (JSON round trips): about a second on one core.
_PROBE = (
    "import json\n"
    "doc = {'id': 1, 'name': 'Morning Run', 'laps': [{'i': i, 'pace': i / 7} for i in range(40)]}\n"
    "for _ in range(12_000):\n"
    "    json.loads(json.dumps(doc))\n"
)


def parallel_capacity(processes: int) -> tuple[float, float]:
    """(capacity, one-process seconds): `processes` copies of the probe at once did
    capacity x the work per second of one copy alone (best of two tries each)."""

    def wall(copies: int) -> float:
        best = float("inf")
        for _ in range(2):
            started = time.perf_counter()
            running = [subprocess.Popen([sys.executable, "-c", _PROBE]) for _ in range(copies)]
            for process in running:
                process.wait()
            best = min(best, time.perf_counter() - started)
        return best

    alone = wall(1)
    return processes * alone / wall(processes), alone


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--athletes", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=8, help="worker pool processes")
    parser.add_argument("--latency-ms", type=int, default=50, help="0 skips the slow run")
    args = parser.parse_args()

    import redis

    tag = secrets.token_hex(4)
    with tempfile.TemporaryDirectory(prefix="bench-sync-") as tmp, database() as db_url:
        workdir = Path(tmp)
        with emulator(args.athletes, workdir) as emulator_url:
            configure_environment(db_url, emulator_url, tag)
            from app.config import get_settings
            from app.migrations import upgrade
            from strava_emulator.testing import AdminClient

            get_settings.cache_clear()
            upgrade(db_url)
            admin = AdminClient(emulator_url)
            admin.set_rate_limits(overall_limit=HUGE, read_limit=HUGE)
            print(f"set-up: {args.athletes:,} athletes on the emulator at {emulator_url}")
            started = time.perf_counter()
            runner_ids = link_athletes(admin, args.athletes)
            print(f"  {len(runner_ids):,} links sealed in {time.perf_counter() - started:.1f} s")
            started = time.perf_counter()
            pages = fetch_pages(runner_ids, emulator_url)
            print(
                f"  {len(pages):,} window pages fetched in {time.perf_counter() - started:.1f} s"
                " (the floor's input; warms the emulator's rendered activities)"
            )
            cores = os.cpu_count() or 1
            capacity, alone = parallel_capacity(cores)
            print(
                f"  parallel capacity: {cores} CPU-bound processes at once did {capacity:.2f}x"
                f" the work of one alone ({alone:.2f} s), ideal {cores:.2f}"
            )
            print(f"  worker: 1 process x {args.concurrency} (prefork), Redis broker and budget")
            try:
                fast = fan_out(
                    "fan-out through Celery (emulator on loopback)",
                    runner_ids,
                    args.concurrency,
                    workdir,
                )
                fast.print()
                if args.latency_ms:
                    admin.add_fault(
                        ACTIVITIES, "latency", latency_ms=args.latency_ms, count=10_000_000
                    )
                    fan_out(
                        f"fan-out through Celery, {args.latency_ms} ms emulator latency",
                        runner_ids,
                        args.concurrency,
                        workdir,
                    ).print()
                    admin.clear_faults()
                best = floor(pages)
                best.print()
                print(
                    f"\nratio fan-out / floor    {fast.rate:.1f} / {best.rate:.1f} athletes/s"
                    f" = {fast.rate / best.rate:.2f}   (load average {_loadavg()};"
                    f" parallel capacity {capacity:.2f} of {cores})"
                )
            finally:
                admin.close()
                client = redis.Redis.from_url(REDIS_URL)
                for pattern in (f"bench-sync-{tag}*", f"bench-budget-{tag}*"):
                    keys = list(client.scan_iter(match=pattern))
                    if keys:
                        client.delete(*keys)


if __name__ == "__main__":
    main()
