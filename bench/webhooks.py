"""Polling versus webhooks + reconciliation over one day of N runners (issue 11).

    uv run python bench/webhooks.py [--athletes 1000] [--reconcile-hours 72] [--day-seconds 300]
    uv run python bench/webhooks.py --ack-only [--athletes 1000] [--profile DIR]

Needs PostgreSQL and Redis as bench/sync.py does (its set-up is reused: the emulator as a
subprocess with N generated athletes, a database of its own, one sealed link per athlete).
The day is the emulator's last full UTC day; its uploads are the generated activities'
`available_at`, the emulator's realistic upload times. Strava's Standard tier: 200 reads per
15 minutes and 2,000 per day, of which RATE_BUDGET_RESERVE (5 %) is left for the link flow.

1. MODEL (seconds): the day replayed minute by minute through the orchestrator's scheduling
   arithmetic (`slot_offset`/`next_slot`, REQUESTS_PER_SYNC, the budget's windows): polling
   hourly (2 reads a sync) and push (1 read per upload event, plus the 28-day listing, 2 reads,
   per link every reconciliation interval), and a sweep over reconciliation intervals: why
   SYNC_RECONCILE_SECONDS defaults to 3 days.
2. POLLING END TO END (in process): the real `scheduling.tick`, rate budget (Redis) and
   `run_sync` against the emulator over HTTP, with this process's clock (time-machine) and the
   emulator's moved together through the day as fast as the machine goes, so Strava's windows
   (the emulator's own, on its clock) scale with the compression. Freshness in simulated time.
3. PUSH END TO END (when the webhook intake is on the branch): `orchestrator serve` and
   `orchestrator worker` as processes, the subscription made by `app.strava.subscriptions`, the
   emulator's clock run through the day `86400 / --day-seconds` times faster than real time with
   its read limits scaled by as much; its create events go to the API, the inbox and the worker.
   Freshness in wall-clock seconds from the emulator queueing the event to the workout row
   (its `created_at`, the write transaction's start), events delivered/processed/lost, 429s,
   reads per athlete-day (fetches measured + reconciliation modelled), then a burst of
   `--ack-rate` (200) events/s for `--ack-seconds` and the POST's ack latency p50/p95/p99, with
   the CPU time the API process and the worker's processes spent per event (from /proc: the
   burst's CPU delta over its events; the worker's until the inbox is drained).

`--ack-only`: only the burst (API and worker started, no model, no polling, no simulated day).
`--profile DIR`: `py-spy record` of the API process during the burst, into DIR: raw profiles
for bench/profile_top.py, api-cpu.txt (the GIL holder) and api-wall.txt (every thread).
`--ack-warmup S`: S seconds of events at the same rate first, not counted (a fresh API and
worker, as the simulated day of the full run leaves them warm).
"""

from __future__ import annotations

import argparse
import contextlib
import heapq
import importlib
import importlib.util
import statistics
import sys
import tempfile
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

READ_LIMIT_SHORT = 200  # Strava's Standard tier, per 15 minutes (docs/strava.md §2)
READ_LIMIT_DAILY = 2_000
RESERVE = 0.05  # RATE_BUDGET_RESERVE: left for the link flow
TICK = timedelta(seconds=60)  # SYNC_TICK_SECONDS
DAY = timedelta(days=1)
BENCH_VERIFY_TOKEN = "bench-verify-token"  # STRAVA_WEBHOOK_VERIFY_TOKEN of the bench's API
TARGET_RUNNERS_PER_1000 = 500
TARGET_FRESHNESS_P95_S = 60.0


@dataclass
class Budget:
    """The shared rate budget's arithmetic: reads counted per 15-minute and daily window."""

    short_limit: int = int(READ_LIMIT_SHORT * (1 - RESERVE))
    daily_limit: int = int(READ_LIMIT_DAILY * (1 - RESERVE))
    short_window: datetime | None = None
    short_used: int = 0
    daily_used: int = 0
    spent: int = 0

    def _roll(self, now: datetime) -> None:
        window = now.replace(minute=now.minute - now.minute % 15, second=0, microsecond=0)
        if window != self.short_window:
            self.short_window, self.short_used = window, 0

    def remaining(self, now: datetime) -> int:
        self._roll(now)
        return max(0, min(self.short_limit - self.short_used, self.daily_limit - self.daily_used))

    def take(self, now: datetime, reads: int) -> bool:
        if self.remaining(now) < reads:
            return False
        self.short_used += reads
        self.daily_used += reads
        self.spent += reads
        return True


