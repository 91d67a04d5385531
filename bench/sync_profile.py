"""Who spends the CPU while bench/sync.py runs its fan-out, and (--profile) where the worker does.

    uv run python bench/sync_profile.py [--athletes 300] [--concurrency 8] [--profile DIR]

Runs `bench/sync.py --athletes N --latency-ms 0` as it is and watches it from outside through
/proc: the emulator subprocess, the `orchestrator worker` process tree, the bench process itself
and the PostgreSQL backends serving the bench's database (found in pg_stat_activity). The window
is the worker's life after its pool started (its children seen) until it exits, i.e. the
fan-out. Printed: each group's CPU seconds in the window, its share of all of them, and its
share of the machine (CPU seconds / (wall x cores)).

--profile DIR also runs py-spy (on PATH) on the worker tree with --subprocesses for the window:
`sync-worker-cpu.txt` (--gil: where the pool processes spend CPU) and `sync-worker-wall.txt`
(--idle: where their wall time goes, waits included), both raw; and prints their top frames
(bench/profile_top.py).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
ADMIN_URL = os.environ.get("TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def _cpu_seconds(pid: int) -> float | None:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(child) for child in text.split()]


def _tree(pid: int) -> list[int]:
    found = [pid]
    for child in _children(pid):
        found.extend(_tree(child))
    return found


@dataclass
class Group:
    """CPU seconds of a set of processes: first and last reading of each pid in the window."""

    name: str
    first: dict[int, float] = field(default_factory=dict)
    last: dict[int, float] = field(default_factory=dict)

    def read(self, pids: list[int], *, baseline: bool) -> None:
        for pid in pids:
            seconds = _cpu_seconds(pid)
            if seconds is None:
                continue
            # A process born inside the window starts from zero.
            self.first.setdefault(pid, seconds if baseline else 0.0)
            self.last[pid] = seconds

    @property
    def seconds(self) -> float:
        return sum(self.last[pid] - self.first[pid] for pid in self.last)


def _bench_backends() -> list[int]:
    from sqlalchemy import create_engine, text

    engine = create_engine(ADMIN_URL)
    with engine.connect() as connection:
        rows = connection.execute(
            text("SELECT pid FROM pg_stat_activity WHERE datname LIKE 'bench_sync_%'")
        )
        pids = [int(row[0]) for row in rows]
    engine.dispose()
    return pids


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--athletes", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--profile", metavar="DIR", help="py-spy raw profiles of the worker here")
    args = parser.parse_args()

    command = [sys.executable, str(BENCH_DIR / "sync.py"), "--athletes", str(args.athletes)]
    command += ["--concurrency", str(args.concurrency), "--latency-ms", "0"]
    bench = subprocess.Popen(command)
    groups = {name: Group(name) for name in ("emulator", "worker", "bench", "postgres")}
    worker = emulator = None
    profilers: list[subprocess.Popen[bytes]] = []
    started = ended = 0.0
    while bench.poll() is None:
        for pid in _children(bench.pid):
            line = _cmdline(pid)
            if emulator is None and "strava_emulator.cli" in line:
                emulator = pid
            if worker is None and "app.cli worker" in line:
                worker = pid
        if worker is not None and not started and len(_children(worker)) >= args.concurrency:
            started = time.monotonic()
            if args.profile:
                profilers = _start_profilers(worker, args.profile)
        if started and not ended:
            baseline = not groups["worker"].first
            groups["worker"].read(_tree(worker or 0), baseline=baseline)
            groups["emulator"].read([emulator or 0], baseline=baseline)
            groups["bench"].read([bench.pid], baseline=baseline)
            groups["postgres"].read(_bench_backends(), baseline=False)
            if not _children(worker or 0) or _cpu_seconds(worker or 0) is None:
                ended = time.monotonic()
        time.sleep(0.2)
    for profiler in profilers:
        profiler.wait(timeout=60)
    if not started:
        print("no fan-out seen (did bench/sync.py fail?)")
        return
    wall = (ended or time.monotonic()) - started
    total = sum(group.seconds for group in groups.values())
    cores = os.cpu_count() or 1
    print(f"\nCPU during the fan-out window ({wall:.1f} s wall, {cores} cores):")
    print(f"{'process group':<16}{'CPU s':>8}{'of listed':>11}{'of machine':>12}")
    for group in groups.values():
        print(
            f"{group.name:<16}{group.seconds:>8.1f}{100 * group.seconds / max(total, 1e-9):>10.1f}%"
            f"{100 * group.seconds / (wall * cores):>11.1f}%"
        )
    print("(postgres: the backends serving the bench's own database, from pg_stat_activity)")
    if args.profile:
        paths = [str(Path(args.profile) / f"sync-worker-{kind}.txt") for kind in ("cpu", "wall")]
        present = [path for path in paths if Path(path).exists()]
        subprocess.run([sys.executable, str(BENCH_DIR / "profile_top.py"), *present], check=False)


def _start_profilers(worker: int, directory: str) -> list[subprocess.Popen[bytes]]:
    Path(directory).mkdir(parents=True, exist_ok=True)
    found = []
    for kind, mode in (("cpu", "--gil"), ("wall", "--idle")):
        out = str(Path(directory) / f"sync-worker-{kind}.txt")
        command = ["py-spy", "record", "--pid", str(worker), "--subprocesses", mode]
        command += ["--nonblocking", "--format", "raw", "--output", out, "--rate", "100"]
        found.append(
            subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        )
    return found


if __name__ == "__main__":
    main()
