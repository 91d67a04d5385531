"""Polling versus webhooks + reconciliation over one day of N runners (issue 11).

    uv run python bench/webhooks.py [--athletes 1000] [--reconcile-hours 72]

What it does today (the intake of branch `hooks` is not on main yet, so this is the HARNESS and
a MODEL, not yet an end-to-end measurement):

1. The emulator as a subprocess with N generated athletes (bench/sync.py's set-up). Each
   athlete's activities of the last full UTC day, with the emulator's realistic upload times
   (`available_at`), come from its admin API: these are the day's uploads.
2. The day is replayed tick by tick (60 s of simulated time each, so a day takes seconds) through
   the orchestrator's own scheduling arithmetic (`scheduling.slot_offset`/`next_slot`,
   REQUESTS_PER_SYNC, the budget's reserve and window arithmetic) under Strava's Standard tier:
   200 reads per 15 minutes and 2,000 per day, of which RATE_BUDGET_RESERVE (5 %) is kept for the
   link flow. Nothing is ever sent over a spent window, so 429s are 0 by construction.
   - polling: every link synced at its hourly slot, 2 reads a sync, as `tick` caps it;
   - push: one read (GET /activities/{id}) per upload event when it arrives (or at the window's
     reset if the budget is spent), plus the 28-day listing (2 reads) per link every
     reconciliation interval, at its slot within that interval.
3. Printed for each: Strava reads per athlete-day (spent, and what the schedule asks for),
   runners served per 1,000 daily reads, freshness p50/p95/p99 in simulated seconds from upload
   to the read that brings the activity in, uploads not brought in within the day, 429s, and the
   reconciliation interval. A sweep over reconciliation intervals shows why
   SYNC_RECONCILE_SECONDS defaults to 3 days.

Not measured yet (needs the webhook intake on main): freshness in wall-clock seconds from the
emulator's upload to the workout committed through API + inbox + worker, events
received/processed/lost, and the webhook POST's ack p99 under 200 events/s. The push figures
assume every event arrives (Strava retries three times; reconciliation catches the rest).
"""

from __future__ import annotations

import argparse
import heapq
import importlib
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--athletes", type=int, default=1000)
    parser.add_argument("--reconcile-hours", type=float, default=72.0)
    parser.add_argument(
        "--sweep",
        default="6,12,24,48,72,96",
        help="reconciliation intervals (hours) to compare, comma-separated",
    )
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).parent))
    from strava_emulator.testing import AdminClient

    emulator = importlib.import_module("sync").emulator  # bench/sync.py's set-up

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
    print(
        "\nnot measured (needs the webhook intake on main): wall-clock freshness upload -> "
        "workout committed, events received/processed/lost, ack p99 at 200 events/s"
    )


if __name__ == "__main__":
    main()