@dataclass
class Result:
    label: str
    athletes: int
    uploads: int
    reads: int
    reads_asked: float  # per athlete-day, what the schedule asks for without a budget
    freshness_s: list[float] = field(default_factory=list)
    not_in: int = 0
    reconcile_s: int | None = None

    def line(self) -> str:
        per_athlete = self.reads / self.athletes
        served = 1000 / max(per_athlete, self.reads_asked, 1e-9)
        if self.freshness_s:
            cuts = statistics.quantiles(self.freshness_s, n=100, method="inclusive")
            p50, p95, p99 = cuts[49], cuts[94], cuts[98]
            fresh = f"p50 {p50:7.0f} s  p95 {p95:7.0f} s  p99 {p99:7.0f} s"
            ok_fresh = p95 <= TARGET_FRESHNESS_P95_S and self.not_in == 0
        else:
            fresh, ok_fresh = "no uploads brought in", False
        interval = f"{self.reconcile_s / 3600:g} h" if self.reconcile_s else "-"
        return (
            f"{self.label:<28} reads/athlete-day {per_athlete:5.2f} (asked {self.reads_asked:5.2f})"
            f"  runners per 1,000 daily reads {served:6.1f}"
            f" [{'ok' if served >= TARGET_RUNNERS_PER_1000 else 'MISS'}]\n"
            f"{'':<28} freshness (simulated) {fresh} [{'ok' if ok_fresh else 'MISS'}]"
            f"  not in within the day {self.not_in}/{self.uploads}  429s 0"
            f"  reconcile interval {interval}"
        )


def _ticks(start: datetime) -> list[datetime]:
    return [start + TICK * i for i in range(int(DAY / TICK) + 1)]


def simulate_polling(
    links: list[uuid.UUID], uploads: dict[uuid.UUID, list[datetime]], start: datetime
) -> Result:
    from app.strava.scheduling import REQUESTS_PER_SYNC, next_slot, slot_offset

    interval = 3600
    budget = Budget()
    due = [(start + timedelta(seconds=slot_offset(link, interval)), link) for link in links]
    heapq.heapify(due)
    pending = {link: sorted(uploads.get(link, [])) for link in links}
    result = Result("polling (hourly)", len(links), sum(map(len, pending.values())), 0, 48.0)
    for now in _ticks(start):
        capacity = budget.remaining(now) // REQUESTS_PER_SYNC
        while due and due[0][0] <= now and capacity > 0:
            _, link = heapq.heappop(due)
            budget.take(now, REQUESTS_PER_SYNC)
            capacity -= 1
            seen = [t for t in pending[link] if t <= now]
            result.freshness_s += [(now - t).total_seconds() for t in seen]
            pending[link] = [t for t in pending[link] if t > now]
            heapq.heappush(due, (next_slot(link, now, interval), link))
    result.reads = budget.spent
    result.not_in = sum(len(left) for left in pending.values())
    return result


def simulate_push(
    links: list[uuid.UUID],
    uploads: dict[uuid.UUID, list[datetime]],
    start: datetime,
    reconcile_s: int,
) -> Result:
    from app.strava.scheduling import REQUESTS_PER_SYNC, slot_offset

    budget = Budget()
    events = sorted((t, link) for link, times in uploads.items() for t in times)
    reconcile_due = [
        (start + timedelta(seconds=slot_offset(link, reconcile_s)), link) for link in links
    ]
    reconcile_due = [(t, link) for t, link in reconcile_due if t < start + DAY]
    heapq.heapify(reconcile_due)
    asked = len(events) / len(links) + REQUESTS_PER_SYNC * 86400 / reconcile_s
    result = Result(
        f"push + reconcile {reconcile_s / 3600:g} h",
        len(links),
        len(events),
        0,
        asked,
        reconcile_s=reconcile_s,
    )
    waiting: list[tuple[datetime, uuid.UUID]] = []  # events deferred by a spent budget
    index = 0
    for now in _ticks(start):
        # Events that arrived since the last tick are fetched at once, in arrival order
        # (the inbox's order); a spent budget defers them to a later tick (the window reset).
        while index < len(events) and events[index][0] <= now:
            waiting.append(events[index])
            index += 1
        still: list[tuple[datetime, uuid.UUID]] = []
        for uploaded, link in waiting:
            if budget.take(max(now - TICK, uploaded), 1):
                # Arrived within this tick and fetched at once: freshness is the intake's own
                # latency (0 here; measured end to end once the intake is on main).
                result.freshness_s.append(max(0.0, (now - TICK - uploaded).total_seconds()))
            else:
                still.append((uploaded, link))
        waiting = still
        capacity = budget.remaining(now) // REQUESTS_PER_SYNC
        while reconcile_due and reconcile_due[0][0] <= now and capacity > 0:
            _, link = heapq.heappop(reconcile_due)
            budget.take(now, REQUESTS_PER_SYNC)
            capacity -= 1
            heapq.heappush(reconcile_due, (now + timedelta(seconds=reconcile_s), link))
    result.reads = budget.spent
    result.not_in = len(waiting) + len(events) - index
    return result


def day_uploads(
    admin: Any, athlete_ids: list[int], start: datetime
) -> tuple[dict[int, list[datetime]], float]:
    """Each athlete's uploads (available_at) within [start, start + 1 day)."""
    found: dict[int, list[datetime]] = {}
    for athlete_id in athlete_ids:
        times = []
        for activity in admin.list_activities(athlete_id):
            at = datetime.fromisoformat(activity["available_at"].replace("Z", "+00:00"))
            if start <= at < start + DAY:
                times.append(at.astimezone(UTC))
        found[athlete_id] = times
    per_day = sum(map(len, found.values())) / max(1, len(athlete_ids))
    return found, per_day


# --- end to end: emulator → API → inbox → worker → workout, in wall-clock seconds -----------------


@dataclass
class EndToEnd:
    compression: float
    uploads: int
    delivered: int
    processed: int
    committed: int
    fetch_reads: int
    too_many: int
    freshness_s: list[float]
    ack_ms: list[float]
    ack_failures: int
    ack_rate: float
    ack: AckCosts | None = None

    def print(self, athletes: int, reconcile_s: int) -> None:
        from app.strava.scheduling import REQUESTS_PER_SYNC

        def cut(values: list[float]) -> str:
            if len(values) < 2:
                return "n/a"
            q = statistics.quantiles(values, n=100, method="inclusive")
            return f"p50 {q[49]:.2f}  p95 {q[94]:.2f}  p99 {q[98]:.2f}"

        per_day = self.fetch_reads / athletes + REQUESTS_PER_SYNC * 86400 / reconcile_s
        print(
            f"\nEND TO END (push; a day compressed {self.compression:g}x, read limits scaled "
            f"with it)\n"
            f"  uploads {self.uploads}  events delivered {self.delivered}  processed "
            f"{self.processed}  workouts committed {self.committed}  lost "
            f"{self.uploads - self.committed}  429s {self.too_many}\n"
            f"  reads per athlete-day: {self.fetch_reads / athletes:.2f} fetches measured + "
            f"{REQUESTS_PER_SYNC * 86400 / reconcile_s:.2f} reconciliation (every "
            f"{reconcile_s / 3600:g} h, modelled) = {per_day:.2f} -> "
            f"{1000 / per_day:.0f} runners per 1,000 daily reads\n"
            f"  freshness upload -> workout committed, wall-clock s: {cut(self.freshness_s)}\n"
            f"  ack of POST /api/v1/strava/webhook at {self.ack_rate:.0f} events/s, ms: "
            f"{cut(self.ack_ms)}  non-200: {self.ack_failures}"
        )
        if self.ack is not None:
            print(self.ack.line())


@dataclass
class AckCosts:
    """What the burst cost: CPU per event of the API and of the worker, drain time."""

    events: int
    api_cpu_s: float
    worker_cpu_s: float
    drained_after_s: float | None
    loadavg: str

    def line(self) -> str:
        drained = "not drained" if self.drained_after_s is None else f"{self.drained_after_s:.1f} s"
        return (
            f"  CPU per event: API {self.api_cpu_s * 1000 / self.events:.2f} ms, worker "
            f"{self.worker_cpu_s * 1000 / self.events:.2f} ms; inbox drained {drained} after "
            f"the burst's last POST; load average {self.loadavg}"
        )


def _group_cpu_s(pgid: int) -> float:
    """User + system CPU seconds of every live process of a process group (Linux /proc)."""
    import os

    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        if int(fields[2]) == pgid:  # fields[2]: pgrp; [11], [12]: utime, stime
            total += int(fields[11]) + int(fields[12])
    return total / ticks


def _start(command: list[str], log: Path, env: dict[str, str]) -> Any:
    import subprocess

    return subprocess.Popen(
        command, stdout=log.open("wb"), stderr=subprocess.STDOUT, env=env, start_new_session=True
    )


def _stop(process: Any) -> None:
    import os
    import signal
    import subprocess

    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)


def _poll(predicate: Any, timeout: float, what: str) -> None:
    import time

    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        time.sleep(0.2)  # a deadline-bound poll of processes that start or drain


def end_to_end(args: argparse.Namespace, sync_module: Any, workdir: Path) -> EndToEnd | None:
    """The push path for real: N linked athletes, the API and a worker as processes, the
    emulator's clock run through yesterday `compression` times faster than real time so its
    generated uploads fire create events, then a burst of events at `ack_rate` per second."""
    compression = 86400 / args.day_seconds
    tag = uuid.uuid4().hex[:8]
    try:
        return _end_to_end(args, sync_module, workdir, compression, tag)
    finally:
        _forget_redis(tag)


def _forget_redis(tag: str) -> None:
    """The bench's queue, budget and beat keys on the shared Redis (configure_environment)."""
    import redis

    client = redis.Redis.from_url(importlib.import_module("sync").REDIS_URL)
    for pattern in (f"bench-budget-{tag}:*", f"bench-sync-{tag}*"):
        keys = list(client.scan_iter(match=pattern))
        if keys:
            client.delete(*keys)
    client.close()


def _end_to_end(
    args: argparse.Namespace, sync_module: Any, workdir: Path, compression: float, tag: str
) -> EndToEnd | None:
    import asyncio
    import os
    import sys
    import time

    from strava_emulator.testing import AdminClient

    with sync_module.emulator(args.athletes, workdir) as emulator_url, sync_module.database() as db:
        sync_module.configure_environment(db, emulator_url, tag)
        port = sync_module._free_port()
        base = f"http://127.0.0.1:{port}"
        os.environ.update(
            {
                "STRAVA_WEBHOOK_VERIFY_TOKEN": BENCH_VERIFY_TOKEN,
                "PUBLIC_BASE_URL": base,
                "PROMETHEUS_MULTIPROC_DIR": str(workdir / "metrics"),
                "STRAVA_TIMEOUT_SECONDS": "10",
            }
        )
        (workdir / "metrics").mkdir(exist_ok=True)
        from app.config import get_settings
        from app.db import get_sessionmaker
        from app.migrations import upgrade
        from app.strava import subscriptions
        from app.strava.client import create_http_client
        from app.strava.runtime import build_strava_client

        get_settings.cache_clear()
        upgrade(db)
        admin = AdminClient(emulator_url)
        runner_ids = sync_module.link_athletes(admin, args.athletes)
        athlete_ids = [a["id"] for a in admin.list_athletes(limit=args.athletes)]
        now = admin.clock_now()
        day = now.replace(hour=0, minute=0, second=0, microsecond=0) - DAY
        if not args.ack_only:
            try:
                polling = polling_in_process(
                    admin, dict(zip(runner_ids, athlete_ids, strict=True)), day
                )
                polling.print(len(runner_ids))
            except Exception as exc:  # report it and still run the push half
                print(f"\nEND TO END (polling) failed: {type(exc).__name__}: {str(exc)[:300]}")
            _reset_after_polling()
        if importlib.util.find_spec("app.strava.webhooks") is None:
            print(
                "\nEND TO END (push): not measured, the webhook intake is not on this branch "
                "(wall-clock freshness, events received/processed/lost, ack p99)"
            )
            return None
        scaled = (int(READ_LIMIT_SHORT * compression), int(READ_LIMIT_DAILY * compression))
        admin.set_rate_limits(read_limit=scaled, overall_limit=(scaled[0] * 2, scaled[1] * 2))
        env = dict(os.environ)
        exe = [sys.executable, "-m", "app.cli"]
        api = _start([*exe, "serve", "--port", str(port)], workdir / "api.log", env)
        worker = _start([*exe, "worker", "--concurrency", "2"], workdir / "worker.log", env)
        try:
            _poll(lambda: _up(f"{base}/healthz"), 60, "the API")
            _poll(
                lambda: "ready." in (workdir / "worker.log").read_text("utf-8", "replace"),
                60,
                "worker",
            )
            admin.set_clock(day)  # yesterday 00:00: its uploads fire as the clock runs through it
            settings = get_settings()
            with create_http_client() as http:
                subscription = subscriptions.subscribe(
                    get_sessionmaker(),
                    build_strava_client(settings, http),
                    callback_url=f"{base}/api/v1/strava/webhook",
                    verify_token=BENCH_VERIFY_TOKEN,
                )
            admin.clear_requests()
            wanted: dict[int, float] = {}
            creates: list[Any] = []
            if not args.ack_only:
                started = time.monotonic()
                while admin.clock_now() < day + DAY:
                    target = day + timedelta(seconds=(time.monotonic() - started) * compression)
                    if target > admin.clock_now():
                        admin.set_clock(min(target, day + DAY))
                    time.sleep(0.25)  # the compressed clock's step, not a synchronisation
                admin.wait_for_webhooks(timeout=120)
                deliveries = admin.webhook_deliveries()
                creates = [d for d in deliveries if d["event"]["aspect_type"] == "create"]
                wanted = {d["event"]["object_id"]: d["queued_wall_ts"] for d in creates}
                _poll(lambda: _committed(wanted) >= len(wanted), 120, "workouts to commit")
            freshness = _freshness(wanted)
            requests = admin.requests()
            fetches = sum(
                1
                for r in requests
                if r["path"].startswith("/api/v3/activities/") and r["method"] == "GET"
            )
            too_many = sum(1 for r in requests if r["status"] == 429)
            processed = _processed()
            if args.ack_warmup > 0:
                # Not measured: a freshly started API and worker (connections, first tasks in
                # each pool process) as the simulated day leaves them in the full run.
                warm, _ = asyncio.run(
                    _ack_burst(base, admin, args, subscription.id, args.ack_warmup, 10**8)
                )
                q = statistics.quantiles(warm, n=100, method="inclusive")
                print(
                    f"  warm-up ({args.ack_warmup:g} s, not counted): "
                    f"p50 {q[49]:.1f}  p99 {q[98]:.1f}"
                )
                _poll(lambda: _open_events() == 0, 120, "the warm-up to drain")
            api_cpu, worker_cpu = _group_cpu_s(api.pid), _group_cpu_s(worker.pid)
            profiler = _profile(api.pid, args) if args.profile else None
            try:
                acks, failures = asyncio.run(
                    _ack_burst(base, admin, args, subscription.id, args.ack_seconds)
                )
            finally:
                if profiler is not None:
                    _finish(profiler)
            api_cpu = _group_cpu_s(api.pid) - api_cpu
            burst_end = time.monotonic()
            drained: float | None = None
            with contextlib.suppress(TimeoutError):
                _poll(lambda: _open_events() == 0, 120, "the inbox to drain")
                drained = time.monotonic() - burst_end
            ack = AckCosts(
                events=len(acks),
                api_cpu_s=api_cpu,
                worker_cpu_s=_group_cpu_s(worker.pid) - worker_cpu,
                drained_after_s=drained,
                loadavg=" ".join(Path("/proc/loadavg").read_text().split()[:3]),
            )
            return EndToEnd(
                compression=compression,
                uploads=len(wanted),
                delivered=sum(1 for d in creates if d["state"] == "delivered"),
                processed=processed,
                committed=_committed(wanted),
                fetch_reads=fetches,
                too_many=too_many,
                freshness_s=freshness,
                ack_ms=acks,
                ack_failures=failures,
                ack_rate=args.ack_rate,
                ack=ack,
            )
        finally:
            _stop(api)
            _stop(worker)
            admin.close()
            from app.db import get_engine

            get_engine().dispose()


@dataclass
class PollingRun:
    uploads: int
    committed: int
    reads: int
    too_many: int
    freshness_sim_s: list[float]
    wall_s: float

    def print(self, athletes: int) -> None:
        per = self.reads / athletes
        if len(self.freshness_sim_s) >= 2:
            q = statistics.quantiles(self.freshness_sim_s, n=100, method="inclusive")
            fresh = f"p50 {q[49]:.0f}  p95 {q[94]:.0f}  p99 {q[98]:.0f}"
        else:
            fresh = "n/a"
        compression = 86400 / self.wall_s
        print(
            f"\nEND TO END (polling, in process: the real tick, budget and run_sync; this "
            f"process's clock and the emulator's run through the day together, "
            f"{compression:.0f}x faster than real time, so Strava's windows scale with it)\n"
            f"  uploads {self.uploads}  brought in within the day {self.committed}  "
            f"not in {self.uploads - self.committed}  429s {self.too_many}\n"
            f"  reads per athlete-day {per:.2f} (the budget's cap; hourly polling asks 48) -> "
            f"{1000 / 48:.1f} runners per 1,000 daily reads at the hourly schedule\n"
            f"  freshness upload -> sync that brought it in, simulated s: {fresh} "
            f"(wall-clock: divide by {compression:.0f})"
        )


def polling_in_process(admin: Any, athletes: dict[uuid.UUID, int], day: datetime) -> PollingRun:
    """The hourly schedule through one simulated day: every minute of it, move both clocks,
    run the real `scheduling.tick`, then the syncs it queued (in process: `run_sync` is what the
    worker's task calls)."""
    import time

    import time_machine
    from app.config import get_settings
    from app.strava import scheduling
    from app.strava.models import SyncRun
    from app.strava.runtime import build_runtime
    from app.strava.sync import run_sync

    settings = get_settings()
    uploads = {
        runner: times
        for runner, times in zip(
            athletes, day_uploads(admin, list(athletes.values()), day)[0].values(), strict=True
        )
    }
    admin.set_rate_limits(
        read_limit=(READ_LIMIT_SHORT, READ_LIMIT_DAILY),
        overall_limit=(READ_LIMIT_SHORT * 5, READ_LIMIT_DAILY * 15),
        read_usage=(0, 0),
        overall_usage=(0, 0),
    )
    runtime = build_runtime(settings)
    runtime.budget.reset()
    admin.set_clock(day)
    admin.clear_requests()
    seen: dict[uuid.UUID, int] = dict.fromkeys(athletes, 0)
    freshness: list[float] = []
    queued: list[uuid.UUID] = []
    started = time.monotonic()
    with time_machine.travel(day, tick=False) as traveller:
        for now in _ticks(day)[:-1]:
            admin.set_clock(now)
            traveller.move_to(now)
            scheduling.tick(
                runtime,
                enqueue=queued.append,
                stale_queued=timedelta(seconds=settings.stale_queued_seconds),
                reserve=settings.rate_budget_reserve,
            )
            while queued:
                run_id = queued.pop()
                with runtime.sessions() as session:
                    run = session.get(SyncRun, run_id)
                    runner = run.runner_id if run is not None else None
                if run_sync(runtime, run_id).result != "ok" or runner is None:
                    continue
                arrived = [t for t in uploads.get(runner, []) if t <= now]
                freshness += [(now - t).total_seconds() for t in arrived[seen[runner] :]]
                seen[runner] = len(arrived)
    wall = time.monotonic() - started
    requests = admin.requests()
    runtime.close()
    return PollingRun(
        uploads=sum(map(len, uploads.values())),
        committed=len(freshness),
        reads=sum(1 for r in requests if r["path"].startswith("/api/v3/athlete/activities")),
        too_many=sum(1 for r in requests if r["status"] == 429),
        freshness_sim_s=freshness,
        wall_s=wall,
    )


def _reset_after_polling() -> None:
    from app.db import get_sessionmaker
    from sqlalchemy import text

    with get_sessionmaker().begin() as session:
        session.execute(text("TRUNCATE workouts, sync_runs"))
        session.execute(text("UPDATE strava_links SET next_sync_at = NULL, error_code = NULL"))


def _up(url: str) -> bool:
    import httpx2

    try:
        return httpx2.get(url, timeout=1).status_code == 200
    except httpx2.HTTPError:
        return False


def _committed(wanted: dict[int, float]) -> int:
    from app.db import get_sessionmaker
    from app.workouts.models import Workout
    from sqlalchemy import func, select

    with get_sessionmaker()() as session:
        found = session.scalar(
            select(func.count()).select_from(Workout).where(Workout.source_id.in_(list(wanted)))
        )
        return int(found or 0)


def _freshness(wanted: dict[int, float]) -> list[float]:
    """Workout committed (its row's creation time) minus the emulator's queueing of the event,
    both real epoch seconds on this machine."""
    from app.db import get_sessionmaker
    from app.workouts.models import Workout
    from sqlalchemy import select

    with get_sessionmaker()() as session:
        rows = session.execute(
            select(Workout.source_id, Workout.created_at).where(Workout.source_id.in_(list(wanted)))
        )
        return [created.timestamp() - wanted[source_id] for source_id, created in rows]


def _profile(pid: int, args: argparse.Namespace) -> Any:
    """py-spy recording the API process during the burst (two recorders, see below)."""
    import shutil
    import subprocess
    import time

    directory = Path(args.profile)
    directory.mkdir(parents=True, exist_ok=True)
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    duration = str(int(args.ack_seconds) + 2)
    # --nonblocking: a paused process at every sample would distort the latencies measured.
    common = ["--pid", str(pid), "--duration", duration, "--rate", "100", "--nonblocking"]
    # api-cpu.txt (--gil): only the thread holding the GIL, i.e. where the API's CPU goes;
    # api-wall.txt (--idle): every thread, waiting ones too, i.e. where a request's time goes.
    recorders = [
        subprocess.Popen(
            [spy, "record", *common, *extra, "--format", "raw", "-o", str(directory / name)],
            stdout=subprocess.DEVNULL,
            stderr=(directory / f"{name}.log").open("wb"),
            start_new_session=True,
        )
        for name, extra in (("api-cpu.txt", ["--gil"]), ("api-wall.txt", ["--idle"]))
    ]
    time.sleep(1.0)  # py-spy attaching, not a synchronisation of the service
    return recorders


def _finish(profilers: list[Any]) -> None:
    """Let py-spy end its --duration and write the profiles (a signal would lose them)."""
    import subprocess

    for profiler in profilers:
        try:
            profiler.wait(timeout=30)
        except subprocess.TimeoutExpired:
            _stop(profiler)


def _open_events() -> int:
    from app.db import get_sessionmaker
    from sqlalchemy import text

    with get_sessionmaker()() as session:
        return int(
            session.scalar(
                text(
                    "SELECT count(*) FROM inbox_events"
                    " WHERE state IN ('pending', 'processing', 'deferred')"
                )
            )
            or 0
        )


def _processed() -> int:
    from app.db import get_sessionmaker
    from sqlalchemy import text

    with get_sessionmaker()() as session:
        return int(
            session.scalar(text("SELECT count(*) FROM inbox_events WHERE state = 'done'")) or 0
        )


async def _ack_burst(
    base: str,
    admin: Any,
    args: argparse.Namespace,
    subscription_id: int,
    duration_s: float,
    first_id: int = 0,
) -> tuple[list[float], int]:
    """POST `ack_rate` events a second for `ack_seconds` (deletes of activities that do not
    exist, for linked athletes: stored and processed without a Strava read) and time each 200."""
    import asyncio
    import time

    import httpx2

    athletes = [a["id"] for a in admin.list_athletes(limit=100)]
    total = int(args.ack_rate * duration_s)
    latencies: list[float] = []
    seconds: dict[int, list[float]] = {}
    failures = 0
    url = f"{base}/api/v1/strava/webhook"
    limits = httpx2.Limits(max_connections=64)
    async with httpx2.AsyncClient(timeout=10, limits=limits) as client:

        async def one(i: int, at: float) -> None:
            nonlocal failures
            await asyncio.sleep(max(0.0, at - time.monotonic()))
            event = {
                "aspect_type": "delete",
                "event_time": 1_700_000_000 + first_id + i,
                "object_id": 9_000_000_000 + first_id + i,
                "object_type": "activity",
                "owner_id": athletes[i % len(athletes)],
                "subscription_id": subscription_id,
                "updates": {},
            }
            sent = time.monotonic()
            try:
                response = await client.post(url, json=event)
                ok = response.status_code == 200
            except httpx2.HTTPError:
                ok = False
            latencies.append((time.monotonic() - sent) * 1000)
            seconds.setdefault(int(sent - start), []).append(latencies[-1])
            failures += 0 if ok else 1

        start = time.monotonic() + 0.5
        await asyncio.gather(*(one(i, start + i / args.ack_rate) for i in range(total)))
    # Where the slow acks are: each second of the burst, its median and slowest ack.
    print(
        "  ack per second of the burst (p50/max ms): "
        + "  ".join(
            f"{statistics.median(found):.0f}/{max(found):.0f}"
            for _, found in sorted(seconds.items())
            if found
        )
    )
    return latencies, failures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--athletes", type=int, default=1000)
    parser.add_argument("--reconcile-hours", type=float, default=72.0)
    parser.add_argument(
        "--sweep",
        default="6,12,24,48,72,96",
        help="reconciliation intervals (hours) to compare, comma-separated",
    )
    parser.add_argument(
        "--day-seconds",
        type=float,
        default=300.0,
        help="end to end: real seconds the simulated day is compressed into",
    )
    parser.add_argument("--ack-rate", type=float, default=200.0, help="events/s for the ack p99")
    parser.add_argument("--ack-seconds", type=float, default=10.0)
    parser.add_argument(
        "--ack-warmup",
        type=float,
        default=0.0,
        help="seconds of events at --ack-rate before the measured burst (not counted)",
    )
    parser.add_argument(
        "--model-only", action="store_true", help="skip the end-to-end run (no API, no worker)"
    )
    parser.add_argument(
        "--ack-only",
        action="store_true",
        help="only the ack burst: no model, no polling, no simulated day",
    )
    parser.add_argument(
        "--profile", metavar="DIR", help="py-spy record of the API process during the burst"
    )
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).parent))
    import logging

    from app.logging import configure_logging

    configure_logging(level=logging.WARNING)  # the figures, not a log line per Strava request
    from strava_emulator.testing import AdminClient

    emulator = importlib.import_module("sync").emulator  # bench/sync.py's set-up
    if args.ack_only:
        with tempfile.TemporaryDirectory() as tmp:
            figures = end_to_end(args, importlib.import_module("sync"), Path(tmp))
        if figures is not None:
            figures.print(args.athletes, int(args.reconcile_hours * 3600))
        return

    with tempfile.TemporaryDirectory() as tmp, emulator(args.athletes, Path(tmp)) as url:
        admin = AdminClient(url)
        athletes: list[dict[str, Any]] = []
        while len(athletes) < args.athletes:
            page = admin.list_athletes(offset=len(athletes), limit=100)
            if not page:
                break
            athletes.extend(page)
        now = admin.clock_now()
        start = now.replace(hour=0, minute=0, second=0, microsecond=0) - DAY
        by_athlete, per_day = day_uploads(admin, [a["id"] for a in athletes], start)
        admin.close()
    links = {
        athlete_id: uuid.uuid5(uuid.NAMESPACE_OID, str(athlete_id)) for athlete_id in by_athlete
    }
    uploads = {links[athlete_id]: times for athlete_id, times in by_athlete.items()}
    link_ids = list(links.values())
    print(
        f"{len(link_ids)} athletes, the emulator's day {start.date()} (UTC): "
        f"{sum(map(len, uploads.values()))} uploads, {per_day:.2f} per athlete-day\n"
        f"Standard tier: {READ_LIMIT_SHORT} reads / 15 min, {READ_LIMIT_DAILY} / day, "
        f"{RESERVE:.0%} kept for the link flow; targets: >= {TARGET_RUNNERS_PER_1000} runners "
        f"per 1,000 daily reads, freshness p95 <= {TARGET_FRESHNESS_P95_S:g} s, 0 lost, 0 429s\n"
        "MODEL: simulated time through the scheduling arithmetic; not an end-to-end run "
        "(see the docstring)\n"
    )
    print(simulate_polling(link_ids, uploads, start).line())
    chosen = int(args.reconcile_hours * 3600)
    print(simulate_push(link_ids, uploads, start, chosen).line())
    print("\nreconciliation interval sweep (push):")
    for hours in (float(h) for h in args.sweep.split(",") if h):
        if int(hours * 3600) != chosen:
            print(simulate_push(link_ids, uploads, start, int(hours * 3600)).line())
    if args.model_only:
        return
    with tempfile.TemporaryDirectory() as tmp:
        figures = end_to_end(args, importlib.import_module("sync"), Path(tmp))
    if figures is not None:
        figures.print(len(link_ids), chosen)


if __name__ == "__main__":
    main()
